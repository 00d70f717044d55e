//! The in-process memory backend (`flamingo.session.backend: memory`, the default).
//!
//! Sessions live in a bounded [moka](https://docs.rs/moka) cache: at most `memory.capacity`
//! sessions (the least recently used go first), each with its own TTL, expired entries evicted.
//! Every write is one atomic per-entry computation, so concurrent merges into one session lose
//! nothing. Sessions do not survive a restart and are not shared between processes: use it for
//! development, tests and single-instance apps.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use moka::{ops::compute::Op, sync::Cache};

use crate::{
    backend::{
        check_length, generate_session_key, BackendError, HealthStatus, SessionBackend,
        SessionChange, SessionState,
    },
    config::SessionConfig,
};

#[derive(Debug)]
struct Entry {
    state: Arc<SessionState>,
    ttl: Duration,
    expires_at: Instant,
}

impl Entry {
    fn new(state: Arc<SessionState>, ttl: Duration) -> Arc<Entry> {
        Arc::new(Entry {
            state,
            ttl,
            expires_at: Instant::now() + ttl,
        })
    }

    fn live(&self) -> bool {
        Instant::now() < self.expires_at
    }
}

struct PerEntryTtl;

impl moka::Expiry<String, Arc<Entry>> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, entry: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        entry: &Arc<Entry>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// The memory backend: bounded, per-entry TTL, atomic merges.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use flamingo_session::{MemoryBackend, SessionBackend, SessionState};
///
/// # actix_web::rt::System::new().block_on(async {
/// let backend = MemoryBackend::new(10_000, 1 << 20);
/// let key = backend.create(SessionState::new(), Duration::from_secs(60)).await?;
/// assert!(backend.load(&key).await?.is_some());
/// # Ok::<(), flamingo_session::BackendError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct MemoryBackend {
    cache: Cache<String, Arc<Entry>>,
    store_length: usize,
}

impl std::fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("sessions", &self.cache.entry_count())
            .field("store_length", &self.store_length)
            .finish()
    }
}

impl MemoryBackend {
    /// A backend holding at most `capacity` sessions of at most `store_length` bytes each
    /// (`0` = no size limit).
    pub fn new(capacity: u64, store_length: usize) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity)
            .expire_after(PerEntryTtl)
            .build();
        MemoryBackend {
            cache,
            store_length,
        }
    }

    /// The backend `config` describes (`memory.capacity`, `store.length`).
    ///
    /// # Errors
    ///
    /// None today; the signature matches the other backends.
    ///
    /// # Examples
    ///
    /// ```
    /// use flamingo_session::{MemoryBackend, SessionConfig};
    /// # actix_web::rt::System::new().block_on(async {
    /// let backend = MemoryBackend::from_config(&SessionConfig::default()).await.unwrap();
    /// # });
    /// ```
    pub async fn from_config(config: &SessionConfig) -> Result<Self, BackendError> {
        Ok(Self::new(config.memory_capacity, config.store_length))
    }

    /// How many sessions are held now, expired ones included until the cache's housekeeping
    /// (about once a second) evicts them.
    pub fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl SessionBackend for MemoryBackend {
    fn name(&self) -> &str {
        "memory"
    }

    async fn load(&self, key: &str) -> Result<Option<SessionState>, BackendError> {
        Ok(self
            .cache
            .get(key)
            .filter(|e| e.live())
            .map(|e| SessionState::clone(&e.state)))
    }

    async fn create(&self, state: SessionState, ttl: Duration) -> Result<String, BackendError> {
        check_length(&state, self.store_length)?;
        let entry = Entry::new(Arc::new(state), ttl);
        for _ in 0..16 {
            let key = generate_session_key();
            let mut inserted = false;
            self.cache
                .entry(key.clone())
                .and_compute_with(|existing| match existing {
                    Some(e) if e.value().live() => Op::Nop,
                    _ => {
                        inserted = true;
                        Op::Put(entry.clone())
                    }
                });
            if inserted {
                return Ok(key);
            }
        }
        Err(BackendError::other(
            "could not find a free session key in 16 attempts",
        ))
    }

    async fn save(
        &self,
        key: &str,
        change: SessionChange,
        ttl: Duration,
    ) -> Result<(), BackendError> {
        let mut outcome = Ok(());
        let limit = self.store_length;
        self.cache
            .entry(key.to_owned())
            .and_compute_with(|existing| {
                let mut state = match (&change, existing) {
                    (SessionChange::Merge { .. }, Some(e)) if e.value().live() => {
                        SessionState::clone(&e.value().state)
                    }
                    _ => SessionState::new(),
                };
                change.apply_to(&mut state);
                match check_length(&state, limit) {
                    Ok(()) => Op::Put(Entry::new(Arc::new(state), ttl)),
                    Err(err) => {
                        outcome = Err(err);
                        Op::Nop
                    }
                }
            });
        outcome
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<(), BackendError> {
        self.cache
            .entry(key.to_owned())
            .and_compute_with(|existing| match existing {
                Some(e) if e.value().live() => Op::Put(Entry::new(e.value().state.clone(), ttl)),
                _ => Op::Nop,
            });
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.cache.invalidate(key);
        Ok(())
    }

    async fn health(&self) -> HealthStatus {
        HealthStatus::up()
    }
}
