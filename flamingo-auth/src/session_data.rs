//! What auth keeps in the session: Flamingo's keys (the persistence contract) and the stored
//! types, each a `SessionValue` with a stable name.
//!
//! | key | type |
//! |---|---|
//! | `core.auth.redirect` | `String`: where to go after login |
//! | `core.auth.logoutredirects` | `Vec<String>`: queued single-sign-out URLs |
//! | `core.auth.logoutredirect` | `String`: where to go after logout |
//! | `core.auth.oidc.<broker>.sessiondata` | [`OidcSessionData`] |
//! | `core.auth.oidc.<broker>.states` | `Vec<`[`OidcState`]`>` |
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

/// A login of an `oidc` broker: tokens, the raw ID token and the mapped claims
/// (Flamingo's `sessionData`). `Debug` redacts the tokens.
#[derive(Clone, Serialize, Deserialize, SessionValue, PartialEq)]
#[session_value(name = "flamingo.auth.OidcSessionData")]
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
/// PKCE verifier). Several can be live at once, one per tab. `Debug` redacts the secrets.
#[derive(Clone, Serialize, Deserialize, SessionValue, PartialEq, Eq)]
#[session_value(name = "flamingo.auth.OidcState")]
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
