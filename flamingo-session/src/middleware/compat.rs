//! actix-session, adapted both ways.
//!
//! - [`BackendStore`]: any backend of ours as an actix-session
//!   [`SessionStore`], for apps that run actix-session's own `SessionMiddleware` because they
//!   use crates built on `actix_session::Session` (actix-identity, actix-web-flash-messages).
//!   Our [`Session`](crate::Session) extractor works there too; every save replaces the whole
//!   stored state, so no write is lost whichever API made it.
//! - [`ActixStoreBackend`]: any actix-session `SessionStore` (its Redis store, a store of your
//!   own) as a [`SessionBackend`] under our middleware: Flamingo's "replace the SessionModule".

use std::{
    cell::RefCell, collections::HashMap, future::Future, pin::Pin, rc::Rc, sync::Arc,
    time::Duration,
};

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration as CookieDuration;
use async_trait::async_trait;

use crate::backend::{
    check_length, BackendError, HealthStatus, SaveOutcome, SessionBackend, SessionChange,
    SessionId, SessionState,
};

/// An actix-session [`SessionStore`] backed by any [`SessionBackend`] of ours.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use actix_session::SessionMiddleware;
/// use actix_web::{cookie::Key, App};
/// use flamingo_session::{BackendStore, MemoryBackend};
///
/// let store = BackendStore::new(Arc::new(MemoryBackend::new(10_000, 1 << 20)));
/// let app = App::new().wrap(SessionMiddleware::new(store, Key::generate()));
/// ```
#[derive(Clone)]
pub struct BackendStore {
    backend: Arc<dyn SessionBackend>,
}

impl std::fmt::Debug for BackendStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendStore")
            .field("backend", &self.backend.name())
            .finish()
    }
}

impl BackendStore {
    /// Wraps a backend.
    pub fn new(backend: Arc<dyn SessionBackend>) -> Self {
        BackendStore { backend }
    }

    /// The wrapped backend.
    pub fn backend(&self) -> &Arc<dyn SessionBackend> {
        &self.backend
    }
}

fn std_ttl(ttl: &CookieDuration) -> Duration {
    Duration::from_millis(u64::try_from(ttl.whole_milliseconds()).unwrap_or(0).max(1))
}

/// actix-session's stores count whole seconds (its Redis store sends `EX`): round up, at least 1.
fn cookie_ttl(ttl: Duration) -> CookieDuration {
    let seconds = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    CookieDuration::seconds(i64::try_from(seconds.max(1)).unwrap_or(i64::MAX))
}

fn our_id(key: &SessionKey) -> Option<SessionId> {
    SessionId::parse(key.as_ref()).ok()
}

/// Our ID as actix-session's key (its length limit is far above ours; the error cannot happen
/// for IDs of ours, but a key type of its own is actix-session's to check).
fn key_of(id: &SessionId) -> Result<SessionKey, BackendError> {
    SessionKey::try_from(id.expose().to_owned())
        .map_err(|_| BackendError::other("session ID not accepted as an actix-session key"))
}

impl SessionStore for BackendStore {
    async fn load(
        &self,
        session_key: &SessionKey,
    ) -> Result<Option<HashMap<String, String>>, LoadError> {
        let Some(id) = our_id(session_key) else {
            return Ok(None);
        };
        match self.backend.load(&id).await {
            Ok(state) => Ok(state),
            Err(err @ BackendError::Corrupt(_)) => {
                tracing::warn!(backend = self.backend.name(), session = %id, error = %err,
                    "corrupt session data: starting a fresh session");
                Err(LoadError::Deserialization(anyhow::Error::new(err)))
            }
            Err(err) => {
                tracing::error!(backend = self.backend.name(), error = %err, "session load failed");
                Err(LoadError::Other(anyhow::Error::new(err)))
            }
        }
    }

    async fn save(
        &self,
        session_state: HashMap<String, String>,
        ttl: &CookieDuration,
    ) -> Result<SessionKey, SaveError> {
        match self.backend.create(session_state, std_ttl(ttl)).await {
            Ok(id) => key_of(&id).map_err(|err| SaveError::Other(anyhow::Error::new(err))),
            Err(err) => {
                tracing::error!(backend = self.backend.name(), error = %err, "session create failed");
                Err(SaveError::Other(anyhow::Error::new(err)))
            }
        }
    }

    async fn update(
        &self,
        session_key: SessionKey,
        session_state: HashMap<String, String>,
        ttl: &CookieDuration,
    ) -> Result<SessionKey, UpdateError> {
        let Some(id) = our_id(&session_key) else {
            return Ok(session_key);
        };
        match self
            .backend
            .save(&id, SessionChange::Replace(session_state), std_ttl(ttl))
            .await
        {
            Ok(SaveOutcome::Saved) => Ok(session_key),
            Ok(SaveOutcome::Gone) => {
                // The session ended while the request ran: its changes are dropped, and the key
                // actix-session keeps in the cookie names nothing, so the next request is fresh.
                tracing::warn!(backend = self.backend.name(), session = %id,
                    "the session ended while the request ran; its changes were dropped");
                Ok(session_key)
            }
            Err(err) => {
                tracing::error!(backend = self.backend.name(), session = %id, error = %err,
                    "session save failed");
                Err(UpdateError::Other(anyhow::Error::new(err)))
            }
        }
    }

    async fn update_ttl(
        &self,
        session_key: &SessionKey,
        ttl: &CookieDuration,
    ) -> Result<(), anyhow::Error> {
        let Some(id) = our_id(session_key) else {
            return Ok(());
        };
        let _ = self.backend.touch(&id, std_ttl(ttl)).await?;
        Ok(())
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        let Some(id) = our_id(session_key) else {
            return Ok(());
        };
        Ok(self.backend.delete(&id).await?)
    }
}

type Job<S> = Box<dyn FnOnce(Rc<Local<S>>) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// The thread-local side of [`ActixStoreBackend`]: the store and one lock per session being
/// changed, so that a merge (load, apply, update) of one session never interleaves with another.
struct Local<S> {
    store: S,
    locks: RefCell<HashMap<String, Rc<tokio::sync::Mutex<()>>>>,
}

impl<S> Local<S> {
    fn lock_for(&self, key: &str) -> Rc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.borrow_mut();
        locks.retain(|_, lock| Rc::strong_count(lock) > 1);
        locks.entry(key.to_owned()).or_default().clone()
    }
}

/// Any actix-session [`SessionStore`] as a [`SessionBackend`] of ours, for our middleware.
///
/// actix-session's stores are not object-safe and their futures need not be `Send`, so the store
/// runs on a thread of its own (a current-thread Tokio runtime) and this handle sends it the
/// work. A merge of one session is one step there: concurrent requests of one process lose no
/// write. Across processes the store's own guarantees hold (actix-session's Redis store: last
/// writer wins). A dead session stays dead: a save first checks that the session is stored, and
/// a store that answers an update with a new key (as actix-session's Redis store does for an
/// expired one) has that new session deleted again.
///
/// # Examples
///
/// ```
/// use actix_session::storage::CookieSessionStore;
/// use flamingo_session::{middleware::compat::ActixStoreBackend, SessionBackend};
///
/// let backend = ActixStoreBackend::new("cookie", CookieSessionStore::default(), 4096);
/// assert_eq!(backend.name(), "cookie");
/// ```
pub struct ActixStoreBackend<S> {
    name: String,
    jobs: tokio::sync::mpsc::UnboundedSender<Job<S>>,
    store_length: usize,
}

impl<S> std::fmt::Debug for ActixStoreBackend<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActixStoreBackend")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<S: SessionStore + Send + 'static> ActixStoreBackend<S> {
    /// Runs `store` on a thread of its own; `name` is what logs and health checks show and
    /// `store_length` the largest session in bytes (`0`: no limit). For a store that holds
    /// connections driven by a runtime (actix-session's Redis store), build it on that thread
    /// with [`start`](Self::start).
    ///
    /// # Panics
    ///
    /// When the operating system refuses to start a thread.
    pub fn new(name: impl Into<String>, store: S, store_length: usize) -> Self {
        Self::spawn(
            name.into(),
            store_length,
            move || async move { Ok(store) },
            |_| {},
        )
    }

    /// Builds the store with `make` on the store's own thread (so that its connections are
    /// driven there) and runs it there.
    ///
    /// # Errors
    ///
    /// What `make` failed with, as [`BackendError::Unavailable`].
    ///
    /// # Examples
    ///
    /// With actix-session's Redis store (its `redis-session` feature), the closure would be
    /// `|| RedisSessionStore::new("redis://127.0.0.1:6379")`; here a store that needs no server:
    ///
    /// ```
    /// use actix_session::storage::CookieSessionStore;
    /// use flamingo_session::{middleware::compat::ActixStoreBackend, SessionBackend};
    ///
    /// # actix_web::rt::System::new().block_on(async {
    /// let backend = ActixStoreBackend::start("cookie", 4096, || async {
    ///     Ok::<_, std::convert::Infallible>(CookieSessionStore::default())
    /// })
    /// .await?;
    /// assert!(backend.health().await.alive);
    /// # Ok::<(), flamingo_session::BackendError>(())
    /// # }).unwrap();
    /// ```
    pub async fn start<F, Fut, E>(
        name: impl Into<String>,
        store_length: usize,
        make: F,
    ) -> Result<Self, BackendError>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<S, E>> + 'static,
        E: std::fmt::Display,
    {
        let (ready, started) = tokio::sync::oneshot::channel();
        let backend = Self::spawn(
            name.into(),
            store_length,
            move || async move { make().await.map_err(|err| err.to_string()) },
            move |outcome| {
                let _ = ready.send(outcome);
            },
        );
        match started.await {
            Ok(Ok(())) => Ok(backend),
            Ok(Err(err)) => Err(BackendError::unavailable(err)),
            Err(_) => Err(BackendError::unavailable(
                "the actix-session store thread stopped while starting",
            )),
        }
    }

    fn spawn<F, Fut>(
        name: String,
        store_length: usize,
        make: F,
        started: impl FnOnce(Result<(), String>) + Send + 'static,
    ) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<S, String>> + 'static,
    {
        let (jobs, mut queue) = tokio::sync::mpsc::unbounded_channel::<Job<S>>();
        std::thread::Builder::new()
            .name(format!("actix-session store {name}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a current-thread runtime");
                let local = tokio::task::LocalSet::new();
                local.block_on(&runtime, async move {
                    let store = match make().await {
                        Ok(store) => {
                            started(Ok(()));
                            store
                        }
                        Err(err) => {
                            started(Err(err));
                            return;
                        }
                    };
                    let shared = Rc::new(Local {
                        store,
                        locks: RefCell::new(HashMap::new()),
                    });
                    while let Some(job) = queue.recv().await {
                        tokio::task::spawn_local(job(shared.clone()));
                    }
                });
            })
            .expect("a thread for the actix-session store");
        ActixStoreBackend {
            name,
            jobs,
            store_length,
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(Rc<Local<S>>) -> Pin<Box<dyn Future<Output = Result<T, BackendError>>>>
            + Send
            + 'static,
    ) -> Result<T, BackendError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job<S> = Box::new(move |local| {
            Box::pin(async move {
                let _ = reply.send(work(local).await);
            })
        });
        self.jobs
            .send(job)
            .map_err(|_| BackendError::unavailable("the actix-session store thread has stopped"))?;
        answer
            .await
            .map_err(|_| BackendError::unavailable("the actix-session store thread has stopped"))?
    }
}

fn load_error(err: LoadError) -> BackendError {
    match err {
        LoadError::Deserialization(err) => BackendError::Corrupt(err.to_string()),
        LoadError::Other(err) => BackendError::unavailable(err.to_string()),
    }
}

#[async_trait]
impl<S: SessionStore + Send + 'static> SessionBackend for ActixStoreBackend<S> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn load(&self, id: &SessionId) -> Result<Option<SessionState>, BackendError> {
        let key = key_of(id)?;
        self.run(move |local| {
            Box::pin(async move { local.store.load(&key).await.map_err(load_error) })
        })
        .await
    }

    async fn create(&self, state: SessionState, ttl: Duration) -> Result<SessionId, BackendError> {
        check_length(&state, self.store_length)?;
        let key = self
            .run(move |local| {
                Box::pin(async move {
                    local
                        .store
                        .save(state, &cookie_ttl(ttl))
                        .await
                        .map(String::from)
                        .map_err(|err| BackendError::unavailable(err.to_string()))
                })
            })
            .await?;
        SessionId::parse(&key).map_err(|_| {
            BackendError::other("the actix-session store made an unusable session key")
        })
    }

    async fn save(
        &self,
        id: &SessionId,
        change: SessionChange,
        ttl: Duration,
    ) -> Result<SaveOutcome, BackendError> {
        let key = key_of(id)?;
        let limit = self.store_length;
        self.run(move |local| {
            Box::pin(async move {
                let lock = local.lock_for(key.as_ref());
                let _guard = lock.lock().await;
                let Some(mut state) = local.store.load(&key).await.map_err(load_error)? else {
                    return Ok(SaveOutcome::Gone);
                };
                change.apply_to(&mut state);
                check_length(&state, limit)?;
                let old = key.as_ref().to_owned();
                let new = local
                    .store
                    .update(key, state, &cookie_ttl(ttl))
                    .await
                    .map_err(|err| BackendError::unavailable(err.to_string()))?;
                if new.as_ref() != old {
                    // The store re-created the session under a new key (it expired meanwhile):
                    // that would bring a dead session back, so it goes.
                    local
                        .store
                        .delete(&new)
                        .await
                        .map_err(|err| BackendError::unavailable(err.to_string()))?;
                    return Ok(SaveOutcome::Gone);
                }
                Ok(SaveOutcome::Saved)
            })
        })
        .await
    }

    async fn touch(&self, id: &SessionId, ttl: Duration) -> Result<SaveOutcome, BackendError> {
        let key = key_of(id)?;
        self.run(move |local| {
            Box::pin(async move {
                let lock = local.lock_for(key.as_ref());
                let _guard = lock.lock().await;
                if local.store.load(&key).await.map_err(load_error)?.is_none() {
                    return Ok(SaveOutcome::Gone);
                }
                local
                    .store
                    .update_ttl(&key, &cookie_ttl(ttl))
                    .await
                    .map_err(|err| BackendError::unavailable(err.to_string()))?;
                Ok(SaveOutcome::Saved)
            })
        })
        .await
    }

    async fn delete(&self, id: &SessionId) -> Result<(), BackendError> {
        let key = key_of(id)?;
        self.run(move |local| {
            Box::pin(async move {
                let lock = local.lock_for(key.as_ref());
                let _guard = lock.lock().await;
                local
                    .store
                    .delete(&key)
                    .await
                    .map_err(|err| BackendError::unavailable(err.to_string()))
            })
        })
        .await
    }

    async fn health(&self) -> HealthStatus {
        let probe = SessionId::generate();
        match self.load(&probe).await {
            // The store answered; a store that reads state out of the key itself (the cookie
            // store) calls a random ID undecodable, which is an answer too.
            Ok(_) | Err(BackendError::Corrupt(_)) => HealthStatus::up(),
            Err(err) => HealthStatus::down(err.to_string()),
        }
    }
}
