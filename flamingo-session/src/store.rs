//! The one adapter from our object-safe [`SessionBackend`] to actix-session's `SessionStore`.

use std::{collections::HashMap, sync::Arc, time::Duration};

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration as CookieDuration;

use crate::{
    backend::{BackendError, SessionBackend, SessionChange, SessionState},
    session::{DirtyKeys, DIRTY_KEY, ID_KEY, RESERVED_PREFIX, TOUCHED_KEY},
};

/// A store failure the session layer answers with a specific status instead of actix-session's
/// opaque 500.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StoreFailure {
    /// The store is unreachable: 503.
    Unavailable,
    /// The session grew past `store.length`: 413, nothing written.
    TooLarge { size: usize, limit: usize },
}

tokio::task_local! {
    /// Set for the duration of one request by the session layer; the adapter records here why
    /// the store failed.
    pub(crate) static FAILURE: std::cell::Cell<Option<StoreFailure>>;
}

fn record_outage(err: &BackendError) {
    let failure = match err {
        BackendError::Unavailable(_) => StoreFailure::Unavailable,
        BackendError::TooLarge { size, limit } => StoreFailure::TooLarge {
            size: *size,
            limit: *limit,
        },
        _ => return,
    };
    let _ = FAILURE.try_with(|slot| slot.set(Some(failure)));
}

/// An actix-session [`SessionStore`] backed by any [`SessionBackend`].
///
/// [`Sessions::middleware`](crate::Sessions::middleware) uses it for you; build one directly to
/// put one of our backends under a plain `actix_session::SessionMiddleware`.
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

fn session_key(key: String) -> Result<SessionKey, anyhow::Error> {
    SessionKey::try_from(key)
        .map_err(|_| anyhow::anyhow!("backend returned an invalid session key"))
}

/// Now, in unix seconds.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Splits the request's state into what is stored and the change to apply; every write records
/// when it happened under [`TOUCHED_KEY`].
fn into_change(mut state: HashMap<String, String>) -> SessionChange {
    state.remove(ID_KEY);
    let dirty: Option<DirtyKeys> = state
        .remove(DIRTY_KEY)
        .and_then(|text| serde_json::from_str(&text).ok());
    state.retain(|k, _| !k.starts_with(RESERVED_PREFIX));
    let touched = (TOUCHED_KEY.to_owned(), unix_now().to_string());
    match dirty {
        Some(dirty) if !dirty.all => {
            let mut set = SessionState::with_capacity(dirty.keys.len() + 1);
            set.insert(touched.0, touched.1);
            let mut remove = Vec::new();
            for key in dirty.keys {
                match state.remove(&key) {
                    Some(value) => {
                        set.insert(key, value);
                    }
                    None => remove.push(key),
                }
            }
            SessionChange::Merge { set, remove }
        }
        _ => {
            state.insert(touched.0, touched.1);
            SessionChange::Replace(state)
        }
    }
}

/// Refuses a loaded state holding a value that is not JSON at all (garbage written into the
/// store by something else): the session then starts fresh instead of failing every handler that
/// reads it.
fn validate(state: Option<SessionState>) -> Result<Option<SessionState>, BackendError> {
    if let Some(state) = &state {
        for (key, value) in state {
            if serde_json::from_str::<serde::de::IgnoredAny>(value).is_err() {
                return Err(BackendError::Corrupt(format!(
                    "the value of session key {key:?} is not JSON"
                )));
            }
        }
    }
    Ok(state)
}

fn strip_reserved(mut state: HashMap<String, String>) -> SessionState {
    state.retain(|k, _| !k.starts_with(RESERVED_PREFIX));
    state.insert(TOUCHED_KEY.to_owned(), unix_now().to_string());
    state
}

impl SessionStore for BackendStore {
    async fn load(
        &self,
        session_key: &SessionKey,
    ) -> Result<Option<HashMap<String, String>>, LoadError> {
        let key = session_key.as_ref();
        match self.backend.load(key).await.and_then(validate) {
            Ok(Some(mut state)) => {
                state.insert(ID_KEY.to_owned(), key.to_owned());
                Ok(Some(state))
            }
            Ok(None) | Err(BackendError::InvalidKey) => Ok(None),
            Err(err @ BackendError::Corrupt(_)) => {
                tracing::warn!(
                    backend = self.backend.name(),
                    session = %crate::backend::key_hash(key),
                    error = %err,
                    "corrupt session data: starting a fresh session"
                );
                Err(LoadError::Deserialization(anyhow::Error::new(err)))
            }
            Err(err) => {
                record_outage(&err);
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
        let state = strip_reserved(session_state);
        match self.backend.create(state, std_ttl(ttl)).await {
            Ok(key) => session_key(key).map_err(SaveError::Other),
            Err(err) => {
                record_outage(&err);
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
        let change = into_change(session_state);
        match self
            .backend
            .save(session_key.as_ref(), change, std_ttl(ttl))
            .await
        {
            Ok(()) => Ok(session_key),
            Err(err) => {
                record_outage(&err);
                tracing::error!(
                    backend = self.backend.name(),
                    session = %crate::backend::key_hash(session_key.as_ref()),
                    error = %err,
                    "session save failed"
                );
                Err(UpdateError::Other(anyhow::Error::new(err)))
            }
        }
    }

    async fn update_ttl(
        &self,
        session_key: &SessionKey,
        ttl: &CookieDuration,
    ) -> Result<(), anyhow::Error> {
        self.backend
            .touch(session_key.as_ref(), std_ttl(ttl))
            .await
            .map_err(|err| {
                record_outage(&err);
                anyhow::Error::new(err)
            })
    }

    async fn delete(&self, session_key: &SessionKey) -> Result<(), anyhow::Error> {
        self.backend
            .delete(session_key.as_ref())
            .await
            .map_err(|err| {
                record_outage(&err);
                anyhow::Error::new(err)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirty_keys_become_a_merge() {
        let mut state = HashMap::new();
        state.insert("a".to_owned(), "1".to_owned());
        state.insert("b".to_owned(), "2".to_owned());
        state.insert(ID_KEY.to_owned(), "secret-id".to_owned());
        state.insert(DIRTY_KEY.to_owned(), r#"{"keys":["a","gone"]}"#.to_owned());
        match into_change(state) {
            SessionChange::Merge { mut set, remove } => {
                let touched: u64 = set
                    .remove(TOUCHED_KEY)
                    .expect("every write records its time")
                    .parse()
                    .unwrap();
                assert!(touched.abs_diff(unix_now()) <= 1);
                assert_eq!(set, SessionState::from([("a".to_owned(), "1".to_owned())]));
                assert_eq!(remove, vec!["gone".to_owned()]);
            }
            other => panic!("expected a merge, got {other:?}"),
        }
    }

    #[test]
    fn a_value_that_is_not_json_makes_the_session_corrupt() {
        actix_web::rt::System::new().block_on(async {
            let backend = Arc::new(crate::MemoryBackend::new(10, 0));
            let good = SessionState::from([("n".to_owned(), r#"{"t":"u8","v":1}"#.to_owned())]);
            let mut bad = good.clone();
            bad.insert("x".to_owned(), "garbage{".to_owned());
            let ttl = Duration::from_secs(60);
            let (good_key, bad_key) = (
                backend.create(good, ttl).await.unwrap(),
                backend.create(bad, ttl).await.unwrap(),
            );
            let store = BackendStore::new(backend);
            let load = |k: String| {
                let store = store.clone();
                async move { store.load(&SessionKey::try_from(k).unwrap()).await }
            };
            assert!(matches!(
                load(bad_key).await,
                Err(LoadError::Deserialization(_))
            ));
            let state = load(good_key.clone()).await.unwrap().unwrap();
            assert_eq!(
                state.get(ID_KEY),
                Some(&good_key),
                "the ID is handed to the extractor"
            );
        });
    }

    #[test]
    fn no_marker_or_clear_all_replaces() {
        let mut state = HashMap::new();
        state.insert("a".to_owned(), "1".to_owned());
        state.insert(ID_KEY.to_owned(), "secret-id".to_owned());
        let replaced = |change: SessionChange| match change {
            SessionChange::Replace(mut s) => {
                assert!(
                    s.remove(TOUCHED_KEY).is_some(),
                    "every write records its time"
                );
                s
            }
            other => panic!("expected a replace, got {other:?}"),
        };
        let expected = SessionState::from([("a".to_owned(), "1".to_owned())]);
        assert_eq!(replaced(into_change(state.clone())), expected);
        state.insert(DIRTY_KEY.to_owned(), r#"{"all":true,"keys":[]}"#.to_owned());
        assert_eq!(replaced(into_change(state)), expected);
    }
}
