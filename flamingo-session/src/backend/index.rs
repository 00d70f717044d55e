//! The per-owner session index and leases: what a backend offers beyond one session at a time.
//!
//! An **owner** is whoever a session belongs to, for example one user at one identity broker.
//! A backend with an index ([`SessionBackend::index`](super::SessionBackend::index)) can list the
//! live sessions of an owner, end one of them, or end them all ("log out everywhere", or a logout
//! the identity provider sends on the back channel), in every process that shares the store.
//!
//! A **lease** ([`SessionBackend::leases`](super::SessionBackend::leases)) is a named lock with
//! a time to live that every process sharing the store sees: one process at a time holds it, the
//! holder renews it while it works, and it frees itself when the holder dies. flamingo-auth uses
//! it so that one request in the whole cluster refreshes a session's tokens.
//!
//! # The contract of an index
//!
//! - [`create_owned`](SessionIndex::create_owned) stores a new session and records it under its
//!   owner in one step: an [`end_all`](SessionIndex::end_all) running at the same time either
//!   sees the new session (and ends it) or runs before it is stored, never misses it.
//! - [`list`](SessionIndex::list) answers only live sessions: a session that was deleted,
//!   expired or ended is never listed, however it ended.
//! - An ended session is dead: [`save`](super::SessionBackend::save) and
//!   [`touch`](super::SessionBackend::touch) answer [`SaveOutcome::Gone`](super::SaveOutcome) for
//!   it, like for any deleted session.
//! - The index costs no scan of the store: it is kept per owner, and on Redis Cluster an owner's
//!   index and sessions share one hash slot, so each operation is one atomic script on one node.
//!
//! [`conformance`](super::conformance) checks these rules for a backend that has an index.

use std::{fmt, time::Duration};

use async_trait::async_trait;
use base64::Engine as _;
use sha2::Digest as _;

use super::{BackendError, SessionId, SessionState};

/// The longest owner accepted, in bytes.
const MAX_OWNER_LEN: usize = 1024;

/// Whom a session belongs to: an opaque text such as a broker name and a user's subject.
///
/// Backends never store or show the text itself: they key the index by its
/// [`key`](Self::key), a SHA-256, so an owner may hold any characters. `Debug` shows the start of
/// that hash only (a subject can be personal data).
///
/// # Examples
///
/// ```
/// use flamingo_session::backend::SessionOwner;
///
/// let owner = SessionOwner::new("oidc\u{1f}user-42")?;
/// assert_eq!(owner.key().len(), 43);
/// assert!(!format!("{owner:?}").contains("user-42"));
/// assert!(SessionOwner::new("").is_err());
/// # Ok::<(), flamingo_session::backend::InvalidSessionOwner>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionOwner {
    text: Box<str>,
    key: Box<str>,
}

/// An owner text that cannot be used: empty or longer than 1024 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a session owner: {0}")]
pub struct InvalidSessionOwner(&'static str);

impl SessionOwner {
    /// An owner named by `text` (1 to 1024 bytes).
    ///
    /// # Errors
    ///
    /// [`InvalidSessionOwner`] when `text` is empty or too long.
    pub fn new(text: impl Into<String>) -> Result<SessionOwner, InvalidSessionOwner> {
        let text = text.into();
        if text.is_empty() {
            return Err(InvalidSessionOwner("empty"));
        }
        if text.len() > MAX_OWNER_LEN {
            return Err(InvalidSessionOwner("longer than 1024 bytes"));
        }
        let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(text.as_bytes()));
        Ok(SessionOwner {
            text: text.into_boxed_str(),
            key: key.into_boxed_str(),
        })
    }

    /// The owner's text as given to [`new`](Self::new).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// 43 characters of `[A-Za-z0-9_-]` (base64url SHA-256 of the text): how backends name the
    /// owner's index, safe in a file name or a Redis key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The first three characters of the [`key`](Self::key): the Redis Cluster hash tag the
    /// owner's index and the IDs of its sessions start with (see
    /// [`SessionId::generate_for`](SessionId::generate_for)).
    pub fn tag(&self) -> &str {
        &self.key[..3]
    }
}

impl fmt::Debug for SessionOwner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionOwner({})", &self.key[..8])
    }
}

/// One live session in an owner's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedSession {
    /// The session's ID (a secret: show [`SessionId::hash`] to people).
    pub id: SessionId,
    /// When the session was stored for this owner, in Unix seconds.
    pub created: u64,
    /// When the session was last written or its expiry last slid, in Unix seconds.
    pub last_seen: u64,
}

/// A backend's per-owner session index. See the [module documentation](self) for the contract.
#[async_trait]
pub trait SessionIndex: Send + Sync {
    /// Stores `state` as a new session of `owner` under a fresh ID and records it in the owner's
    /// index, in one atomic step; the ID starts with the owner's [`tag`](SessionOwner::tag)
    /// ([`SessionId::generate_for`]).
    ///
    /// # Errors
    ///
    /// As [`SessionBackend::create`](super::SessionBackend::create).
    async fn create_owned(
        &self,
        owner: &SessionOwner,
        state: SessionState,
        ttl: Duration,
    ) -> Result<SessionId, BackendError>;

    /// The live sessions of `owner`, oldest first.
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] when the store cannot be reached.
    async fn list(&self, owner: &SessionOwner) -> Result<Vec<IndexedSession>, BackendError>;

    /// Ends the session `id` if it is a live session of `owner`; `Ok(false)` when it is not
    /// (another owner's session is never ended).
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] when the store cannot be reached.
    async fn end(&self, owner: &SessionOwner, id: &SessionId) -> Result<bool, BackendError>;

    /// Ends every session of `owner` and answers how many were live.
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] when the store cannot be reached.
    async fn end_all(&self, owner: &SessionOwner) -> Result<usize, BackendError>;
}

/// Named locks with a time to live, shared by every process on the store. See the
/// [module documentation](self).
///
/// A lease name is any text up to 1024 bytes; backends key it by a hash. A `holder` is a random
/// token the taker makes up (so that nobody else can renew or release its lease).
#[async_trait]
pub trait Leases: Send + Sync {
    /// Takes the lease `name` for `ttl` when nobody holds it (or its holder's time ran out);
    /// `Ok(false)` when someone else holds it. Taking a lease one already holds renews it.
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] when the store cannot be reached.
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, BackendError>;

    /// Extends the lease to `ttl` from now if `holder` still holds it; `Ok(false)` otherwise.
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] when the store cannot be reached.
    async fn renew(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, BackendError>;

    /// Who holds the lease now: `None` when it is free or its time ran out. (With a holder
    /// token that carries data, a lease is also a small shared record with a TTL.)
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] when the store cannot be reached.
    async fn holder(&self, name: &str) -> Result<Option<String>, BackendError>;

    /// Frees the lease if `holder` holds it; a lease held by another is left alone.
    ///
    /// # Errors
    ///
    /// [`BackendError::Unavailable`] when the store cannot be reached.
    async fn release(&self, name: &str, holder: &str) -> Result<(), BackendError>;
}

/// The key backends store a lease under: base64url SHA-256 of its name.
pub(crate) fn lease_key(name: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(name.as_bytes()))
}
