//! An application's own backend (Flamingo's `CustomSessionBackend`): it passes the public
//! conformance suite, is chosen with `backend: custom`, can bring its own health check, and
//! `custom` without a registered backend is a clear start-up error. Also: a plain actix-session
//! store under `SessionMiddleware` with our `Session` extractor (Flamingo's "replace the
//! SessionModule").

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use actix_web::{cookie::Key, http::StatusCode, test, web, App, HttpResponse};
use async_trait::async_trait;
use flamingo_session::{
    backend::{
        check_length, BackendError, HealthStatus, SaveOutcome, SessionBackend, SessionChange,
        SessionId, SessionState,
    },
    config::BackendKind,
    conformance, Session, SessionConfig, SessionError, Sessions, SetupError,
};

/// A deliberately simple backend: one mutex around a map.
#[derive(Default)]
struct MapBackend {
    sessions: Mutex<HashMap<SessionId, (SessionState, Instant)>>,
    limit: usize,
}

impl MapBackend {
    fn with_limit(limit: usize) -> Self {
        MapBackend {
            limit,
            ..MapBackend::default()
        }
    }

    /// Runs `f` on the live session `id`, if there is one.
    fn live<T>(
        &self,
        id: &SessionId,
        f: impl FnOnce(&mut (SessionState, Instant)) -> T,
    ) -> Option<T> {
        let mut map = self.sessions.lock().unwrap();
        match map.get_mut(id) {
            Some(entry) if entry.1 > Instant::now() => Some(f(entry)),
            _ => None,
        }
    }
}

#[async_trait]
impl SessionBackend for MapBackend {
    fn name(&self) -> &str {
        "map"
    }

    async fn load(&self, id: &SessionId) -> Result<Option<SessionState>, BackendError> {
        Ok(self.live(id, |(state, _)| state.clone()))
    }

    async fn create(&self, state: SessionState, ttl: Duration) -> Result<SessionId, BackendError> {
        check_length(&state, self.limit)?;
        let mut map = self.sessions.lock().unwrap();
        loop {
            let id = SessionId::generate();
            if !map.contains_key(&id) {
                map.insert(id.clone(), (state, Instant::now() + ttl));
                return Ok(id);
            }
        }
    }

    async fn save(
        &self,
        id: &SessionId,
        change: SessionChange,
        ttl: Duration,
    ) -> Result<SaveOutcome, BackendError> {
        let limit = self.limit;
        let saved = self.live(id, |(stored, expires)| {
            let mut state = match &change {
                SessionChange::Merge { .. } => stored.clone(),
                _ => SessionState::new(),
            };
            change.apply_to(&mut state);
            check_length(&state, limit)?;
            *stored = state;
            *expires = Instant::now() + ttl;
            Ok(())
        });
        match saved {
            Some(result) => result.map(|()| SaveOutcome::Saved),
            None => Ok(SaveOutcome::Gone),
        }
    }

    async fn touch(&self, id: &SessionId, ttl: Duration) -> Result<SaveOutcome, BackendError> {
        Ok(self
            .live(id, |(_, expires)| *expires = Instant::now() + ttl)
            .map_or(SaveOutcome::Gone, |()| SaveOutcome::Saved))
    }

    async fn delete(&self, id: &SessionId) -> Result<(), BackendError> {
        self.sessions.lock().unwrap().remove(id);
        Ok(())
    }

    async fn health(&self) -> HealthStatus {
        HealthStatus::up()
    }
}

#[actix_web::test]
async fn a_custom_backend_passes_the_conformance_suite() {
    conformance::run(&MapBackend::with_limit(4096), 4096).await;
}

fn custom_config() -> SessionConfig {
    SessionConfig {
        backend: BackendKind::Custom,
        secret: "custom backend tests use a long enough secret".into(),
        ..SessionConfig::default()
    }
}

#[actix_web::test]
async fn custom_without_a_registered_backend_is_a_start_up_error() {
    let err = Sessions::builder(custom_config())
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, SetupError::MissingCustomBackend));
    let message = err.to_string();
    assert!(
        message.contains("flamingo.session.backend") && message.contains("custom_backend"),
        "{message}"
    );
}

#[actix_web::test]
async fn the_custom_backend_serves_sessions_and_its_own_health_check() {
    let sessions = Sessions::builder(custom_config())
        .custom_backend(MapBackend::with_limit(0))
        .custom_health(|| async { HealthStatus::down("map is read-only today") })
        .health_check("search", || async { HealthStatus::up() })
        .build()
        .await
        .unwrap();
    assert_eq!(sessions.backend().name(), "map");
    let app = test::init_service(
        App::new()
            .configure(sessions.configure())
            .wrap(sessions.middleware())
            .route(
                "/n",
                web::get().to(|s: Session| async move {
                    let n = s.load::<u32>("n")?.unwrap_or(0) + 1;
                    s.store("n", n)?;
                    Ok::<_, SessionError>(HttpResponse::Ok().body(n.to_string()))
                }),
            ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/n").to_request()).await;
    let cookie = res.response().cookies().next().unwrap().into_owned();
    let req = test::TestRequest::get()
        .uri("/n")
        .cookie(cookie)
        .to_request();
    assert_eq!(test::call_and_read_body(&app, req).await, "2");

    let req = test::TestRequest::get()
        .uri("/status/healthcheck")
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(
        res.status(),
        StatusCode::INTERNAL_SERVER_ERROR,
        "one check is down"
    );
    let body: serde_json::Value = test::read_body_json(res).await;
    assert_eq!(
        body,
        serde_json::json!({"services": [
            {"name": "session", "alive": false, "details": "map is read-only today"},
            {"name": "search", "alive": true, "details": "success"},
        ]})
    );
}

#[actix_web::test]
async fn any_actix_session_store_works_with_our_extractor() {
    // Flamingo's "replace the SessionModule": actix-session's own cookie store, our extractor.
    let store = actix_session::storage::CookieSessionStore::default();
    let app = test::init_service(
        App::new()
            .wrap(actix_session::SessionMiddleware::new(
                store,
                Key::generate(),
            ))
            .route(
                "/n",
                web::get().to(|s: Session| async move {
                    let n = s.load::<u32>("n")?.unwrap_or(0) + 1;
                    s.store("n", n)?;
                    Ok::<_, SessionError>(HttpResponse::Ok().body(n.to_string()))
                }),
            ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/n").to_request()).await;
    let cookie = res.response().cookies().next().unwrap().into_owned();
    let req = test::TestRequest::get()
        .uri("/n")
        .cookie(cookie)
        .to_request();
    assert_eq!(test::call_and_read_body(&app, req).await, "2");
}
