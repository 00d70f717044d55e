use flamingo_session::SessionValue;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, SessionValue)]
struct Greeting<'a> {
    text: &'a str,
}

fn main() {}
