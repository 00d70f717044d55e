use flamingo_session::SessionValue;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, SessionValue)]
struct Cart {
    #[session_value(name = "shop.Items")]
    items: Vec<String>,
}

fn main() {}
