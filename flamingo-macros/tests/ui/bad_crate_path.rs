use flamingo_session::SessionValue;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, SessionValue)]
#[session_value(crate = "not a path")]
struct Cart {
    items: Vec<String>,
}

fn main() {}
