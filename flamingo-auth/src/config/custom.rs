//! Entries of `core.auth.web.broker` whose `typ` is none of the built-in ones: kept as they are
//! for the factory registered with [`AuthBuilder::broker_type`](crate::AuthBuilder::broker_type),
//! which reads (and checks) its own keys.

use serde_json::{Map, Value};

use super::Node;
use crate::error::AuthConfigError;

/// A broker entry of an application's broker type: its name, its `typ` and its other keys, for
/// the factory registered with [`AuthBuilder::broker_type`](crate::AuthBuilder::broker_type).
///
/// Config is strict: a factory should call [`check_keys`](Self::check_keys) with the keys it
/// knows, so that a typo is a start-up error with a suggestion, as for the built-in types.
///
/// # Examples
///
/// ```
/// use flamingo_auth::config::{AuthConfig, BrokerConfig};
/// let json = serde_json::json!({"core": {"auth": {"web": {"broker": [
///     {"broker": "keys", "typ": "apikey", "header": "x-api-key", "key": {}}
/// ]}}}});
/// let config = AuthConfig::from_value(&json)?;
/// let BrokerConfig::Custom(custom) = &config.brokers[0] else { panic!() };
/// assert_eq!(custom.typ(), "apikey");
/// assert_eq!(custom.string("header")?.as_deref(), Some("x-api-key"));
/// let err = custom.check_keys(&["header", "keys"]).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "core.auth.web.broker[0].key: unknown key (did you mean core.auth.web.broker[0].keys?)"
/// );
/// # Ok::<(), flamingo_auth::AuthConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct CustomBrokerConfig {
    pub(crate) broker: String,
    pub(crate) typ: String,
    pub(crate) key: String,
    pub(crate) settings: Map<String, Value>,
}

impl CustomBrokerConfig {
    pub(super) fn parse(node: &Node<'_>, broker: String, typ: String) -> Self {
        CustomBrokerConfig {
            broker,
            typ,
            key: node.key.clone(),
            settings: node.value.as_object().cloned().unwrap_or_default(),
        }
    }

    /// The broker's name (`broker`).
    pub fn broker(&self) -> &str {
        &self.broker
    }

    /// The `typ` as configured.
    pub fn typ(&self) -> &str {
        &self.typ
    }

    /// The entry's config key, such as `core.auth.web.broker[2]`, for error messages.
    pub fn key(&self) -> &str {
        &self.key
    }

    fn node(&self) -> (String, Value) {
        (self.key.clone(), Value::Object(self.settings.clone()))
    }

    /// Refuses any key of the entry other than `broker`, `typ` and `known` (compared
    /// case-insensitively, like every key), suggesting the closest known key for a typo.
    ///
    /// # Errors
    ///
    /// [`AuthConfigError::Invalid`] naming the first unknown key.
    pub fn check_keys(&self, known: &[&str]) -> Result<(), AuthConfigError> {
        let all: Vec<&str> = ["broker", "typ"].iter().chain(known).copied().collect();
        let (key, value) = self.node();
        Node { key, value: &value }.check_keys(&all)
    }

    /// The value of `name` (matched case-insensitively); `None` when absent or null.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.settings
            .get(name)
            .or_else(|| {
                self.settings
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
            .filter(|v| !v.is_null())
    }

    /// The text value of `name` (numbers and booleans as text).
    ///
    /// # Errors
    ///
    /// [`AuthConfigError::Invalid`] naming the key when it is a list or a map.
    pub fn string(&self, name: &str) -> Result<Option<String>, AuthConfigError> {
        self.get(name)
            .map(|value| {
                Node {
                    key: self.child_key(name),
                    value,
                }
                .as_string()
            })
            .transpose()
    }

    /// The full key of `name`, such as `core.auth.web.broker[2].header`.
    pub fn child_key(&self, name: &str) -> String {
        format!("{}.{name}", self.key)
    }

    /// An error about the key `name` of this entry, for a factory to return.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn f(c: &flamingo_auth::config::CustomBrokerConfig) -> flamingo_auth::AuthConfigError {
    /// c.invalid("keys", "must not be empty")
    /// # }
    /// ```
    pub fn invalid(&self, name: &str, message: impl Into<String>) -> AuthConfigError {
        AuthConfigError::invalid(self.child_key(name), message)
    }
}
