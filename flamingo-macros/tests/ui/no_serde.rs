use flamingo_session::SessionValue;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Item {
    sku: String,
}

// Forgot `Serialize, Deserialize` here.
#[derive(SessionValue)]
struct Cart {
    items: Vec<Item>,
}

fn main() {}
