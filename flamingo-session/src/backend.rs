//! The object-safe backend trait every session store of ours implements.
//!
//! actix-session's [`SessionStore`](actix_session::storage::SessionStore) is not object-safe, so a
//! backend chosen at run time from config cannot be a `dyn SessionStore`. [`SessionBackend`] is
//! the object-safe, `Send + Sync` trait our memory, file and Redis backends implement, and the one
//! an application implements for a custom backend (Flamingo's `CustomSessionBackend`). One adapter,
//! [`BackendStore`](crate::BackendStore), turns any `Arc<dyn SessionBackend>` into an actix-session
//! store.
//!
//! # The contract
//!
//! - A session is a map from key to value; each value is one JSON document as text (what
//!   [`Session::store`](crate::Session::store) wrote). A backend stores the text as it is: it
//!   never wraps a value in a second layer of JSON string escaping.
//! - [`create`](SessionBackend::create) picks a fresh key with at least 128 random bits
//!   ([`generate_session_key`]) and **never overwrites** an existing session: on a collision it
//!   retries with another key.
//! - [`save`](SessionBackend::save) applies a [`SessionChange`] *atomically*: either the whole
//!   state is replaced, or only the keys one request changed are merged into what is stored now,
//!   so two concurrent requests writing different keys both keep their writes. Saving to a key
//!   that expired meanwhile creates it again.
//! - Every write sets the time to live; a session not written or touched within its TTL is gone.
//! - A state whose encoded size exceeds the backend's `store.length` is refused with
//!   [`BackendError::TooLarge`] and what was stored before stays intact.
//! - Stored data that cannot be decoded is [`BackendError::Corrupt`]: the middleware then starts
//!   a fresh session and logs a warning. An unreachable store is [`BackendError::Unavailable`].
//! - Errors never contain the session key: log [`key_hash`] instead.
//!
//! [`conformance`](crate::conformance) checks all of this for any backend.

use std::{collections::HashMap, fmt, time::Duration};

use async_trait::async_trait;
use base64::Engine as _;
use rand::RngCore as _;
use sha2::Digest as _;

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
    /// A key that cannot name a session (for example one with a path separator).
    #[error("invalid session key")]
    InvalidKey,
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

/// An object-safe, async session backend: memory, file, Redis, or the application's own.
///
/// See the [module documentation](self) for the contract, and
/// [`conformance::run`](crate::conformance::run) to check an implementation against it.
///
/// # Examples
///
/// A (toy) custom backend that delegates to the built-in memory backend:
///
/// ```
/// use std::time::Duration;
/// use flamingo_session::backend::{
///     BackendError, HealthStatus, SessionBackend, SessionChange, SessionState,
/// };
/// use flamingo_session::MemoryBackend;
///
/// struct MyBackend(MemoryBackend);
///
/// #[async_trait::async_trait]
/// impl SessionBackend for MyBackend {
///     fn name(&self) -> &str { "my-backend" }
///     async fn load(&self, key: &str) -> Result<Option<SessionState>, BackendError> {
///         self.0.load(key).await
///     }
///     async fn create(&self, state: SessionState, ttl: Duration) -> Result<String, BackendError> {
///         self.0.create(state, ttl).await
///     }
///     async fn save(&self, key: &str, change: SessionChange, ttl: Duration) -> Result<(), BackendError> {
///         self.0.save(key, change, ttl).await
///     }
///     async fn touch(&self, key: &str, ttl: Duration) -> Result<(), BackendError> {
///         self.0.touch(key, ttl).await
///     }
///     async fn delete(&self, key: &str) -> Result<(), BackendError> {
///         self.0.delete(key).await
///     }
///     async fn health(&self) -> HealthStatus { HealthStatus::up() }
/// }
/// ```
#[async_trait]
pub trait SessionBackend: Send + Sync + 'static {
    /// A short name for logs and health output, such as `"memory"` or `"redis"`.
    fn name(&self) -> &str;

    /// Loads a session. `Ok(None)` when no live session has this key (unknown or expired).
    ///
    /// # Errors
    ///
    /// [`BackendError::Corrupt`] when stored data cannot be decoded, [`BackendError::Unavailable`]
    /// when the store cannot be reached.
    async fn load(&self, key: &str) -> Result<Option<SessionState>, BackendError>;

    /// Stores a new session under a fresh key and returns the key. Never overwrites an existing
    /// session.
    ///
    /// # Errors
    ///
    /// [`BackendError::TooLarge`] above `store.length`, [`BackendError::Unavailable`] when the
    /// store cannot be reached.
    async fn create(&self, state: SessionState, ttl: Duration) -> Result<String, BackendError>;

    /// Applies `change` to the session `key` atomically and sets its TTL to `ttl`. If the session
    /// expired meanwhile it is created again under the same key.
    ///
    /// # Errors
    ///
    /// [`BackendError::TooLarge`] when the resulting state exceeds `store.length` (the stored
    /// state stays intact), [`BackendError::Unavailable`] when the store cannot be reached.
    async fn save(
        &self,
        key: &str,
        change: SessionChange,
        ttl: Duration,
    ) -> Result<(), BackendError>;

    /// Extends the TTL of an existing session without changing its data; a missing session stays
    /// missing.
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] when the store cannot be reached.
    async fn touch(&self, key: &str, ttl: Duration) -> Result<(), BackendError>;

    /// Deletes a session; deleting a missing session is not an error.
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] when the store cannot be reached.
    async fn delete(&self, key: &str) -> Result<(), BackendError>;

    /// Checks that the backend works (Redis: PING within the timeout; file: the folder is
    /// writable; memory: always up).
    async fn health(&self) -> HealthStatus;

    /// Whether this backend can hold large values such as OpenID Connect tokens. Auth refuses to
    /// start on a backend that answers `false`. Default: `true`.
    fn can_hold_tokens(&self) -> bool {
        true
    }
}

/// Generates a session key: 32 random bytes (256 bits) from the OS-seeded CSPRNG, base64url
/// without padding (43 characters of `[A-Za-z0-9_-]`).
///
/// # Examples
///
/// ```
/// let key = flamingo_session::backend::generate_session_key();
/// assert_eq!(key.len(), 43);
/// assert!(flamingo_session::backend::is_valid_session_key(&key));
/// ```
pub fn generate_session_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `key` has the shape [`generate_session_key`] produces. Backends that map keys to
/// paths or names use it to refuse anything else.
///
/// # Examples
///
/// ```
/// use flamingo_session::backend::is_valid_session_key;
/// assert!(!is_valid_session_key("../../etc/passwd"));
/// ```
pub fn is_valid_session_key(key: &str) -> bool {
    key.len() == 43
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Hex SHA-256 of a session key: safe to log, stable for one session.
///
/// # Examples
///
/// ```
/// let hash = flamingo_session::backend::key_hash("abc");
/// assert_eq!(hash.len(), 64);
/// ```
pub fn key_hash(key: &str) -> String {
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
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

/// A session key that prints as `SessionKey(<hash prefix>)` so it can never leak into logs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RedactedKey<'a>(pub &'a str);

impl fmt::Debug for RedactedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({})", &key_hash(self.0)[..12])
    }
}

impl fmt::Display for RedactedKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
