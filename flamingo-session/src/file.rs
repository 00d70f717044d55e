//! TODO
/// The file backend.
pub struct FileBackend;
