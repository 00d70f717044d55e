//! Flamingo's sessions and authentication for actix-web (facade).
pub use flamingo_session as session;
