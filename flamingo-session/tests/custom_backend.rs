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
        check_length, generate_session_key, BackendError, HealthStatus, SessionBackend,
        SessionChange, SessionState,
    },
    config::BackendKind,
    conformance, Session, SessionConfig, SessionError, Sessions, SetupError,
};

/// A deliberately simple backend: one mutex around a map.
#[derive(Default)]
struct MapBackend {
    sessions: Mutex<HashMap<String, (SessionState, Instant)>>,
    limit: usize,
}

impl MapBackend {
    fn with_limit(limit: usize) -> Self {
        MapBackend {
            limit,
            ..MapBackend::default()
        }
    }
}

#[async_trait]
impl SessionBackend for MapBackend {
    fn name(&self) -> &str {
        "map"
    }

    async fn load(&self, key: &str) -> Result<Option<SessionState>, BackendError> {
        let map = self.sessions.lock().unwrap();
        Ok(map
            .get(key)
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(s, _)| s.clone()))
    }

    async fn create(&self, state: SessionState, ttl: Duration) -> Result<String, BackendError> {
        check_length(&state, self.limit)?;
        let mut map = self.sessions.lock().unwrap();
        loop {
            let key = generate_session_key();
            if !map.contains_key(&key) {
                map.insert(key.clone(), (state, Instant::now() + ttl));
                return Ok(key);
            }
        }
    }

    async fn save(
        &self,
        key: &str,
        change: SessionChange,
        ttl: Duration,
    ) -> Result<(), BackendError> {
        let mut map = self.sessions.lock().unwrap();
        let mut state = match (&change, map.get(key)) {
            (SessionChange::Merge { .. }, Some((s, exp))) if *exp > Instant::now() => s.clone(),
            _ => SessionState::new(),
        };
        change.apply_to(&mut state);
        check_length(&state, self.limit)?;
        map.insert(key.to_owned(), (state, Instant::now() + ttl));
        Ok(())
    }

    async fn touch(&self, key: &str, ttl: Duration) -> Result<(), BackendError> {
        if let Some((_, exp)) = self.sessions.lock().unwrap().get_mut(key) {
            if *exp > Instant::now() {
                *exp = Instant::now() + ttl;
            }
        }
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.sessions.lock().unwrap().remove(key);
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
