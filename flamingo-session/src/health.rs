//! Named health checks and Flamingo's health endpoint.
//!
//! The session backend registers the check `session` when `flamingo.session.healthcheck` is true
//! (Redis: PING within the timeout; file: the folder is writable; memory: always up). An
//! application adds its own checks with [`HealthRegistry::register`]. [`healthcheck`] answers
//! Flamingo's JSON, `{"services":[{"name":"session","alive":true,"details":"success"}]}`, with
//! status 200 when every check is alive and 500 otherwise.

use std::{future::Future, pin::Pin, sync::Arc};

use actix_web::{web, HttpResponse};
use serde::Serialize;

pub use crate::backend::HealthStatus;
use crate::backend::SessionBackend;

/// Something whose health can be checked (Flamingo's `healthcheck.Status`).
///
/// Implemented for every closure returning a future of [`HealthStatus`].
///
/// # Examples
///
/// ```
/// use flamingo_session::health::{HealthRegistry, HealthStatus};
///
/// let mut registry = HealthRegistry::new();
/// registry.register("database", || async { HealthStatus::up() });
/// assert_eq!(registry.names(), vec!["database"]);
/// ```
pub trait HealthCheck: Send + Sync + 'static {
    /// Runs the check.
    fn check(&self) -> Pin<Box<dyn Future<Output = HealthStatus> + Send + '_>>;
}

impl<F, Fut> HealthCheck for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = HealthStatus> + Send + 'static,
{
    fn check(&self) -> Pin<Box<dyn Future<Output = HealthStatus> + Send + '_>> {
        Box::pin(self())
    }
}

/// The health check of a session backend: [`SessionBackend::health`].
pub struct BackendHealth(pub Arc<dyn SessionBackend>);

impl HealthCheck for BackendHealth {
    fn check(&self) -> Pin<Box<dyn Future<Output = HealthStatus> + Send + '_>> {
        self.0.health()
    }
}

/// One service in the health answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceStatus {
    /// The check's name, e.g. `session`.
    pub name: String,
    /// Whether it works.
    pub alive: bool,
    /// `success`, or why not.
    pub details: String,
}

/// The health answer: Flamingo's JSON shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthReport {
    /// Every registered check, in registration order.
    pub services: Vec<ServiceStatus>,
}

impl HealthReport {
    /// Whether every check is alive.
    pub fn all_alive(&self) -> bool {
        self.services.iter().all(|s| s.alive)
    }
}

/// A registry of named health checks; cheap to clone.
#[derive(Clone, Default)]
pub struct HealthRegistry {
    checks: Vec<(String, Arc<dyn HealthCheck>)>,
}

impl std::fmt::Debug for HealthRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl HealthRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the check `name`.
    pub fn register(&mut self, name: impl Into<String>, check: impl HealthCheck) -> &mut Self {
        self.register_arc(name, Arc::new(check))
    }

    /// Adds (or replaces) the check `name`, already shared.
    pub fn register_arc(
        &mut self,
        name: impl Into<String>,
        check: Arc<dyn HealthCheck>,
    ) -> &mut Self {
        let name = name.into();
        match self.checks.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = check,
            None => self.checks.push((name, check)),
        }
        self
    }

    /// The check registered as `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn HealthCheck>> {
        self.checks
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c.clone())
    }

    /// The names of the registered checks.
    pub fn names(&self) -> Vec<&str> {
        self.checks.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Runs every check concurrently.
    ///
    /// # Examples
    ///
    /// ```
    /// use flamingo_session::health::{HealthRegistry, HealthStatus};
    /// # actix_web::rt::System::new().block_on(async {
    /// let mut registry = HealthRegistry::new();
    /// registry.register("cache", || async { HealthStatus::down("connection refused") });
    /// let report = registry.check_all().await;
    /// assert!(!report.all_alive());
    /// assert_eq!(report.services[0].details, "connection refused");
    /// # });
    /// ```
    pub async fn check_all(&self) -> HealthReport {
        let results =
            futures_util::future::join_all(self.checks.iter().map(|(_, c)| c.check())).await;
        HealthReport {
            services: self
                .checks
                .iter()
                .zip(results)
                .map(|((name, _), status)| ServiceStatus {
                    name: name.clone(),
                    alive: status.alive,
                    details: status.details,
                })
                .collect(),
        }
    }
}

/// The health endpoint handler: 200 with Flamingo's JSON when every check is alive, else 500.
/// Needs the registry as `web::Data<HealthRegistry>`;
/// [`Sessions::configure`](crate::Sessions::configure) mounts it at `/status/healthcheck`.
///
/// # Examples
///
/// ```
/// use actix_web::{web, App};
/// use flamingo_session::health::{healthcheck, HealthRegistry};
///
/// let app = App::new()
///     .app_data(web::Data::new(HealthRegistry::new()))
///     .route("/status/healthcheck", web::get().to(healthcheck));
/// ```
pub async fn healthcheck(registry: web::Data<HealthRegistry>) -> HttpResponse {
    let report = registry.check_all().await;
    if report.all_alive() {
        HttpResponse::Ok().json(report)
    } else {
        HttpResponse::InternalServerError().json(report)
    }
}
