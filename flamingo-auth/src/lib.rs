//! Flamingo core/auth for actix-web (being written).
