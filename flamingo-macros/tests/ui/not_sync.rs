use std::cell::Cell;

use flamingo_session::SessionValue;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, SessionValue)]
struct Visits {
    count: Cell<u32>,
}

fn main() {}
