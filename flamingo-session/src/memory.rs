//! TODO
/// The memory backend.
pub struct MemoryBackend;
