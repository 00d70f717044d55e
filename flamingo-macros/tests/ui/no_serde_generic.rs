use flamingo_session::SessionValue;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Item {
    sku: String,
}

// Forgot `Serialize, Deserialize` here: the error is at the definition, not at first use.
#[derive(SessionValue)]
enum Choice<T> {
    One(T),
    Many(Vec<Item>),
}

fn main() {}
