//! The sessions of a user at a broker: who owns a session in the session index, and the
//! [`AuthManager`] methods that list them and end them ("log out everywhere").
//!
//! Every login gives the session a new ID and records it in the backend's per-owner index
//! ([`flamingo_session::backend::SessionIndex`]) under the owner [`session_owner`] makes from the
//! broker's name and the user's subject. Every instance on a shared store sees the same index,
//! so a session ended here is dead on all of them.

use flamingo_session::{
    backend::{InvalidSessionOwner, SessionOwner},
    SessionDirectory,
};
use serde::Serialize;

use crate::{error::AuthError, identity::Identity, manager::AuthManager};

/// Separates the broker's name from the subject in an owner's text. Broker names cannot hold a
/// control character (the config refuses them), so the first one in the text ends the name and
/// two different (broker, subject) pairs never give the same owner.
const OWNER_SEPARATOR: char = '\u{1f}';

/// The owner of the sessions of `subject` at `broker` in the session index: the one place that
/// turns a login into an owner.
///
/// # Errors
///
/// [`InvalidSessionOwner`] when the text would be longer than the index accepts (1024 bytes).
///
/// # Examples
///
/// ```
/// use flamingo_auth::session_owner;
///
/// let alice = session_owner("main", "alice")?;
/// assert_ne!(alice, session_owner("main", "bob")?);
/// // The separator keeps ("a", "b\u{1f}c") and ("a\u{1f}b", "c") apart, and broker names
/// // cannot hold it.
/// assert_eq!(alice.as_str(), "main\u{1f}alice");
/// # Ok::<(), flamingo_session::backend::InvalidSessionOwner>(())
/// ```
pub fn session_owner(broker: &str, subject: &str) -> Result<SessionOwner, InvalidSessionOwner> {
    SessionOwner::new(format!("{broker}{OWNER_SEPARATOR}{subject}"))
}

/// The owner of `identity`'s sessions (see [`session_owner`]).
pub(crate) fn owner_of(identity: &Identity) -> Result<SessionOwner, InvalidSessionOwner> {
    session_owner(identity.broker(), identity.subject())
}

/// One live session of the logged-in user, as [`AuthManager::sessions`] lists it. It
/// serializes as `{"idHash", "current", "created", "lastSeen"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct UserSession {
    /// Hex SHA-256 of the session ID: safe to show and to log, and what
    /// [`AuthManager::end_session`] takes. The ID itself is a secret and is never given out.
    pub id_hash: String,
    /// Whether this is the session of the request.
    pub current: bool,
    /// When the session was created at login, in Unix seconds.
    pub created: u64,
    /// When the session was last written or its expiry last slid, in Unix seconds.
    pub last_seen: u64,
}

impl AuthManager {
    /// The logged-in identity and the index it lives in.
    async fn owner_and_directory(&self) -> Result<(SessionOwner, SessionDirectory), AuthError> {
        let identity = self.identity().await?;
        let owner = owner_of(&identity).map_err(|_| AuthError::NotLoggedIn {
            broker: Some(identity.broker().to_owned()),
        })?;
        Ok((owner, self.auth().directory().clone()))
    }

    /// The live sessions of the logged-in user at the chosen broker (see
    /// [`broker`](Self::broker); else the first broker the user is logged in at), oldest first,
    /// on every instance that shares the session store. `current` marks the session of this
    /// request.
    ///
    /// # Errors
    ///
    /// [`AuthError::NotLoggedIn`] for a guest, [`AuthError::Directory`] when the backend keeps no
    /// index or cannot be reached.
    ///
    /// # Examples
    ///
    /// ```
    /// use actix_web::HttpResponse;
    /// use flamingo_auth::{AuthError, AuthManager};
    ///
    /// async fn my_sessions(auth: AuthManager) -> Result<HttpResponse, AuthError> {
    ///     let sessions = auth.sessions().await?;
    ///     Ok(HttpResponse::Ok().json(serde_json::json!({ "sessions": sessions })))
    /// }
    /// ```
    pub async fn sessions(&self) -> Result<Vec<UserSession>, AuthError> {
        let (owner, directory) = self.owner_and_directory().await?;
        let current = self.session().id();
        Ok(directory
            .list(&owner)
            .await?
            .into_iter()
            .map(|s| UserSession {
                id_hash: s.id.hash(),
                current: current.as_ref() == Some(&s.id),
                created: s.created,
                last_seen: s.last_seen,
            })
            .collect())
    }

    /// Ends one session of the logged-in user, named by its
    /// [`id_hash`](UserSession::id_hash); `Ok(false)` when the user has no such live session (a
    /// session of somebody else is never ended). Ending the current session logs this request's
    /// browser out too.
    ///
    /// # Errors
    ///
    /// As [`sessions`](Self::sessions).
    ///
    /// # Examples
    ///
    /// ```
    /// use actix_web::{web, HttpResponse};
    /// use flamingo_auth::{AuthError, AuthManager};
    ///
    /// async fn end_one(auth: AuthManager, id_hash: web::Path<String>) -> Result<HttpResponse, AuthError> {
    ///     Ok(if auth.end_session(&id_hash).await? {
    ///         HttpResponse::NoContent().finish()
    ///     } else {
    ///         HttpResponse::NotFound().finish()
    ///     })
    /// }
    /// ```
    pub async fn end_session(&self, id_hash: &str) -> Result<bool, AuthError> {
        let (owner, directory) = self.owner_and_directory().await?;
        let ended = directory.end_by_hash(&owner, id_hash).await?;
        if ended && self.session().id_hash().as_deref() == Some(id_hash) {
            self.session().purge();
        }
        Ok(ended)
    }

    /// Ends every session of the logged-in user at the chosen broker, on every instance that
    /// shares the session store ("log out everywhere", e.g. after a password change), this one
    /// included: the request's session is purged and its cookie removed. Answers how many
    /// sessions were live in the index.
    ///
    /// No logout listener runs and the provider is not visited: the sessions are simply gone.
    /// Send the browser to `/core/auth/logout` first when the provider's session should end too.
    ///
    /// # Errors
    ///
    /// As [`sessions`](Self::sessions).
    ///
    /// # Examples
    ///
    /// ```
    /// use actix_web::HttpResponse;
    /// use flamingo_auth::{AuthError, AuthManager};
    ///
    /// async fn log_out_everywhere(auth: AuthManager) -> Result<HttpResponse, AuthError> {
    ///     let ended = auth.end_all_sessions().await?;
    ///     Ok(HttpResponse::Ok().json(serde_json::json!({ "ended": ended })))
    /// }
    /// ```
    pub async fn end_all_sessions(&self) -> Result<usize, AuthError> {
        let (owner, directory) = self.owner_and_directory().await?;
        let ended = directory.end_all(&owner).await?;
        self.session().purge();
        tracing::info!(ended, "logged out everywhere");
        Ok(ended)
    }
}
