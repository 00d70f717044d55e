//! One server for every benchmarked configuration, with one worker thread.
//!
//! ```text
//! bench-server --config NAME --addr 127.0.0.1:PORT [--redis 127.0.0.1:P] [--cluster h:p,h:p,h:p]
//!              [--dir FOLDER] [--save-mode always|onwrite|onread] [--idp http://127.0.0.1:P]
//!              [--set flamingo.session.KEY=VALUE]...
//! ```
//!
//! With `--idp`, the flamingo configurations also mount flamingo-auth with one `oidc` broker
//! (`idp`) whose OpenID Provider is the driver's counting fake at that address, and serve
//! `GET /seed-user` (stores a login) and `GET /user` (the `User` extractor).
//!
//! NAME is one of `flamingo_bench::CONFIGS` (`bare`, `as-cookie`, `as-redis-pool`, `as-redis-conn`,
//! `fl-memory`, `fl-file`, `fl-file-tmpfs`, `fl-redis`, `fl-redis-cluster`, `ts-memory`,
//! `ts-redis`). The routes and their handler logic are the same in all of them (see the crate
//! docs of `flamingo_bench`).

use std::{cell::Cell, net::SocketAddr, time::Instant};

use actix_web::{cookie::Key, web, App, HttpResponse, HttpServer};
use flamingo_bench::Cart;
use futures_util::{stream, StreamExt as _};
use serde::Deserialize;
use serde_json::json;

const SECRET: &str = "benchmark secret: long enough, never used outside this harness";

#[derive(Debug, Default)]
struct Args {
    config: String,
    addr: Option<SocketAddr>,
    redis: Option<String>,
    cluster: Option<String>,
    dir: Option<String>,
    save_mode: Option<String>,
    idp: Option<String>,
    overrides: Vec<(String, String)>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--config" => args.config = value("--config")?,
            "--addr" => {
                let text = value("--addr")?;
                args.addr = Some(text.parse().map_err(|e| format!("--addr {text:?}: {e}"))?);
            }
            "--redis" => args.redis = Some(value("--redis")?),
            "--cluster" => args.cluster = Some(value("--cluster")?),
            "--dir" => args.dir = Some(value("--dir")?),
            "--save-mode" => args.save_mode = Some(value("--save-mode")?),
            "--idp" => args.idp = Some(value("--idp")?),
            "--set" => {
                let text = value("--set")?;
                let (key, v) = text.split_once('=').ok_or(format!(
                    "--set {text:?}: expected flamingo.session.KEY=VALUE"
                ))?;
                args.overrides.push((key.to_owned(), v.to_owned()));
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if flamingo_bench::config(&args.config).is_none() {
        let names: Vec<_> = flamingo_bench::CONFIGS.iter().map(|c| c.name).collect();
        return Err(format!("--config must be one of {names:?}"));
    }
    if args.addr.is_none() {
        return Err("--addr HOST:PORT is required".into());
    }
    Ok(args)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args()?;
    if args.config.starts_with("ts-") {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(axum_server::run(args))
    } else {
        actix_web::rt::System::new().block_on(actix_server(args))
    }
}

fn redis_url(args: &Args) -> Result<String, String> {
    args.redis
        .as_ref()
        .map(|hp| format!("redis://{hp}"))
        .ok_or_else(|| format!("--config {} needs --redis HOST:PORT", args.config))
}

async fn actix_server(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let addr = args.addr.expect("checked");
    let key = Key::derive_from(&[7u8; 64]);
    match args.config.as_str() {
        "bare" => {
            HttpServer::new(|| {
                App::new()
                    .route("/counter", web::get().to(bare::counter))
                    .route("/cart", web::get().to(bare::cart))
                    .route("/plain", web::get().to(plain))
                    .route("/seed", web::get().to(plain))
            })
            .workers(1)
            .bind(addr)?
            .run()
            .await?
        }
        "as-cookie" => {
            serve_actix_session(
                addr,
                key,
                actix_session::storage::CookieSessionStore::default,
            )
            .await?
        }
        "as-redis-pool" => {
            let pool = deadpool_redis::Config::from_url(redis_url(&args)?)
                .create_pool(Some(deadpool_redis::Runtime::Tokio1))?;
            let store = actix_session::storage::RedisSessionStore::new_pooled(pool)
                .await
                .map_err(|e| format!("actix-session redis (pooled): {e}"))?;
            serve_actix_session(addr, key, move || store.clone()).await?
        }
        "as-redis-conn" => {
            let store = actix_session::storage::RedisSessionStore::new(redis_url(&args)?)
                .await
                .map_err(|e| format!("actix-session redis: {e}"))?;
            serve_actix_session(addr, key, move || store.clone()).await?
        }
        _ => flamingo::run(args).await?,
    }
    Ok(())
}

async fn serve_actix_session<S, F>(addr: SocketAddr, key: Key, store: F) -> std::io::Result<()>
where
    S: actix_session::storage::SessionStore + 'static,
    F: Fn() -> S + Clone + Send + 'static,
{
    HttpServer::new(move || {
        App::new()
            .wrap(
                actix_session::SessionMiddleware::builder(store(), key.clone())
                    .cookie_secure(false)
                    .build(),
            )
            .route("/counter", web::get().to(actix_session_handlers::counter))
            .route("/cart", web::get().to(actix_session_handlers::cart))
            .route("/plain", web::get().to(plain))
            .route("/seed", web::get().to(actix_session_handlers::seed))
    })
    .workers(1)
    .bind(addr)?
    .run()
    .await
}

async fn plain() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "ok": true }))
}

fn internal(err: impl std::fmt::Display) -> actix_web::Error {
    actix_web::error::ErrorInternalServerError(err.to_string())
}

/// The baseline: the same answers without any session.
mod bare {
    use super::*;

    thread_local! {
        static COUNT: Cell<u64> = const { Cell::new(0) };
    }

    pub(crate) async fn counter() -> HttpResponse {
        let count = COUNT.with(|c| {
            c.set(c.get() + 1);
            c.get()
        });
        HttpResponse::Ok().json(json!({ "count": count }))
    }

    pub(crate) async fn cart() -> HttpResponse {
        HttpResponse::Ok().json(Cart::seeded())
    }
}

/// Plain actix-session (`actix_session::Session`), as its users write it.
mod actix_session_handlers {
    use super::*;
    use actix_session::Session;

    pub(crate) async fn counter(session: Session) -> actix_web::Result<HttpResponse> {
        let count = session.get::<u64>("count").map_err(internal)?.unwrap_or(0) + 1;
        session.insert("count", count).map_err(internal)?;
        Ok(HttpResponse::Ok().json(json!({ "count": count })))
    }

    pub(crate) async fn cart(session: Session) -> actix_web::Result<HttpResponse> {
        let cart = session
            .get::<Cart>("cart")
            .map_err(internal)?
            .unwrap_or_default();
        Ok(HttpResponse::Ok().json(cart))
    }

    pub(crate) async fn seed(session: Session) -> actix_web::Result<HttpResponse> {
        session.insert("cart", Cart::seeded()).map_err(internal)?;
        session.insert("count", 0u64).map_err(internal)?;
        Ok(HttpResponse::Ok().json(json!({ "seeded": true })))
    }
}

/// Ours: `Sessions::from_config` + `.wrap(sessions.middleware())`, as in examples/demo.rs.
mod flamingo {
    use super::*;
    use flamingo_auth::{
        session_data::{oidc_session_key, OidcSessionData},
        Auth, User,
    };
    use flamingo_session::{
        config::BackendKind, RedisBackend, Session, SessionConfig, SessionError, SessionState,
        SessionValue as _, Sessions, SetupError,
    };

    fn settings(args: &Args) -> Result<config::Config, Box<dyn std::error::Error>> {
        let mut builder = config::Config::builder();
        if let Some(idp) = &args.idp {
            let yaml = format!(
                "core.auth.web.broker:\n  - broker: idp\n    typ: oidc\n    clientID: bench\n    \
                 clientSecret: bench-secret\n    endpoint: {idp}\n    scopes: [profile, email]\n    \
                 claims:\n      idToken: {{ name: name, email: email }}\n"
            );
            builder = builder.add_source(config::File::from_str(&yaml, config::FileFormat::Yaml));
        }
        let mut builder = builder
            .set_override("flamingo.session.secret", SECRET)?
            .set_override("flamingo.session.cookie.secure", false)?;
        if let Some(mode) = &args.save_mode {
            builder = builder.set_override("flamingo.session.saveMode", mode.as_str())?;
        }
        builder = match args.config.as_str() {
            "fl-memory" => builder.set_override("flamingo.session.backend", "memory")?,
            "fl-file" | "fl-file-tmpfs" => {
                let dir = args
                    .dir
                    .as_deref()
                    .ok_or("--config fl-file needs --dir FOLDER")?;
                // On disk every write is flushed (the default); tmpfs has nothing to flush to,
                // so the tmpfs run measures the backend with `fileSync: false`.
                builder
                    .set_override("flamingo.session.backend", "file")?
                    .set_override("flamingo.session.file", dir)?
                    .set_override(
                        "flamingo.session.fileSync",
                        args.config.as_str() != "fl-file-tmpfs",
                    )?
            }
            "fl-redis" => {
                let host = args.redis.as_deref().ok_or("fl-redis needs --redis")?;
                builder
                    .set_override("flamingo.session.backend", "redis")?
                    .set_override("flamingo.session.redis.host", host)?
            }
            "fl-redis-cluster" => {
                let hosts = args.cluster.as_deref().ok_or("needs --cluster h:p,...")?;
                builder
                    .set_override("flamingo.session.backend", "redis")?
                    .set_override("flamingo.session.redis.host", hosts)?
                    .set_override("flamingo.session.redis.clusterMode", true)?
            }
            other => return Err(format!("unknown config {other}").into()),
        };
        for (key, value) in &args.overrides {
            builder = builder.set_override(key.as_str(), value.as_str())?;
        }
        Ok(builder.build()?)
    }

    /// `Sessions::from_config`, as an application does. While setup.rs cannot open the Redis
    /// backend itself yet (`SetupError::NotBuilt`), the same `RedisBackend::connect` is
    /// registered as the custom backend: the request path is the same.
    async fn open(settings: &config::Config) -> Result<Sessions, Box<dyn std::error::Error>> {
        match Sessions::from_config(settings).await {
            Err(SetupError::NotBuilt { backend: "redis" }) => {
                let mut config = SessionConfig::from_config(settings)?;
                let backend = RedisBackend::connect(&config.redis, config.store_length).await?;
                config.backend = BackendKind::Custom;
                Ok(Sessions::builder(config)
                    .custom_backend(backend)
                    .build()
                    .await?)
            }
            other => Ok(other?),
        }
    }

    pub(crate) async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
        let settings = settings(&args)?;
        let sessions = open(&settings).await?;
        let auth = match &args.idp {
            Some(_) => Some(Auth::from_config(&settings, &sessions).await?),
            None => None,
        };
        let addr = args.addr.expect("checked");
        HttpServer::new(move || {
            let auth = auth.clone();
            App::new()
                .app_data(web::Data::new(sessions.clone()))
                .wrap(sessions.middleware())
                .route("/counter", web::get().to(counter))
                .route("/cart", web::get().to(cart))
                .route("/plain", web::get().to(plain))
                .route("/seed", web::get().to(seed))
                .route("/populate", web::post().to(populate))
                // After the measured routes, so that actix's router (which tries routes in the
                // order they were added) reaches them as soon as in the other configurations;
                // registered first, the auth routes cost every request some microseconds.
                .configure(move |cfg| {
                    if let Some(auth) = &auth {
                        auth.configure(cfg);
                        cfg.route("/user", web::get().to(user))
                            .route("/seed-user", web::get().to(seed_user));
                    }
                })
        })
        .workers(1)
        .bind(addr)?
        .run()
        .await?;
        Ok(())
    }

    async fn counter(session: Session) -> Result<HttpResponse, SessionError> {
        let count = session.load::<u64>("count")?.unwrap_or(0) + 1;
        session.store("count", count)?;
        Ok(HttpResponse::Ok().json(json!({ "count": count })))
    }

    async fn cart(session: Session) -> Result<HttpResponse, SessionError> {
        Ok(HttpResponse::Ok().json(session.load::<Cart>("cart")?.unwrap_or_default()))
    }

    async fn seed(session: Session) -> Result<HttpResponse, SessionError> {
        session.store("cart", Cart::seeded())?;
        session.store("count", 0u64)?;
        Ok(HttpResponse::Ok().json(json!({ "seeded": true })))
    }

    /// The logged-in workload: flamingo-auth's `User` extractor.
    async fn user(user: User) -> HttpResponse {
        HttpResponse::Ok().json(json!({ "loggedIn": user.is_logged_in(), "name": user.name }))
    }

    /// Stores what a completed OpenID Connect login at broker `idp` leaves in the session:
    /// tokens valid for a day, so no request needs the provider.
    async fn seed_user(session: Session) -> Result<HttpResponse, SessionError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let claims =
            json!({ "sub": "bench-user", "name": "Bench User", "email": "bench@example.com" });
        let data = OidcSessionData {
            subject: "bench-user".into(),
            access_token: "bench-access-token".into(),
            token_type: "Bearer".into(),
            refresh_token: Some("bench-refresh-token".into()),
            expires_at: Some(now + 86_400),
            issued_at: now,
            raw_id_token: "e30.e30.bench".into(),
            nonce: None,
            id_token_claims: claims.as_object().cloned().unwrap_or_default(),
            access_token_claims: Default::default(),
        };
        session.store(&oidc_session_key("idp"), data)?;
        session.store("cart", Cart::seeded())?;
        session.store("count", 0u64)?;
        Ok(HttpResponse::Ok().json(json!({ "seeded": true })))
    }

    #[derive(Deserialize)]
    struct Populate {
        n: usize,
    }

    /// Stores `n` more sessions (a cart and a count each) straight through the backend, 64 at
    /// a time, for the scale runs.
    async fn populate(
        sessions: web::Data<Sessions>,
        query: web::Query<Populate>,
    ) -> actix_web::Result<HttpResponse> {
        let backend = sessions.backend();
        let ttl = sessions.config().max_age;
        let cart = json!({ "t": Cart::session_type_name(), "v": Cart::seeded() }).to_string();
        let started = Instant::now();
        let results: Vec<_> = stream::iter(0..query.n)
            .map(|i| {
                let backend = backend.clone();
                let mut state = SessionState::new();
                state.insert("cart".to_owned(), cart.clone());
                state.insert(
                    "count".to_owned(),
                    json!({ "t": "u64", "v": i }).to_string(),
                );
                async move { backend.create(state, ttl).await }
            })
            .buffer_unordered(64)
            .collect()
            .await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        if let Some(Err(err)) = results.iter().find(|r| r.is_err()) {
            return Err(internal(format!(
                "{failed} of {} creates failed: {err}",
                query.n
            )));
        }
        Ok(HttpResponse::Ok().json(json!({
            "created": query.n,
            "seconds": started.elapsed().as_secs_f64(),
        })))
    }
}

/// The peer: axum 0.8 with tower-sessions 0.14 on a current-thread tokio runtime.
mod axum_server {
    use super::*;
    use axum::{routing::get, Json, Router};
    use tower_sessions::{cookie::time, Expiry, MemoryStore, Session, SessionManagerLayer};
    use tower_sessions_redis_store::{
        fred::prelude::{ClientLike as _, Config as FredConfig, Pool},
        RedisStore,
    };

    type Failure = (axum::http::StatusCode, String);

    fn fail(err: impl std::fmt::Display) -> Failure {
        (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            err.to_string(),
        )
    }

    async fn counter(session: Session) -> Result<Json<serde_json::Value>, Failure> {
        let count = session
            .get::<u64>("count")
            .await
            .map_err(fail)?
            .unwrap_or(0)
            + 1;
        session.insert("count", count).await.map_err(fail)?;
        Ok(Json(json!({ "count": count })))
    }

    async fn cart(session: Session) -> Result<Json<Cart>, Failure> {
        Ok(Json(
            session
                .get::<Cart>("cart")
                .await
                .map_err(fail)?
                .unwrap_or_default(),
        ))
    }

    async fn seed(session: Session) -> Result<Json<serde_json::Value>, Failure> {
        session.insert("cart", Cart::seeded()).await.map_err(fail)?;
        session.insert("count", 0u64).await.map_err(fail)?;
        Ok(Json(json!({ "seeded": true })))
    }

    async fn plain() -> Json<serde_json::Value> {
        Json(json!({ "ok": true }))
    }

    fn routes() -> Router {
        Router::new()
            .route("/counter", get(counter))
            .route("/cart", get(cart))
            .route("/plain", get(plain))
            .route("/seed", get(seed))
    }

    fn expiry() -> Expiry {
        Expiry::OnInactivity(time::Duration::days(1))
    }

    pub(crate) async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
        let app = match args.config.as_str() {
            "ts-memory" => routes().layer(
                SessionManagerLayer::new(MemoryStore::default())
                    .with_secure(false)
                    .with_expiry(expiry()),
            ),
            "ts-redis" => {
                let pool = Pool::new(
                    FredConfig::from_url(&redis_url(&args)?)?,
                    None,
                    None,
                    None,
                    6,
                )?;
                pool.init().await?;
                routes().layer(
                    SessionManagerLayer::new(RedisStore::new(pool))
                        .with_secure(false)
                        .with_expiry(expiry()),
                )
            }
            other => return Err(format!("unknown config {other}").into()),
        };
        let listener = tokio::net::TcpListener::bind(args.addr.expect("checked")).await?;
        axum::serve(listener, app).await?;
        Ok(())
    }
}
