//! The Redis backend (`flamingo.session.backend: redis`): standalone Redis or Redis Cluster,
//! and any Redis-compatible server such as Valkey.
//!
//! # Data model
//!
//! One Redis HASH per session, at `<keyPrefix><session key>` (`keyPrefix` defaults to
//! `session:`). Each session key is a hash field whose value is the stored JSON text as it is,
//! so `redis-cli HGETALL session:<key>` shows readable values.
//!
//! The hash always carries one extra field, [`SIZE_FIELD`] (`__flamingo.size`), the encoded size
//! of the data, written by every write: a Redis hash with no fields does not exist, and an empty
//! session must. [`load`] strips it, and its name is reserved: storing a value under it is
//! refused.
//!
//! # Writes
//!
//! Every write is one Lua script run with `EVALSHA`, so the time to live is set in the same
//! command as the data and each change is atomic:
//!
//! - create: nothing happens if the key exists (a new ID is drawn, up to
//!   [`CREATE_ATTEMPTS`] times); otherwise one variadic `HSET` and `PEXPIRE`;
//! - save, [`Replace`](SessionChange::Replace): `DEL` (which also tells whether the session is
//!   still stored), one `HSET`, `PEXPIRE`;
//! - save, [`Merge`](SessionChange::Merge): one `HDEL` of the removed keys, one `HSET` of the set
//!   ones, `PEXPIRE`. The script computes the new size from the stored one and the old values of
//!   the changed fields only (one `HMGET`) and writes nothing when it exceeds `store.length`,
//!   which gives [`BackendError::TooLarge`];
//! - a save to a session that is not stored (deleted or expired) writes nothing and answers
//!   [`SaveOutcome::Gone`]: a dead session stays dead;
//! - touch: `PEXPIRE` (a missing session stays missing); delete: `DEL`; load: `HGETALL`.
//!
//! Each script touches exactly one key, hence one hash slot: all of it works on a cluster.
//!
//! # Connections
//!
//! Standalone, each thread that uses the backend (each actix worker) opens
//! `redis.idle.connections` multiplexed connections ([`ConnectionManager`]) of its own on first
//! use and spreads its commands over them round-robin; each connection carries any number of
//! concurrent commands. Connections live on the thread whose runtime drives them, since a
//! connection driven from another thread costs two cross-thread wake-ups per command. A pool that checks a connection out per command (and
//! PINGs it on every checkout, as deadpool-redis does) doubles the round trips and measured
//! 3–5 times slower here. In cluster mode it holds as many
//! [`ClusterConnection`]s, seeded from `redis.host`, which follow the cluster's slot map.
//!
//! `redis.timeout` bounds connecting and every command: an unreachable or stalled server gives
//! [`BackendError::Unavailable`] within it, never a hang. After an outage each connection
//! reconnects on its next use; a command that finds its connection dropped (Redis restarted) is
//! sent once more on the fresh connection, so a restart costs no failed requests.
//!
//! TLS (`redis.tls`, or a `rediss://` URL) verifies the server certificate against the web PKI
//! roots, or against the PEM CA in `redis.tlsCaFile`.
//!
//! [`load`]: SessionBackend::load

use std::{
    cell::{Cell, RefCell},
    collections::HashMap,
    fmt,
    future::Future,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use async_trait::async_trait;
use redis::{
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClientBuilder,
    cluster_async::ClusterConnection,
    Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, Pipeline, ProtocolVersion, RedisConnectionInfo,
    RedisFuture, Script, TlsCertificates, Value,
};
use tracing::Instrument as _;

use crate::{
    backend::{
        check_length, encoded_len, BackendError, HealthStatus, SaveOutcome, SessionBackend,
        SessionChange, SessionId, SessionState,
    },
    config::{ConfigError, RedisConfig, RedisConnection},
};

/// The hash field every stored session carries: the encoded size of its data in bytes (what
/// `store.length` counts). A Redis hash with no fields does not exist and an empty session must,
/// so this field also marks a live session. It is stripped on load; its name starts with the
/// prefix [`Session`](crate::Session) reserves, so no value can be stored under it.
pub const SIZE_FIELD: &str = "__flamingo.size";

/// How many fresh IDs [`RedisBackend`]'s `create` tries before giving up (a collision of 256-bit
/// random IDs does not happen in practice; the bound only guards against a broken generator).
pub const CREATE_ATTEMPTS: usize = 8;

/// `KEYS[1]` the session; `ARGV[1]` TTL in ms, then the size field and its value, then the
/// field/value pairs. Returns 1 when written, 0 when the key already exists.
const CREATE_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
";

/// `KEYS[1]` the session; `ARGV[1]` TTL in ms, then the size field and its value, then the
/// field/value pairs. Returns 1 when written, 0 when the session is not stored (it stays dead):
/// the `DEL` that clears the old fields tells whether there were any.
const REPLACE_SCRIPT: &str = r"
if redis.call('DEL', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
";

/// `KEYS[1]` the session; `ARGV[1]` TTL in ms, `ARGV[2]` the size field, `ARGV[3]` the size
/// limit (0 = none), `ARGV[4]` the number n of removed fields, `ARGV[5 .. 4+n]` those fields,
/// then field/value pairs to set. The new size is the stored one minus the old values of the
/// changed fields (one `HMGET`) plus the new ones, so only the changed fields are looked at.
/// Returns `{1, size}` when written, `{0, size}` when the merged state (`size` bytes) exceeds the
/// limit and nothing was written, `{-1, 0}` when the session is not stored (it stays dead).
const MERGE_SCRIPT: &str = r"
local key = KEYS[1]
local stored = redis.call('HGET', key, ARGV[2])
if not stored then
  return {-1, 0}
end
local limit, removed = tonumber(ARGV[3]), tonumber(ARGV[4])
local first_set = 5 + removed
local names = {}
for i = 5, first_set - 1 do
  names[#names + 1] = ARGV[i]
end
for i = first_set, #ARGV, 2 do
  names[#names + 1] = ARGV[i]
end
local size = tonumber(stored)
if #names > 0 then
  local old = redis.call('HMGET', key, unpack(names))
  for i = 1, #names do
    if old[i] then
      size = size - string.len(names[i]) - string.len(old[i])
    end
  end
end
for i = first_set, #ARGV, 2 do
  size = size + string.len(ARGV[i]) + string.len(ARGV[i + 1])
end
if limit > 0 and size > limit then
  return {0, size}
end
if removed > 0 then
  redis.call('HDEL', key, unpack(ARGV, 5, first_set - 1))
end
redis.call('HSET', key, ARGV[2], size, unpack(ARGV, first_set))
redis.call('PEXPIRE', key, ARGV[1])
return {1, size}
";

/// Why the Redis backend failed; the source of [`BackendError::Unavailable`] and
/// [`BackendError::Other`] from this backend. Messages name the host(s), never a password or a
/// session key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisBackendError {
    /// The `flamingo.session.redis.*` settings are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The PEM CA file named by `flamingo.session.redis.tlsCaFile` could not be read.
    #[error("flamingo.session.redis.tlsCaFile: cannot read {}: {source}", path.display())]
    CaFile {
        /// The configured path.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// Connecting (and the start-up PING) failed.
    #[error("cannot connect to Redis at {hosts} (flamingo.session.redis): {source}")]
    Connect {
        /// The configured host(s).
        hosts: String,
        /// What Redis or the network said.
        source: redis::RedisError,
    },
    /// A command failed.
    #[error("Redis at {hosts}: {operation} failed: {source}")]
    Command {
        /// The configured host(s).
        hosts: String,
        /// The backend operation, such as `load` or `save`.
        operation: &'static str,
        /// What Redis or the network said.
        source: redis::RedisError,
    },
    /// Nothing answered within `flamingo.session.redis.timeout`.
    #[error(
        "Redis at {hosts}: {operation} got no answer within flamingo.session.redis.timeout \
         ({timeout:?})"
    )]
    Timeout {
        /// The configured host(s).
        hosts: String,
        /// The backend operation, such as `load` or `connect`.
        operation: &'static str,
        /// The configured timeout.
        timeout: Duration,
    },
    /// A session value was to be stored under the reserved field name [`SIZE_FIELD`].
    #[error("the session key {SIZE_FIELD:?} is reserved by the Redis session backend")]
    ReservedKey,
    /// A script answered something this backend never returns (another program wrote there).
    #[error("Redis at {hosts}: unexpected answer to {operation}")]
    UnexpectedReply {
        /// The configured host(s).
        hosts: String,
        /// The backend operation.
        operation: &'static str,
    },
}

/// One connection to use for a command: cheap to clone, multiplexed.
#[derive(Clone)]
enum Conn {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Standalone(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Standalone(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Standalone(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

struct Scripts {
    create: Script,
    replace: Script,
    merge: Script,
}

/// The Redis session backend: standalone or cluster, ACL user and password, database, TLS.
///
/// Build it from config with [`RedisBackend::connect`] (or let
/// [`Sessions`](crate::Sessions) do it for `flamingo.session.backend: redis`). The
/// [module documentation](self) describes how sessions are stored.
///
/// # Examples
///
/// ```no_run
/// use flamingo_session::{RedisBackend, SessionBackend, SessionConfig};
///
/// # async fn example() -> Result<(), flamingo_session::BackendError> {
/// let mut config = SessionConfig::default();
/// config.redis.host = "127.0.0.1:6379".to_owned();
/// let backend = RedisBackend::connect(&config.redis, config.store_length).await?;
/// assert!(backend.health().await.alive);
/// # Ok(())
/// # }
/// ```
pub struct RedisBackend {
    /// Tells this backend's connections apart in each thread's [`THREAD_CONNECTIONS`].
    id: u64,
    connector: Connector,
    /// Connections per thread (`redis.idle.connections`).
    count: usize,
    scripts: Scripts,
    key_prefix: String,
    store_length: usize,
    timeout: Duration,
    hosts: String,
    cluster: bool,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("hosts", &self.hosts)
            .field("cluster", &self.cluster)
            .field("connections_per_thread", &self.count)
            .field("key_prefix", &self.key_prefix)
            .field("store_length", &self.store_length)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisBackend {
    /// Connects to the Redis (or Redis Cluster) that `redis` (`flamingo.session.redis.*`)
    /// describes, after Flamingo's URL-versus-key precedence
    /// ([`RedisConfig::resolve`](crate::config::RedisConfig::resolve)), and PINGs it. Opens
    /// `redis.idle.connections` multiplexed connections per worker thread; sessions are limited
    /// to `store_length` bytes (`flamingo.session.store.length`).
    ///
    /// # Errors
    ///
    /// [`BackendError::Other`] for invalid settings or an unreadable `redis.tlsCaFile`;
    /// [`BackendError::Unavailable`] when Redis cannot be reached, refuses the credentials or the
    /// TLS handshake, or does not answer within `redis.timeout`. The message names the host(s),
    /// never the password.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use flamingo_session::{RedisBackend, SessionConfig};
    ///
    /// # async fn example() -> Result<(), flamingo_session::BackendError> {
    /// let mut config = SessionConfig::default();
    /// config.redis.url = Some("redis://app:secret@127.0.0.1:6379/3".to_owned());
    /// config.redis.timeout = std::time::Duration::from_secs(2);
    /// let backend = RedisBackend::connect(&config.redis, config.store_length).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(redis: &RedisConfig, store_length: usize) -> Result<Self, BackendError> {
        let resolved = redis
            .resolve()
            .map_err(|e| BackendError::other(RedisBackendError::Config(e)))?;
        let hosts = resolved.hosts.join(",");
        let certs = match &redis.tls_ca_file {
            Some(path) => Some(read_ca(path).await?),
            None => None,
        };
        let timeout = redis.timeout;
        let count = redis.idle_connections.max(1);
        let span = tracing::info_span!(
            "flamingo_session.redis.connect",
            hosts = %hosts,
            cluster = redis.cluster_mode,
            connections = count
        );
        let connect = async {
            let connector = if redis.cluster_mode {
                Connector::cluster(&resolved, certs, timeout)?
            } else {
                Connector::standalone(&resolved, certs, timeout)?
            };
            let connections = connector.connect(count).await?;
            let mut first = connections[0].clone();
            redis::cmd("PING").query_async::<()>(&mut first).await?;
            Ok::<_, redis::RedisError>((connector, connections))
        };
        let (connector, connections) = match tokio::time::timeout(timeout, connect)
            .instrument(span)
            .await
        {
            Ok(Ok(connected)) => connected,
            Ok(Err(source)) if !source.is_timeout() => {
                return Err(BackendError::unavailable(RedisBackendError::Connect {
                    hosts,
                    source,
                }))
            }
            // The client's own connection or response timeout (the same duration) fired first.
            Ok(Err(_)) | Err(_) => {
                return Err(BackendError::unavailable(RedisBackendError::Timeout {
                    hosts,
                    operation: "connect",
                    timeout,
                }))
            }
        };
        let key_prefix = match redis.key_prefix.trim() {
            "" => "session:".to_owned(),
            prefix => prefix.to_owned(),
        };
        tracing::info!(
            hosts = %hosts,
            cluster = redis.cluster_mode,
            connections_per_thread = count,
            key_prefix = %key_prefix,
            "connected to Redis for sessions"
        );
        let id = NEXT_BACKEND_ID.fetch_add(1, Ordering::Relaxed);
        // The connections made here serve this thread; every other thread opens its own.
        THREAD_CONNECTIONS.with(|map| {
            map.borrow_mut()
                .insert(id, ThreadConnections::new(connections))
        });
        Ok(RedisBackend {
            id,
            connector,
            count,
            scripts: Scripts {
                create: Script::new(CREATE_SCRIPT),
                replace: Script::new(REPLACE_SCRIPT),
                merge: Script::new(MERGE_SCRIPT),
            },
            key_prefix,
            store_length,
            timeout,
            hosts,
            cluster: redis.cluster_mode,
        })
    }

    /// The prefix of every session's Redis key (`redis.keyPrefix`, default `session:`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example(backend: flamingo_session::RedisBackend) {
    /// assert_eq!(backend.key_prefix(), "session:");
    /// # }
    /// ```
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    fn redis_key(&self, id: &SessionId) -> String {
        let mut key = String::with_capacity(self.key_prefix.len() + id.expose().len());
        key.push_str(&self.key_prefix);
        key.push_str(id.expose());
        key
    }

    /// The next of this thread's connections, opened on first use in the thread. Connections
    /// are per thread so that each actix worker drives its own on its own runtime: a connection
    /// made on another thread costs two cross-thread wake-ups per command (BENCHMARKS.md).
    async fn connection(&self) -> redis::RedisResult<Conn> {
        let existing =
            THREAD_CONNECTIONS.with(|map| map.borrow().get(&self.id).map(ThreadConnections::next));
        if let Some(conn) = existing {
            return Ok(conn);
        }
        let connections = self.connector.connect(self.count).await?;
        let conn = connections[0].clone();
        THREAD_CONNECTIONS.with(|map| {
            map.borrow_mut()
                .entry(self.id)
                .or_insert_with(|| ThreadConnections::new(connections));
        });
        Ok(conn)
    }

    /// Drops this thread's connections, so that the next command opens new ones.
    fn forget_thread_connections(&self) {
        THREAD_CONNECTIONS.with(|map| map.borrow_mut().remove(&self.id));
    }

    /// Runs `command` on the next connection within the timeout. A command that fails because
    /// its connection dropped (Redis restarted, or the runtime that drove the connection ended)
    /// is sent once more on a fresh connection; every operation here is safe to repeat.
    async fn run<T, F, Fut>(&self, operation: &'static str, command: F) -> Result<T, BackendError>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let attempts = async {
            let conn = self.connection().await?;
            match command(conn).await {
                Err(err) if err.is_io_error() => {
                    tracing::debug!(error = %err, "Redis connection lost; retrying once on a new one");
                    self.forget_thread_connections();
                    command(self.connection().await?).await
                }
                other => other,
            }
        };
        match tokio::time::timeout(self.timeout, attempts).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) if !source.is_timeout() => Err(self.command_error(operation, source)),
            Ok(Err(_)) | Err(_) => Err(BackendError::unavailable(RedisBackendError::Timeout {
                hosts: self.hosts.clone(),
                operation,
                timeout: self.timeout,
            })),
        }
    }

    fn command_error(&self, operation: &'static str, source: redis::RedisError) -> BackendError {
        let wrong_data = matches!(
            source.kind(),
            ErrorKind::ResponseError
                | ErrorKind::TypeError
                | ErrorKind::ParseError
                | ErrorKind::ExecAbortError
                | ErrorKind::NoScriptError
                | ErrorKind::CrossSlot
                | ErrorKind::InvalidClientConfig
        ) || (source.kind() == ErrorKind::ExtensionError
            && !matches!(source.code(), Some("NOAUTH" | "NOPERM" | "WRONGPASS")));
        let err = RedisBackendError::Command {
            hosts: self.hosts.clone(),
            operation,
            source,
        };
        if wrong_data {
            BackendError::other(err)
        } else {
            BackendError::unavailable(err)
        }
    }

    fn unexpected(&self, operation: &'static str) -> BackendError {
        BackendError::other(RedisBackendError::UnexpectedReply {
            hosts: self.hosts.clone(),
            operation,
        })
    }
}

#[async_trait]
impl SessionBackend for RedisBackend {
    fn name(&self) -> &str {
        "redis"
    }

    async fn load(&self, id: &SessionId) -> Result<Option<SessionState>, BackendError> {
        let span = tracing::debug_span!("flamingo_session.redis.load", session = %id);
        let redis_key = self.redis_key(id);
        let fields = self
            .run("load", |mut conn| {
                let redis_key = &redis_key;
                async move {
                    redis::cmd("HGETALL")
                        .arg(redis_key)
                        .query_async::<Vec<(Vec<u8>, Vec<u8>)>>(&mut conn)
                        .await
                }
            })
            .instrument(span)
            .await;
        let fields = match fields {
            Ok(fields) => fields,
            // WRONGTYPE: something else (an old Flamingo gob string, say) sits at the key. Any
            // other refusal (a failover's MASTERDOWN, say) is an outage, never a reason to start
            // the session afresh: that would lose it.
            Err(BackendError::Other(source)) if source.to_string().contains("WRONGTYPE") => {
                return Err(BackendError::Corrupt(source.to_string()));
            }
            Err(BackendError::Other(source)) => return Err(BackendError::Unavailable(source)),
            Err(err) => return Err(err),
        };
        if fields.is_empty() {
            return Ok(None);
        }
        let mut state = SessionState::with_capacity(fields.len());
        for (field, value) in fields {
            let (Ok(field), Ok(value)) = (String::from_utf8(field), String::from_utf8(value))
            else {
                return Err(BackendError::Corrupt(
                    "a stored session key or value is not UTF-8 text".to_owned(),
                ));
            };
            if field != SIZE_FIELD {
                state.insert(field, value);
            }
        }
        Ok(Some(state))
    }

    async fn create(&self, state: SessionState, ttl: Duration) -> Result<SessionId, BackendError> {
        check_reserved(state.keys())?;
        check_length(&state, self.store_length)?;
        let size = encoded_len(&state);
        let span = tracing::debug_span!(
            "flamingo_session.redis.create",
            session = tracing::field::Empty
        );
        let record = span.clone();
        async {
            for _ in 0..CREATE_ATTEMPTS {
                let id = SessionId::generate();
                record.record("session", tracing::field::display(&id));
                let redis_key = self.redis_key(&id);
                let written = self
                    .run("create", |mut conn| {
                        let mut invocation = self.scripts.create.key(&redis_key);
                        invocation.arg(ttl_millis(ttl)).arg(SIZE_FIELD).arg(size);
                        for (field, value) in &state {
                            invocation.arg(field).arg(value);
                        }
                        async move { invocation.invoke_async::<i64>(&mut conn).await }
                    })
                    .await?;
                match written {
                    1 => return Ok(id),
                    0 => tracing::debug!("session ID collision; trying another ID"),
                    _ => return Err(self.unexpected("create")),
                }
            }
            Err(BackendError::other(format!(
                "no free session ID found in {CREATE_ATTEMPTS} attempts in Redis at {}",
                self.hosts
            )))
        }
        .instrument(span)
        .await
    }

    async fn save(
        &self,
        id: &SessionId,
        change: SessionChange,
        ttl: Duration,
    ) -> Result<SaveOutcome, BackendError> {
        let span = tracing::debug_span!("flamingo_session.redis.save", session = %id);
        let redis_key = self.redis_key(id);
        match change {
            SessionChange::Replace(state) => {
                check_reserved(state.keys())?;
                check_length(&state, self.store_length)?;
                let size = encoded_len(&state);
                let written = self
                    .run("save", |mut conn| {
                        let mut invocation = self.scripts.replace.key(&redis_key);
                        invocation.arg(ttl_millis(ttl)).arg(SIZE_FIELD).arg(size);
                        for (field, value) in &state {
                            invocation.arg(field).arg(value);
                        }
                        async move { invocation.invoke_async::<i64>(&mut conn).await }
                    })
                    .instrument(span)
                    .await?;
                match written {
                    1 => Ok(SaveOutcome::Saved),
                    0 => Ok(SaveOutcome::Gone),
                    _ => Err(self.unexpected("save")),
                }
            }
            SessionChange::Merge { set, remove } => {
                check_reserved(set.keys())?;
                // The merged state holds every set key, so this much is over the limit anyway.
                check_length(&set, self.store_length)?;
                let remove: Vec<String> = remove
                    .into_iter()
                    .filter(|field| field != SIZE_FIELD && !set.contains_key(field))
                    .collect();
                let (written, size) = self
                    .run("save", |mut conn| {
                        let mut invocation = self.scripts.merge.key(&redis_key);
                        invocation
                            .arg(ttl_millis(ttl))
                            .arg(SIZE_FIELD)
                            .arg(self.store_length)
                            .arg(remove.len())
                            .arg(&remove);
                        for (field, value) in &set {
                            invocation.arg(field).arg(value);
                        }
                        async move { invocation.invoke_async::<(i64, i64)>(&mut conn).await }
                    })
                    .instrument(span)
                    .await?;
                match written {
                    1 => Ok(SaveOutcome::Saved),
                    -1 => Ok(SaveOutcome::Gone),
                    0 => Err(BackendError::TooLarge {
                        size: usize::try_from(size).unwrap_or(usize::MAX),
                        limit: self.store_length,
                    }),
                    _ => Err(self.unexpected("save")),
                }
            }
        }
    }

    async fn touch(&self, id: &SessionId, ttl: Duration) -> Result<SaveOutcome, BackendError> {
        let span = tracing::debug_span!("flamingo_session.redis.touch", session = %id);
        let redis_key = self.redis_key(id);
        let touched = self
            .run("touch", |mut conn| {
                let redis_key = &redis_key;
                async move {
                    redis::cmd("PEXPIRE")
                        .arg(redis_key)
                        .arg(ttl_millis(ttl))
                        .query_async::<i64>(&mut conn)
                        .await
                }
            })
            .instrument(span)
            .await?;
        Ok(if touched == 1 {
            SaveOutcome::Saved
        } else {
            SaveOutcome::Gone
        })
    }

    async fn delete(&self, id: &SessionId) -> Result<(), BackendError> {
        let span = tracing::debug_span!("flamingo_session.redis.delete", session = %id);
        let redis_key = self.redis_key(id);
        self.run("delete", |mut conn| {
            let redis_key = &redis_key;
            async move {
                redis::cmd("DEL")
                    .arg(redis_key)
                    .query_async::<i64>(&mut conn)
                    .await
            }
        })
        .instrument(span)
        .await?;
        Ok(())
    }

    async fn health(&self) -> HealthStatus {
        let span = tracing::debug_span!("flamingo_session.redis.health");
        let ping = self
            .run("PING", |mut conn| async move {
                redis::cmd("PING").query_async::<()>(&mut conn).await
            })
            .instrument(span)
            .await;
        match ping {
            Ok(()) => HealthStatus::up(),
            Err(err) => HealthStatus::down(err.to_string()),
        }
    }
}

/// Refuses the reserved [`SIZE_FIELD`] as a session key.
fn check_reserved<'a>(mut keys: impl Iterator<Item = &'a String>) -> Result<(), BackendError> {
    if keys.any(|k| k == SIZE_FIELD) {
        return Err(BackendError::other(RedisBackendError::ReservedKey));
    }
    Ok(())
}

/// A TTL in whole milliseconds, at least 1 (`PEXPIRE 0` would delete the session at once).
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

async fn read_ca(path: &Path) -> Result<TlsCertificates, BackendError> {
    let pem = tokio::fs::read(path).await.map_err(|source| {
        BackendError::other(RedisBackendError::CaFile {
            path: path.to_owned(),
            source,
        })
    })?;
    Ok(TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    })
}

/// Splits a `host:port` or `[v6]:port` entry (already validated by the config).
fn split_host(entry: &str) -> (String, u16) {
    let (host, port) = entry.rsplit_once(':').unwrap_or((entry, "6379"));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host.to_owned(), port.parse().unwrap_or(6379))
}

fn connection_info(entry: &str, resolved: &RedisConnection) -> ConnectionInfo {
    let (host, port) = split_host(entry);
    let addr = if resolved.tls {
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host, port)
    };
    ConnectionInfo {
        addr,
        redis: RedisConnectionInfo {
            db: resolved.database,
            username: resolved.username.clone(),
            password: (!resolved.password.is_empty()).then(|| resolved.password.clone()),
            protocol: ProtocolVersion::RESP2,
        },
    }
}

impl Drop for RedisBackend {
    /// Closes this thread's connections; other threads' close when those threads end.
    fn drop(&mut self) {
        let _ = THREAD_CONNECTIONS.try_with(|map| map.borrow_mut().remove(&self.id));
    }
}

static NEXT_BACKEND_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Each thread's connections, per backend.
    static THREAD_CONNECTIONS: RefCell<HashMap<u64, ThreadConnections>> = RefCell::new(HashMap::new());
}

/// One thread's connections of one backend, used in turn.
struct ThreadConnections {
    connections: Vec<Conn>,
    next: Cell<usize>,
}

impl ThreadConnections {
    fn new(connections: Vec<Conn>) -> Self {
        ThreadConnections {
            connections,
            next: Cell::new(0),
        }
    }

    fn next(&self) -> Conn {
        let i = self.next.get();
        self.next.set(i.wrapping_add(1));
        self.connections[i % self.connections.len()].clone()
    }
}

/// What it takes to open connections: a client for the configured server or cluster.
enum Connector {
    Standalone {
        client: redis::Client,
        config: ConnectionManagerConfig,
    },
    Cluster(redis::cluster::ClusterClient),
}

impl Connector {
    fn standalone(
        resolved: &RedisConnection,
        certs: Option<TlsCertificates>,
        timeout: Duration,
    ) -> redis::RedisResult<Connector> {
        let info = connection_info(&resolved.hosts[0], resolved);
        let client = match certs {
            Some(certs) => redis::Client::build_with_tls(info, certs)?,
            None => redis::Client::open(info)?,
        };
        // No retry loop inside a connection: a reconnect is one attempt, made when the
        // connection is next used, so requests during an outage fail fast instead of queueing
        // behind back-offs.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_number_of_retries(0);
        Ok(Connector::Standalone { client, config })
    }

    fn cluster(
        resolved: &RedisConnection,
        certs: Option<TlsCertificates>,
        timeout: Duration,
    ) -> redis::RedisResult<Connector> {
        let seeds: Vec<ConnectionInfo> = resolved
            .hosts
            .iter()
            .map(|host| connection_info(host, resolved))
            .collect();
        let mut builder = ClusterClientBuilder::new(seeds)
            .connection_timeout(timeout)
            .response_timeout(timeout);
        if let Some(certs) = certs {
            builder = builder.certs(certs);
        }
        Ok(Connector::Cluster(builder.build()?))
    }

    /// Opens `count` multiplexed connections on the current runtime.
    async fn connect(&self, count: usize) -> redis::RedisResult<Vec<Conn>> {
        futures_util::future::try_join_all((0..count.max(1)).map(|_| async {
            Ok(match self {
                Connector::Standalone { client, config } => Conn::Standalone(
                    ConnectionManager::new_with_config(client.clone(), config.clone()).await?,
                ),
                Connector::Cluster(client) => Conn::Cluster(client.get_async_connection().await?),
            })
        }))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_split_into_name_and_port() {
        assert_eq!(split_host("127.0.0.1:6380"), ("127.0.0.1".to_owned(), 6380));
        assert_eq!(split_host("[::1]:7000"), ("::1".to_owned(), 7000));
        assert_eq!(split_host("redis"), ("redis".to_owned(), 6379));
    }

    #[test]
    fn ttl_is_never_zero() {
        assert_eq!(ttl_millis(Duration::ZERO), 1);
        assert_eq!(ttl_millis(Duration::from_secs(2)), 2000);
    }
}
