use flamingo_session::SessionValue;
use serde::Deserialize;

#[derive(Deserialize, SessionValue)]
struct Cart {
    items: Vec<String>,
}

fn main() {}
