//! [`SessionDirectory`]: the sessions of an owner (list, end one, end all) and the backend's
//! leases, for handlers and background tasks.

use std::{rc::Rc, sync::Arc};

use actix_web::{dev::Payload, http::StatusCode, FromRequest, HttpRequest, ResponseError};

use crate::{
    backend::{BackendError, IndexedSession, Leases, SessionBackend, SessionIndex, SessionOwner},
    middleware::state::Shared,
};

/// The per-owner session index of the app's backend ([`SessionIndex`]): what "your sessions"
/// pages, "log out everywhere" and back-channel logout use. Every instance on a shared store
/// sees the same index, so a session ended here is ended for all of them.
///
/// Extract it in a handler behind [`Sessions::middleware`](crate::Sessions::middleware), or get
/// one from [`Sessions::directory`](crate::Sessions::directory).
///
/// # Examples
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use flamingo_session::{backend::SessionOwner, MemoryBackend, SessionDirectory, SessionState};
///
/// # actix_web::rt::System::new().block_on(async {
/// let backend = Arc::new(MemoryBackend::new(100, 0));
/// let directory = SessionDirectory::new(backend.clone());
/// let owner = SessionOwner::new("oidc\u{1f}alice")?;
/// let index = flamingo_session::SessionBackend::index(&*backend).expect("memory has an index");
/// index.create_owned(&owner, SessionState::new(), Duration::from_secs(60)).await?;
///
/// assert_eq!(directory.list(&owner).await?.len(), 1);
/// assert_eq!(directory.end_all(&owner).await?, 1);
/// assert!(directory.list(&owner).await?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct SessionDirectory {
    backend: Arc<dyn SessionBackend>,
}

impl std::fmt::Debug for SessionDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionDirectory")
            .field("backend", &self.backend.name())
            .field("index", &self.backend.index().is_some())
            .finish()
    }
}

/// Why a [`SessionDirectory`] operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The backend keeps no per-owner index (a custom backend that does not offer one).
    #[error("the session backend {backend:?} keeps no per-owner session index")]
    NoIndex {
        /// The backend's name.
        backend: String,
    },
    /// The backend failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl ResponseError for DirectoryError {
    fn status_code(&self) -> StatusCode {
        match self {
            DirectoryError::Backend(BackendError::Unavailable(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl SessionDirectory {
    /// A directory over `backend`.
    pub fn new(backend: Arc<dyn SessionBackend>) -> Self {
        SessionDirectory { backend }
    }

    /// Whether the backend keeps a per-owner index (memory, file and Redis do).
    pub fn has_index(&self) -> bool {
        self.backend.index().is_some()
    }

    fn index(&self) -> Result<&dyn SessionIndex, DirectoryError> {
        self.backend.index().ok_or_else(|| DirectoryError::NoIndex {
            backend: self.backend.name().to_owned(),
        })
    }

    /// The live sessions of `owner`, oldest first.
    ///
    /// # Errors
    ///
    /// [`DirectoryError::NoIndex`] on a backend without an index; the backend's error otherwise.
    pub async fn list(&self, owner: &SessionOwner) -> Result<Vec<IndexedSession>, DirectoryError> {
        Ok(self.index()?.list(owner).await?)
    }

    /// Ends the session of `owner` whose [`SessionId::hash`](crate::SessionId::hash) is
    /// `id_hash` (what a page shows instead of the ID); `Ok(false)` when the owner has no such
    /// live session.
    ///
    /// # Errors
    ///
    /// [`DirectoryError::NoIndex`] on a backend without an index; the backend's error otherwise.
    pub async fn end_by_hash(
        &self,
        owner: &SessionOwner,
        id_hash: &str,
    ) -> Result<bool, DirectoryError> {
        let index = self.index()?;
        let sessions = index.list(owner).await?;
        match sessions.into_iter().find(|s| s.id.hash() == id_hash) {
            Some(session) => Ok(index.end(owner, &session.id).await?),
            None => Ok(false),
        }
    }

    /// Ends every session of `owner` ("log out everywhere") and answers how many were live.
    ///
    /// # Errors
    ///
    /// [`DirectoryError::NoIndex`] on a backend without an index; the backend's error otherwise.
    pub async fn end_all(&self, owner: &SessionOwner) -> Result<usize, DirectoryError> {
        Ok(self.index()?.end_all(owner).await?)
    }

    /// The backend's leases, if it offers them.
    pub fn leases(&self) -> Option<&dyn Leases> {
        self.backend.leases()
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn SessionBackend> {
        &self.backend
    }
}

/// The middleware is not in front of the request.
#[derive(Debug, thiserror::Error)]
#[error("SessionDirectory needs Sessions::middleware() (or app data of a SessionDirectory)")]
pub struct NoSessionMiddleware;

impl ResponseError for NoSessionMiddleware {}

impl FromRequest for SessionDirectory {
    type Error = NoSessionMiddleware;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let found = req
            .app_data::<Rc<Shared>>()
            .map(|shared| SessionDirectory::new(shared.backend.clone()))
            .or_else(|| req.app_data::<SessionDirectory>().cloned())
            .or_else(|| {
                req.app_data::<actix_web::web::Data<SessionDirectory>>()
                    .map(|data| data.get_ref().clone())
            });
        std::future::ready(found.ok_or(NoSessionMiddleware))
    }
}
