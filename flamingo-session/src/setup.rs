//! [`Sessions`]: configuration, backend, cookie key and health checks, ready for the app factory.

use std::{future::Future, pin::Pin, rc::Rc, sync::Arc};

use actix_session::{
    config::{CookieContentSecurity, PersistentSession, TtlExtensionPolicy},
    SessionMiddleware,
};
use actix_web::{
    body::MessageBody,
    cookie::{time::Duration as CookieDuration, Key, SameSite},
    dev::{Service, ServiceRequest, ServiceResponse, Transform},
    http::{header, StatusCode},
    web, HttpMessage as _,
};
use sha2::Digest as _;

use crate::{
    backend::{BackendError, SessionBackend},
    config::{BackendKind, ConfigError, SameSiteSetting, SessionConfig, INSECURE_DEFAULT_SECRET},
    health::{BackendHealth, HealthCheck, HealthRegistry},
    memory::MemoryBackend,
    registry::{DuplicateTypeName, Registry},
    repository::SessionRepository,
    session::{SessionSettings, ID_KEY, TOUCHED_KEY},
    store::unix_now,
    store::{BackendStore, StoreFailure, FAILURE},
};

/// Why the sessions could not be set up. Messages name the config key or the backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// A bad configuration value.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The configured backend could not be opened (Redis unreachable, folder not writable, ...).
    #[error("flamingo.session.backend: the {backend} backend could not start: {source}")]
    Backend {
        /// The backend's name.
        backend: &'static str,
        /// What went wrong.
        #[source]
        source: BackendError,
    },
    /// `backend: custom` without a backend registered with [`SessionsBuilder::custom_backend`].
    #[error(
        "flamingo.session.backend: \"custom\" is configured but no custom backend was registered; \
         call Sessions::builder(..).custom_backend(..) in the app set-up"
    )]
    MissingCustomBackend,
    /// The backend's cargo feature is not enabled.
    #[error("flamingo.session.backend: {backend:?} needs the cargo feature \"{backend}\" of flamingo-session")]
    NotBuilt {
        /// The backend's name.
        backend: &'static str,
    },
    /// Two session value types share a name.
    #[error(transparent)]
    DuplicateTypeName(#[from] DuplicateTypeName),
}

/// Builds [`Sessions`] from a [`SessionConfig`], with an optional custom backend and extra
/// health checks.
///
/// # Examples
///
/// ```
/// use flamingo_session::{Sessions, SessionConfig};
/// # actix_web::rt::System::new().block_on(async {
/// let sessions = Sessions::builder(SessionConfig::default()).build().await?;
/// assert_eq!(sessions.backend().name(), "memory");
/// # Ok::<(), flamingo_session::SetupError>(())
/// # }).unwrap();
/// ```
#[must_use]
pub struct SessionsBuilder {
    config: SessionConfig,
    custom: Option<Arc<dyn SessionBackend>>,
    custom_health: Option<Arc<dyn HealthCheck>>,
    health: HealthRegistry,
}

impl SessionsBuilder {
    /// Registers the application's backend, used when `flamingo.session.backend` is `custom`
    /// (Flamingo's `CustomSessionBackend`). Its [`SessionBackend::health`] is the `session` check
    /// unless [`custom_health`](Self::custom_health) replaces it.
    pub fn custom_backend(mut self, backend: impl SessionBackend) -> Self {
        self.custom = Some(Arc::new(backend));
        self
    }

    /// Like [`custom_backend`](Self::custom_backend), for a backend that is already shared.
    pub fn custom_backend_arc(mut self, backend: Arc<dyn SessionBackend>) -> Self {
        self.custom = Some(backend);
        self
    }

    /// Replaces the `session` health check of a custom backend.
    pub fn custom_health(mut self, check: impl HealthCheck) -> Self {
        self.custom_health = Some(Arc::new(check));
        self
    }

    /// Adds another named health check to the registry served by the health endpoint.
    pub fn health_check(mut self, name: impl Into<String>, check: impl HealthCheck) -> Self {
        self.health.register(name, check);
        self
    }

    /// Opens the backend (Redis: connect and PING within `redis.timeout`; file: create the
    /// folder), checks the value registry, and derives the cookie key.
    ///
    /// # Errors
    ///
    /// [`SetupError`] naming the key or backend at fault.
    pub async fn build(self) -> Result<Sessions, SetupError> {
        Registry::try_global()?;
        let config = self.config;
        let (backend, custom_health): (Arc<dyn SessionBackend>, _) = match config.backend {
            BackendKind::Memory => (
                Arc::new(open(MemoryBackend::from_config(&config), "memory").await?),
                None,
            ),
            BackendKind::File => (open_file(&config).await?, None),
            BackendKind::Redis => (open_redis(&config).await?, None),
            BackendKind::Custom => (
                self.custom.ok_or(SetupError::MissingCustomBackend)?,
                self.custom_health,
            ),
        };
        let mut health = HealthRegistry::new();
        if config.healthcheck {
            let check: Arc<dyn HealthCheck> =
                custom_health.unwrap_or_else(|| Arc::new(BackendHealth(backend.clone())));
            health.register_arc("session", check);
        }
        for name in self.health.names() {
            if let Some(check) = self.health.get(name) {
                health.register_arc(name, check);
            }
        }
        if config.secret == INSECURE_DEFAULT_SECRET {
            tracing::warn!(
                "flamingo.session.secret is the insecure default {INSECURE_DEFAULT_SECRET:?}: anyone \
                 can forge session cookies; set a long random secret in production"
            );
        }
        if !config.cookie.secure {
            tracing::warn!(
                "flamingo.session.cookie.secure is false: session cookies are sent over plain HTTP"
            );
        }
        let key = cookie_key(&config.secret);
        tracing::info!(backend = backend.name(), save_mode = ?config.save_mode, "sessions ready");
        Ok(Sessions {
            inner: Arc::new(Inner {
                config,
                backend,
                key,
                health,
            }),
        })
    }
}

async fn open<B>(
    fut: impl Future<Output = Result<B, BackendError>>,
    backend: &'static str,
) -> Result<B, SetupError> {
    fut.await
        .map_err(|source| SetupError::Backend { backend, source })
}

#[cfg(feature = "file")]
async fn open_file(config: &SessionConfig) -> Result<Arc<dyn SessionBackend>, SetupError> {
    Ok(Arc::new(
        open(crate::file::FileBackend::from_config(config), "file").await?,
    ))
}

#[cfg(not(feature = "file"))]
async fn open_file(_: &SessionConfig) -> Result<Arc<dyn SessionBackend>, SetupError> {
    Err(SetupError::NotBuilt { backend: "file" })
}

#[cfg(feature = "redis")]
async fn open_redis(config: &SessionConfig) -> Result<Arc<dyn SessionBackend>, SetupError> {
    Ok(Arc::new(
        open(crate::redis::RedisBackend::from_config(config), "redis").await?,
    ))
}

#[cfg(not(feature = "redis"))]
async fn open_redis(_: &SessionConfig) -> Result<Arc<dyn SessionBackend>, SetupError> {
    Err(SetupError::NotBuilt { backend: "redis" })
}

/// Derives the cookie encryption key from `flamingo.session.secret`.
fn cookie_key(secret: &str) -> Key {
    let mut hasher = sha2::Sha512::new();
    hasher.update(b"flamingo-session cookie key v1\0");
    hasher.update(secret.as_bytes());
    Key::derive_from(&hasher.finalize())
}

struct Inner {
    config: SessionConfig,
    backend: Arc<dyn SessionBackend>,
    key: Key,
    health: HealthRegistry,
}

/// Sessions as configured: the backend, the cookie settings and the health checks. Build it once
/// before `HttpServer::new` and clone it into the app factory.
///
/// # Examples
///
/// ```no_run
/// use actix_web::{App, HttpServer};
/// use flamingo_session::Sessions;
///
/// #[actix_web::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let config = config::Config::builder()
///         .add_source(config::File::with_name("config.yml"))
///         .add_source(flamingo_session::config::environment())
///         .build()?;
///     let sessions = Sessions::from_config(&config).await?;
///     HttpServer::new(move || {
///         App::new().configure(sessions.configure()).wrap(sessions.middleware())
///     })
///     .bind(("127.0.0.1", 8080))?
///     .run()
///     .await?;
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("backend", &self.inner.backend.name())
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Sessions {
    /// Reads `flamingo.session.*` from `config` and opens the configured backend.
    ///
    /// # Errors
    ///
    /// [`SetupError::Config`] for a bad value (the message names the key), the others as
    /// [`SessionsBuilder::build`].
    pub async fn from_config(config: &config::Config) -> Result<Sessions, SetupError> {
        Self::builder(SessionConfig::from_config(config)?)
            .build()
            .await
    }

    /// A builder, for custom backends and extra health checks.
    pub fn builder(config: SessionConfig) -> SessionsBuilder {
        SessionsBuilder {
            config,
            custom: None,
            custom_health: None,
            health: HealthRegistry::new(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &SessionConfig {
        &self.inner.config
    }

    /// The backend in use.
    pub fn backend(&self) -> Arc<dyn SessionBackend> {
        self.inner.backend.clone()
    }

    /// The health checks (with `session` when `flamingo.session.healthcheck` is on).
    pub fn health(&self) -> &HealthRegistry {
        &self.inner.health
    }

    /// Access to sessions by ID outside a request (Flamingo's `LoadByID`).
    pub fn repository(&self) -> SessionRepository {
        SessionRepository::new(self.inner.backend.clone(), self.inner.config.max_age)
    }

    /// Mounts the health endpoint at Flamingo's `/status/healthcheck` and registers the app data
    /// it needs; use with `App::configure`.
    pub fn configure(&self) -> impl FnOnce(&mut web::ServiceConfig) + 'static {
        let health = self.inner.health.clone();
        move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(web::Data::new(health)).route(
                "/status/healthcheck",
                web::get().to(crate::health::healthcheck),
            );
        }
    }

    /// The session middleware for `App::wrap`: actix-session's `SessionMiddleware` over our
    /// backend, with the cookie name, Secure, HttpOnly (always), Path, SameSite and Max-Age from
    /// the config and an encrypted (private) cookie.
    pub fn middleware(&self) -> SessionLayer {
        let config = &self.inner.config;
        // Sliding expiry is done by the touch layer below: at most one write per session per
        // `touch_interval`, instead of a store round trip and a new cookie on every request.
        let policy = TtlExtensionPolicy::OnStateChanges;
        let max_age =
            CookieDuration::seconds(i64::try_from(config.max_age.as_secs()).unwrap_or(i64::MAX));
        let same_site = match config.cookie.same_site {
            SameSiteSetting::Strict => SameSite::Strict,
            SameSiteSetting::None => SameSite::None,
            SameSiteSetting::Lax | SameSiteSetting::Default => SameSite::Lax,
        };
        let middleware = SessionMiddleware::builder(
            BackendStore::new(self.inner.backend.clone()),
            self.inner.key.clone(),
        )
        .cookie_name(config.name.clone())
        .cookie_secure(config.cookie.secure)
        .cookie_http_only(true)
        .cookie_path(config.cookie.path.clone())
        .cookie_same_site(same_site)
        .cookie_content_security(CookieContentSecurity::Private)
        .session_lifecycle(
            PersistentSession::default()
                .session_ttl(max_age)
                .session_ttl_extension_policy(policy),
        )
        .build();
        SessionLayer {
            middleware,
            settings: Rc::new(SessionSettings {
                save_mode: config.save_mode,
            }),
            strip_same_site: (config.cookie.same_site == SameSiteSetting::Default)
                .then(|| Rc::<str>::from(config.name.as_str())),
            touch_interval: touch_interval(config.max_age),
        }
    }
}

/// How stale a session's last write may get before a read-only request writes it again to
/// slide its expiry: a tenth of `max.age`, at most an hour. A session in use therefore never
/// expires, and expires at most `max.age` (minus that interval) after its last use.
fn touch_interval(max_age: std::time::Duration) -> std::time::Duration {
    (max_age / 10).min(std::time::Duration::from_secs(3600))
}

/// The middleware [`Sessions::middleware`] returns: actix-session's `SessionMiddleware` plus the
/// save mode for the [`Session`](crate::Session) extractor, a 503 when the store is unreachable,
/// and `cookie.sameSite: default`.
pub struct SessionLayer {
    middleware: SessionMiddleware<BackendStore>,
    settings: Rc<SessionSettings>,
    strip_same_site: Option<Rc<str>>,
    touch_interval: std::time::Duration,
}

impl<S, B> Transform<S, ServiceRequest> for SessionLayer
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = SessionLayerService<
        <SessionMiddleware<BackendStore> as Transform<TouchService<S>, ServiceRequest>>::Transform,
    >;
    type InitError = ();
    type Future = Pin<Box<dyn Future<Output = Result<Self::Transform, ()>>>>;

    fn new_transform(&self, service: S) -> Self::Future {
        let touch = TouchService {
            service,
            interval: self.touch_interval,
        };
        let inner = self.middleware.new_transform(touch);
        let settings = self.settings.clone();
        let strip_same_site = self.strip_same_site.clone();
        Box::pin(async move {
            let service = inner.await?;
            Ok(SessionLayerService {
                service: Rc::new(service),
                settings,
                strip_same_site,
            })
        })
    }
}

/// The service [`SessionLayer`] wraps around the app.
pub struct SessionLayerService<S> {
    service: Rc<S>,
    settings: Rc<SessionSettings>,
    strip_same_site: Option<Rc<str>>,
}

impl<S, B> Service<ServiceRequest> for SessionLayerService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<ServiceResponse<B>, actix_web::Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        req.extensions_mut().insert(self.settings.clone());
        let service = self.service.clone();
        let strip_same_site = self.strip_same_site.clone();
        Box::pin(FAILURE.scope(std::cell::Cell::new(None), async move {
            let result = service.call(req).await;
            let failure = FAILURE.with(|slot| slot.get());
            match result {
                Err(_) if failure.is_some() => Err(failure_error(failure)),
                Ok(mut res) => {
                    if let Some(name) = strip_same_site {
                        remove_same_site(&mut res, &name);
                    }
                    Ok(res)
                }
                Err(err) => Err(err),
            }
        }))
    }
}

/// Runs inside actix-session's middleware, after the handler: when the session was loaded from
/// the store, left unchanged, and last written more than the touch interval ago, it records the
/// time, which makes actix-session write the session (refreshing its TTL) and send the cookie
/// again with a fresh Max-Age. Flamingo re-saves on every request instead.
#[doc(hidden)]
pub struct TouchService<S> {
    service: S,
    interval: std::time::Duration,
}

impl<S, B> Service<ServiceRequest> for TouchService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<ServiceResponse<B>, actix_web::Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let fut = self.service.call(req);
        let interval = self.interval;
        Box::pin(async move {
            let res = fut.await?;
            let session = actix_session::SessionExt::get_session(res.request());
            if session.status() == actix_session::SessionStatus::Unchanged {
                let due = {
                    let entries = session.entries();
                    entries.contains_key(ID_KEY)
                        && entries
                            .get(TOUCHED_KEY)
                            .and_then(|t| t.parse::<u64>().ok())
                            .is_none_or(|t| unix_now().saturating_sub(t) >= interval.as_secs())
                };
                if due {
                    let _ = session.insert(TOUCHED_KEY, unix_now());
                }
            }
            Ok(res)
        })
    }
}

/// The answer for a store failure; its cause was logged by the adapter.
fn failure_error(failure: Option<StoreFailure>) -> actix_web::Error {
    match failure {
        Some(StoreFailure::TooLarge { size, limit }) => actix_web::error::InternalError::new(
            format!(
                "the session would grow to {size} bytes, over flamingo.session.store.length \
                 ({limit} bytes); nothing was saved"
            ),
            StatusCode::PAYLOAD_TOO_LARGE,
        )
        .into(),
        _ => actix_web::error::InternalError::new(
            "session store unavailable, try again shortly",
            StatusCode::SERVICE_UNAVAILABLE,
        )
        .into(),
    }
}

/// `cookie.sameSite: default` sends no SameSite attribute; actix-session always sets one.
fn remove_same_site<B>(res: &mut ServiceResponse<B>, name: &str) {
    let headers = res.headers_mut();
    let cookies: Vec<header::HeaderValue> = headers.get_all(header::SET_COOKIE).cloned().collect();
    if cookies.is_empty() {
        return;
    }
    headers.remove(header::SET_COOKIE);
    let prefix = format!("{name}=");
    for value in cookies {
        let rewritten = value
            .to_str()
            .ok()
            .filter(|text| text.starts_with(&prefix))
            .map(|text| {
                text.split("; ")
                    .filter(|part| !part.to_ascii_lowercase().starts_with("samesite="))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .and_then(|text| header::HeaderValue::from_str(&text).ok())
            .unwrap_or(value);
        headers.append(header::SET_COOKIE, rewritten);
    }
}

impl<S> Transform<S, ServiceRequest> for Sessions
where
    SessionLayer: Transform<S, ServiceRequest>,
{
    type Response = <SessionLayer as Transform<S, ServiceRequest>>::Response;
    type Error = <SessionLayer as Transform<S, ServiceRequest>>::Error;
    type Transform = <SessionLayer as Transform<S, ServiceRequest>>::Transform;
    type InitError = <SessionLayer as Transform<S, ServiceRequest>>::InitError;
    type Future = <SessionLayer as Transform<S, ServiceRequest>>::Future;

    fn new_transform(&self, service: S) -> Self::Future {
        self.middleware().new_transform(service)
    }
}
