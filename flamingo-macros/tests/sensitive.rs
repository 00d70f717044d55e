//! `#[session_value(sensitive)]`: values of the type, and of containers and generic types built
//! on it, are redacted by the registry's dynamic view and its `Debug`; loading is unchanged.

use flamingo_session::{
    registry::{Registry, REDACTED},
    SessionValue,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, SessionValue)]
#[session_value(name = "test.Tokens", sensitive)]
struct Tokens {
    access: String,
}

#[derive(Serialize, Deserialize, SessionValue)]
#[session_value(sensitive)]
#[session_value(name = "test.Vault")]
struct Vault<T> {
    inner: T,
}

#[derive(Serialize, Deserialize, SessionValue)]
#[session_value(name = "test.Plain")]
struct Plain {
    note: String,
}

fn stored<T: SessionValue>(value: &T) -> String {
    serde_json::json!({"t": T::session_type_name(), "v": value}).to_string()
}

#[test]
fn a_sensitive_value_is_redacted_but_still_decodes() {
    let tokens = Tokens {
        access: "at-SECRET".into(),
    };
    let decoded = Registry::global().decode(&stored(&tokens)).unwrap();
    assert!(decoded.sensitive);
    assert_eq!(decoded.json, REDACTED);
    assert!(!format!("{decoded:?}").contains("SECRET"));
    let value = decoded.value.expect("registered");
    assert!(value.is_sensitive());
    assert_eq!(value.to_json(), REDACTED);
    assert_eq!(value.as_any().downcast_ref::<Tokens>(), Some(&tokens));
    assert!(
        Registry::global()
            .types()
            .iter()
            .any(|t| t.name == "test.Tokens" && t.sensitive),
        "the registry lists it as sensitive"
    );
}

#[test]
fn containers_and_generic_types_of_a_sensitive_type_are_redacted() {
    const { assert!(<Vec<Tokens>>::SENSITIVE && <Option<Tokens>>::SENSITIVE) };
    const { assert!(<(u8, Tokens)>::SENSITIVE && <Vault<String>>::SENSITIVE) };
    let list = vec![Tokens {
        access: "at-SECRET".into(),
    }];
    let vault = Vault {
        inner: "v-SECRET".to_owned(),
    };
    for text in [
        stored(&list),
        stored(&vault),
        stored(&Some(vault.inner.clone())),
    ] {
        let decoded = Registry::global().decode(&text).unwrap();
        if decoded.type_name == "Option<String>" {
            assert!(!decoded.sensitive, "a String is not secret");
            continue;
        }
        assert!(decoded.sensitive, "{}", decoded.type_name);
        assert_eq!(decoded.json, REDACTED, "{}", decoded.type_name);
        assert!(!format!("{decoded:?}").contains("SECRET"));
    }
}

#[test]
fn other_values_are_shown() {
    let plain = Plain {
        note: "visible".into(),
    };
    let decoded = Registry::global().decode(&stored(&plain)).unwrap();
    assert!(!decoded.sensitive);
    assert_eq!(decoded.json, serde_json::json!({"note": "visible"}));
    const { assert!(!Plain::SENSITIVE) };
}
