//! [`User`]: Flamingo's user, mapped from an identity's claims, or a guest.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::identity::{Identity, IdentityKind};

/// Whether a [`User`] is logged in (Flamingo's `domain.User.Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UserType {
    /// Nobody is logged in.
    #[default]
    Guest,
    /// A logged-in user.
    User,
}

/// The user of the current request, with Flamingo's fields (`domain.User`).
///
/// It is an extractor: in a handler it is the user of the first broker with a login (in
/// configured order), or a guest named `"Guest"` when nobody is logged in or the login could not
/// be read. A request whose credentials could not be checked is refused instead of treated as a
/// guest's: a bearer token an `oauth2` broker refused (401 `invalid_token`), or a login or token
/// whose provider failed (502; the login stays, a later request may succeed). Fields come from the identity's mapped claims: the `claims.idToken` mapping of an
/// `oidc` broker (keys `sub`, `name`, `email`, `salutation`, `firstName`, `lastName`,
/// `street`, `zipCode`, `city`, `dateOfBirth`, `country`, `groups`; every other mapped key is a
/// custom field), and the user's `claims` of a `fake` broker.
///
/// # Examples
///
/// ```
/// use actix_web::{get, HttpResponse};
/// use flamingo_auth::User;
///
/// #[get("/hello")]
/// async fn hello(user: User) -> HttpResponse {
///     if user.is_logged_in() {
///         HttpResponse::Ok().body(format!("Hello {}", user.name))
///     } else {
///         HttpResponse::Ok().body("Hello guest")
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct User {
    /// The subject (empty for a guest).
    pub sub: String,
    /// The display name (`"Guest"` for a guest).
    pub name: String,
    /// The e-mail address.
    pub email: String,
    /// The salutation.
    pub salutation: String,
    /// The first name.
    pub first_name: String,
    /// The last name.
    pub last_name: String,
    /// The street.
    pub street: String,
    /// The zip code.
    pub zip_code: String,
    /// The city.
    pub city: String,
    /// The date of birth.
    pub date_of_birth: String,
    /// The country.
    pub country: String,
    /// Every other mapped claim, as text.
    pub custom_fields: BTreeMap<String, String>,
    /// Guest or user.
    #[serde(rename = "type")]
    pub user_type: UserType,
    /// The groups: a list claim, or a comma-separated text claim. Empty when absent (Flamingo
    /// gives `[""]`).
    pub groups: Vec<String>,
    /// The broker the user logged in at (`None` for a guest).
    pub broker: Option<String>,
}

const FIELDS: [&str; 12] = [
    "sub",
    "name",
    "email",
    "salutation",
    "firstName",
    "lastName",
    "street",
    "zipCode",
    "city",
    "dateOfBirth",
    "country",
    "groups",
];

impl User {
    /// The guest: `name` `"Guest"`, type [`UserType::Guest`] (Flamingo's `domain.Guest`).
    ///
    /// # Examples
    ///
    /// ```
    /// let guest = flamingo_auth::User::guest();
    /// assert!(!guest.is_logged_in());
    /// assert_eq!(guest.name, "Guest");
    /// ```
    pub fn guest() -> User {
        User {
            name: "Guest".to_owned(),
            ..User::default()
        }
    }

    /// Maps an identity to a user. `sub` is the identity's subject; `name` falls back to it. For
    /// an `oidc` identity the mapped access-token claims fill in keys the ID token did not map.
    ///
    /// # Examples
    ///
    /// ```
    /// use flamingo_auth::{Identity, IdentityKind, User};
    /// let claims = serde_json::json!({
    ///     "name": "Alice", "firstName": "Alice", "groups": "admins,staff", "department": "R&D"
    /// });
    /// let identity = Identity::new("main", "alice", IdentityKind::Fake, claims.as_object().unwrap().clone());
    /// let user = User::from_identity(&identity);
    /// assert!(user.is_logged_in());
    /// assert_eq!(user.groups, ["admins", "staff"]);
    /// assert_eq!(user.get("department"), Some("R&D"));
    /// ```
    pub fn from_identity(identity: &Identity) -> User {
        let mut merged;
        let claims = match identity.kind() {
            // Access-token claims (`claims.accessToken`) fill what the ID token did not map.
            IdentityKind::Oidc {
                access_token_claims,
            } if !access_token_claims.is_empty() => {
                merged = identity.claims().clone();
                for (key, value) in access_token_claims {
                    merged.entry(key.clone()).or_insert_with(|| value.clone());
                }
                &merged
            }
            _ => identity.claims(),
        };
        let text = |name: &str| claims.get(name).map(claim_text).unwrap_or_default();
        let mut user = User {
            sub: identity.subject().to_owned(),
            name: text("name"),
            email: text("email"),
            salutation: text("salutation"),
            first_name: text("firstName"),
            last_name: text("lastName"),
            street: text("street"),
            zip_code: text("zipCode"),
            city: text("city"),
            date_of_birth: text("dateOfBirth"),
            country: text("country"),
            groups: claims.get("groups").map(groups).unwrap_or_default(),
            user_type: UserType::User,
            broker: Some(identity.broker().to_owned()),
            custom_fields: BTreeMap::new(),
        };
        if user.name.is_empty() {
            user.name = user.sub.clone();
        }
        for (key, value) in claims {
            if !FIELDS.contains(&key.as_str()) {
                user.custom_fields.insert(key.clone(), claim_text(value));
            }
        }
        user
    }

    /// Whether somebody is logged in (Flamingo's `IsLoggedIn`: type is `user`).
    pub fn is_logged_in(&self) -> bool {
        self.user_type == UserType::User
    }

    /// A custom field by its mapping key (Flamingo's `User.Get`).
    pub fn get(&self, field: &str) -> Option<&str> {
        self.custom_fields.get(field).map(String::as_str)
    }
}

/// Applies a claim mapping (user field → claim name) to raw claims. A claim name `"a;b"` takes
/// the first of `a`, `b` that is present and not empty (Flamingo's fallback).
///
/// # Examples
///
/// ```
/// use std::collections::BTreeMap;
/// let raw = serde_json::json!({"preferred_username": "al", "sub": "1"});
/// let mapping = BTreeMap::from([("name".to_owned(), "name;preferred_username".to_owned())]);
/// let mapped = flamingo_auth::user::map_claims(&mapping, raw.as_object().unwrap());
/// assert_eq!(mapped["name"], "al");
/// ```
pub fn map_claims(
    mapping: &BTreeMap<String, String>,
    raw: &Map<String, Value>,
) -> Map<String, Value> {
    let mut mapped = Map::new();
    for (field, claim_names) in mapping {
        let found = claim_names
            .split(';')
            .map(str::trim)
            .filter_map(|name| raw.get(name))
            .find(|value| !is_empty(value));
        if let Some(value) = found {
            mapped.insert(field.clone(), value.clone());
        }
    }
    mapped
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

fn claim_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items.iter().map(claim_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn groups(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(claim_text)
            .filter(|g| !g.is_empty())
            .collect(),
        Value::String(s) => s
            .split(',')
            .map(str::trim)
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn default_mapping() {
        let raw = json!({"sub": "u1", "email": "u@x", "name": "U One", "groups": ["g"]});
        let mapped = map_claims(
            &mapping(&[("sub", "sub"), ("email", "email"), ("name", "name")]),
            raw.as_object().unwrap(),
        );
        assert_eq!(mapped.len(), 3, "only configured keys are kept");
        let user = User::from_identity(&Identity::new("b", "u1", IdentityKind::Fake, mapped));
        assert_eq!(
            (user.sub.as_str(), user.name.as_str(), user.email.as_str()),
            ("u1", "U One", "u@x")
        );
        assert!(user.groups.is_empty());
    }

    #[test]
    fn renamed_custom_and_fallback() {
        let raw = json!({"sub": "u1", "given_name": "Ann", "family_name": "Lee", "nick": "", "login": "ann",
                         "roles": "a, b", "tier": 3});
        let mapped = map_claims(
            &mapping(&[
                ("firstName", "given_name"),
                ("lastName", "family_name"),
                ("name", "nick;login"),
                ("groups", "roles"),
                ("tier", "tier"),
                ("missing", "nothing"),
            ]),
            raw.as_object().unwrap(),
        );
        let user = User::from_identity(&Identity::new("b", "u1", IdentityKind::Fake, mapped));
        assert_eq!(user.first_name, "Ann");
        assert_eq!(user.last_name, "Lee");
        assert_eq!(user.name, "ann", "empty first choice falls back");
        assert_eq!(user.groups, ["a", "b"]);
        assert_eq!(user.get("tier"), Some("3"));
        assert_eq!(user.get("missing"), None);
    }

    #[test]
    fn guest() {
        let guest = User::guest();
        assert_eq!(guest.user_type, UserType::Guest);
        assert_eq!(serde_json::to_value(&guest).unwrap()["type"], "guest");
    }
}
