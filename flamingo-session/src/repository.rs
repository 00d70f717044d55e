//! Sessions by ID outside a request (Flamingo's `LoadByID`): for background jobs and admin tools.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use crate::{
    backend::{BackendError, SaveOutcome, SessionBackend, SessionChange, SessionId, SessionState},
    session::{check_key, decode_stored, SessionError},
    value::{encode, SessionValue},
};

/// Loads and saves sessions by ID through the configured backend, with the same value encoding
/// as the [`Session`](crate::Session) extractor. Get one from
/// [`Sessions::repository`](crate::Sessions::repository).
///
/// # Examples
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use flamingo_session::{MemoryBackend, SessionRepository};
///
/// # actix_web::rt::System::new().block_on(async {
/// let repo = SessionRepository::new(Arc::new(MemoryBackend::new(100, 0)), Duration::from_secs(60));
/// let mut session = repo.create();
/// session.store("job", "reindex".to_owned())?;
/// let id = repo.save(&mut session).await?;
///
/// let loaded = repo.load(&id).await?.expect("just saved");
/// assert_eq!(loaded.load::<String>("job")?.as_deref(), Some("reindex"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct SessionRepository {
    backend: Arc<dyn SessionBackend>,
    ttl: Duration,
}

impl std::fmt::Debug for SessionRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRepository")
            .field("backend", &self.backend.name())
            .finish()
    }
}

impl SessionRepository {
    /// A repository over `backend`; saves set the TTL to `ttl` (`max.age`).
    pub fn new(backend: Arc<dyn SessionBackend>, ttl: Duration) -> Self {
        SessionRepository { backend, ttl }
    }

    /// A new, empty session; it gets its ID when first saved.
    pub fn create(&self) -> DetachedSession {
        DetachedSession {
            id: None,
            state: SessionState::new(),
            set: BTreeSet::new(),
            removed: BTreeSet::new(),
        }
    }

    /// Loads the session `id`; `Ok(None)` when it does not exist (or expired).
    ///
    /// # Errors
    ///
    /// [`BackendError`] when the store fails or the data is corrupt.
    pub async fn load(&self, id: &SessionId) -> Result<Option<DetachedSession>, BackendError> {
        Ok(self.backend.load(id).await?.map(|state| DetachedSession {
            id: Some(id.clone()),
            state,
            set: BTreeSet::new(),
            removed: BTreeSet::new(),
        }))
    }

    /// Saves the keys `session` changed (merged atomically into what is stored, so concurrent
    /// requests keep their writes) and refreshes its TTL; a new session is created and gets its
    /// ID. Returns the ID. A session that was deleted or expired since it was loaded is not
    /// brought back.
    ///
    /// # Errors
    ///
    /// [`BackendError`] when the store fails or the session exceeds `store.length`;
    /// [`BackendError::Ended`] when the session ended since it was loaded (nothing was written).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::{sync::Arc, time::Duration};
    /// use flamingo_session::{backend::BackendError, MemoryBackend, SessionRepository};
    ///
    /// # actix_web::rt::System::new().block_on(async {
    /// let repo = SessionRepository::new(Arc::new(MemoryBackend::new(100, 0)), Duration::from_secs(60));
    /// let mut session = repo.create();
    /// session.store("job", 1u32)?;
    /// let id = repo.save(&mut session).await?;
    ///
    /// let mut stale = repo.load(&id).await?.expect("saved");
    /// repo.delete(&id).await?; // a logout, say
    /// stale.store("job", 2u32)?;
    /// assert!(matches!(repo.save(&mut stale).await, Err(BackendError::Ended)));
    /// assert!(repo.load(&id).await?.is_none(), "not brought back");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub async fn save(&self, session: &mut DetachedSession) -> Result<SessionId, BackendError> {
        let id = match &session.id {
            None => self.backend.create(session.state.clone(), self.ttl).await?,
            Some(id) => {
                let set = session
                    .set
                    .iter()
                    .filter_map(|k| session.state.get(k).map(|v| (k.clone(), v.clone())))
                    .collect();
                let remove = session.removed.iter().cloned().collect();
                let outcome = self
                    .backend
                    .save(id, SessionChange::Merge { set, remove }, self.ttl)
                    .await?;
                if outcome == SaveOutcome::Gone {
                    return Err(BackendError::Ended);
                }
                id.clone()
            }
        };
        tracing::debug!(session = %id, "session saved outside a request");
        session.set.clear();
        session.removed.clear();
        session.id = Some(id.clone());
        Ok(id)
    }

    /// Deletes the session `id` (for example to log a user out everywhere).
    ///
    /// # Errors
    ///
    /// [`BackendError`] when the store fails.
    pub async fn delete(&self, id: &SessionId) -> Result<(), BackendError> {
        self.backend.delete(id).await
    }
}

/// A session loaded by ID, outside a request. Same typed API as [`Session`](crate::Session).
pub struct DetachedSession {
    id: Option<SessionId>,
    state: SessionState,
    set: BTreeSet<String>,
    removed: BTreeSet<String>,
}

impl std::fmt::Debug for DetachedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetachedSession")
            .field("id", &self.id)
            .field("keys", &self.keys())
            .finish()
    }
}

impl DetachedSession {
    /// The session ID, `None` until first saved. A secret: log [`id_hash`](Self::id_hash).
    pub fn id(&self) -> Option<&SessionId> {
        self.id.as_ref()
    }

    /// Hex SHA-256 of the ID.
    pub fn id_hash(&self) -> Option<String> {
        self.id.as_ref().map(SessionId::hash)
    }

    /// The stored keys, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .state
            .keys()
            .filter(|k| !k.starts_with(crate::session::RESERVED_PREFIX))
            .cloned()
            .collect();
        keys.sort();
        keys
    }

    /// Loads a value, as [`Session::load`](crate::Session::load).
    ///
    /// # Errors
    ///
    /// As [`Session::load`](crate::Session::load).
    pub fn load<T: SessionValue>(&self, key: &str) -> Result<Option<T>, SessionError> {
        self.state
            .get(key)
            .map(|text| decode_stored::<T>(key, text))
            .transpose()
    }

    /// Stores a value, as [`Session::store`](crate::Session::store); written by
    /// [`SessionRepository::save`].
    ///
    /// # Errors
    ///
    /// As [`Session::store`](crate::Session::store).
    pub fn store<T: SessionValue>(&mut self, key: &str, value: T) -> Result<(), SessionError> {
        check_key(key)?;
        let text = encode(&value).map_err(|source| SessionError::Encode {
            key: key.to_owned(),
            type_name: T::session_type_name().into_owned(),
            source,
        })?;
        self.state.insert(key.to_owned(), text);
        self.removed.remove(key);
        self.set.insert(key.to_owned());
        Ok(())
    }

    /// Removes a key; written by [`SessionRepository::save`].
    pub fn delete(&mut self, key: &str) {
        self.state.remove(key);
        self.set.remove(key);
        self.removed.insert(key.to_owned());
    }
}
