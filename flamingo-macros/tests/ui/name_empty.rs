use flamingo_session::SessionValue;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, SessionValue)]
#[session_value(name = "")]
struct Cart {
    items: Vec<String>,
}

#[derive(Serialize, Deserialize, SessionValue)]
#[session_value(name = "  ")]
struct Basket {
    items: Vec<String>,
}

fn main() {}
