//! TODO
/// The session extractor.
pub struct Session;
/// Session errors.
#[derive(Debug)]
pub enum SessionError {}
