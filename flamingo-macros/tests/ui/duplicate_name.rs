use flamingo_session::SessionValue;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, SessionValue)]
#[session_value(name = "shop.Cart")]
#[session_value(name = "shop.Basket")]
struct Cart {
    items: Vec<String>,
}

fn main() {}
