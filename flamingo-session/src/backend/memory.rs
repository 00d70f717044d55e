//! The in-process memory backend (`flamingo.session.backend: memory`, the default).
//!
//! Sessions live in a sharded map: at most `memory.capacity` sessions (split evenly over 64
//! shards), each with its own TTL.
//! Expired sessions are dropped when they are next looked at and by a sweep of one shard on
//! every 64th create; a full shard drops its expired sessions and the sixteenth of it closest to
//! expiry (with sliding expiry, the least recently used) at once, so that creating a session in
//! a full store costs what it costs in an empty one. Every write is one step under its
//! shard's lock, so concurrent merges into one session lose nothing. Sessions do not survive a
//! restart and are not shared between processes: use it for development, tests and
//! single-instance apps.

use std::{
    collections::{hash_map, HashMap},
    hash::BuildHasher as _,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex, MutexGuard,
    },
    time::{Duration, Instant},
};

use async_trait::async_trait;

use crate::backend::{
    check_length, encoded_len, index::lease_key, unix_now, BackendError, HealthStatus, IdHashing,
    IndexedSession, Leases, SaveOutcome, SessionBackend, SessionChange, SessionId, SessionIndex,
    SessionOwner, SessionState,
};

/// Number of shards: enough that the 2–64 worker threads of an actix server rarely meet on one
/// lock.
const SHARDS: usize = 64;
/// A shard is swept for expired sessions on every this many creates.
const SWEEP_EVERY: usize = 64;
/// A full shard evicts at least this fraction of itself at once (see [`make_room`]).
const EVICT_FRACTION: usize = 16;
/// How many IDs `create` tries before giving up (a 256-bit collision does not happen; the bound
/// only guards against a broken generator).
const CREATE_ATTEMPTS: usize = 16;

struct Entry {
    /// Shared with the requests that loaded it ([`load_shared`](SessionBackend::load_shared)):
    /// a write while one holds it copies it first.
    state: Arc<SessionState>,
    expires_at: Instant,
    /// The owner's key and the creation time (Unix seconds), for a session in an owner's index.
    owner: Option<(Arc<str>, u64)>,
    /// Unix seconds of the last write or touch.
    last_seen: u64,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        now < self.expires_at
    }
}

type Shard = HashMap<SessionId, Entry, IdHashing>;

struct Inner {
    shards: Vec<Mutex<Shard>>,
    shard_capacity: usize,
    store_length: usize,
    creates: AtomicUsize,
    /// Owner key → the IDs of its sessions. Locked before a shard, never while holding one.
    owners: Mutex<HashMap<Arc<str>, Vec<SessionId>>>,
    /// Lease key → (holder, expiry).
    leases: Mutex<HashMap<String, (String, Instant)>>,
}

/// The memory backend: bounded, per-session TTL, atomic merges.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use flamingo_session::{MemoryBackend, SessionBackend, SessionState};
///
/// # actix_web::rt::System::new().block_on(async {
/// let backend = MemoryBackend::new(10_000, 1 << 20);
/// let id = backend.create(SessionState::new(), Duration::from_secs(60)).await?;
/// assert!(backend.load(&id).await?.is_some());
/// # Ok::<(), flamingo_session::BackendError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct MemoryBackend {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("sessions", &self.len())
            .field("store_length", &self.inner.store_length)
            .finish()
    }
}

/// The options of [`MemoryBackend`]: `flamingo.session.memory.capacity` and `store.length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryOptions {
    /// At most this many sessions are held. Default: `1000000`.
    pub capacity: u64,
    /// The largest session in bytes, `0` for no limit. Default: `1048576`.
    pub store_length: usize,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        MemoryOptions {
            capacity: 1_000_000,
            store_length: 1 << 20,
        }
    }
}

impl MemoryBackend {
    /// A backend holding at most `capacity` sessions of at most `store_length` bytes each
    /// (`0` = no size limit).
    pub fn new(capacity: u64, store_length: usize) -> Self {
        Self::with_options(MemoryOptions {
            capacity,
            store_length,
        })
    }

    /// A backend with these options.
    ///
    /// # Examples
    ///
    /// ```
    /// use flamingo_session::backend::memory::{MemoryBackend, MemoryOptions};
    /// let backend = MemoryBackend::with_options(MemoryOptions::default());
    /// assert!(backend.is_empty());
    /// ```
    pub fn with_options(options: MemoryOptions) -> Self {
        let capacity = usize::try_from(options.capacity.max(1)).unwrap_or(usize::MAX);
        MemoryBackend {
            inner: Arc::new(Inner {
                shards: (0..SHARDS)
                    .map(|_| Mutex::new(HashMap::with_hasher(IdHashing)))
                    .collect(),
                // Rounded down: the bound holds (a capacity below the shard count holds one
                // session per shard).
                shard_capacity: (capacity / SHARDS).max(1),
                store_length: options.store_length,
                creates: AtomicUsize::new(0),
                owners: Mutex::new(HashMap::new()),
                leases: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// How many live sessions are held now (expired ones are swept first).
    pub fn len(&self) -> u64 {
        for index in 0..SHARDS {
            self.sweep(index);
        }
        self.inner
            .shards
            .iter()
            .map(|shard| lock(shard).len() as u64)
            .sum()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, id: &SessionId) -> MutexGuard<'_, Shard> {
        // Bits the shard's own map does not index buckets by (it uses the low ones).
        let index = ((IdHashing.hash_one(id) >> 32) as usize) % SHARDS;
        lock(&self.inner.shards[index])
    }

    /// Runs `f` on the live entry `id`, dropping it first when it has expired.
    fn with_live<T>(&self, id: &SessionId, f: impl FnOnce(&mut Entry) -> T) -> Option<T> {
        let mut shard = self.shard(id);
        let now = Instant::now();
        match shard.get_mut(id) {
            Some(entry) if entry.live(now) => Some(f(entry)),
            Some(_) => {
                let gone = shard.remove(id);
                drop(shard);
                self.unindex(gone.into_iter().map(|entry| (id.clone(), entry)));
                None
            }
            None => None,
        }
    }

    fn sweep(&self, index: usize) {
        let now = Instant::now();
        let mut gone = Vec::new();
        lock(&self.inner.shards[index % SHARDS]).retain(|id, entry| {
            let live = entry.live(now);
            if !live && entry.owner.is_some() {
                gone.push((id.clone(), std::mem::take(&mut entry.owner)));
            }
            live
        });
        self.unindex_owners(gone);
    }

    /// Takes removed sessions out of their owners' indexes (called with no shard locked).
    fn unindex(&self, removed: impl IntoIterator<Item = (SessionId, Entry)>) {
        self.unindex_owners(
            removed
                .into_iter()
                .filter(|(_, entry)| entry.owner.is_some())
                .map(|(id, entry)| (id, entry.owner)),
        );
    }

    fn unindex_owners(
        &self,
        removed: impl IntoIterator<Item = (SessionId, Option<(Arc<str>, u64)>)>,
    ) {
        let mut removed = removed.into_iter().peekable();
        if removed.peek().is_none() {
            return;
        }
        let mut owners = lock(&self.inner.owners);
        for (id, owner) in removed {
            let Some((owner, _)) = owner else { continue };
            if let hash_map::Entry::Occupied(mut ids) = owners.entry(owner) {
                ids.get_mut().retain(|other| other != &id);
                if ids.get().is_empty() {
                    ids.remove();
                }
            }
        }
    }

    /// The live sessions of `ids`, dropping the others from `ids`.
    fn live_of(&self, ids: &mut Vec<SessionId>) -> Vec<IndexedSession> {
        let now = Instant::now();
        let mut live = Vec::with_capacity(ids.len());
        ids.retain(|id| {
            let shard = self.shard(id);
            match shard.get(id) {
                Some(entry) if entry.live(now) => {
                    live.push(IndexedSession {
                        id: id.clone(),
                        created: entry.owner.as_ref().map_or(0, |(_, created)| *created),
                        last_seen: entry.last_seen,
                    });
                    true
                }
                _ => false,
            }
        });
        live.sort_by_key(|session| session.created);
        live
    }

    /// Sweeps one shard on every [`SWEEP_EVERY`]th create (called with no lock held).
    fn count_create(&self) {
        let count = self.inner.creates.fetch_add(1, Ordering::Relaxed);
        if count.is_multiple_of(SWEEP_EVERY) {
            self.sweep(count / SWEEP_EVERY);
        }
    }

    /// Inserts `entry` under a fresh ID (from `generate`) into its shard, making room first;
    /// answers the ID and the sessions evicted to make room (for [`unindex`](Self::unindex)).
    #[allow(clippy::type_complexity)]
    fn insert_new(
        &self,
        entry: Entry,
        generate: impl Fn() -> SessionId,
    ) -> Result<(SessionId, Vec<(SessionId, Entry)>), BackendError> {
        let now = Instant::now();
        for _ in 0..CREATE_ATTEMPTS {
            let id = generate();
            let mut shard = self.shard(&id);
            if shard.get(&id).is_some_and(|e| e.live(now)) {
                continue;
            }
            let evicted = make_room(&mut shard, self.inner.shard_capacity, now);
            shard.insert(id.clone(), entry);
            return Ok((id, evicted));
        }
        Err(BackendError::other(format!(
            "could not find a free session ID in {CREATE_ATTEMPTS} attempts"
        )))
    }
}

/// A poisoned lock only means another thread panicked while holding it; every step under the
/// lock leaves the map consistent, so go on.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Makes room in a full shard: every expired session goes, and at least a
/// [`EVICT_FRACTION`]th of the shard, the sessions closest to expiry (the least recently used:
/// expiry slides with use). Evicting a batch at once keeps a create in a full store cheap: one
/// scan of the shard per `capacity / EVICT_FRACTION` creates, where evicting one session per
/// create scanned the whole shard every time (170 µs per create in a full store of a million
/// sessions, against 3 µs while filling it). Answers the removed sessions.
fn make_room(shard: &mut Shard, capacity: usize, now: Instant) -> Vec<(SessionId, Entry)> {
    if shard.len() < capacity {
        return Vec::new();
    }
    let mut expiries: Vec<Instant> = shard.values().map(|entry| entry.expires_at).collect();
    let batch = (capacity / EVICT_FRACTION).clamp(1, expiries.len());
    let (_, nth, _) = expiries.select_nth_unstable(batch - 1);
    // Also every expired session, however many.
    let threshold = (*nth).max(now);
    shard
        .extract_if(|_, entry| entry.expires_at <= threshold)
        .collect()
}

#[async_trait]
impl SessionBackend for MemoryBackend {
    fn name(&self) -> &str {
        "memory"
    }

    async fn load(&self, id: &SessionId) -> Result<Option<SessionState>, BackendError> {
        Ok(self.with_live(id, |entry| SessionState::clone(&entry.state)))
    }

    async fn load_shared(&self, id: &SessionId) -> Result<Option<Arc<SessionState>>, BackendError> {
        Ok(self.with_live(id, |entry| Arc::clone(&entry.state)))
    }

    async fn create(&self, state: SessionState, ttl: Duration) -> Result<SessionId, BackendError> {
        check_length(&state, self.inner.store_length)?;
        let entry = Entry {
            state: Arc::new(state),
            expires_at: Instant::now() + ttl,
            owner: None,
            last_seen: unix_now(),
        };
        self.count_create();
        let (id, evicted) = self.insert_new(entry, SessionId::generate)?;
        self.unindex(evicted);
        Ok(id)
    }

    async fn save(
        &self,
        id: &SessionId,
        change: SessionChange,
        ttl: Duration,
    ) -> Result<SaveOutcome, BackendError> {
        let limit = self.inner.store_length;
        let outcome = self.with_live(id, |entry| {
            match change {
                SessionChange::Replace(state) => {
                    check_length(&state, limit)?;
                    entry.state = Arc::new(state);
                }
                SessionChange::Merge { set, remove } => {
                    if limit != 0 {
                        // The merged size, counted without building the merged state.
                        let stored =
                            |key: &String| entry.state.get(key).map_or(0, |v| key.len() + v.len());
                        let replaced = remove.iter().map(stored).sum::<usize>()
                            + set
                                .keys()
                                .filter(|k| !remove.contains(k))
                                .map(stored)
                                .sum::<usize>();
                        let size =
                            encoded_len(&entry.state).saturating_sub(replaced) + encoded_len(&set);
                        if size > limit {
                            return Err(BackendError::TooLarge { size, limit });
                        }
                    }
                    let state = Arc::make_mut(&mut entry.state);
                    for key in &remove {
                        state.remove(key);
                    }
                    state.extend(set);
                }
            }
            entry.expires_at = Instant::now() + ttl;
            entry.last_seen = unix_now();
            Ok(())
        });
        match outcome {
            Some(result) => result.map(|()| SaveOutcome::Saved),
            None => Ok(SaveOutcome::Gone),
        }
    }

    async fn touch(&self, id: &SessionId, ttl: Duration) -> Result<SaveOutcome, BackendError> {
        Ok(self
            .with_live(id, |entry| {
                entry.expires_at = Instant::now() + ttl;
                entry.last_seen = unix_now();
            })
            .map_or(SaveOutcome::Gone, |()| SaveOutcome::Saved))
    }

    async fn delete(&self, id: &SessionId) -> Result<(), BackendError> {
        let removed = self.shard(id).remove(id);
        self.unindex(removed.map(|entry| (id.clone(), entry)));
        Ok(())
    }

    async fn health(&self) -> HealthStatus {
        HealthStatus::up()
    }

    fn index(&self) -> Option<&dyn SessionIndex> {
        Some(self)
    }

    fn leases(&self) -> Option<&dyn Leases> {
        Some(self)
    }
}

#[async_trait]
impl SessionIndex for MemoryBackend {
    async fn create_owned(
        &self,
        owner: &SessionOwner,
        state: SessionState,
        ttl: Duration,
    ) -> Result<SessionId, BackendError> {
        check_length(&state, self.inner.store_length)?;
        let key: Arc<str> = owner.key().into();
        let now = unix_now();
        let entry = Entry {
            state: Arc::new(state),
            expires_at: Instant::now() + ttl,
            owner: Some((key.clone(), now)),
            last_seen: now,
        };
        self.count_create();
        // Under the index lock, so that an `end_all` sees this session or runs before it exists.
        let mut owners = lock(&self.inner.owners);
        let (id, evicted) = self.insert_new(entry, || SessionId::generate_for(owner))?;
        owners.entry(key).or_default().push(id.clone());
        drop(owners);
        self.unindex(evicted);
        Ok(id)
    }

    async fn list(&self, owner: &SessionOwner) -> Result<Vec<IndexedSession>, BackendError> {
        let mut owners = lock(&self.inner.owners);
        let Some(ids) = owners.get_mut(owner.key()) else {
            return Ok(Vec::new());
        };
        let live = self.live_of(ids);
        if ids.is_empty() {
            owners.remove(owner.key());
        }
        Ok(live)
    }

    async fn end(&self, owner: &SessionOwner, id: &SessionId) -> Result<bool, BackendError> {
        let mut owners = lock(&self.inner.owners);
        let Some(ids) = owners.get_mut(owner.key()) else {
            return Ok(false);
        };
        let Some(at) = ids.iter().position(|other| other == id) else {
            return Ok(false);
        };
        ids.swap_remove(at);
        if ids.is_empty() {
            owners.remove(owner.key());
        }
        let removed = self.shard(id).remove(id);
        Ok(removed.is_some_and(|entry| entry.live(Instant::now())))
    }

    async fn end_all(&self, owner: &SessionOwner) -> Result<usize, BackendError> {
        let mut owners = lock(&self.inner.owners);
        let Some(ids) = owners.remove(owner.key()) else {
            return Ok(0);
        };
        let now = Instant::now();
        Ok(ids
            .iter()
            .filter(|id| {
                self.shard(id)
                    .remove(id)
                    .is_some_and(|entry| entry.live(now))
            })
            .count())
    }
}

#[async_trait]
impl Leases for MemoryBackend {
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, BackendError> {
        let now = Instant::now();
        let mut leases = lock(&self.inner.leases);
        if leases.len() > 1024 {
            leases.retain(|_, (_, expires)| *expires > now);
        }
        match leases.entry(lease_key(name)) {
            hash_map::Entry::Occupied(mut lease) => {
                let (held_by, expires) = lease.get();
                if *expires > now && held_by != holder {
                    return Ok(false);
                }
                lease.insert((holder.to_owned(), now + ttl));
            }
            hash_map::Entry::Vacant(free) => {
                free.insert((holder.to_owned(), now + ttl));
            }
        }
        Ok(true)
    }

    async fn renew(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, BackendError> {
        let now = Instant::now();
        let mut leases = lock(&self.inner.leases);
        match leases.get_mut(&lease_key(name)) {
            Some((held_by, expires)) if held_by == holder && *expires > now => {
                *expires = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn holder(&self, name: &str) -> Result<Option<String>, BackendError> {
        let now = Instant::now();
        Ok(lock(&self.inner.leases)
            .get(&lease_key(name))
            .filter(|(_, expires)| *expires > now)
            .map(|(holder, _)| holder.clone()))
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), BackendError> {
        let key = lease_key(name);
        let mut leases = lock(&self.inner.leases);
        if leases
            .get(&key)
            .is_some_and(|(held_by, _)| held_by == holder)
        {
            leases.remove(&key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_backend_evicts_the_session_closest_to_expiry() {
        actix_web::rt::System::new().block_on(async {
            // One session per shard at most.
            let backend = MemoryBackend::new(SHARDS as u64, 0);
            let short = Duration::from_secs(10);
            let long = Duration::from_secs(1000);
            let first = backend.create(SessionState::new(), short).await.unwrap();
            let mut kept = Vec::new();
            for _ in 0..(SHARDS * 64) {
                kept.push(backend.create(SessionState::new(), long).await.unwrap());
            }
            assert!(backend.len() <= SHARDS as u64);
            assert!(
                backend.load(&first).await.unwrap().is_none(),
                "the short-lived session goes first"
            );
            let last = kept.last().unwrap();
            assert!(backend.load(last).await.unwrap().is_some());
        });
    }

    #[test]
    fn a_full_shard_evicts_a_batch_of_the_least_recently_used() {
        actix_web::rt::System::new().block_on(async {
            // 64 sessions per shard (a full one evicts 4 at once), eight times over.
            let capacity = SHARDS * 64;
            let backend = MemoryBackend::new(capacity as u64, 0);
            let mut created = Vec::new();
            for i in 0..capacity * 8 {
                // Each later session expires later: the first ones are the least recently used.
                let ttl = Duration::from_secs(1000 + i as u64);
                created.push(backend.create(SessionState::new(), ttl).await.unwrap());
            }
            let len = backend.len() as usize;
            assert!(len <= capacity, "the bound holds: {len}");
            assert!(
                len >= capacity - capacity / EVICT_FRACTION,
                "a batch at a time, not more: {len}"
            );
            let live = |ids: &[SessionId]| {
                let ids = ids.to_vec();
                let backend = backend.clone();
                async move {
                    let mut n = 0;
                    for id in &ids {
                        n += usize::from(backend.load(id).await.unwrap().is_some());
                    }
                    n
                }
            };
            assert_eq!(live(&created[..1000]).await, 0, "the oldest went");
            assert_eq!(
                live(&created[created.len() - 1000..]).await,
                1000,
                "the newest stay"
            );
        });
    }

    #[test]
    fn expired_sessions_are_swept() {
        actix_web::rt::System::new().block_on(async {
            let backend = MemoryBackend::new(1_000_000, 0);
            for _ in 0..200 {
                let _ = backend
                    .create(SessionState::new(), Duration::from_millis(1))
                    .await
                    .unwrap();
            }
            std::thread::sleep(Duration::from_millis(5));
            for i in 0..SHARDS {
                backend.sweep(i);
            }
            assert_eq!(backend.len(), 0);
        });
    }
}
