//! Flamingo-style sessions for actix-web, with actix-session as the storage contract.
//!
//! Flamingo (the Go web framework) gives every handler a session whose backend is picked in
//! config and whose values are typed. This crate does the same for actix-web:
//!
//! - [`Session`]: the extractor, with Flamingo's `load`/`store`/`delete`/`keys`/`clear_all`/
//!   `flashes`/`add_flash`/`id`/`id_hash`, plus `renew` and `purge`.
//! - [`SessionValue`]: what can be stored. `#[derive(SessionValue)]` on your serde types (it also
//!   registers them in the [`registry`]); the common std types work as they are. Every stored
//!   value carries its type name, so reading it as another type is
//!   [`SessionError::TypeMismatch`].
//! - Backends behind one object-safe trait, [`SessionBackend`]: [`MemoryBackend`] (default),
//!   [`FileBackend`], [`RedisBackend`] (standalone and Cluster) or your own, chosen by
//!   `flamingo.session.backend`. [`BackendStore`] adapts any of them to actix-session's
//!   `SessionStore`; [`conformance::run`] checks a backend against the contract.
//! - [`Sessions`]: reads Flamingo's `flamingo.session.*` keys ([`config`]), opens the backend and
//!   gives the middleware for `App::wrap` and the [`health`] endpoint.
//!
//! # Getting started
//!
//! ```no_run
//! use actix_web::{web, App, HttpResponse, HttpServer};
//! use flamingo_session::{Session, SessionError, SessionValue, Sessions};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Default, Serialize, Deserialize, SessionValue)]
//! struct Cart {
//!     items: Vec<String>,
//! }
//!
//! async fn add(session: Session, sku: web::Path<String>) -> Result<HttpResponse, SessionError> {
//!     let mut cart = session.load::<Cart>("cart")?.unwrap_or_default();
//!     cart.items.push(sku.into_inner());
//!     session.store("cart", cart)?;
//!     Ok(HttpResponse::NoContent().finish())
//! }
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // flamingo.session.backend: redis, flamingo.session.redis.host: ..., from files and
//!     // FLAMINGO__SESSION__* environment variables.
//!     let config = config::Config::builder()
//!         .add_source(config::File::with_name("config.yml").required(false))
//!         .add_source(flamingo_session::config::environment())
//!         .build()?;
//!     let sessions = Sessions::from_config(&config).await?;
//!     HttpServer::new(move || {
//!         App::new()
//!             .configure(sessions.configure())
//!             .wrap(sessions.middleware())
//!             .route("/cart/{sku}", web::post().to(add))
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await?;
//!     Ok(())
//! }
//! ```
//!
//! # Choosing a backend
//!
//! | `flamingo.session.backend` | cargo feature | notes |
//! |---|---|---|
//! | `memory` | always | bounded, per-session TTL; one process |
//! | `file` | `file` (default) | one file per session, atomic writes, shared by processes on one host |
//! | `redis` | `redis` (default) | one string per session, each read and write one command (merges one Lua script); TLS, ACL, Cluster |
//! | `custom` | always | [`SessionsBuilder::custom_backend`] |
//!
//! # How a request runs
//!
//! [`Sessions::middleware`] returns our own [`SessionMiddleware`]: a route that never extracts
//! the session pays nothing (no cookie check, no store I/O, works while the store is down); the
//! first extraction checks the signed ID cookie and loads the session once; after the handler
//! only what changed is written, and a cookie is sent only for a new, renewed or purged session
//! or when the sliding expiry is due. A session that ended while a request ran (logout, renew,
//! expiry) is never written back by it. See [`middleware`].
//!
//! # actix-session, both ways
//!
//! Our backends are actix-session stores too ([`BackendStore`]), for apps that run
//! actix-session's own `SessionMiddleware` because of crates built on it (actix-identity,
//! actix-web-flash-messages); the [`Session`] extractor works there as well (save mode
//! `Always`, no [`Session::id`]). And any actix-session store is a backend of ours
//! ([`middleware::compat::ActixStoreBackend`]), Flamingo's "replace the SessionModule":
//!
//! ```
//! use actix_session::{storage::CookieSessionStore, SessionMiddleware};
//! use actix_web::{cookie::Key, web, App, HttpResponse};
//! use flamingo_session::{Session, SessionError};
//!
//! async fn visits(session: Session) -> Result<HttpResponse, SessionError> {
//!     let n = session.load::<u32>("visits")?.unwrap_or(0) + 1;
//!     session.store("visits", n)?;
//!     Ok(HttpResponse::Ok().body(n.to_string()))
//! }
//!
//! let app = App::new()
//!     .wrap(SessionMiddleware::new(CookieSessionStore::default(), Key::generate()))
//!     .route("/visits", web::get().to(visits));
//! ```
//!
//! # Save modes
//!
//! `flamingo.session.saveMode` decides how a request's changes are written: `Always` replaces the
//! stored session (last writer wins), `OnWrite` and `OnRead` merge only the keys the request
//! wrote (or read), atomically in every backend, so concurrent requests lose nothing.
#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod backend;
pub mod config;
mod directory;
pub mod health;
pub mod middleware;
pub mod registry;
mod repository;
mod session;
mod setup;
pub mod value;

pub use backend::conformance;
#[cfg(feature = "file")]
pub use backend::file::{self, FileBackend};
pub use backend::memory::{self, MemoryBackend};
#[cfg(feature = "redis")]
pub use backend::redis::{self, RedisBackend};
pub use backend::{
    BackendError, HealthStatus, IndexedSession, SaveOutcome, SessionBackend, SessionChange,
    SessionId, SessionOwner, SessionState,
};
pub use config::{SaveMode, SessionConfig};
pub use directory::{DirectoryError, NoSessionMiddleware, SessionDirectory};
pub use flamingo_macros::SessionValue;
pub use middleware::{compat::BackendStore, SessionMiddleware, SessionUnavailable};
pub use repository::{DetachedSession, SessionRepository};
pub use session::{Session, SessionError, DEFAULT_FLASH_KEY};
pub use setup::{Sessions, SessionsBuilder, SetupError};
pub use value::SessionValue;

/// Re-exported so that applications name one version of actix-session.
pub use actix_session;

#[doc(hidden)]
pub mod __private {
    pub use crate::registry::Registration;
    pub use crate::value::{CloneProbe, CopyByClone, NoCopy};
    pub use inventory;
}
