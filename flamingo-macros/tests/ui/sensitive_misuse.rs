use flamingo_session::SessionValue;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, SessionValue)]
#[session_value(sensitive = true)]
struct Token {
    value: String,
}

#[derive(Serialize, Deserialize, SessionValue)]
#[session_value(sensitive, name = "shop.Nonce", sensitive)]
struct Nonce(String);

fn main() {}
