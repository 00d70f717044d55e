//! Flamingo-style sessions for actix-web.
//!
//! (Crate guide to be written.)
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod backend;
pub mod config;
pub mod conformance;
#[cfg(feature = "file")]
pub mod file;
pub mod health;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;
pub mod registry;
mod repository;
mod session;
mod setup;
mod store;
pub mod value;

pub use backend::{BackendError, HealthStatus, SessionBackend, SessionChange, SessionState};
pub use config::{SaveMode, SessionConfig};
#[cfg(feature = "file")]
pub use file::FileBackend;
pub use flamingo_macros::SessionValue;
pub use memory::MemoryBackend;
#[cfg(feature = "redis")]
pub use redis::RedisBackend;
pub use repository::{DetachedSession, SessionRepository};
pub use session::{Session, SessionError, DEFAULT_FLASH_KEY};
pub use setup::{SessionLayer, SessionLayerService, Sessions, SessionsBuilder, SetupError};
pub use store::BackendStore;
pub use value::SessionValue;

/// Re-exported so that applications name one version of actix-session.
pub use actix_session;

#[doc(hidden)]
pub mod __private {
    pub use crate::registry::Registration;
    pub use inventory;
}
