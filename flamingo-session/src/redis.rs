//! TODO
/// The Redis backend.
pub struct RedisBackend;
