//! The request path on every backend: a request in flight across a logout or a renew never brings
//! the old session back (memory, file, Redis, Redis Cluster, in all three save modes); a route
//! that never extracts the session does no store I/O and works while Redis is down; the health
//! check answers its JSON then; actix-session adapted both ways.

mod support;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use actix_web::{
    body::MessageBody, cookie::Cookie, dev::ServiceResponse, http::StatusCode, test, web, App,
    HttpResponse,
};
use async_trait::async_trait;
use flamingo_session::{
    backend::{
        BackendError, HealthStatus, SaveOutcome, SessionBackend, SessionChange, SessionId,
        SessionState,
    },
    config::BackendKind,
    MemoryBackend, SaveMode, Session, SessionConfig, SessionDirectory, SessionError, SessionOwner,
    Sessions,
};
use support::redis::{RedisCluster, RedisServer};
use tokio::sync::Notify;

const SECRET: &str = "request path tests use a secret that is long enough";
const MODES: [SaveMode; 3] = [SaveMode::Always, SaveMode::OnWrite, SaveMode::OnRead];

fn base_config(mode: SaveMode) -> SessionConfig {
    SessionConfig {
        save_mode: mode,
        secret: SECRET.into(),
        ..SessionConfig::default()
    }
}

fn session_cookie<B>(res: &ServiceResponse<B>) -> Option<Cookie<'static>> {
    res.response()
        .cookies()
        .find(|c| c.name() == "flamingo")
        .map(|c| c.into_owned())
}

/// Logs in (stores `user`), then starts a request that has loaded the session and holds it
/// (as a slow request body would), ends the session with `end` (`/logout` purges, `/login`
/// renews), lets the held request write, and checks that the old ID stays dead.
async fn race_across(sessions: &Sessions, end: &str) {
    let gate = Arc::new(Notify::new());
    let loaded = Arc::new(Notify::new());
    let app = test::init_service(
        App::new()
            .wrap(sessions.middleware())
            .app_data(web::Data::from(gate.clone()))
            .app_data(web::Data::new(loaded.clone()))
            .route(
                "/login",
                web::post().to(|s: Session| async move {
                    s.renew();
                    s.store("user", "alice".to_owned())?;
                    Ok::<_, SessionError>(HttpResponse::Ok().finish())
                }),
            )
            .route(
                "/logout",
                web::post().to(|s: Session| async move {
                    s.purge();
                    HttpResponse::Ok().finish()
                }),
            )
            .route(
                "/me",
                web::get().to(|s: Session| async move {
                    Ok::<_, SessionError>(HttpResponse::Ok().json(s.load::<String>("user")?))
                }),
            )
            .route(
                "/kv/late",
                web::put().to(
                    |s: Session, gate: web::Data<Notify>, loaded: web::Data<Arc<Notify>>| async move {
                        let _ = s.load::<String>("user");
                        loaded.notify_one();
                        gate.notified().await;
                        s.store("late", 1u8)?;
                        s.store("user", "mallory".to_owned())?;
                        Ok::<_, SessionError>(HttpResponse::Ok().finish())
                    },
                ),
            ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::post().uri("/login").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let stolen = session_cookie(&res).expect("login sets the cookie");
    let me = |cookie: &Cookie<'static>| {
        test::TestRequest::get()
            .uri("/me")
            .cookie(cookie.clone())
            .to_request()
    };
    let body = test::read_body(test::call_service(&app, me(&stolen)).await).await;
    assert_eq!(body, "\"alice\"");

    let late = test::call_service(
        &app,
        test::TestRequest::put()
            .uri("/kv/late")
            .cookie(stolen.clone())
            .to_request(),
    );
    let victim = async {
        loaded.notified().await;
        let res = test::call_service(
            &app,
            test::TestRequest::post()
                .uri(end)
                .cookie(stolen.clone())
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        let after = session_cookie(&res);
        let body = test::read_body(test::call_service(&app, me(&stolen)).await).await;
        assert_eq!(body, "null", "{end}: the old cookie is logged out");
        gate.notify_one();
        after
    };
    let (late, after) = futures_util::future::join(late, victim).await;
    assert_eq!(late.status(), StatusCode::OK);
    assert!(
        session_cookie(&late).is_none(),
        "{end}: no cookie is sent for the dead session"
    );
    let body = test::read_body(test::call_service(&app, me(&stolen)).await).await;
    assert_eq!(
        body, "null",
        "{end}: the request in flight must not bring the old session back"
    );
    let old_id: SessionId = stolen.value().split('.').next().unwrap().parse().unwrap();
    assert_eq!(
        sessions.backend().load(&old_id).await.unwrap(),
        None,
        "{end}: the old ID names no session in the store"
    );
    if end == "/login" {
        let renewed = after.expect("renew sets a new cookie");
        let body = test::read_body(test::call_service(&app, me(&renewed)).await).await;
        assert_eq!(body, "\"alice\"", "the renewed session keeps its data");
    }
}

async fn race_on_every_mode(config: impl Fn(SaveMode) -> SessionConfig) {
    for mode in MODES {
        for end in ["/logout", "/login"] {
            let sessions = Sessions::builder(config(mode)).build().await.unwrap();
            race_across(&sessions, end).await;
        }
    }
}

#[actix_web::test]
async fn a_request_in_flight_across_a_logout_leaves_the_session_dead_on_memory() {
    race_on_every_mode(base_config).await;
}

/// The logout race on a file backend in `folder`, without `fsync`.
async fn race_on_file(folder: &std::path::Path) {
    race_on_every_mode(|mode| SessionConfig {
        backend: BackendKind::File,
        file: folder.to_path_buf(),
        file_sync: false,
        ..base_config(mode)
    })
    .await;
}

#[actix_web::test]
async fn a_request_in_flight_across_a_logout_leaves_the_session_dead_on_file() {
    let folder = tempfile::tempdir().unwrap();
    race_on_file(folder.path()).await;
}

/// The same on tmpfs, where the file backend does its I/O on the worker thread.
#[cfg(target_os = "linux")]
#[actix_web::test]
async fn a_request_in_flight_across_a_logout_leaves_the_session_dead_on_file_in_memory() {
    let folder = tempfile::tempdir_in("/dev/shm")
        .expect("a folder in /dev/shm, the tmpfs Linux mounts there");
    race_on_file(folder.path()).await;
}

#[actix_web::test]
async fn a_request_in_flight_across_a_logout_leaves_the_session_dead_on_redis() {
    let server = RedisServer::standalone();
    race_on_every_mode(|mode| {
        let mut config = base_config(mode);
        config.backend = BackendKind::Redis;
        config.redis.host = server.host();
        config
    })
    .await;
}

#[actix_web::test]
async fn a_request_in_flight_across_a_logout_leaves_the_session_dead_on_a_cluster() {
    let cluster = RedisCluster::start(3);
    race_on_every_mode(|mode| {
        let mut config = base_config(mode);
        config.backend = BackendKind::Redis;
        config.redis.cluster_mode = true;
        config.redis.host = cluster.hosts().join(",");
        config
    })
    .await;
}

fn alice() -> SessionOwner {
    SessionOwner::new("test\u{1f}alice").unwrap()
}

/// An app with a login that files the session under alice, her session list, "log out
/// everywhere", and a slow write that holds a loaded session until `gate` opens.
macro_rules! everywhere_app {
    ($sessions:expr, $gate:expr, $loaded:expr) => {
        test::init_service(
            App::new()
                .wrap($sessions.middleware())
                .app_data(web::Data::from($gate))
                .app_data(web::Data::new($loaded))
                .route(
                    "/login",
                    web::post().to(|s: Session| async move {
                        s.renew_for(alice());
                        s.store("user", "alice".to_owned())?;
                        Ok::<_, SessionError>(HttpResponse::Ok().finish())
                    }),
                )
                .route(
                    "/me",
                    web::get().to(|s: Session| async move {
                        Ok::<_, SessionError>(HttpResponse::Ok().json(s.load::<String>("user")?))
                    }),
                )
                .route(
                    "/sessions",
                    web::get().to(|s: Session, directory: SessionDirectory| async move {
                        let current = s.id();
                        let listed = directory.list(&alice()).await?;
                        let flags: Vec<bool> = listed.iter().map(|l| Some(&l.id) == current.as_ref()).collect();
                        Ok::<_, actix_web::Error>(HttpResponse::Ok().json(flags))
                    }),
                )
                .route(
                    "/sessions",
                    web::delete().to(|directory: SessionDirectory| async move {
                        let ended = directory.end_all(&alice()).await?;
                        Ok::<_, actix_web::Error>(HttpResponse::Ok().json(ended))
                    }),
                )
                .route(
                    "/kv/late",
                    web::put().to(
                        |s: Session, gate: web::Data<Notify>, loaded: web::Data<Arc<Notify>>| async move {
                            let _ = s.load::<String>("user");
                            loaded.notify_one();
                            gate.notified().await;
                            s.store("user", "mallory".to_owned())?;
                            Ok::<_, SessionError>(HttpResponse::Ok().finish())
                        },
                    ),
                ),
        )
        .await
    };
}

/// Alice logs in on two instances (two `Sessions` on one store), lists her sessions from each,
/// and logs out everywhere from the second while a request of the first is in flight: both
/// sessions end, on both instances, and the late write does not bring the first back.
async fn logout_everywhere(one: &Sessions, two: &Sessions) {
    let gate = Arc::new(Notify::new());
    let loaded = Arc::new(Notify::new());
    let a = everywhere_app!(one, gate.clone(), loaded.clone());
    let b = everywhere_app!(two, gate.clone(), loaded.clone());
    let login = || test::TestRequest::post().uri("/login").to_request();
    let laptop = session_cookie(&test::call_service(&a, login()).await).expect("a cookie");
    let phone = session_cookie(&test::call_service(&b, login()).await).expect("a cookie");
    let get = |uri: &str, cookie: &Cookie<'static>| {
        test::TestRequest::get()
            .uri(uri)
            .cookie(cookie.clone())
            .to_request()
    };
    let flags: Vec<bool> =
        test::read_body_json(test::call_service(&a, get("/sessions", &laptop)).await).await;
    assert_eq!(flags.len(), 2, "both of alice's sessions are listed");
    assert_eq!(
        flags.iter().filter(|f| **f).count(),
        1,
        "one of them is the current one"
    );
    let flags: Vec<bool> =
        test::read_body_json(test::call_service(&b, get("/sessions", &phone)).await).await;
    assert_eq!(flags.len(), 2, "the other instance lists the same two");

    let late = test::call_service(
        &a,
        test::TestRequest::put()
            .uri("/kv/late")
            .cookie(laptop.clone())
            .to_request(),
    );
    let everywhere = async {
        loaded.notified().await;
        let res = test::call_service(
            &b,
            test::TestRequest::delete()
                .uri("/sessions")
                .cookie(phone.clone())
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        let ended: usize = test::read_body_json(res).await;
        assert_eq!(ended, 2, "both sessions end");
        gate.notify_one();
    };
    let (late, ()) = futures_util::future::join(late, everywhere).await;
    assert_eq!(late.status(), StatusCode::OK);
    for (app, cookie) in [(&a, &laptop), (&b, &phone), (&b, &laptop), (&a, &phone)] {
        let body = test::read_body(test::call_service(app, get("/me", cookie)).await).await;
        assert_eq!(
            body, "null",
            "every session of alice is logged out on every instance"
        );
    }
    let flags: Vec<bool> =
        test::read_body_json(test::call_service(&a, get("/sessions", &laptop)).await).await;
    assert!(flags.is_empty(), "nothing is left to list");
}

#[actix_web::test]
async fn logout_everywhere_ends_every_session_on_memory() {
    let sessions = Sessions::builder(base_config(SaveMode::OnWrite))
        .build()
        .await
        .unwrap();
    logout_everywhere(&sessions, &sessions).await;
}

#[actix_web::test]
async fn logout_everywhere_ends_every_session_across_instances_on_file() {
    let folder = tempfile::tempdir().unwrap();
    for mode in MODES {
        let config = SessionConfig {
            backend: BackendKind::File,
            file: folder.path().to_path_buf(),
            file_sync: false,
            ..base_config(mode)
        };
        let one = Sessions::builder(config.clone()).build().await.unwrap();
        let two = Sessions::builder(config).build().await.unwrap();
        logout_everywhere(&one, &two).await;
    }
}

#[actix_web::test]
async fn logout_everywhere_ends_every_session_across_instances_on_redis_and_a_cluster() {
    let server = RedisServer::standalone();
    let cluster = RedisCluster::start(3);
    for (host, cluster_mode) in [(server.host(), false), (cluster.hosts().join(","), true)] {
        for mode in MODES {
            let mut config = base_config(mode);
            config.backend = BackendKind::Redis;
            config.redis.host = host.clone();
            config.redis.cluster_mode = cluster_mode;
            let one = Sessions::builder(config.clone()).build().await.unwrap();
            let two = Sessions::builder(config).build().await.unwrap();
            logout_everywhere(&one, &two).await;
        }
    }
}

/// Counts every call a backend gets.
struct Counting {
    inner: MemoryBackend,
    calls: AtomicUsize,
}

#[async_trait]
impl SessionBackend for Counting {
    fn name(&self) -> &str {
        "counting"
    }
    async fn load(&self, id: &SessionId) -> Result<Option<SessionState>, BackendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.load(id).await
    }
    async fn create(&self, state: SessionState, ttl: Duration) -> Result<SessionId, BackendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.create(state, ttl).await
    }
    async fn save(
        &self,
        id: &SessionId,
        change: SessionChange,
        ttl: Duration,
    ) -> Result<SaveOutcome, BackendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.save(id, change, ttl).await
    }
    async fn touch(&self, id: &SessionId, ttl: Duration) -> Result<SaveOutcome, BackendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.touch(id, ttl).await
    }
    async fn delete(&self, id: &SessionId) -> Result<(), BackendError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(id).await
    }
    async fn health(&self) -> HealthStatus {
        HealthStatus::up()
    }
}

fn counter_app(
    sessions: &Sessions,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .configure(sessions.configure())
        .wrap(sessions.middleware())
        .route(
            "/counter",
            web::get().to(|s: Session| async move {
                let n = s.load::<u64>("n")?.unwrap_or(0) + 1;
                s.store("n", n)?;
                Ok::<_, SessionError>(HttpResponse::Ok().body(n.to_string()))
            }),
        )
        .route(
            "/plain",
            web::get().to(|| async { HttpResponse::Ok().body("plain") }),
        )
        .route(
            "/peek",
            web::get().to(|s: Session| async move {
                Ok::<_, SessionError>(HttpResponse::Ok().json(s.load::<u64>("n")?))
            }),
        )
}

#[actix_web::test]
async fn a_route_that_never_extracts_the_session_does_no_store_io_and_sets_no_cookie() {
    let backend = Arc::new(Counting {
        inner: MemoryBackend::new(100, 0),
        calls: AtomicUsize::new(0),
    });
    let sessions = Sessions::builder(SessionConfig {
        backend: BackendKind::Custom,
        ..base_config(SaveMode::OnWrite)
    })
    .custom_backend_arc(backend.clone())
    .build()
    .await
    .unwrap();
    let app = test::init_service(counter_app(&sessions)).await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/counter").to_request()).await;
    let cookie = session_cookie(&res).expect("a new session sets its cookie");
    let before = backend.calls.load(Ordering::SeqCst);
    for _ in 0..5 {
        let res = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/plain")
                .cookie(cookie.clone())
                .to_request(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(session_cookie(&res).is_none(), "no cookie from /plain");
    }
    assert_eq!(
        backend.calls.load(Ordering::SeqCst),
        before,
        "a route that never extracts the session never calls the store"
    );
    // A read-only request within the touch interval: one load, no write, no cookie.
    let res = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/peek")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(test::read_body(res).await, "1");
    assert_eq!(backend.calls.load(Ordering::SeqCst), before + 1);
    // Two extractions in one request load once.
    let app2 = test::init_service(App::new().wrap(sessions.middleware()).route(
        "/twice",
        web::get().to(|a: Session, b: Session| async move {
            a.store("x", 1u8)?;
            Ok::<_, SessionError>(HttpResponse::Ok().json(b.load::<u8>("x")?))
        }),
    ))
    .await;
    let before = backend.calls.load(Ordering::SeqCst);
    let res = test::call_service(
        &app2,
        test::TestRequest::get()
            .uri("/twice")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    assert_eq!(
        test::read_body(res).await,
        "1",
        "both extractors share one state"
    );
    assert_eq!(
        backend.calls.load(Ordering::SeqCst),
        before + 2,
        "one load and one save"
    );
}

#[actix_web::test]
async fn with_redis_stopped_plain_routes_work_and_the_health_check_answers_json() {
    let mut server = RedisServer::standalone();
    let mut config = base_config(SaveMode::OnWrite);
    config.backend = BackendKind::Redis;
    config.redis.host = server.host();
    config.redis.timeout = Duration::from_millis(500);
    let sessions = Sessions::builder(config).build().await.unwrap();
    let app = test::init_service(counter_app(&sessions)).await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/counter").to_request()).await;
    let cookie = session_cookie(&res).unwrap();
    server.stop();
    let get = |uri: &str| {
        test::TestRequest::get()
            .uri(uri)
            .cookie(cookie.clone())
            .to_request()
    };
    let res = test::call_service(&app, get("/plain")).await;
    assert_eq!(res.status(), StatusCode::OK, "the store is not needed here");
    let res = test::call_service(&app, get("/status/healthcheck")).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let health: serde_json::Value = serde_json::from_slice(&test::read_body(res).await).unwrap();
    assert_eq!(health["services"][0]["name"], "session");
    assert_eq!(health["services"][0]["alive"], false);
    let res = test::call_service(&app, get("/counter")).await;
    assert_eq!(
        res.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "a route that needs the session says the store is unavailable"
    );
}

#[actix_web::test]
async fn a_session_over_store_length_is_a_413_naming_the_key() {
    let sessions = Sessions::builder(SessionConfig {
        store_length: 2048,
        ..base_config(SaveMode::OnWrite)
    })
    .build()
    .await
    .unwrap();
    let app = test::init_service(App::new().wrap(sessions.middleware()).route(
        "/big",
        web::post().to(|s: Session| async move {
            s.store("cart", "x".repeat(4096))?;
            Ok::<_, SessionError>(HttpResponse::Ok().finish())
        }),
    ))
    .await;
    let err = test::try_call_service(&app, test::TestRequest::post().uri("/big").to_request())
        .await
        .expect_err("the middleware answers the failure itself");
    let res = err.error_response();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(res.cookies().next().is_none());
    let body = String::from_utf8(
        actix_web::body::to_bytes(res.into_body())
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(
        body.contains("\"cart\"") && body.contains("flamingo.session.store.length"),
        "{body}"
    );
}

#[actix_web::test]
async fn max_lifetime_ends_an_active_session_and_persistent_false_sends_a_browser_cookie() {
    let mut config = base_config(SaveMode::OnWrite);
    config.max_lifetime = Duration::from_secs(2);
    config.max_age = Duration::from_secs(10);
    config.cookie.persistent = false;
    config.cookie.domain = Some("example.com".into());
    let sessions = Sessions::builder(config).build().await.unwrap();
    let app = test::init_service(counter_app(&sessions)).await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/counter").to_request()).await;
    let cookie = session_cookie(&res).unwrap();
    assert_eq!(cookie.max_age(), None, "a browser-session cookie");
    assert_eq!(cookie.expires(), None);
    assert_eq!(cookie.domain(), Some("example.com"));
    let count = |cookie: &Cookie<'static>| {
        test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/counter")
                .cookie(cookie.clone())
                .to_request(),
        )
    };
    assert_eq!(test::read_body(count(&cookie).await).await, "2");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let res = count(&cookie).await;
    assert!(
        session_cookie(&res).is_some(),
        "past max.lifetime a new session starts"
    );
    assert_eq!(
        test::read_body(res).await,
        "1",
        "however active the old session was, it ended"
    );
}

/// actix-session's own middleware over our backend, with actix-identity and our extractor in
/// one request: no write is lost, whichever API made it.
#[actix_web::test]
async fn under_actix_sessions_middleware_identity_and_our_writes_both_persist() {
    use actix_identity::{Identity, IdentityExt as _, IdentityMiddleware};
    use actix_web::{HttpMessage as _, HttpRequest};

    let backend: Arc<dyn SessionBackend> = Arc::new(MemoryBackend::new(100, 0));
    let store = flamingo_session::BackendStore::new(backend.clone());
    let app = test::init_service(
        App::new()
            .wrap(IdentityMiddleware::default())
            .wrap(
                actix_session::SessionMiddleware::builder(
                    store,
                    actix_web::cookie::Key::generate(),
                )
                .cookie_secure(false)
                .build(),
            )
            .route(
                "/login",
                web::post().to(|req: HttpRequest, s: Session| async move {
                    Identity::login(&req.extensions(), "alice".into()).unwrap();
                    s.store("cart", vec!["tea".to_owned()])?;
                    Ok::<_, SessionError>(HttpResponse::Ok().finish())
                }),
            )
            .route(
                "/whoami",
                web::get().to(|req: HttpRequest, s: Session| async move {
                    let user = req.get_identity().ok().and_then(|i| i.id().ok());
                    let cart = s.load::<Vec<String>>("cart")?;
                    Ok::<_, SessionError>(HttpResponse::Ok().json((user, cart)))
                }),
            ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::post().uri("/login").to_request()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res
        .response()
        .cookies()
        .next()
        .expect("actix-session sets its cookie")
        .into_owned();
    let res = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/whoami")
            .cookie(cookie)
            .to_request(),
    )
    .await;
    let body: serde_json::Value = serde_json::from_slice(&test::read_body(res).await).unwrap();
    assert_eq!(body, serde_json::json!(["alice", ["tea"]]));
}

/// actix-session's Redis store as a backend of ours passes the conformance suite, and serves
/// our middleware.
#[actix_web::test]
async fn actix_sessions_redis_store_is_a_backend_of_ours() {
    use flamingo_session::middleware::compat::ActixStoreBackend;

    let server = RedisServer::standalone();
    let url = format!("redis://{}", server.host());
    let backend = Arc::new(
        ActixStoreBackend::start("actix-redis", 4096, move || {
            actix_session::storage::RedisSessionStore::new(url)
        })
        .await
        .expect("actix-session's Redis store connects"),
    );
    flamingo_session::conformance::run(backend.as_ref(), 4096).await;

    let sessions = Sessions::builder(SessionConfig {
        backend: BackendKind::Custom,
        ..base_config(SaveMode::OnWrite)
    })
    .custom_backend_arc(backend)
    .build()
    .await
    .unwrap();
    let app = test::init_service(counter_app(&sessions)).await;
    let res = test::call_service(&app, test::TestRequest::get().uri("/counter").to_request()).await;
    let cookie = session_cookie(&res).unwrap();
    let res = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/counter")
            .cookie(cookie)
            .to_request(),
    )
    .await;
    assert_eq!(test::read_body(res).await, "2");
}
