//! What auth keeps in the session: Flamingo's keys (the persistence contract) and the stored
//! types, each a `SessionValue` with a stable name.
//!
//! The types that carry tokens, nonces, PKCE verifiers or `state`s are
//! `#[session_value(sensitive)]`: the registry's dynamic view (a page listing the session, like
//! the demo's `/`) shows `"<redacted>"` for them, and their `Debug` leaves the secrets out.
//!
//! | key | type |
//! |---|---|
//! | `core.auth.redirect` | `String`: where to go after login |
//! | `core.auth.logoutredirects` | [`LogoutRedirects`]: queued single-sign-out URLs (sensitive) |
//! | `core.auth.logoutredirect` | `String`: where to go after logout |
//! | `core.auth.logoutstate` | [`LogoutState`]: the `state` sent to the provider at logout (sensitive) |
//! | `core.auth.oidc.<broker>.sessiondata` | [`OidcSessionData`] (sensitive) |
//! | `core.auth.oidc.<broker>.states` | `Vec<`[`OidcState`]`>` (sensitive) |
//! | `core.auth.fake.<broker>.data` | [`FakeSessionData`] |

use std::fmt;

use flamingo_session::SessionValue;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `core.auth.redirect`: the target after login.
pub const REDIRECT_KEY: &str = "core.auth.redirect";
/// `core.auth.logoutredirects`: the queue of end-session URLs still to visit.
pub const LOGOUT_REDIRECTS_KEY: &str = "core.auth.logoutredirects";
/// `core.auth.logoutredirect`: the target after the last end-session redirect.
pub const LOGOUT_REDIRECT_KEY: &str = "core.auth.logoutredirect";

/// `core.auth.logoutstate`: the `state` the logout callback expects back from the provider.
pub const LOGOUT_STATE_KEY: &str = "core.auth.logoutstate";

/// Every key auth writes that belongs to a login or logout in progress, not to the application:
/// what a logout removes besides the brokers' own data (see [`is_auth_key`]).
pub const AUTH_KEYS: &[&str] = &[
    REDIRECT_KEY,
    LOGOUT_REDIRECTS_KEY,
    LOGOUT_REDIRECT_KEY,
    LOGOUT_STATE_KEY,
];

/// Whether `key` is one of auth's own session keys (Flamingo's `core.auth.` prefix): the
/// redirect targets, the logout queue and state, and every broker's login data and states.
///
/// # Examples
///
/// ```
/// use flamingo_auth::session_data::{is_auth_key, oidc_session_key};
/// assert!(is_auth_key(&oidc_session_key("main")));
/// assert!(!is_auth_key("cart"));
/// ```
pub fn is_auth_key(key: &str) -> bool {
    key.starts_with("core.auth.")
}

/// `core.auth.oidc.<broker>.sessiondata`.
pub fn oidc_session_key(broker: &str) -> String {
    format!("core.auth.oidc.{broker}.sessiondata")
}

/// `core.auth.oidc.<broker>.states`.
pub fn oidc_states_key(broker: &str) -> String {
    format!("core.auth.oidc.{broker}.states")
}

/// `core.auth.fake.<broker>.data`.
pub fn fake_session_key(broker: &str) -> String {
    format!("core.auth.fake.{broker}.data")
}

/// `core.auth.logoutredirects`: the end-session URLs still to visit at logout. They carry the
/// raw ID token as `id_token_hint`, so the type is sensitive and `Debug` shows only how many.
#[derive(Clone, Default, Serialize, Deserialize, SessionValue, PartialEq, Eq)]
#[serde(transparent)]
#[session_value(name = "flamingo.auth.LogoutRedirects", sensitive)]
pub struct LogoutRedirects(pub Vec<String>);

impl fmt::Debug for LogoutRedirects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogoutRedirects")
            .field("len", &self.0.len())
            .finish_non_exhaustive()
    }
}

/// `core.auth.logoutstate`: the `state` sent to the provider with `post_logout_redirect_uri`,
/// checked (once) when the provider sends the browser back. Sensitive.
#[derive(Clone, Serialize, Deserialize, SessionValue, PartialEq, Eq)]
#[serde(transparent)]
#[session_value(name = "flamingo.auth.LogoutState", sensitive)]
pub struct LogoutState(pub String);

impl fmt::Debug for LogoutState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogoutState").finish_non_exhaustive()
    }
}

/// A login of an `oidc` broker: tokens, the raw ID token and the mapped claims
/// (Flamingo's `sessionData`). Sensitive; `Debug` redacts the tokens.
#[derive(Clone, Serialize, Deserialize, SessionValue, PartialEq)]
#[session_value(name = "flamingo.auth.OidcSessionData", sensitive)]
pub struct OidcSessionData {
    /// The ID token's `sub`.
    pub subject: String,
    /// The access token.
    pub access_token: String,
    /// The token type, normally `Bearer`.
    pub token_type: String,
    /// The refresh token, when the provider issued one.
    pub refresh_token: Option<String>,
    /// When the access token expires, in seconds since the Unix epoch; `None` when the provider
    /// did not say.
    pub expires_at: Option<i64>,
    /// When the access token was issued (seconds since the Unix epoch).
    pub issued_at: i64,
    /// The raw (compact JWS) ID token.
    pub raw_id_token: String,
    /// The ID token's `nonce`, checked against a refreshed ID token that carries one.
    pub nonce: Option<String>,
    /// The configured `claims.idToken` mapping applied to the ID token's claims.
    pub id_token_claims: Map<String, Value>,
    /// The configured `claims.accessToken` mapping applied to the access token's claims.
    pub access_token_claims: Map<String, Value>,
}

impl fmt::Debug for OidcSessionData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcSessionData")
            .field("subject", &self.subject)
            .field("token_type", &self.token_type)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("expires_at", &self.expires_at)
            .field("id_token_claims", &self.id_token_claims)
            .field("access_token_claims", &self.access_token_claims)
            .finish_non_exhaustive()
    }
}

/// One login in progress at an `oidc` broker (Flamingo's `StateEntry`, plus the nonce and the
/// PKCE verifier). Several can be live at once, one per tab. Sensitive; `Debug` redacts the
/// secrets.
#[derive(Clone, Serialize, Deserialize, SessionValue, PartialEq, Eq)]
#[session_value(name = "flamingo.auth.OidcState", sensitive)]
pub struct OidcState {
    /// The `state` sent to the provider.
    pub state: String,
    /// The `nonce` sent to the provider.
    pub nonce: String,
    /// The PKCE code verifier.
    pub pkce_verifier: String,
    /// When the login started, in seconds since the Unix epoch.
    pub created_at: i64,
}

impl fmt::Debug for OidcState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcState")
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A login of a `fake` broker (Flamingo's `UserSessionData`).
#[derive(Debug, Clone, Serialize, Deserialize, SessionValue, PartialEq)]
#[session_value(name = "flamingo.auth.FakeSessionData")]
pub struct FakeSessionData {
    /// The user name.
    pub subject: String,
}
