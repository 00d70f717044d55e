use flamingo_session::SessionValue;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, SessionValue)]
#[session_value(rename = "shop.Cart")]
struct Cart {
    items: Vec<String>,
}

fn store<T: SessionValue>(_value: T) {}

fn main() {
    // One mistake, one message: this use adds no error of its own.
    store(Cart { items: Vec::new() });
    let _ = Cart::session_type_name();
}
