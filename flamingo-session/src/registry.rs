//! The registry of session value types: Flamingo's `map[string]interface{}` view of a session.
//!
//! `#[derive(SessionValue)]` registers every non-generic type at link time (through the
//! `inventory` crate), so no call in `main` is needed. The registry lists the registered types
//! and decodes any stored value by the type name it carries, for example for a debug page.
//!
//! Two types registered under one name would make stored data ambiguous: the registry refuses to
//! initialise and [`Registry::try_global`] names both Rust types; the session middleware checks
//! it at start-up.
//!
//! Values of [sensitive](crate::SessionValue::SENSITIVE) types
//! (`#[session_value(sensitive)]`: tokens, nonces, verifiers) are never shown by the dynamic
//! view: [`Registry::decode`] gives [`REDACTED`] as their JSON, also for a container of one
//! (`Vec<Token>`) and for a generic sensitive type, which are not registered themselves.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    sync::OnceLock,
};

use crate::value::{DynValue, EnvelopeIn, SessionValue};

/// What the dynamic view shows in place of a [sensitive](crate::SessionValue::SENSITIVE) value.
pub use crate::value::REDACTED;

/// One registered type. Built by `#[derive(SessionValue)]`; not constructed by hand.
#[doc(hidden)]
pub struct Registration {
    name: fn() -> std::borrow::Cow<'static, str>,
    rust_type: fn() -> &'static str,
    decode: fn(&str) -> Result<Box<dyn DynValue>, serde_json::Error>,
    sensitive: bool,
}

impl Registration {
    /// Registration data for `T`, used by the derive.
    pub const fn of<T: SessionValue>() -> Self {
        Registration {
            name: T::session_type_name,
            rust_type: std::any::type_name::<T>,
            decode: decode_boxed::<T>,
            sensitive: T::SENSITIVE,
        }
    }
}

/// The base name of a generic sensitive type (`shop.Secret` of `shop.Secret<T>`), which has no
/// registration of its own. Built by `#[derive(SessionValue)]`; not constructed by hand.
#[doc(hidden)]
pub struct SensitiveName(&'static str);

impl SensitiveName {
    /// Marks `name` as the base name of a sensitive generic type.
    pub const fn new(name: &'static str) -> Self {
        SensitiveName(name)
    }
}

inventory::collect!(SensitiveName);

fn decode_boxed<T: SessionValue>(json: &str) -> Result<Box<dyn DynValue>, serde_json::Error> {
    Ok(Box::new(serde_json::from_str::<T>(json)?))
}

inventory::collect!(Registration);

// The std types a debug page most often meets, registered like derived ones.
inventory::submit! { Registration::of::<String>() }
inventory::submit! { Registration::of::<bool>() }
inventory::submit! { Registration::of::<i32>() }
inventory::submit! { Registration::of::<i64>() }
inventory::submit! { Registration::of::<u32>() }
inventory::submit! { Registration::of::<u64>() }
inventory::submit! { Registration::of::<f64>() }
inventory::submit! { Registration::of::<Vec<String>>() }
inventory::submit! { Registration::of::<serde_json::Value>() }

/// A type known to the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredType {
    /// The stable name stored with each value.
    pub name: String,
    /// The Rust type, as `std::any::type_name` prints it.
    pub rust_type: &'static str,
    /// Whether its values are [sensitive](crate::SessionValue::SENSITIVE).
    pub sensitive: bool,
}

/// Two Rust types registered under one session type name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "session value type name {name:?} is registered twice, by {first} and by {second}; \
     give one of them another name with #[session_value(name = \"...\")]"
)]
pub struct DuplicateTypeName {
    /// The contested name.
    pub name: String,
    /// One Rust type using it.
    pub first: &'static str,
    /// The other Rust type using it.
    pub second: &'static str,
}

/// A stored value decoded dynamically by [`Registry::decode`].
pub struct DecodedValue {
    /// The type name stored with the value.
    pub type_name: String,
    /// The value, decoded through its registered type; `None` when that type is not registered
    /// (then only [`json`](Self::json) is available).
    pub value: Option<Box<dyn DynValue>>,
    /// The value as JSON; the string [`REDACTED`] when the value is
    /// [`sensitive`](Self::sensitive).
    pub json: serde_json::Value,
    /// Whether the stored type is sensitive, or contains a sensitive type.
    pub sensitive: bool,
}

impl fmt::Debug for DecodedValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecodedValue")
            .field("type_name", &self.type_name)
            .field("registered", &self.value.is_some())
            .field("sensitive", &self.sensitive)
            .field("json", &self.json)
            .finish()
    }
}

/// Why a stored value could not be decoded dynamically.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryDecodeError {
    /// The stored text is not a flamingo value envelope.
    #[error("stored value is not a flamingo session value: {0}")]
    NotEnvelope(#[source] serde_json::Error),
    /// The value does not deserialize as its registered type.
    #[error("stored value does not decode as its registered type {type_name}: {source}")]
    Value {
        /// The stored type name.
        type_name: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

/// All registered session value types.
pub struct Registry {
    by_name: BTreeMap<String, &'static Registration>,
    /// Names of sensitive types: registered ones and bases of generic ones.
    sensitive: BTreeSet<String>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

static GLOBAL: OnceLock<Result<Registry, DuplicateTypeName>> = OnceLock::new();

impl Registry {
    /// The registry of every type registered in this program.
    ///
    /// # Errors
    ///
    /// [`DuplicateTypeName`] when two types share a name; the error is the same on every call.
    ///
    /// # Examples
    ///
    /// ```
    /// use flamingo_session::registry::Registry;
    /// let registry = Registry::try_global().expect("no duplicate type names");
    /// assert!(registry.types().iter().any(|t| t.name == "String"));
    /// ```
    pub fn try_global() -> Result<&'static Registry, DuplicateTypeName> {
        GLOBAL
            .get_or_init(Self::collect)
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Like [`try_global`](Self::try_global), for code that runs after start-up checked it.
    ///
    /// # Panics
    ///
    /// When two types share a name (the session middleware refuses to start first).
    pub fn global() -> &'static Registry {
        match Self::try_global() {
            Ok(registry) => registry,
            Err(err) => panic!("{err}"),
        }
    }

    fn collect() -> Result<Registry, DuplicateTypeName> {
        let mut by_name: BTreeMap<String, &'static Registration> = BTreeMap::new();
        for reg in inventory::iter::<Registration> {
            let name = (reg.name)().into_owned();
            if let Some(prev) = by_name.get(&name) {
                let (first, second) = ((prev.rust_type)(), (reg.rust_type)());
                if first != second {
                    let (first, second) = if first <= second {
                        (first, second)
                    } else {
                        (second, first)
                    };
                    return Err(DuplicateTypeName {
                        name,
                        first,
                        second,
                    });
                }
                continue;
            }
            by_name.insert(name, reg);
        }
        let sensitive = by_name
            .iter()
            .filter(|(_, reg)| reg.sensitive)
            .map(|(name, _)| name.clone())
            .chain(
                inventory::iter::<SensitiveName>
                    .into_iter()
                    .map(|n| n.0.to_owned()),
            )
            .collect();
        Ok(Registry { by_name, sensitive })
    }

    /// Whether values stored under `type_name` are sensitive: the type is, or any type its
    /// name is composed of (`Vec<shop.Token>`, `shop.Page<shop.Token>`, `(u8, shop.Token)`).
    ///
    /// # Examples
    ///
    /// ```
    /// use flamingo_session::registry::Registry;
    /// assert!(!Registry::global().is_sensitive("Vec<String>"));
    /// ```
    pub fn is_sensitive(&self, type_name: &str) -> bool {
        self.sensitive.contains(type_name)
            || type_name
                .split(|c: char| "<>(),".contains(c) || c.is_whitespace())
                .any(|part| self.sensitive.contains(part))
    }

    /// The registered types, sorted by name.
    pub fn types(&self) -> Vec<RegisteredType> {
        self.by_name
            .iter()
            .map(|(name, reg)| RegisteredType {
                name: name.clone(),
                rust_type: (reg.rust_type)(),
                sensitive: reg.sensitive,
            })
            .collect()
    }

    /// Whether a type name is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Decodes one stored value (as held in the session state) through its registered type.
    /// A [sensitive](Self::is_sensitive) value's [`json`](DecodedValue::json) is [`REDACTED`];
    /// its typed [`value`](DecodedValue::value) is there for code that knows the type.
    ///
    /// # Errors
    ///
    /// [`RegistryDecodeError`] when the text is not a value envelope, or the value does not
    /// decode as its registered type.
    ///
    /// # Examples
    ///
    /// ```
    /// use flamingo_session::registry::Registry;
    /// let decoded = Registry::global().decode(r#"{"t":"String","v":"hi"}"#).unwrap();
    /// assert_eq!(decoded.type_name, "String");
    /// let value = decoded.value.unwrap();
    /// assert_eq!(value.as_any().downcast_ref::<String>().unwrap(), "hi");
    /// ```
    pub fn decode(&self, stored: &str) -> Result<DecodedValue, RegistryDecodeError> {
        let env: EnvelopeIn<'_> =
            serde_json::from_str(stored).map_err(RegistryDecodeError::NotEnvelope)?;
        let json: serde_json::Value =
            serde_json::from_str(env.v.get()).map_err(RegistryDecodeError::NotEnvelope)?;
        let sensitive = self.is_sensitive(&env.t);
        let json = if sensitive {
            serde_json::Value::String(REDACTED.to_owned())
        } else {
            json
        };
        let value =
            match self.by_name.get(env.t.as_ref()) {
                Some(reg) => Some((reg.decode)(env.v.get()).map_err(|source| {
                    RegistryDecodeError::Value {
                        type_name: env.t.to_string(),
                        source,
                    }
                })?),
                None => None,
            };
        Ok(DecodedValue {
            type_name: env.t.into_owned(),
            value,
            json,
            sensitive,
        })
    }
}
