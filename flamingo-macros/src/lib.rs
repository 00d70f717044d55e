//! `#[derive(SessionValue)]`: make your own serde types storable in a flamingo session.
//!
//! Flamingo (Go) stores `interface{}` values with gob and needs `gob.Register` for every custom
//! type. Here a type is storable when it implements `SessionValue`, and this derive writes that
//! impl. Use it through the runtime crate, which re-exports it next to the trait:
//! `flamingo_session::SessionValue`, or `flamingo::session::SessionValue` with the facade.
//!
//! # Getting started
//!
//! ```
//! use flamingo_session::{registry::Registry, SessionValue};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, SessionValue)]
//! #[session_value(name = "shop.Cart")]
//! struct Cart {
//!     items: Vec<String>,
//! }
//!
//! // No registration call is needed: the type is in the registry as soon as it is linked.
//! assert_eq!(Cart::session_type_name(), "shop.Cart");
//! assert!(Registry::global().contains("shop.Cart"));
//! ```
//!
//! In a handler, `session.store("cart", cart)?` writes `{"t":"shop.Cart","v":{...}}`, and
//! `session.load::<Cart>("cart")?` checks the stored name before it decodes, so reading a value
//! as the wrong type is an error that names both types.
//!
//! # The type name
//!
//! Every stored value carries its type's name, so the name must stay the same across
//! deployments while values of the type live in sessions.
//!
//! - By default it is the module path and the type's name, e.g. `my_app::cart::Cart`. Moving or
//!   renaming the type changes it, and values stored before then no longer load.
//! - `#[session_value(name = "...")]` sets a name that does not depend on where the type lives.
//!   Set it on every type you store for long.
//! - Two types with one name are refused when the registry starts (the session middleware
//!   checks it at start-up): `Registry::try_global()` returns a `DuplicateTypeName` error that
//!   names both Rust types.
//!
//! # Sensitive values
//!
//! `#[session_value(sensitive)]` marks a type that holds secrets (tokens, nonces, PKCE
//! verifiers). It loads and stores as usual, but the registry's dynamic view, which debug pages
//! such as the demo's `/` show, gives `"<redacted>"` instead of its JSON, also inside
//! containers (`Vec<T>`, `Option<T>`, maps) and for generic types. The type's own `Debug` is
//! yours to write: derive nothing that prints the secrets.
//!
//! ```
//! use flamingo_session::{registry::Registry, SessionValue};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, SessionValue)]
//! #[session_value(name = "shop.ApiToken", sensitive)]
//! struct ApiToken {
//!     token: String,
//! }
//!
//! let decoded = Registry::global()
//!     .decode(r#"{"t":"shop.ApiToken","v":{"token":"s3cr3t"}}"#)
//!     .unwrap();
//! assert_eq!(decoded.json, "<redacted>");
//! assert!(!format!("{decoded:?}").contains("s3cr3t"));
//! ```
//!
//! # Generic types
//!
//! A generic type gets the name of its parameters' names composed with its own, like
//! `shop.Page<shop.Cart>`, and each type parameter must itself be a `SessionValue` (the derive
//! adds the bound). Generic types are **not registered** in the registry, which needs concrete
//! types: they load and store like any other type, but `Registry::types` does not list them
//! and `Registry::decode` gives their JSON without a typed value.
//!
//! ```
//! use flamingo_session::SessionValue;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, SessionValue)]
//! #[session_value(name = "shop.Page")]
//! struct Page<T> {
//!     items: Vec<T>,
//!     next: Option<u32>,
//! }
//!
//! assert_eq!(<Page<String>>::session_type_name(), "shop.Page<String>");
//! ```
//!
//! # Rules, checked at compile time
//!
//! - The type implements serde's `Serialize` and `Deserialize`, is `Send + Sync`, and owns its
//!   data: lifetime parameters are refused, since a stored value outlives the request.
//! - Structs and enums of every shape are accepted; unions are not (serde cannot store them).
//! - `#[session_value(...)]` takes `name = "..."` (not empty), `crate = "path"` and the flag
//!   `sensitive`, each once.
//!
//! # Where the runtime crate is
//!
//! The generated code names the runtime crate by absolute path. The derive reads your
//! `Cargo.toml`: with a dependency on `flamingo-session` (renamed or not) it uses that crate,
//! otherwise with one on `flamingo` it uses `flamingo::session`. If you re-export the crate
//! from somewhere else, say where with `#[session_value(crate = "::my_lib::session")]`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

mod ast;
mod attr;
mod expand;
mod fallback;
mod runtime;
mod valid;

/// Implements `SessionValue` for a serde type and registers it; see the [crate] guide.
///
/// # Examples
///
/// ```
/// use flamingo_session::SessionValue;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, SessionValue)]
/// #[session_value(name = "auth.Flash")]
/// enum Flash {
///     Info(String),
///     LoggedOut,
/// }
///
/// assert_eq!(Flash::session_type_name(), "auth.Flash");
/// ```
#[proc_macro_derive(SessionValue, attributes(session_value))]
pub fn derive_session_value(input: TokenStream) -> TokenStream {
    let node = parse_macro_input!(input as DeriveInput);
    derive(&node).into()
}

/// Expands `#[derive(SessionValue)]` on `node`; on a mistake, a minimal impl plus the error (so
/// that the user sees the one mistake, not a cascade of missing-impl errors).
fn derive(node: &DeriveInput) -> proc_macro2::TokenStream {
    match ast::Input::from_syn(node).and_then(|input| input.validate().map(|()| input)) {
        Ok(input) => expand::impl_session_value(&input),
        Err(err) => fallback::expand(node, err),
    }
}
