//! [`Sessions`]: configuration, backend, cookie key and health checks, ready for the app factory.

use std::{future::Future, sync::Arc};

use actix_web::web;

use crate::{
    backend::{
        memory::{MemoryBackend, MemoryOptions},
        BackendError, SessionBackend,
    },
    config::{BackendKind, ConfigError, SessionConfig, INSECURE_DEFAULT_SECRET},
    health::{BackendHealth, HealthCheck, HealthRegistry},
    middleware::{cookie::CookieCodec, state::Shared, SessionMiddleware},
    registry::{DuplicateTypeName, Registry},
    repository::SessionRepository,
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
                Arc::new(MemoryBackend::with_options(MemoryOptions {
                    capacity: config.memory_capacity,
                    store_length: config.store_length,
                })),
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
        tracing::info!(backend = backend.name(), save_mode = ?config.save_mode, "sessions ready");
        Ok(Sessions {
            inner: Arc::new(Inner {
                config,
                backend,
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
    let options = crate::backend::file::FileOptions {
        store_length: config.store_length,
        cleanup_interval: config.file_cleanup_interval,
        sync: config.file_sync,
    };
    Ok(Arc::new(
        open(
            crate::backend::file::FileBackend::open(&config.file, options),
            "file",
        )
        .await?,
    ))
}

#[cfg(not(feature = "file"))]
async fn open_file(_: &SessionConfig) -> Result<Arc<dyn SessionBackend>, SetupError> {
    Err(SetupError::NotBuilt { backend: "file" })
}

#[cfg(feature = "redis")]
async fn open_redis(config: &SessionConfig) -> Result<Arc<dyn SessionBackend>, SetupError> {
    Ok(Arc::new(
        open(
            crate::backend::redis::RedisBackend::connect(&config.redis, config.store_length),
            "redis",
        )
        .await?,
    ))
}

#[cfg(not(feature = "redis"))]
async fn open_redis(_: &SessionConfig) -> Result<Arc<dyn SessionBackend>, SetupError> {
    Err(SetupError::NotBuilt { backend: "redis" })
}

struct Inner {
    config: SessionConfig,
    backend: Arc<dyn SessionBackend>,
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

    /// The owners' session indexes and the leases of the backend in use, outside a request.
    pub fn directory(&self) -> crate::directory::SessionDirectory {
        crate::directory::SessionDirectory::new(self.inner.backend.clone())
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

    /// The session middleware for `App::wrap`: loads the session when a handler first extracts
    /// it, writes what the request changed, and sets the signed ID cookie (name, Secure,
    /// HttpOnly (always), Path, Domain, SameSite and Max-Age from the config). See
    /// [`middleware`](crate::middleware).
    pub fn middleware(&self) -> SessionMiddleware {
        let config = &self.inner.config;
        SessionMiddleware::new(Shared {
            backend: self.inner.backend.clone(),
            codec: CookieCodec::new(config),
            mode: config.save_mode,
            max_age: config.max_age,
            max_lifetime: (!config.max_lifetime.is_zero()).then_some(config.max_lifetime),
            touch_interval: touch_interval(config.max_age),
        })
    }
}

/// How old a session's cookie may get before a request that uses the session slides its expiry
/// (touches the store and sends the cookie again): a tenth of `max.age`, at most an hour. A
/// session in use therefore never expires, and expires at most `max.age` after its last use.
fn touch_interval(max_age: std::time::Duration) -> std::time::Duration {
    (max_age / 10).min(std::time::Duration::from_secs(3600))
}
