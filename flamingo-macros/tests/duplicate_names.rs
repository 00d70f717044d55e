//! Two types registered under one name make the registry refuse to start, naming both.
//!
//! A separate test binary: the duplicate poisons this program's registry for good.

use flamingo_session::{registry::Registry, SessionValue};
use serde::{Deserialize, Serialize};

mod billing {
    use super::*;

    #[derive(Serialize, Deserialize, SessionValue)]
    #[session_value(name = "shop.Cart")]
    pub struct Cart {
        pub total_cents: u64,
    }
}

mod catalog {
    use super::*;

    #[derive(Serialize, Deserialize, SessionValue)]
    #[session_value(name = "shop.Cart")]
    pub struct Cart {
        pub items: Vec<String>,
    }
}

#[test]
fn try_global_names_the_name_and_both_types() {
    let err = Registry::try_global().expect_err("two types are registered as shop.Cart");
    assert_eq!(err.name, "shop.Cart");
    let mut both = [err.first, err.second];
    both.sort_unstable();
    assert_eq!(
        both,
        [
            "duplicate_names::billing::Cart",
            "duplicate_names::catalog::Cart"
        ]
    );

    let message = err.to_string();
    for part in [
        "\"shop.Cart\"",
        "duplicate_names::billing::Cart",
        "duplicate_names::catalog::Cart",
    ] {
        assert!(message.contains(part), "{message:?} does not name {part}");
    }
    assert!(
        message.contains("#[session_value(name"),
        "{message:?} does not say how to fix it"
    );

    // The answer does not change on later calls, and `global` refuses too.
    assert_eq!(Registry::try_global().unwrap_err(), err);
    let panic = std::panic::catch_unwind(Registry::global).expect_err("global panics");
    let panic = panic
        .downcast_ref::<String>()
        .expect("a formatted panic message");
    assert_eq!(panic, &message);
}
