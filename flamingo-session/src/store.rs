//! TODO
/// Adapter.
pub struct BackendStore;
