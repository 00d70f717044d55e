//! Typed session values: the [`SessionValue`] trait and the envelope every stored value carries.
//!
//! Flamingo stores `interface{}` values with gob, so every custom type needs `gob.Register`. Here a
//! type is storable when it implements [`SessionValue`]: `#[derive(SessionValue)]` for your own
//! serde types, and built-in impls for the common std types (strings, numbers, `bool`, `Vec`,
//! `Option`, maps, sets, tuples, `serde_json::Value`).
//!
//! A stored value is one JSON document, `{"t":"<type name>","v":<value>}`. Reading it back as
//! another type is a [`SessionError::TypeMismatch`](crate::SessionError::TypeMismatch) naming both
//! types, never a silent mis-decode.

use std::{
    any::Any,
    borrow::Cow,
    collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque},
};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::value::RawValue;

mod decoded;
#[doc(hidden)]
pub use decoded::{CloneProbe, CopyByClone, NoCopy};

/// A type that can be stored in a session.
///
/// Derive it with `#[derive(SessionValue)]` (re-exported as
/// [`flamingo_session::SessionValue`](crate::SessionValue)) on a type that implements
/// `Serialize` and `Deserialize`; the derive also registers the type in the
/// [registry](crate::registry) without any call in `main`.
///
/// The type name is stored with every value and checked on load, so it must stay stable across
/// deployments: the derive's default is `module_path!()::TypeName`; set
/// `#[session_value(name = "...")]` before you move or rename a type whose values live in
/// sessions.
///
/// # Examples
///
/// ```
/// use flamingo_session::SessionValue;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, SessionValue)]
/// #[session_value(name = "shop.Cart")]
/// struct Cart {
///     items: Vec<String>,
/// }
///
/// assert_eq!(Cart::session_type_name(), "shop.Cart");
/// assert_eq!(<Vec<u32>>::session_type_name(), "Vec<u32>");
/// ```
///
/// # Sensitive values
///
/// A type holding secrets (tokens, nonces, verifiers) is marked with
/// `#[session_value(sensitive)]`. Loading and storing it is unchanged, but the
/// [registry](crate::registry)'s dynamic view, which debug pages show, gives
/// [`REDACTED`] instead of its JSON. Containers of a sensitive type
/// (`Vec<T>`, `Option<T>`, maps, tuples, ...) are sensitive too.
///
/// ```
/// use flamingo_session::SessionValue;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, SessionValue)]
/// #[session_value(name = "shop.ApiToken", sensitive)]
/// struct ApiToken(String);
///
/// assert!(ApiToken::SENSITIVE);
/// assert!(<Vec<ApiToken>>::SENSITIVE);
/// assert!(!String::SENSITIVE);
/// ```
///
/// # Decoded values are remembered
///
/// Each worker thread remembers the last values it decoded (256 of them, each from a stored text
/// of at most 2 KiB), so a value read again from the same text, such as the cart a user's every
/// page shows, is [copied](SessionValue::copy_value) instead of decoded again. Only types that
/// can copy themselves take part: `#[derive(SessionValue)]` makes a non-generic type that is
/// `Clone` do so with `Clone`, and sensitive types never do (a token is not kept beyond the
/// request that read it). A type whose `Clone` is not a faithful copy implements `SessionValue`
/// by hand.
pub trait SessionValue: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Whether values of this type are secret: the registry's dynamic view and its `Debug`
    /// redact them. Default: `false`; `#[session_value(sensitive)]` sets it.
    const SENSITIVE: bool = false;

    /// The stable name stored next to every value of this type.
    fn session_type_name() -> Cow<'static, str>;

    /// An exact copy of this value, which lets a later load of the same stored text answer it
    /// without decoding (see above). `None`, the default, decodes on every load.
    ///
    /// # Examples
    ///
    /// ```
    /// use flamingo_session::SessionValue;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Clone, PartialEq, Debug, Serialize, Deserialize, SessionValue)]
    /// #[session_value(name = "shop.Cart")]
    /// struct Cart(Vec<String>);
    ///
    /// #[derive(Serialize, Deserialize, SessionValue)]
    /// #[session_value(name = "shop.Basket")]
    /// struct Basket(Vec<String>); // not Clone
    ///
    /// let cart = Cart(vec!["tea".into()]);
    /// assert_eq!(cart.copy_value(), Some(cart.clone()));
    /// assert!(Basket(vec![]).copy_value().is_none());
    /// ```
    fn copy_value(&self) -> Option<Self> {
        None
    }
}

/// What the dynamic view shows instead of a sensitive value.
pub const REDACTED: &str = "<redacted>";

/// The stored form of a value: its type name and its JSON.
#[derive(Serialize)]
pub(crate) struct EnvelopeRef<'a, T: ?Sized> {
    pub(crate) t: &'a str,
    pub(crate) v: &'a T,
}

/// A stored value as read back, borrowing from the stored text.
#[derive(Deserialize, Debug)]
pub(crate) struct EnvelopeIn<'a> {
    #[serde(borrow)]
    pub(crate) t: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) v: &'a RawValue,
}

/// Encodes `value` as the stored JSON text `{"t":...,"v":...}`.
pub(crate) fn encode<T: SessionValue>(value: &T) -> Result<String, serde_json::Error> {
    let name = T::session_type_name();
    serde_json::to_string(&EnvelopeRef { t: &name, v: value })
}

/// Why a stored text could not be decoded as `T`.
#[derive(Debug)]
pub(crate) enum DecodeError {
    /// The text is not an envelope at all.
    NotEnvelope(serde_json::Error),
    /// The envelope names another type.
    Mismatch { stored: String },
    /// The envelope names `T`, but the value does not deserialize.
    Value(serde_json::Error),
}

/// [`decode`], or the copy of the value decoded last from the same text on this thread (see
/// [`SessionValue`]'s "Decoded values are remembered").
pub(crate) fn decode_remembered<T: SessionValue>(text: &str) -> Result<T, DecodeError> {
    if T::SENSITIVE {
        return decode(text);
    }
    decoded::get_or_decode(text, || decode(text))
}

/// Decodes a stored text as `T`, checking the type name first, in one pass over the text: the
/// value is deserialized straight from the envelope once its `"t"` matched (our encoder writes
/// `"t"` first; an envelope with `"v"` first is decoded from the borrowed raw value).
pub(crate) fn decode<T: SessionValue>(text: &str) -> Result<T, DecodeError> {
    let expected = T::session_type_name();
    if let Some(value) = value_as_written(text, &expected) {
        // Any error is left to the full decode below, which tells its kind.
        if let Ok(value) = serde_json::from_str(value) {
            return Ok(value);
        }
    }
    let in_value = std::cell::Cell::new(false);
    let mut de = serde_json::Deserializer::from_str(text);
    let seed = Envelope::<T> {
        expected: &expected,
        in_value: &in_value,
        _type: std::marker::PhantomData,
    };
    let outcome = serde::de::DeserializeSeed::deserialize(seed, &mut de).and_then(|outcome| {
        de.end()?;
        Ok(outcome)
    });
    match outcome {
        Ok(Decoded::Value(value)) => Ok(value),
        Ok(Decoded::Mismatch(stored)) => Err(DecodeError::Mismatch { stored }),
        Ok(Decoded::Raw(raw)) => serde_json::from_str(raw).map_err(DecodeError::Value),
        Err(err) if in_value.get() => Err(DecodeError::Value(err)),
        Err(err) => Err(DecodeError::NotEnvelope(err)),
    }
}

/// The value's JSON in `text` when `text` is exactly what [`encode`] writes for the type `name`,
/// `{"t":"<name>","v":<value>}`, so that only the value needs parsing: the type name is compared
/// as bytes, not parsed. `None` for any other form (spaces, another key order, a name that needs
/// escaping), which [`decode`] then parses in full. A text this accepts whose value then parses
/// is a valid envelope: the prefix and the closing brace around one JSON value are one.
fn value_as_written<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let value = text
        .strip_prefix(r#"{"t":""#)?
        .strip_prefix(name)?
        .strip_prefix(r#"","v":"#)?
        .strip_suffix('}')?;
    let plain = name.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
    plain.then_some(value)
}

/// A string borrowed from the stored text when it has no escapes, owned otherwise.
struct Text<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E>(self, text: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
        }
        de.deserialize_str(Visitor)
    }
}

enum Decoded<'de, T> {
    Value(T),
    Mismatch(String),
    /// `"v"` came before `"t"`: the raw value, decoded once the name matched.
    Raw(&'de str),
}

struct Envelope<'a, T> {
    expected: &'a str,
    /// Set while `"v"` is being deserialized as `T`, so that its error is a value error.
    in_value: &'a std::cell::Cell<bool>,
    _type: std::marker::PhantomData<T>,
}

impl<'de, T: DeserializeOwned> serde::de::DeserializeSeed<'de> for Envelope<'_, T> {
    type Value = Decoded<'de, T>;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de, T: DeserializeOwned> serde::de::Visitor<'de> for Envelope<'_, T> {
    type Value = Decoded<'de, T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a session value envelope {\"t\": type name, \"v\": value}")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::{Error as _, IgnoredAny};
        let mut matched: Option<Result<(), String>> = None;
        let mut value: Option<T> = None;
        let mut raw: Option<&'de RawValue> = None;
        while let Some(Text(key)) = map.next_key::<Text<'de>>()? {
            match key.as_ref() {
                "t" => {
                    let Text(name) = map.next_value()?;
                    matched = Some(if name == self.expected {
                        Ok(())
                    } else {
                        Err(name.into_owned())
                    });
                }
                "v" => match &matched {
                    Some(Ok(())) => {
                        self.in_value.set(true);
                        value = Some(map.next_value()?);
                        self.in_value.set(false);
                    }
                    Some(Err(_)) => {
                        map.next_value::<IgnoredAny>()?;
                    }
                    None => raw = Some(map.next_value()?),
                },
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        match (matched, value, raw) {
            (None, _, _) => Err(A::Error::missing_field("t")),
            (Some(Err(stored)), _, _) => Ok(Decoded::Mismatch(stored)),
            (Some(Ok(())), Some(value), _) => Ok(Decoded::Value(value)),
            (Some(Ok(())), None, Some(raw)) => Ok(Decoded::Raw(raw.get())),
            (Some(Ok(())), None, None) => Err(A::Error::missing_field("v")),
        }
    }
}

/// A value decoded through the registry, type-erased: downcast it, or look at its JSON.
pub trait DynValue: Any + Send + Sync {
    /// The value as JSON, for a debug page or logs of non-secret data; a
    /// [sensitive](SessionValue::SENSITIVE) value gives the string
    /// [`REDACTED`].
    fn to_json(&self) -> serde_json::Value;
    /// Whether the value's type is [sensitive](SessionValue::SENSITIVE).
    fn is_sensitive(&self) -> bool;
    /// The value as `Any`, to downcast to its concrete type.
    fn as_any(&self) -> &dyn Any;
}

impl<T: SessionValue> DynValue for T {
    fn to_json(&self) -> serde_json::Value {
        if T::SENSITIVE {
            return serde_json::Value::String(REDACTED.to_owned());
        }
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
    fn is_sensitive(&self) -> bool {
        T::SENSITIVE
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

macro_rules! named {
    ($($ty:ty => $name:literal),* $(,)?) => {
        $(impl SessionValue for $ty {
            fn session_type_name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        })*
    };
}

named! {
    String => "String", bool => "bool", char => "char",
    i8 => "i8", i16 => "i16", i32 => "i32", i64 => "i64", i128 => "i128", isize => "isize",
    u8 => "u8", u16 => "u16", u32 => "u32", u64 => "u64", u128 => "u128", usize => "usize",
    f32 => "f32", f64 => "f64", () => "()",
    serde_json::Value => "serde_json::Value",
}

macro_rules! wrapper {
    ($($outer:ident),*) => {
        $(impl<T: SessionValue> SessionValue for $outer<T> {
            const SENSITIVE: bool = T::SENSITIVE;
            fn session_type_name() -> Cow<'static, str> {
                Cow::Owned(format!(concat!(stringify!($outer), "<{}>"), T::session_type_name()))
            }
        })*
    };
}

wrapper!(Vec, Option, VecDeque);

impl<T: SessionValue + Ord> SessionValue for BTreeSet<T> {
    const SENSITIVE: bool = T::SENSITIVE;
    fn session_type_name() -> Cow<'static, str> {
        Cow::Owned(format!("BTreeSet<{}>", T::session_type_name()))
    }
}

impl<T: SessionValue + Eq + std::hash::Hash> SessionValue for HashSet<T> {
    const SENSITIVE: bool = T::SENSITIVE;
    fn session_type_name() -> Cow<'static, str> {
        Cow::Owned(format!("HashSet<{}>", T::session_type_name()))
    }
}

impl<T: SessionValue> SessionValue for Box<T> {
    const SENSITIVE: bool = T::SENSITIVE;
    fn session_type_name() -> Cow<'static, str> {
        T::session_type_name()
    }
}

impl<K, V> SessionValue for HashMap<K, V>
where
    K: SessionValue + Eq + std::hash::Hash,
    V: SessionValue,
{
    const SENSITIVE: bool = K::SENSITIVE || V::SENSITIVE;
    fn session_type_name() -> Cow<'static, str> {
        Cow::Owned(format!(
            "HashMap<{}, {}>",
            K::session_type_name(),
            V::session_type_name()
        ))
    }
}

impl<K, V> SessionValue for BTreeMap<K, V>
where
    K: SessionValue + Ord,
    V: SessionValue,
{
    const SENSITIVE: bool = K::SENSITIVE || V::SENSITIVE;
    fn session_type_name() -> Cow<'static, str> {
        Cow::Owned(format!(
            "BTreeMap<{}, {}>",
            K::session_type_name(),
            V::session_type_name()
        ))
    }
}

macro_rules! tuple {
    ($($name:ident),+) => {
        impl<$($name: SessionValue),+> SessionValue for ($($name,)+) {
            const SENSITIVE: bool = $($name::SENSITIVE)||+;
            fn session_type_name() -> Cow<'static, str> {
                let names: Vec<Cow<'static, str>> = vec![$($name::session_type_name()),+];
                Cow::Owned(format!("({})", names.join(", ")))
            }
        }
    };
}

tuple!(A);
tuple!(A, B);
tuple!(A, B, C);
tuple!(A, B, C, D);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn std_names_compose() {
        assert_eq!(
            <Option<Vec<String>>>::session_type_name(),
            "Option<Vec<String>>"
        );
        assert_eq!(
            <HashMap<String, i64>>::session_type_name(),
            "HashMap<String, i64>"
        );
        assert_eq!(<(u8, bool)>::session_type_name(), "(u8, bool)");
    }

    #[test]
    fn round_trip_and_mismatch() {
        let text = encode(&vec![1u32, 2]).unwrap();
        assert_eq!(text, r#"{"t":"Vec<u32>","v":[1,2]}"#);
        assert_eq!(decode::<Vec<u32>>(&text).unwrap(), vec![1, 2]);
        match decode::<Vec<i64>>(&text) {
            Err(DecodeError::Mismatch { stored }) => assert_eq!(stored, "Vec<u32>"),
            other => panic!("expected a mismatch, got {other:?}"),
        }
        assert!(matches!(
            decode::<u8>("[1,2]"),
            Err(DecodeError::NotEnvelope(_))
        ));
    }

    #[test]
    fn only_the_exact_written_form_skips_parsing_the_envelope() {
        let text = encode(&7u64).unwrap();
        assert_eq!(value_as_written(&text, "u64"), Some("7"));
        // Another name, a longer name, spaces, another key order: parsed in full.
        assert_eq!(value_as_written(&text, "u32"), None);
        assert_eq!(value_as_written(r#"{"t":"u64x","v":7}"#, "u64"), None);
        assert_eq!(value_as_written(r#"{"t": "u64", "v": 7}"#, "u64"), None);
        assert_eq!(value_as_written(r#"{"v":7,"t":"u64"}"#, "u64"), None);
        // A name that needs escaping is never compared as bytes.
        assert_eq!(value_as_written(r#"{"t":"a"b","v":7}"#, r#"a"b"#), None);
        // Every other form still decodes, or fails with the error of its kind.
        assert_eq!(decode::<u64>(r#"{"t": "u64", "v": 7}"#).unwrap(), 7);
        assert_eq!(decode::<u64>(r#"{"v":7,"t":"u64"}"#).unwrap(), 7);
        assert!(matches!(
            decode::<u64>(r#"{"t":"u64","v":"seven"}"#),
            Err(DecodeError::Value(_))
        ));
        // An unknown key after the value is ignored, as the full decode always did.
        assert_eq!(
            value_as_written(r#"{"t":"u64","v":7,"x":1}"#, "u64"),
            Some(r#"7,"x":1"#)
        );
        assert_eq!(decode::<u64>(r#"{"t":"u64","v":7,"x":1}"#).unwrap(), 7);
    }
}
