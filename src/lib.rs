#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

/// Sessions: the `Session` extractor, backends, config, health (the `flamingo-session` crate).
#[cfg(feature = "session")]
pub use flamingo_session as session;

/// `#[derive(SessionValue)]` and the `SessionValue` trait.
#[cfg(feature = "session")]
pub use flamingo_session::SessionValue;

/// Authentication: identity brokers, `AuthManager`, `User`, routes (the `flamingo-auth` crate).
#[cfg(feature = "auth")]
pub use flamingo_auth as auth;
