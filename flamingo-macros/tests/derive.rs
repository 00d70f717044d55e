//! `#[derive(SessionValue)]` on every kind of type: the names it gives, the registration, and a
//! round trip through the registry.

use std::{borrow::Cow, collections::BTreeMap, marker::PhantomData};

use flamingo_session::{registry::Registry, SessionValue};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, SessionValue, Debug, PartialEq)]
#[session_value(name = "test.Cart")]
struct Cart {
    items: Vec<String>,
    total_cents: u64,
}

#[derive(Serialize, Deserialize, SessionValue, Debug, PartialEq)]
struct UserId(u64);

#[derive(Serialize, Deserialize, SessionValue, Debug, PartialEq)]
struct LoggedOut;

#[derive(Serialize, Deserialize, SessionValue, Debug, PartialEq)]
#[session_value(name = "test.Flash")]
enum Flash {
    Info(String),
    Warning { text: String, code: u16 },
    Cleared,
}

#[derive(Serialize, Deserialize, SessionValue, Debug, PartialEq)]
enum Never {}

#[derive(Serialize, Deserialize, SessionValue, Debug, PartialEq)]
#[session_value(name = "test.Page")]
struct Page<T> {
    items: Vec<T>,
    next: Option<u32>,
}

#[derive(Serialize, Deserialize, SessionValue, Debug, PartialEq)]
struct Pair<A, B: std::fmt::Debug = String>(A, B)
where
    A: PartialEq;

#[derive(Serialize, Deserialize, SessionValue, Debug, PartialEq)]
#[session_value(name = "test.Tagged")]
#[serde(bound = "")]
struct Tagged<T, const N: usize> {
    id: u64,
    #[serde(skip)]
    marker: PhantomData<T>,
}

#[derive(Serialize, Deserialize, SessionValue, Debug, PartialEq)]
#[allow(non_camel_case_types)]
struct r#type {
    r#ref: bool,
}

mod nested {
    pub mod deeper {
        use flamingo_session::SessionValue;
        use serde::{Deserialize, Serialize};

        #[derive(Serialize, Deserialize, SessionValue, Debug, PartialEq)]
        pub struct Theme {
            pub dark: bool,
        }
    }
}

// The attribute can be split over several lines, and `crate` points at a re-export.
mod reexport {
    pub use flamingo_session as session;
}

#[derive(Serialize, Deserialize, SessionValue, Debug, PartialEq)]
#[session_value(name = "test.Locale")]
#[session_value(crate = "crate::reexport::session")]
struct Locale(String);

fn registered(name: &str) -> Option<&'static str> {
    Registry::global()
        .types()
        .into_iter()
        .find(|t| t.name == name)
        .map(|t| t.rust_type)
}

#[test]
fn custom_name_is_used_as_given() {
    assert_eq!(Cart::session_type_name(), "test.Cart");
    assert_eq!(Flash::session_type_name(), "test.Flash");
    assert_eq!(Locale::session_type_name(), "test.Locale");
    assert!(
        matches!(Cart::session_type_name(), Cow::Borrowed(_)),
        "a fixed name is not allocated"
    );
}

#[test]
fn default_name_is_module_path_and_type_name() {
    assert_eq!(UserId::session_type_name(), "derive::UserId");
    assert_eq!(LoggedOut::session_type_name(), "derive::LoggedOut");
    assert_eq!(Never::session_type_name(), "derive::Never");
    assert_eq!(
        nested::deeper::Theme::session_type_name(),
        "derive::nested::deeper::Theme"
    );
    assert_eq!(
        r#type::session_type_name(),
        "derive::type",
        "a raw identifier has no `r#`"
    );
}

#[test]
fn generic_names_compose_the_parameters_names() {
    assert_eq!(<Page<Cart>>::session_type_name(), "test.Page<test.Cart>");
    assert_eq!(<Page<Vec<u32>>>::session_type_name(), "test.Page<Vec<u32>>");
    assert_eq!(
        <Pair<UserId>>::session_type_name(),
        "derive::Pair<derive::UserId, String>"
    );
    assert_eq!(
        <Pair<u8, Page<bool>>>::session_type_name(),
        "derive::Pair<u8, test.Page<bool>>"
    );
    assert_eq!(
        <Tagged<String, 3>>::session_type_name(),
        "test.Tagged<String, 3>"
    );
}

#[test]
fn non_generic_types_are_registered_without_a_call() {
    let registry = Registry::try_global().expect("no two types share a name in this test");
    for name in [
        "test.Cart",
        "test.Flash",
        "test.Locale",
        "derive::UserId",
        "derive::LoggedOut",
        "derive::Never",
        "derive::type",
        "derive::nested::deeper::Theme",
    ] {
        assert!(
            registry.contains(name),
            "{name} is not registered: {registry:?}"
        );
    }
    assert_eq!(registered("test.Cart"), Some(std::any::type_name::<Cart>()));
    assert_eq!(
        registered("derive::UserId"),
        Some(std::any::type_name::<UserId>())
    );
}

#[test]
fn generic_types_are_not_registered() {
    let generic: Vec<_> = Registry::global()
        .types()
        .into_iter()
        .filter(|t| t.name.starts_with("test.Page") || t.name.starts_with("derive::Pair"))
        .collect();
    assert!(generic.is_empty(), "generic types registered: {generic:?}");
}

/// Encodes `value` the way a session stores it.
fn stored<T: SessionValue>(value: &T) -> String {
    serde_json::json!({ "t": T::session_type_name(), "v": value }).to_string()
}

#[test]
fn registry_decodes_a_struct_to_its_type() {
    let cart = Cart {
        items: vec!["apple".into(), "pear".into()],
        total_cents: 420,
    };
    let decoded = Registry::global().decode(&stored(&cart)).unwrap();
    assert_eq!(decoded.type_name, "test.Cart");
    assert_eq!(
        decoded.json,
        serde_json::json!({ "items": ["apple", "pear"], "total_cents": 420 })
    );
    let value = decoded.value.expect("Cart is registered");
    assert_eq!(value.as_any().downcast_ref::<Cart>(), Some(&cart));
    assert_eq!(value.to_json(), decoded.json);
}

#[test]
fn registry_decodes_every_enum_variant() {
    for flash in [
        Flash::Info("saved".into()),
        Flash::Warning {
            text: "slow".into(),
            code: 7,
        },
        Flash::Cleared,
    ] {
        let decoded = Registry::global().decode(&stored(&flash)).unwrap();
        assert_eq!(decoded.type_name, "test.Flash");
        let value = decoded.value.expect("Flash is registered");
        assert_eq!(value.as_any().downcast_ref::<Flash>(), Some(&flash));
    }
}

#[test]
fn registry_decodes_tuple_unit_and_nested_types() {
    let registry = Registry::global();
    let value = registry.decode(&stored(&UserId(7))).unwrap().value.unwrap();
    assert_eq!(value.as_any().downcast_ref::<UserId>(), Some(&UserId(7)));
    let value = registry.decode(&stored(&LoggedOut)).unwrap().value.unwrap();
    assert_eq!(value.as_any().downcast_ref::<LoggedOut>(), Some(&LoggedOut));
    let theme = nested::deeper::Theme { dark: true };
    let value = registry.decode(&stored(&theme)).unwrap().value.unwrap();
    assert_eq!(
        value.as_any().downcast_ref::<nested::deeper::Theme>(),
        Some(&theme)
    );
}

#[test]
fn registry_gives_only_json_for_a_generic_value() {
    let page = Page {
        items: vec![UserId(1), UserId(2)],
        next: Some(2),
    };
    let decoded = Registry::global().decode(&stored(&page)).unwrap();
    assert_eq!(decoded.type_name, "test.Page<derive::UserId>");
    assert!(
        decoded.value.is_none(),
        "a generic type has no registration to decode through"
    );
    assert_eq!(
        decoded.json,
        serde_json::json!({ "items": [1, 2], "next": 2 })
    );
}

#[test]
fn registry_reports_a_value_that_does_not_fit_its_type() {
    let err = Registry::global()
        .decode(r#"{"t":"test.Cart","v":{"items":3}}"#)
        .unwrap_err();
    assert!(err.to_string().contains("test.Cart"), "{err}");
}

#[test]
fn derived_types_nest_in_std_containers() {
    let by_user: BTreeMap<String, Vec<Flash>> =
        BTreeMap::from([("ann".to_string(), vec![Flash::Cleared])]);
    assert_eq!(
        <BTreeMap<String, Vec<Flash>>>::session_type_name(),
        "BTreeMap<String, Vec<test.Flash>>"
    );
    let text = stored(&by_user);
    let decoded = Registry::global().decode(&text).unwrap();
    assert_eq!(decoded.type_name, "BTreeMap<String, Vec<test.Flash>>");
    assert_eq!(decoded.json, serde_json::json!({ "ann": ["Cleared"] }));
}

#[derive(Serialize, Deserialize, SessionValue, Debug, PartialEq, Clone)]
#[session_value(name = "test.Basket")]
struct Basket {
    items: Vec<String>,
}

#[test]
fn clone_types_copy_themselves_for_the_decoded_value_cache_and_others_do_not() {
    let basket = Basket {
        items: vec!["tea".into()],
    };
    assert_eq!(basket.copy_value(), Some(basket.clone()));
    // Not `Clone`: decoded on every load.
    assert_eq!(UserId(7).copy_value(), None);
    // Generic: decoded on every load, whatever its parameters.
    let page = Page::<u32> {
        items: vec![1],
        next: None,
    };
    assert_eq!(page.copy_value(), None);
}
