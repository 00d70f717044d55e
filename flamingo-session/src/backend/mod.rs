//! Backends: the object-safe trait every session store implements, its contract, and ours.
//!
//! actix-session's [`SessionStore`](actix_session::storage::SessionStore) is not object-safe, so a
//! backend chosen at run time from config cannot be a `dyn SessionStore`. [`SessionBackend`] is
//! the object-safe, `Send + Sync` trait our [`memory`], [`file`](mod@file) and [`redis`](mod@redis)
//! backends implement, and the one an application implements for a custom backend (Flamingo's
//! `CustomSessionBackend`). The [`middleware`](crate::middleware) adapts it to actix-session both
//! ways.
//!
//! # The contract
//!
//! - A session is a map from key to value; each value is one JSON document as text (what
//!   [`Session::store`](crate::Session::store) wrote). A backend stores the text as it is: it
//!   never wraps a value in a second layer of JSON string escaping.
//! - Sessions are named by [`SessionId`], validated when it was made: a backend never checks it
//!   again and never prints it (log [`SessionId::hash`]).
//! - [`create`](SessionBackend::create) picks a fresh ID ([`SessionId::generate`]) and **never
//!   overwrites** an existing session: on a collision it retries with another ID.
//! - [`save`](SessionBackend::save) applies a [`SessionChange`] *atomically*: either the whole
//!   state is replaced, or only the keys one request changed are merged into what is stored now,
//!   so two concurrent requests writing different keys both keep their writes.
//! - **A dead session stays dead.** `save` and `touch` on a session that is not stored (deleted
//!   by a logout, a purge or a renew, or expired, perhaps by another process, while the request
//!   ran) write nothing and answer [`SaveOutcome::Gone`]: a request that loaded a session before
//!   its logout can never bring it back.
//! - Every write sets the time to live; a session not written or touched within its TTL is gone.
//! - A state whose encoded size exceeds the backend's `store.length` is refused with
//!   [`BackendError::TooLarge`] and what was stored before stays intact.
//! - Stored data that cannot be decoded is [`BackendError::Corrupt`]: the middleware then starts
//!   a fresh session and logs a warning. An unreachable store is [`BackendError::Unavailable`].
//!
//! [`conformance`] checks all of this for any backend, one function per rule.

use std::{collections::HashMap, sync::Arc, time::Duration};

use async_trait::async_trait;

pub mod conformance;
#[cfg(feature = "file")]
pub mod file;
mod id;
pub mod index;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;

pub(crate) use id::IdHashing;
pub use id::{InvalidSessionId, SessionId};
pub use index::{IndexedSession, InvalidSessionOwner, Leases, SessionIndex, SessionOwner};

/// The data of one session: key → the value's JSON text.
pub type SessionState = HashMap<String, String>;

/// What a request changed in a session, as handed to [`SessionBackend::save`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionChange {
    /// Replace the whole stored state (save mode `Always`, or after `clear_all`): last writer wins.
    Replace(SessionState),
    /// Merge into the stored state (save modes `OnRead`/`OnWrite`): set these keys, remove those,
    /// keep every other stored key as it is now in the store, in one atomic step.
    Merge {
        /// Keys to set, with their new values.
        set: SessionState,
        /// Keys to remove.
        remove: Vec<String>,
    },
}

impl SessionChange {
    /// Applies this change to `state` in place: the reference semantics every backend follows.
    ///
    /// # Examples
    ///
    /// ```
    /// use flamingo_session::backend::{SessionChange, SessionState};
    ///
    /// let mut stored = SessionState::from([("a".into(), "1".into()), ("b".into(), "2".into())]);
    /// SessionChange::Merge {
    ///     set: SessionState::from([("c".into(), "3".into())]),
    ///     remove: vec!["a".into()],
    /// }
    /// .apply_to(&mut stored);
    /// assert_eq!(stored.len(), 2);
    /// assert_eq!(stored["c"], "3");
    /// ```
    pub fn apply_to(self, state: &mut SessionState) {
        match self {
            SessionChange::Replace(new) => *state = new,
            SessionChange::Merge { set, remove } => {
                for key in remove {
                    state.remove(&key);
                }
                state.extend(set);
            }
        }
    }
}

/// Why a backend operation failed.
///
/// Messages never contain a session key or a stored value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The stored session could not be decoded; the caller starts a fresh session.
    #[error("stored session data is corrupt: {0}")]
    Corrupt(String),
    /// The encoded session is larger than `flamingo.session.store.length`; nothing was written.
    #[error(
        "session of {size} bytes exceeds flamingo.session.store.length ({limit} bytes); \
         nothing was written"
    )]
    TooLarge {
        /// Encoded size of the refused session, in bytes.
        size: usize,
        /// The configured limit, in bytes.
        limit: usize,
    },
    /// The store could not be reached or did not answer in time.
    #[error("session store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The session ended (was deleted or expired) after it was loaded, so nothing was written:
    /// a dead session stays dead. Returned by
    /// [`SessionRepository::save`](crate::SessionRepository::save); a backend answers
    /// [`SaveOutcome::Gone`] instead.
    #[error("the session ended (deleted or expired) since it was loaded; nothing was written")]
    Ended,
    /// Any other failure.
    #[error("session store error: {0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl BackendError {
    /// Wraps any error as [`BackendError::Unavailable`].
    pub fn unavailable(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        BackendError::Unavailable(err.into())
    }

    /// Wraps any error as [`BackendError::Other`].
    pub fn other(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        BackendError::Other(err.into())
    }
}

/// Result of a health check: Flamingo's `(alive, details)`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HealthStatus {
    /// Whether the service works.
    pub alive: bool,
    /// `"success"` when alive, else why not (never a secret).
    pub details: String,
}

impl HealthStatus {
    /// An alive status with details `"success"`, as Flamingo reports it.
    pub fn up() -> Self {
        HealthStatus {
            alive: true,
            details: "success".to_owned(),
        }
    }

    /// A down status with the reason.
    pub fn down(details: impl Into<String>) -> Self {
        HealthStatus {
            alive: false,
            details: details.into(),
        }
    }
}

/// What [`SessionBackend::save`] and [`SessionBackend::touch`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum SaveOutcome {
    /// The session was stored: the change applied and the TTL set.
    Saved,
    /// No session is stored under this ID (deleted or expired meanwhile): nothing was written,
    /// and the session stays dead.
    Gone,
}

/// An object-safe, async session backend: memory, file, Redis, or the application's own.
///
/// See the [module documentation](self) for the contract, and
/// [`conformance::run`] to check an implementation against it.
///
/// # Examples
///
/// A (toy) custom backend that delegates to the built-in memory backend:
///
/// ```
/// use std::time::Duration;
/// use flamingo_session::backend::{
///     BackendError, HealthStatus, SaveOutcome, SessionBackend, SessionChange, SessionId,
///     SessionState,
/// };
/// use flamingo_session::MemoryBackend;
///
/// struct MyBackend(MemoryBackend);
///
/// #[async_trait::async_trait]
/// impl SessionBackend for MyBackend {
///     fn name(&self) -> &str { "my-backend" }
///     async fn load(&self, id: &SessionId) -> Result<Option<SessionState>, BackendError> {
///         self.0.load(id).await
///     }
///     async fn create(&self, state: SessionState, ttl: Duration) -> Result<SessionId, BackendError> {
///         self.0.create(state, ttl).await
///     }
///     async fn save(
///         &self,
///         id: &SessionId,
///         change: SessionChange,
///         ttl: Duration,
///     ) -> Result<SaveOutcome, BackendError> {
///         self.0.save(id, change, ttl).await
///     }
///     async fn touch(&self, id: &SessionId, ttl: Duration) -> Result<SaveOutcome, BackendError> {
///         self.0.touch(id, ttl).await
///     }
///     async fn delete(&self, id: &SessionId) -> Result<(), BackendError> {
///         self.0.delete(id).await
///     }
///     async fn health(&self) -> HealthStatus { HealthStatus::up() }
/// }
/// ```
#[async_trait]
pub trait SessionBackend: Send + Sync + 'static {
    /// A short name for logs and health output, such as `"memory"` or `"redis"`.
    fn name(&self) -> &str;

    /// Loads a session. `Ok(None)` when no live session has this ID (unknown or expired).
    ///
    /// # Errors
    ///
    /// [`BackendError::Corrupt`] when stored data cannot be decoded, [`BackendError::Unavailable`]
    /// when the store cannot be reached.
    async fn load(&self, id: &SessionId) -> Result<Option<SessionState>, BackendError>;

    /// Loads a session for a request, as [`load`](Self::load) does, which is what it calls
    /// unless overridden. A backend that holds sessions in this process (memory, the file
    /// backend's cache) answers the copy it holds, shared: a request that only reads the session
    /// then copies none of it, and one that writes copies it once, on its first write.
    ///
    /// # Errors
    ///
    /// Those of [`load`](Self::load).
    async fn load_shared(&self, id: &SessionId) -> Result<Option<Arc<SessionState>>, BackendError> {
        Ok(self.load(id).await?.map(Arc::new))
    }

    /// Stores a new session under a fresh ID and returns the ID. Never overwrites an existing
    /// session.
    ///
    /// # Errors
    ///
    /// [`BackendError::TooLarge`] above `store.length`, [`BackendError::Unavailable`] when the
    /// store cannot be reached.
    async fn create(&self, state: SessionState, ttl: Duration) -> Result<SessionId, BackendError>;

    /// Applies `change` to the live session `id` atomically and sets its TTL to `ttl`. A session
    /// that is not stored (deleted or expired) is not created again: the answer is
    /// [`SaveOutcome::Gone`] and nothing is written.
    ///
    /// # Errors
    ///
    /// [`BackendError::TooLarge`] when the resulting state exceeds `store.length` (the stored
    /// state stays intact), [`BackendError::Unavailable`] when the store cannot be reached.
    async fn save(
        &self,
        id: &SessionId,
        change: SessionChange,
        ttl: Duration,
    ) -> Result<SaveOutcome, BackendError>;

    /// Extends the TTL of a live session without changing its data; a missing session stays
    /// missing ([`SaveOutcome::Gone`]).
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] when the store cannot be reached.
    async fn touch(&self, id: &SessionId, ttl: Duration) -> Result<SaveOutcome, BackendError>;

    /// Deletes a session; deleting a missing session is not an error.
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] when the store cannot be reached.
    async fn delete(&self, id: &SessionId) -> Result<(), BackendError>;

    /// Checks that the backend works (Redis: PING within the timeout; file: the folder is
    /// writable; memory: always up).
    async fn health(&self) -> HealthStatus;

    /// Whether this backend can hold large values such as OpenID Connect tokens. Auth refuses to
    /// start on a backend that answers `false`. Default: `true`.
    fn can_hold_tokens(&self) -> bool {
        true
    }

    /// The backend's per-owner session index, if it keeps one (memory, file and Redis do).
    /// Default: `None`; a custom backend that offers one is held to its
    /// [contract](crate::backend::index) by [`conformance::run`].
    fn index(&self) -> Option<&dyn SessionIndex> {
        None
    }

    /// The backend's leases, if it offers them (memory, file and Redis do). Default: `None`.
    fn leases(&self) -> Option<&dyn Leases> {
        None
    }
}

/// Now, in Unix seconds.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The encoded size of a state, as counted against `store.length`: the sum of key and value
/// lengths in bytes (the size of the data, independent of each backend's framing).
///
/// # Examples
///
/// ```
/// use flamingo_session::backend::{encoded_len, SessionState};
/// let state = SessionState::from([("ab".to_owned(), "\"xyz\"".to_owned())]);
/// assert_eq!(encoded_len(&state), 7);
/// ```
pub fn encoded_len(state: &SessionState) -> usize {
    state.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// Checks `state` against a `store.length` limit; `0` means no limit (Flamingo's meaning).
///
/// # Errors
///
/// [`BackendError::TooLarge`] when the state is larger than `limit`.
///
/// # Examples
///
/// ```
/// use flamingo_session::backend::{check_length, SessionState};
/// let state = SessionState::from([("k".to_owned(), "12345".to_owned())]);
/// assert!(check_length(&state, 6).is_ok());
/// assert!(check_length(&state, 5).is_err());
/// assert!(check_length(&state, 0).is_ok());
/// ```
pub fn check_length(state: &SessionState, limit: usize) -> Result<(), BackendError> {
    let size = encoded_len(state);
    if limit != 0 && size > limit {
        return Err(BackendError::TooLarge { size, limit });
    }
    Ok(())
}
