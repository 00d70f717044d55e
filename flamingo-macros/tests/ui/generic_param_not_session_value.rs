use flamingo_session::SessionValue;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, SessionValue)]
struct Page<T> {
    items: Vec<T>,
}

// Serde, but not a session value: it has no name to compose `Page<Plain>`'s name from.
#[derive(Serialize, Deserialize)]
struct Plain;

fn store<T: SessionValue>(_value: T) {}

fn main() {
    store(Page { items: vec![Plain] });
}
