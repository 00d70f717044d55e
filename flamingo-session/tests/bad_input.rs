//! Property tests over hostile input: cookie values, stored payloads and config values never
//! cause a panic, and client input never causes a 500.

use std::{collections::HashMap, sync::Arc, time::Duration};

use actix_web::{http::StatusCode, test as atest, web, App, HttpResponse};
use flamingo_session::{
    backend::{SessionBackend, SessionId},
    config::BackendKind,
    registry::Registry,
    FileBackend, MemoryBackend, Session, SessionConfig, SessionError, SessionRepository,
    SessionState, Sessions,
};
use proptest::{prelude::*, strategy::ValueTree};

fn runtime() -> actix_web::rt::SystemRunner {
    actix_web::rt::System::new()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any stored text, under any key, loads as a typed error or a value: never a panic.
    #[test]
    fn stored_payloads_never_panic(text in ".{0,200}", json in any::<u64>().prop_map(|n| format!(r#"{{"t":"u64","v":{n}}}"#))) {
        runtime().block_on(async {
            let backend = Arc::new(MemoryBackend::new(100, 0));
            let state = SessionState::from([("k".to_owned(), text.clone()), ("n".to_owned(), json.clone())]);
            let id = backend.create(state, Duration::from_secs(60)).await.unwrap();
            let repo = SessionRepository::new(backend, Duration::from_secs(60));
            let session = repo.load(&id).await.unwrap().unwrap();
            let _ = session.load::<String>("k");
            let _ = session.load::<Vec<HashMap<String, u8>>>("k");
            let _ = session.load::<u64>("n").expect("a valid u64 envelope decodes");
            let _ = Registry::global().decode(&text);
        });
    }

    /// Any file content is a session or a `Corrupt` error: never a panic.
    #[test]
    fn file_contents_never_panic(content in proptest::collection::vec(any::<u8>(), 0..400)) {
        runtime().block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let backend = FileBackend::open(dir.path(), Default::default()).await.unwrap();
            let id = SessionId::generate();
            std::fs::write(dir.path().join(format!("session_{}.json", id.expose())), &content).unwrap();
            let _ = backend.load(&id).await;
        });
    }

    /// Any value for any key is accepted or refused with an error naming the key: never a panic.
    #[test]
    fn config_values_never_panic(key in proptest::sample::select(vec![
        "name", "saveMode", "backend", "secret", "healthcheck", "file", "fileCleanupInterval",
        "store.length", "max.age", "max.lifetime", "memory.capacity", "cookie.secure", "cookie.path",
        "cookie.sameSite", "cookie.domain", "cookie.persistent",
        "redis.url", "redis.host", "redis.username", "redis.password", "redis.idle.connections",
        "redis.database", "redis.tls", "redis.tlsCaFile", "redis.clusterMode", "redis.timeout", "redis.keyPrefix",
    ]), value in ".{0,40}") {
        let config = config::Config::builder()
            .set_override(format!("flamingo.session.{key}"), value.clone())
            .unwrap()
            .build()
            .unwrap();
        if let Err(err) = SessionConfig::from_config(&config) {
            prop_assert!(err.to_string().contains(&format!("flamingo.session.{key}")) || err.to_string().contains("flamingo.session"),
                "error for {key}={value:?} does not name the key: {err}");
        }
        if let Ok(session) = SessionConfig::from_config(&config) {
            let _ = session.redis.resolve();
        }
    }
}

#[actix_web::test]
async fn arbitrary_cookie_headers_never_cause_a_500() {
    let config = SessionConfig {
        backend: BackendKind::Memory,
        secret: "property tests use their own long secret value".into(),
        ..SessionConfig::default()
    };
    let sessions = Sessions::builder(config).build().await.unwrap();
    let app = atest::init_service(App::new().wrap(sessions.middleware()).route(
        "/",
        web::get().to(|s: Session| async move {
            let n = s.load::<u32>("n")?.unwrap_or(0) + 1;
            s.store("n", n)?;
            Ok::<_, SessionError>(HttpResponse::Ok().body(n.to_string()))
        }),
    ))
    .await;
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 2000,
        ..ProptestConfig::default()
    });
    let strategy = "[ -~]{0,300}";
    let mut tried = 0;
    for _ in 0..2000 {
        let value = strategy.new_tree(&mut runner).unwrap().current();
        let req = atest::TestRequest::get()
            .uri("/")
            .insert_header(("cookie", format!("flamingo={value}")))
            .to_request();
        let res = atest::call_service(&app, req).await;
        assert_ne!(
            res.status(),
            StatusCode::INTERNAL_SERVER_ERROR,
            "cookie {value:?} caused a 500"
        );
        if res.status() == StatusCode::OK {
            assert_eq!(
                atest::read_body(res).await,
                "1",
                "cookie {value:?} must be a fresh session"
            );
        }
        tried += 1;
    }
    assert_eq!(tried, 2000);
}
