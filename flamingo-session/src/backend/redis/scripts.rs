//! The Lua scripts of the Redis backend: the writes that are more than one plain command (merges,
//! and the sessions of an owner, whose index is kept in the same script), the owner's index
//! itself, and the leases. Each touches one session key and, for an owned session, its owner's
//! index in the same hash slot.

use redis::Script;

/// The Lua function every write of an owned session ends with: the index member's score becomes
/// now, and the index lives at least as long as the session.
const SEEN: &str = r"
local function seen(index, id, now, ttl)
  redis.call('ZADD', index, now, id)
  if redis.call('PTTL', index) < tonumber(ttl) then
    redis.call('PEXPIRE', index, ttl)
  end
end
";

/// `KEYS[1]` the session, `KEYS[2]` the owner's index; `ARGV[1]` TTL in ms, `ARGV[2]` now (Unix
/// seconds), `ARGV[3]` the session ID, `ARGV[4]` the stored object (with the owner fields).
/// Returns 1 when written, 0 when the key already exists.
const CREATE_OWNED_SCRIPT: &str = r"
if not redis.call('SET', KEYS[1], ARGV[4], 'NX', 'PX', ARGV[1]) then
  return 0
end
seen(KEYS[2], ARGV[3], ARGV[2], ARGV[1])
return 1
";

/// `KEYS[1]` an owned session; `ARGV[1]` TTL in ms, `ARGV[2]` now, `ARGV[3]` the session ID,
/// `ARGV[4]` the new object without owner fields. Writes it with the stored owner fields in front.
/// Returns 1 when written, 0 when the session is not stored (it stays dead).
const REPLACE_OWNED_SCRIPT: &str = r"
local old = redis.call('GET', KEYS[1])
if not old then
  return 0
end
local stored = cjson.decode(old)
local owner, value = stored['__flamingo.owner'], ARGV[4]
if owner then
  local head = '{' .. cjson.encode('__flamingo.owner') .. ':' .. cjson.encode(owner) .. ','
    .. cjson.encode('__flamingo.created') .. ':' .. cjson.encode(stored['__flamingo.created'])
  if value == '{}' then
    value = head .. '}'
  else
    value = head .. ',' .. string.sub(value, 2)
  end
end
redis.call('SET', KEYS[1], value, 'PX', ARGV[1])
if owner then
  seen(owner, ARGV[3], ARGV[2], ARGV[1])
end
return 1
";

/// `KEYS[1]` the session; `ARGV[1]` TTL in ms, `ARGV[2]` the size limit (0 = none), `ARGV[3]`
/// now, `ARGV[4]` the session ID, `ARGV[5]` the number n of removed keys, `ARGV[6 .. 5+n]` those
/// keys, then key/value pairs to set. The size is what `store.length` counts: the lengths of the
/// keys and values that are not owner fields. Returns `{1, size}` when written, `{0, size}` when
/// the merged state (`size` bytes) exceeds the limit and nothing was written, `{-1, 0}` when the
/// session is not stored (it stays dead).
const MERGE_SCRIPT: &str = r"
local old = redis.call('GET', KEYS[1])
if not old then
  return {-1, 0}
end
local state = cjson.decode(old)
local first_set = 6 + tonumber(ARGV[5])
for i = 6, first_set - 1 do
  state[ARGV[i]] = nil
end
for i = first_set, #ARGV, 2 do
  state[ARGV[i]] = ARGV[i + 1]
end
local size, limit = 0, tonumber(ARGV[2])
for k, v in pairs(state) do
  if string.sub(k, 1, 11) ~= '__flamingo.' then
    size = size + string.len(k) + string.len(v)
  end
end
if limit > 0 and size > limit then
  return {0, size}
end
redis.call('SET', KEYS[1], cjson.encode(state), 'PX', ARGV[1])
local owner = state['__flamingo.owner']
if owner then
  seen(owner, ARGV[4], ARGV[3], ARGV[1])
end
return {1, size}
";

/// `KEYS[1]` an owned session; `ARGV[1]` TTL in ms, `ARGV[2]` now, `ARGV[3]` the session ID.
/// Returns 1 when the session is stored (its TTL set), 0 when it is not.
const TOUCH_OWNED_SCRIPT: &str = r"
if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then
  return 0
end
local owner = cjson.decode(redis.call('GET', KEYS[1]))['__flamingo.owner']
if owner then
  seen(owner, ARGV[3], ARGV[2], ARGV[1])
end
return 1
";

/// The Lua function that names a session's key from its ID (as [`RedisBackend`](super::RedisBackend)
/// does).
const SESSION_KEY: &str = r"
local function session_key(prefix, id)
  return prefix .. '{' .. string.sub(id, 1, 3) .. '}' .. string.sub(id, 4)
end
";

/// `KEYS[1]` the owner's index; `ARGV[1]` the key prefix. Returns `{id, created, last seen, ...}`
/// for the live sessions, oldest first, and drops the members whose session is gone. A member
/// whose key holds something else (a session an earlier version stored as a hash) is left out
/// of the list and kept in the index, so that ending the owner's sessions still deletes it.
const LIST_SCRIPT: &str = r"
local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local live = {}
for i = 1, #members, 2 do
  local value = redis.pcall('GET', session_key(ARGV[1], members[i]))
  if not value then
    redis.call('ZREM', KEYS[1], members[i])
  elseif type(value) == 'string' then
    local ok, stored = pcall(cjson.decode, value)
    if ok and type(stored) == 'table' and stored['__flamingo.created'] then
      live[#live + 1] = members[i]
      live[#live + 1] = stored['__flamingo.created']
      live[#live + 1] = members[i + 1]
    end
  end
end
return live
";

/// `KEYS[1]` the owner's index; `ARGV[1]` the key prefix, `ARGV[2]` the session ID. Returns 1
/// when a live session of the owner was ended, 0 otherwise.
const END_SCRIPT: &str = r"
if redis.call('ZREM', KEYS[1], ARGV[2]) == 0 then
  return 0
end
return redis.call('DEL', session_key(ARGV[1], ARGV[2]))
";

/// `KEYS[1]` the owner's index; `ARGV[1]` the key prefix. Deletes every session in the index
/// and the index; returns how many sessions were live.
const END_ALL_SCRIPT: &str = r"
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local ended = 0
for i = 1, #members do
  ended = ended + redis.call('DEL', session_key(ARGV[1], members[i]))
end
redis.call('DEL', KEYS[1])
return ended
";

/// `KEYS[1]` the lease; `ARGV[1]` the holder, `ARGV[2]` TTL in ms. Returns 1 when taken (free,
/// or already held by this holder), 0 when someone else holds it.
const ACQUIRE_SCRIPT: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
";

/// `KEYS[1]` the lease; `ARGV[1]` the holder, `ARGV[2]` TTL in ms. Returns 1 when renewed.
const RENEW_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
";

/// `KEYS[1]` the lease; `ARGV[1]` the holder. Deletes the lease if this holder holds it.
const RELEASE_SCRIPT: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Every script of the backend, loaded once per backend (`EVALSHA`, falling back to `EVAL`).
pub(super) struct Scripts {
    pub(super) create_owned: Script,
    pub(super) replace_owned: Script,
    pub(super) merge: Script,
    pub(super) touch_owned: Script,
    pub(super) list: Script,
    pub(super) end: Script,
    pub(super) end_all: Script,
    pub(super) acquire: Script,
    pub(super) renew: Script,
    pub(super) release: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        let with_seen = |body: &str| Script::new(&format!("{SEEN}{body}"));
        let with_key = |body: &str| Script::new(&format!("{SESSION_KEY}{body}"));
        Scripts {
            create_owned: with_seen(CREATE_OWNED_SCRIPT),
            replace_owned: with_seen(REPLACE_OWNED_SCRIPT),
            merge: with_seen(MERGE_SCRIPT),
            touch_owned: with_seen(TOUCH_OWNED_SCRIPT),
            list: with_key(LIST_SCRIPT),
            end: with_key(END_SCRIPT),
            end_all: with_key(END_ALL_SCRIPT),
            acquire: Script::new(ACQUIRE_SCRIPT),
            renew: Script::new(RENEW_SCRIPT),
            release: Script::new(RELEASE_SCRIPT),
        }
    }
}
