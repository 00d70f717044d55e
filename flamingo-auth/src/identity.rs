//! [`Identity`]: who a broker says made the request (Flamingo's `auth.Identity`).

use serde::Serialize;
use serde_json::{Map, Value};

/// The kind of broker an identity comes from, with what only that kind has.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase", tag = "typ")]
#[non_exhaustive]
pub enum IdentityKind {
    /// An OpenID Connect login (`typ: oidc`).
    Oidc {
        /// The access token's mapped claims (`claims.accessToken`).
        access_token_claims: Map<String, Value>,
    },
    /// HTTP Basic (`typ: http`).
    Http,
    /// The development login form (`typ: fake`).
    Fake,
    /// A bearer access token (`typ: oauth2`).
    #[serde(rename = "oauth2")]
    OAuth2 {
        /// Every claim of the token (or of the introspection answer): `scope`, `client_id`,
        /// `aud`, ... (Flamingo's `AccessTokenClaims`).
        access_token_claims: Map<String, Value>,
    },
    /// A broker of the application ([`RequestIdentifier`](crate::RequestIdentifier)), or the
    /// [`MockBroker`](crate::mock::MockBroker).
    Custom,
}

/// A logged-in identity at one broker.
///
/// # Examples
///
/// ```
/// use flamingo_auth::{Identity, IdentityKind};
/// let id = Identity::new("dev", "alice", IdentityKind::Fake, Default::default());
/// assert_eq!(id.subject(), "alice");
/// assert_eq!(id.broker(), "dev");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Identity {
    broker: String,
    subject: String,
    kind: IdentityKind,
    claims: Map<String, Value>,
}

impl Identity {
    /// An identity of `subject` at `broker` with the mapped `claims` (user field → value).
    pub fn new(
        broker: impl Into<String>,
        subject: impl Into<String>,
        kind: IdentityKind,
        claims: Map<String, Value>,
    ) -> Self {
        Identity {
            broker: broker.into(),
            subject: subject.into(),
            kind,
            claims,
        }
    }

    /// The broker's name (Flamingo's `Broker()`).
    pub fn broker(&self) -> &str {
        &self.broker
    }

    /// The subject: the ID token's `sub`, or the user name (Flamingo's `Subject()`).
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// What kind of broker this identity comes from.
    pub fn kind(&self) -> &IdentityKind {
        &self.kind
    }

    /// The mapped claims: for `oidc` the `claims.idToken` mapping applied to the ID token (the
    /// keys are the mapping's keys), for `oauth2` its `claims` mapping applied to the access
    /// token, for `fake` and the mock the user's configured claims.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// One mapped claim.
    ///
    /// # Examples
    ///
    /// ```
    /// use flamingo_auth::{Identity, IdentityKind};
    /// let claims = serde_json::json!({"email": "a@example.com"}).as_object().unwrap().clone();
    /// let id = Identity::new("main", "a", IdentityKind::Fake, claims);
    /// assert_eq!(id.claim("email").and_then(|v| v.as_str()), Some("a@example.com"));
    /// ```
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }
}
