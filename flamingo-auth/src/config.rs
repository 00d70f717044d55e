//! Flamingo's `core.auth.*` configuration, read through the `config` crate.
//!
//! ```yaml
//! core:
//!   auth:
//!     web:
//!       debugController: false
//!       baseURL: https://shop.example        # default: from the request (see below)
//!       trustedProxies: [127.0.0.1, 10.0.0.0/8]  # default: none
//!       httpClient:
//!         connectTimeout: 5s                 # AuthManager::http_client(); the defaults
//!         requestTimeout: 30s
//!       logoutPurgesSession: false           # true: logout deletes the whole session
//!       refreshLease: 5s                     # one token refresh per session across instances
//!       broker:
//!         - broker: main            # the name in /core/auth/login/main
//!           typ: oidc
//!           clientID: my-client
//!           clientSecret: my-secret
//!           endpoint: https://accounts.example.com    # the issuer
//!           scopes: [profile, email]                   # openid is always sent
//!           claims:
//!             idToken: { firstName: given_name, lastName: family_name, groups: groups }
//!             accessToken: { roles: realm_roles }
//!           requestClaims:
//!             idToken: [groups]
//!             userInfo: [email]
//!           enableOfflineToken: true
//!           enableEndSessionEndpoint: true
//!           overrideIssuerURL: ""
//!           stateLifeTime: 30m
//!           loginParameters: [login_hint, prompt]   # passed on from /core/auth/login/main?...
//!           authParameters: { prompt: consent }     # sent with every login; default none
//!           backchannelLogout:                      # POST /core/auth/backchannelLogout/main
//!             enabled: true
//!             maxAge: 2m         # a logout token issued longer ago is refused
//!             clockSkew: 30s     # how far in the future its iat may be
//!             signingAlg: RS256  # the only alg accepted (the client's id_token_signed_response_alg)
//!         - broker: basic
//!           typ: http
//!           realm: intranet
//!           users: { admin: change-me }
//!         - broker: dev
//!           typ: fake
//!           userConfig: { alice: { password: secret } }
//!           validatePassword: true
//!           usernameFieldId: username
//!           passwordFieldId: password
//!           loginTemplate: '<form action="{{.FormURL}}">...</form>'
//! ```
//!
//! Keys are matched case-insensitively (environment variables arrive lowercased), and a dotted
//! key such as `core.auth.web.broker: [...]` is the same as the nested form. Every bad value is
//! an [`AuthConfigError`] naming the key, e.g. `core.auth.web.broker[0].stateLifeTime: invalid
//! duration "soon"`. A key that auth does not know, under `core.auth`, in a broker entry or in
//! one of its maps, is an error too, with a suggestion when it looks like a typo
//! (`core.auth.web.broker[0].userConfg: unknown key (did you mean
//! core.auth.web.broker[0].userConfig?)`), so a typo never starts an app without its users.
//!
//! # The site's own URL
//!
//! Callback URLs, the open-redirect guard and the redirects after login and logout need the
//! absolute URL of the site. It comes from, in this order:
//!
//! 1. `core.auth.web.baseURL` when set (scheme, host and port; no path);
//! 2. the forwarding headers (`Forwarded`, `X-Forwarded-Host`, `X-Forwarded-Proto`), but only
//!    when the request comes straight from an address in `core.auth.web.trustedProxies`;
//! 3. the request itself: its `Host` header and whether the server speaks TLS.
//!
//! Only `http` and `https` are ever used as the scheme; a forwarded `javascript` is ignored.
//!
//! # Timeouts of the token-carrying client
//!
//! [`AuthManager::http_client`](crate::AuthManager::http_client) gives up connecting after
//! `core.auth.web.httpClient.connectTimeout` (default 5 s) and gives up a whole request
//! (connect, send, the answer's body) after `core.auth.web.httpClient.requestTimeout` (default
//! 30 s), so an API that accepts and never answers cannot hold a request of the app forever.

use std::{collections::BTreeMap, net::IpAddr, str::FromStr, time::Duration};

use serde_json::{Map, Value};
use url::Url;

use crate::error::AuthConfigError;

mod custom;
mod oauth2;

pub use self::{
    custom::CustomBrokerConfig,
    oauth2::{OAuth2Config, TokenVerification, OAUTH2_ALGORITHMS},
};

/// `core.auth.web.refreshLease` unless configured (see
/// [`refresh::DEFAULT_LEASE_TIME`](crate::refresh::DEFAULT_LEASE_TIME)).
pub(crate) const DEFAULT_REFRESH_LEASE: Duration = Duration::from_secs(5);

/// The list of brokers.
pub const BROKER_KEY: &str = "core.auth.web.broker";
/// Whether `/core/auth/debug` is mounted.
pub const DEBUG_KEY: &str = "core.auth.web.debugController";
/// The site's own URL.
pub const BASE_URL_KEY: &str = "core.auth.web.baseURL";
/// The proxies whose forwarding headers are believed.
pub const TRUSTED_PROXIES_KEY: &str = "core.auth.web.trustedProxies";
/// The settings of the token-carrying HTTP client.
pub const HTTP_CLIENT_KEY: &str = "core.auth.web.httpClient";

/// The keys of `core.auth.web`.
const WEB_KEYS: &[&str] = &[
    "broker",
    "debugController",
    "baseURL",
    "trustedProxies",
    "httpClient",
    "logoutPurgesSession",
    "refreshLease",
];
const HTTP_CLIENT_KEYS: &[&str] = &["connectTimeout", "requestTimeout"];
const OIDC_KEYS: &[&str] = &[
    "broker",
    "typ",
    "clientID",
    "clientSecret",
    "endpoint",
    "scopes",
    "claims",
    "requestClaims",
    "enableOfflineToken",
    "enableEndSessionEndpoint",
    "overrideIssuerURL",
    "stateLifeTime",
    "loginParameters",
    "authParameters",
    "backchannelLogout",
];
const BACKCHANNEL_KEYS: &[&str] = &["enabled", "maxAge", "clockSkew", "signingAlg"];
/// The algorithms a logout token may be signed with: asymmetric, so the provider's published
/// keys can check them.
const LOGOUT_TOKEN_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
];
const CLAIMS_KEYS: &[&str] = &["idToken", "accessToken"];
const REQUEST_CLAIMS_KEYS: &[&str] = &["idToken", "userInfo"];
const HTTP_KEYS: &[&str] = &["broker", "typ", "realm", "users"];
const FAKE_KEYS: &[&str] = &[
    "broker",
    "typ",
    "userConfig",
    "validatePassword",
    "usernameFieldId",
    "passwordFieldId",
    "loginTemplate",
];
const FAKE_USER_KEYS: &[&str] = &["password", "claims"];

/// A secret from the config (client secret, password): `Debug` never shows it. The same type
/// as flamingo-session's, from the config reader both crates share.
pub use flamingo_session::config::read::Secret;

/// The parsed `core.auth.*` configuration.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthConfig {
    /// `core.auth.web.broker`, in configured order.
    pub brokers: Vec<BrokerConfig>,
    /// `core.auth.web.debugController`. Default: `false` (Flamingo turns it on with its debug
    /// mode; here it must be asked for, since it shows who is logged in).
    pub debug_controller: bool,
    /// `core.auth.web.baseURL`: the site's own URL (an origin such as
    /// `https://shop.example`), used for callback URLs and the redirect guard instead of the
    /// request's headers. Default: unset (see [the site's own URL](self#the-sites-own-url)).
    pub base_url: Option<Url>,
    /// `core.auth.web.trustedProxies`: addresses (`127.0.0.1`, `::1`) and ranges
    /// (`10.0.0.0/8`) of the reverse proxies whose `Forwarded`, `X-Forwarded-Host` and
    /// `X-Forwarded-Proto` headers are believed. Default: none, so forwarding headers are
    /// ignored.
    pub trusted_proxies: Vec<ProxyRange>,
    /// `core.auth.web.httpClient`: timeouts of the token-carrying HTTP client.
    pub http_client: HttpClientConfig,
    /// `core.auth.web.logoutPurgesSession`: logout deletes the whole session (and its cookie)
    /// instead of ending the logins and giving the session a new ID. Default: `false`, as in
    /// Flamingo: the data that is not auth's (a cart, preferences) survives a logout.
    pub logout_purges_session: bool,
    /// `core.auth.web.refreshLease`: the time of the lease a process takes on a session's token
    /// refresh, so that one request among all instances on the session store exchanges the
    /// refresh token (see [`refresh`](crate::refresh)); renewed every third of it while the
    /// exchange runs. A process that dies holding it blocks the session's refresh elsewhere for
    /// at most this long. Default: 5 s ([`DEFAULT_LEASE_TIME`](crate::refresh::DEFAULT_LEASE_TIME)).
    pub refresh_lease: Duration,
}

/// `core.auth.web.httpClient`: timeouts of
/// [`AuthManager::http_client`](crate::AuthManager::http_client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpClientConfig {
    /// `connectTimeout`: how long connecting to the API may take. Default: 5 s.
    pub connect_timeout: Duration,
    /// `requestTimeout`: how long a whole request may take, from connecting to the end of the
    /// answer's body. Default: 30 s.
    pub request_timeout: Duration,
}

impl Default for HttpClientConfig {
    fn default() -> Self {
        HttpClientConfig {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// One entry of `core.auth.web.trustedProxies`: an address, or a range in CIDR notation.
///
/// # Examples
///
/// ```
/// use flamingo_auth::config::ProxyRange;
/// let range: ProxyRange = "10.0.0.0/8".parse().unwrap();
/// assert!(range.contains("10.1.2.3".parse().unwrap()));
/// assert!(!range.contains("192.168.0.1".parse().unwrap()));
/// let one: ProxyRange = "::1".parse().unwrap();
/// assert!(one.contains("::1".parse().unwrap()));
/// assert!("10.0.0.0/33".parse::<ProxyRange>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyRange {
    network: IpAddr,
    prefix: u8,
}

impl ProxyRange {
    /// Whether `ip` is in the range. An IPv4 address mapped into IPv6 (`::ffff:127.0.0.1`)
    /// counts as the IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network.to_canonical(), ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for ProxyRange {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or a CIDR range"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(ProxyRange { network, prefix })
    }
}

/// One entry of `core.auth.web.broker`.
#[derive(Debug, Clone)]
#[non_exhaustive]
// Parsed once at start-up: the size of the variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum BrokerConfig {
    /// `typ: oidc`.
    Oidc(OidcConfig),
    /// `typ: http`.
    Http(HttpConfig),
    /// `typ: fake`.
    Fake(FakeConfig),
    /// `typ: oauth2`.
    OAuth2(OAuth2Config),
    /// Any other `typ`: a broker type of the application, built by the factory registered
    /// with [`AuthBuilder::broker_type`](crate::AuthBuilder::broker_type) (without one, the
    /// [`Auth`](crate::Auth) does not start).
    Custom(CustomBrokerConfig),
}

impl BrokerConfig {
    /// The broker's name (`broker`).
    pub fn name(&self) -> &str {
        match self {
            BrokerConfig::Oidc(c) => &c.broker,
            BrokerConfig::Http(c) => &c.broker,
            BrokerConfig::Fake(c) => &c.broker,
            BrokerConfig::OAuth2(c) => &c.broker,
            BrokerConfig::Custom(c) => &c.broker,
        }
    }

    /// The broker's type (`typ`).
    pub fn typ(&self) -> &str {
        match self {
            BrokerConfig::Oidc(_) => "oidc",
            BrokerConfig::Http(_) => "http",
            BrokerConfig::Fake(_) => "fake",
            BrokerConfig::OAuth2(_) => "oauth2",
            BrokerConfig::Custom(c) => &c.typ,
        }
    }
}

/// `requestClaims`: claims requested with the OpenID Connect `claims` parameter, as voluntary
/// claims.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestClaims {
    /// `requestClaims.idToken`.
    pub id_token: Vec<String>,
    /// `requestClaims.userInfo`.
    pub user_info: Vec<String>,
}

impl RequestClaims {
    /// The `claims` request parameter, as Flamingo's `ClaimSet` writes it
    /// (`{"id_token":{"groups":null},"userinfo":{"email":null}}`), or `None` when empty.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut claims = flamingo_auth::config::RequestClaims::default();
    /// assert_eq!(claims.to_parameter(), None);
    /// claims.user_info.push("name".into());
    /// assert_eq!(claims.to_parameter().unwrap(), r#"{"userinfo":{"name":null}}"#);
    /// ```
    pub fn to_parameter(&self) -> Option<String> {
        let voluntary = |names: &[String]| -> Value {
            Value::Object(names.iter().map(|n| (n.clone(), Value::Null)).collect())
        };
        let mut set = Map::new();
        if !self.id_token.is_empty() {
            set.insert("id_token".into(), voluntary(&self.id_token));
        }
        if !self.user_info.is_empty() {
            set.insert("userinfo".into(), voluntary(&self.user_info));
        }
        (!set.is_empty()).then(|| Value::Object(set).to_string())
    }
}

/// An `oidc` broker: OpenID Connect login at an OpenID Provider.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OidcConfig {
    /// `broker`.
    pub broker: String,
    /// `clientID`. Required.
    pub client_id: String,
    /// `clientSecret`. Required.
    pub client_secret: Secret,
    /// `endpoint`: the issuer URL, where discovery starts. Required.
    pub endpoint: Url,
    /// `scopes`. Default: `[profile, email]`; `openid` is always sent.
    pub scopes: Vec<String>,
    /// `claims.idToken`: user field → claim name (`"a;b"` falls back from `a` to `b`). Default:
    /// `{sub: sub, email: email, name: name}`; configured entries are added to the default.
    pub id_token_claims: BTreeMap<String, String>,
    /// `claims.accessToken`: user field → claim of the access token (a JWT access token's
    /// payload and the token response's extra fields). Default: empty.
    pub access_token_claims: BTreeMap<String, String>,
    /// `requestClaims`. Default: none.
    pub request_claims: RequestClaims,
    /// `enableOfflineToken`: adds the `offline_access` scope so that a refresh token is issued.
    /// Default: `true`. Some providers (oidc-provider, following OpenID Connect Core 1.0 §11)
    /// issue one only when the login also has `prompt=consent`: set
    /// `authParameters: {prompt: consent}` for them.
    pub enable_offline_token: bool,
    /// `enableEndSessionEndpoint`: logout also ends the session at the provider when it
    /// advertises an `end_session_endpoint`. Default: `true`.
    pub enable_end_session_endpoint: bool,
    /// `overrideIssuerURL`: the issuer expected in the discovery document and ID tokens when it
    /// differs from `endpoint` (Azure AD B2C). Default: unset.
    pub override_issuer_url: Option<Url>,
    /// `stateLifeTime`: how long a login may take at the provider. Default: 30 minutes.
    pub state_lifetime: Duration,
    /// `loginParameters`: the query parameters of `/core/auth/login/{broker}` passed on to the
    /// provider's authorization request, from
    /// [`LOGIN_PARAMETERS`](crate::auth_params::LOGIN_PARAMETERS) (`login_hint`, `prompt`,
    /// `ui_locales`, `acr_values`, ...). Default: none.
    pub login_parameters: Vec<String>,
    /// `authParameters`: parameters sent with every authorization request of the broker, e.g.
    /// `{prompt: consent}`; names from
    /// [`LOGIN_PARAMETERS`](crate::auth_params::LOGIN_PARAMETERS), values checked at start-up.
    /// Default: none (no `prompt` at all).
    pub auth_parameters: BTreeMap<String, String>,
    /// `backchannelLogout`: OpenID Connect Back-Channel Logout at
    /// `/core/auth/backchannelLogout/<broker>`.
    pub backchannel_logout: BackchannelLogoutConfig,
}

/// `backchannelLogout` of an `oidc` broker: how logout tokens the provider posts to
/// `/core/auth/backchannelLogout/<broker>` are checked (OpenID Connect Back-Channel Logout 1.0).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackchannelLogoutConfig {
    /// `enabled`: whether the endpoint accepts logout tokens for this broker. Default: `true`
    /// (a token must be signed by the provider's keys, so the endpoint gives nobody else a
    /// way in).
    pub enabled: bool,
    /// `maxAge`: a logout token whose `iat` is longer ago than this is refused as stale; seen
    /// `jti`s are remembered this long (plus `clockSkew`) to refuse replays. Default: 2 minutes.
    pub max_age: Duration,
    /// `clockSkew`: how far in the future a token's `iat` (and how far in the past its `exp`)
    /// may be, for clocks that differ. Default: 30 s.
    pub clock_skew: Duration,
    /// `signingAlg`: the only JWS algorithm accepted, the client's registered
    /// `id_token_signed_response_alg` (the spec signs logout tokens like ID tokens); one of
    /// RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA. Default: `RS256`.
    pub signing_alg: String,
}

impl Default for BackchannelLogoutConfig {
    fn default() -> Self {
        BackchannelLogoutConfig {
            enabled: true,
            max_age: Duration::from_secs(120),
            clock_skew: Duration::from_secs(30),
            signing_alg: "RS256".to_owned(),
        }
    }
}

/// An `http` broker: HTTP Basic authentication against a fixed user list.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// `broker`.
    pub broker: String,
    /// `realm`, shown by the browser. Default: the broker's name.
    pub realm: String,
    /// `users`: user name → password.
    pub users: BTreeMap<String, Secret>,
}

/// One user of a `fake` broker (`userConfig.<name>`).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct FakeUser {
    /// `password`; without one any password is accepted.
    pub password: Option<Secret>,
    /// `claims`: extra claims of this user, mapped like ID-token claims (`name`, `email`,
    /// `groups`, ...). An extension of Flamingo's fake broker. Default: none.
    pub claims: Map<String, Value>,
}

/// A `fake` broker: a login form for development and tests.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FakeConfig {
    /// `broker`.
    pub broker: String,
    /// `userConfig`: user name → user.
    pub users: BTreeMap<String, FakeUser>,
    /// `validatePassword`. Default: `true`.
    pub validate_password: bool,
    /// `usernameFieldId`. Default: `"username"`.
    pub username_field: String,
    /// `passwordFieldId`. Default: `"password"`.
    pub password_field: String,
    /// `loginTemplate`: HTML with Flamingo's Go-template fields `{{.FormURL}}`,
    /// `{{.Message}}`, `{{.UsernameID}}` and `{{.PasswordID}}` (also accepted without the
    /// dot; values are HTML-escaped) and `{{if .Field}}...{{else}}...{{end}}`. Any other action
    /// is a start-up error. Default: a plain form.
    pub login_template: Option<String>,
}

impl AuthConfig {
    /// Reads `core.auth.*` from `config`. No brokers configured is valid (auth then only
    /// answers "not logged in").
    ///
    /// # Errors
    ///
    /// [`AuthConfigError::Invalid`] naming the key for a missing or malformed value, an unknown
    /// key (with a suggestion when it looks like a typo) or a duplicate broker name. A `typ`
    /// other than the built-in ones is kept as [`BrokerConfig::Custom`]; building the
    /// [`Auth`](crate::Auth) refuses it unless a factory for it was registered.
    ///
    /// # Examples
    ///
    /// ```
    /// use flamingo_auth::config::{AuthConfig, BrokerConfig};
    ///
    /// let config = config::Config::builder()
    ///     .add_source(config::File::from_str(
    ///         "core.auth.web.broker: [{broker: dev, typ: fake, userConfig: {alice: {}}}]",
    ///         config::FileFormat::Yaml,
    ///     ))
    ///     .build()?;
    /// let auth = AuthConfig::from_config(&config)?;
    /// assert!(matches!(&auth.brokers[0], BrokerConfig::Fake(f) if f.validate_password));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_config(config: &config::Config) -> Result<AuthConfig, AuthConfigError> {
        let root: Value = config
            .clone()
            .try_deserialize()
            .map_err(|err| AuthConfigError::invalid("core.auth", err.to_string()))?;
        let root = expand_dotted(root);
        Self::from_value(&root)
    }

    /// Reads the configuration from a JSON tree (as [`from_config`](Self::from_config) does after
    /// loading).
    ///
    /// # Errors
    ///
    /// As [`from_config`](Self::from_config).
    ///
    /// # Examples
    ///
    /// ```
    /// use flamingo_auth::config::AuthConfig;
    /// let json = serde_json::json!({"core": {"auth": {"web": {"broker": [{"broker": "x", "typ": "fake", "userConfg": {}}]}}}});
    /// let err = AuthConfig::from_value(&json).unwrap_err();
    /// assert!(err.to_string().starts_with("core.auth.web.broker[0].userConfg: unknown key"));
    /// ```
    pub fn from_value(root: &Value) -> Result<AuthConfig, AuthConfigError> {
        if let Some(auth) = path(root, "core.auth") {
            Node {
                key: "core.auth".to_owned(),
                value: auth,
            }
            .check_keys(&["web"])?;
        }
        if let Some(web) = path(root, "core.auth.web") {
            let web = Node {
                key: "core.auth.web".to_owned(),
                value: web,
            };
            web.check_keys(WEB_KEYS)?;
            if let Some(client) = web.child("httpClient") {
                client.check_keys(HTTP_CLIENT_KEYS)?;
            }
        }
        let brokers = match path(root, BROKER_KEY) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            // `config` turns an indexed environment list into a map of indices.
            Some(Value::Object(map)) if map.keys().all(|k| k.parse::<usize>().is_ok()) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by_key(|(k, _)| k.parse::<usize>().unwrap_or(usize::MAX));
                entries.into_iter().map(|(_, v)| v.clone()).collect()
            }
            Some(_) => {
                return Err(AuthConfigError::invalid(
                    BROKER_KEY,
                    "must be a list of brokers",
                ))
            }
        };
        let mut parsed: Vec<BrokerConfig> = Vec::with_capacity(brokers.len());
        for (index, entry) in brokers.iter().enumerate() {
            let node = Node {
                key: format!("{BROKER_KEY}[{index}]"),
                value: entry,
            };
            let broker = parse_broker(&node)?;
            if parsed.iter().any(|b| b.name() == broker.name()) {
                return Err(AuthConfigError::invalid(
                    node.child_key("broker"),
                    format!("broker name {:?} is configured twice", broker.name()),
                ));
            }
            parsed.push(broker);
        }
        let debug_controller = match path(root, DEBUG_KEY) {
            None | Some(Value::Null) => false,
            Some(value) => as_bool(DEBUG_KEY, value)?,
        };
        let web = path(root, "core.auth.web").map(|value| Node {
            key: "core.auth.web".to_owned(),
            value,
        });
        let web = web.as_ref();
        let base_url = match web.and_then(|w| w.child("baseURL")) {
            Some(n) if n.as_string()?.is_empty() => None,
            Some(n) => Some(n.as_origin()?),
            None => None,
        };
        let trusted_proxies = match web.and_then(|w| w.child("trustedProxies")) {
            Some(n) => n
                .string_list()?
                .iter()
                .enumerate()
                .map(|(i, entry)| {
                    entry
                        .parse::<ProxyRange>()
                        .map_err(|err| AuthConfigError::invalid(format!("{}[{i}]", n.key), err))
                })
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let mut http_client = HttpClientConfig::default();
        if let Some(client) = web.and_then(|w| w.child("httpClient")) {
            if let Some(n) = client.child("connectTimeout") {
                http_client.connect_timeout = n.as_duration()?;
            }
            if let Some(n) = client.child("requestTimeout") {
                http_client.request_timeout = n.as_duration()?;
            }
        }
        let logout_purges_session = match web.and_then(|w| w.child("logoutPurgesSession")) {
            Some(n) => as_bool(&n.key, n.value)?,
            None => false,
        };
        let refresh_lease = match web.and_then(|w| w.child("refreshLease")) {
            Some(n) => n.as_duration()?,
            None => DEFAULT_REFRESH_LEASE,
        };
        Ok(AuthConfig {
            brokers: parsed,
            debug_controller,
            base_url,
            trusted_proxies,
            http_client,
            logout_purges_session,
            refresh_lease,
        })
    }
}

fn parse_broker(node: &Node<'_>) -> Result<BrokerConfig, AuthConfigError> {
    if !node.value.is_object() {
        return Err(AuthConfigError::invalid(
            &node.key,
            "must be a map with `broker` and `typ`",
        ));
    }
    let broker = node.required_string("broker")?;
    if broker.is_empty() || broker.contains(['/', '?', '#']) || broker.chars().any(char::is_control)
    {
        return Err(AuthConfigError::invalid(
            node.child_key("broker"),
            format!(
                "{broker:?} is not a usable broker name (non-empty, no '/', '?', '#' or \
                 control characters)"
            ),
        ));
    }
    let typ = node.required_string("typ")?;
    match typ.to_ascii_lowercase().as_str() {
        "oidc" => {
            node.check_keys(OIDC_KEYS)?;
            parse_oidc(node, broker).map(BrokerConfig::Oidc)
        }
        "http" => {
            node.check_keys(HTTP_KEYS)?;
            parse_http(node, broker).map(BrokerConfig::Http)
        }
        "fake" => {
            node.check_keys(FAKE_KEYS)?;
            parse_fake(node, broker).map(BrokerConfig::Fake)
        }
        "oauth2" => {
            node.check_keys(oauth2::OAUTH2_KEYS)?;
            oauth2::parse(node, broker).map(BrokerConfig::OAuth2)
        }
        // Checked when the Auth is built, against the types registered there.
        _ => Ok(BrokerConfig::Custom(CustomBrokerConfig::parse(
            node, broker, typ,
        ))),
    }
}

fn parse_oidc(node: &Node<'_>, broker: String) -> Result<OidcConfig, AuthConfigError> {
    let client_id = node.required_string("clientID")?;
    let client_secret = Secret::new(node.required_string("clientSecret")?);
    let endpoint = node.required_url("endpoint")?;
    let scopes = match node.child("scopes") {
        Some(n) => n.string_list()?,
        None => vec!["profile".to_owned(), "email".to_owned()],
    };
    let mut id_token_claims: BTreeMap<String, String> =
        [("sub", "sub"), ("email", "email"), ("name", "name")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    let mut access_token_claims = BTreeMap::new();
    if let Some(claims) = node.child("claims") {
        claims.check_keys(CLAIMS_KEYS)?;
        if let Some(n) = claims.child("idToken") {
            id_token_claims.extend(n.string_map()?);
        }
        if let Some(n) = claims.child("accessToken") {
            access_token_claims = n.string_map()?;
        }
    }
    let mut request_claims = RequestClaims::default();
    if let Some(rc) = node.child("requestClaims") {
        rc.check_keys(REQUEST_CLAIMS_KEYS)?;
        if let Some(n) = rc.child("idToken") {
            request_claims.id_token = n.string_list()?;
        }
        if let Some(n) = rc.child("userInfo") {
            request_claims.user_info = n.string_list()?;
        }
    }
    let override_issuer_url = match node.child("overrideIssuerURL") {
        Some(n) if n.as_string()?.is_empty() => None,
        Some(n) => Some(n.as_url()?),
        None => None,
    };
    let state_lifetime = match node.child("stateLifeTime") {
        Some(n) => n.as_duration()?,
        None => Duration::from_secs(30 * 60),
    };
    let allowed = |key: String, name: &str| -> Result<(), AuthConfigError> {
        if crate::auth_params::LOGIN_PARAMETERS.contains(&name) {
            return Ok(());
        }
        Err(AuthConfigError::invalid(
            key,
            format!(
                "{name:?} cannot be passed to the provider; allowed are {}",
                crate::auth_params::LOGIN_PARAMETERS.join(", ")
            ),
        ))
    };
    let mut login_parameters = Vec::new();
    if let Some(n) = node.child("loginParameters") {
        for (i, name) in n.string_list()?.into_iter().enumerate() {
            allowed(format!("{}[{i}]", n.key), &name)?;
            login_parameters.push(name);
        }
    }
    let mut auth_parameters = BTreeMap::new();
    if let Some(n) = node.child("authParameters") {
        for (name, value) in n.string_map()? {
            let key = format!("{}.{name}", n.key);
            allowed(key.clone(), &name)?;
            crate::auth_params::check_value(&name, &value)
                .map_err(|err| AuthConfigError::invalid(key, err))?;
            auth_parameters.insert(name, value);
        }
    }
    let mut backchannel_logout = BackchannelLogoutConfig::default();
    if let Some(n) = node.child("backchannelLogout") {
        n.check_keys(BACKCHANNEL_KEYS)?;
        backchannel_logout.enabled = n.bool_or("enabled", true)?;
        if let Some(age) = n.child("maxAge") {
            backchannel_logout.max_age = age.as_duration()?;
        }
        if let Some(skew) = n.child("clockSkew") {
            backchannel_logout.clock_skew = skew.as_duration()?;
        }
        if let Some(alg) = n.child("signingAlg") {
            let name = alg.as_string()?;
            if !LOGOUT_TOKEN_ALGS.contains(&name.as_str()) {
                return Err(AuthConfigError::invalid(
                    &alg.key,
                    format!(
                        "{name:?} is not accepted for logout tokens; use one of {}",
                        LOGOUT_TOKEN_ALGS.join(", ")
                    ),
                ));
            }
            backchannel_logout.signing_alg = name;
        }
    }
    Ok(OidcConfig {
        broker,
        client_id,
        client_secret,
        endpoint,
        scopes,
        id_token_claims,
        access_token_claims,
        request_claims,
        enable_offline_token: node.bool_or("enableOfflineToken", true)?,
        enable_end_session_endpoint: node.bool_or("enableEndSessionEndpoint", true)?,
        override_issuer_url,
        state_lifetime,
        login_parameters,
        auth_parameters,
        backchannel_logout,
    })
}

fn parse_http(node: &Node<'_>, broker: String) -> Result<HttpConfig, AuthConfigError> {
    let realm = match node.child("realm") {
        Some(n) => n.as_string()?,
        None => broker.clone(),
    };
    if realm.contains(['"', '\\', '\r', '\n']) {
        return Err(AuthConfigError::invalid(
            node.child_key("realm"),
            "must not contain quotes, backslashes or line breaks",
        ));
    }
    let users = match node.child("users") {
        Some(n) => n
            .string_map()?
            .into_iter()
            .map(|(k, v)| (k, Secret::new(v)))
            .collect(),
        None => BTreeMap::new(),
    };
    Ok(HttpConfig {
        broker,
        realm,
        users,
    })
}

fn parse_fake(node: &Node<'_>, broker: String) -> Result<FakeConfig, AuthConfigError> {
    let mut users = BTreeMap::new();
    if let Some(n) = node.child("userConfig") {
        let Value::Object(map) = n.value else {
            return Err(AuthConfigError::invalid(
                &n.key,
                "must be a map of user name to settings",
            ));
        };
        for (name, value) in map {
            let user = Node {
                key: format!("{}.{name}", n.key),
                value,
            };
            let mut fake = FakeUser::default();
            match value {
                Value::Null => {}
                Value::Object(_) => {
                    user.check_keys(FAKE_USER_KEYS)?;
                    if let Some(p) = user.child("password") {
                        fake.password = Some(Secret::new(p.as_string()?));
                    }
                    if let Some(c) = user.child("claims") {
                        match c.value {
                            Value::Object(claims) => fake.claims = claims.clone(),
                            _ => return Err(AuthConfigError::invalid(&c.key, "must be a map")),
                        }
                    }
                }
                _ => return Err(AuthConfigError::invalid(&user.key, "must be a map")),
            }
            users.insert(name.clone(), fake);
        }
    }
    let field = |name: &str, default: &str| -> Result<String, AuthConfigError> {
        match node.child(name) {
            Some(n) => {
                let value = n.as_string()?;
                if value.is_empty()
                    || !value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                {
                    return Err(AuthConfigError::invalid(
                        &n.key,
                        format!("{value:?} is not a usable form field name"),
                    ));
                }
                Ok(value)
            }
            None => Ok(default.to_owned()),
        }
    };
    Ok(FakeConfig {
        broker,
        users,
        validate_password: node.bool_or("validatePassword", true)?,
        username_field: field("usernameFieldId", "username")?,
        password_field: field("passwordFieldId", "password")?,
        login_template: node
            .child("loginTemplate")
            .map(|n| {
                let text = n.as_string()?;
                crate::template::Template::parse(&text)
                    .map_err(|err| AuthConfigError::invalid(&n.key, err))?;
                Ok::<_, AuthConfigError>(text)
            })
            .transpose()?,
    })
}

/// A value in the config tree with its full key, for error messages.
struct Node<'a> {
    key: String,
    value: &'a Value,
}

impl<'a> Node<'a> {
    fn child_key(&self, name: &str) -> String {
        format!("{}.{name}", self.key)
    }

    /// The child `name`, matched case-insensitively; `None` when absent or null.
    fn child(&self, name: &str) -> Option<Node<'a>> {
        let Value::Object(map) = self.value else {
            return None;
        };
        let value = map.get(name).or_else(|| {
            map.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })?;
        (!value.is_null()).then(|| Node {
            key: self.child_key(name),
            value,
        })
    }

    /// Refuses a key of this map that is not in `known` (compared case-insensitively), with a
    /// suggestion when it looks like a typo of one.
    fn check_keys(&self, known: &[&str]) -> Result<(), AuthConfigError> {
        let Value::Object(map) = self.value else {
            return Ok(());
        };
        for name in map.keys() {
            if known.iter().any(|k| k.eq_ignore_ascii_case(name)) {
                continue;
            }
            let message =
                match flamingo_session::config::read::did_you_mean(name, known.iter().copied()) {
                    Some(close) => format!("unknown key (did you mean {}?)", self.child_key(close)),
                    None => format!(
                        "unknown key; the keys here are {}",
                        known
                            .iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                };
            return Err(AuthConfigError::invalid(self.child_key(name), message));
        }
        Ok(())
    }

    fn required_string(&self, name: &str) -> Result<String, AuthConfigError> {
        match self.child(name) {
            Some(n) => {
                let s = n.as_string()?;
                if s.is_empty() {
                    return Err(AuthConfigError::invalid(n.key, "must not be empty"));
                }
                Ok(s)
            }
            None => Err(AuthConfigError::invalid(
                self.child_key(name),
                "is required",
            )),
        }
    }

    fn required_url(&self, name: &str) -> Result<Url, AuthConfigError> {
        match self.child(name) {
            Some(n) => n.as_url(),
            None => Err(AuthConfigError::invalid(
                self.child_key(name),
                "is required",
            )),
        }
    }

    fn bool_or(&self, name: &str, default: bool) -> Result<bool, AuthConfigError> {
        match self.child(name) {
            Some(n) => as_bool(&n.key, n.value),
            None => Ok(default),
        }
    }

    fn as_string(&self) -> Result<String, AuthConfigError> {
        match self.value {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            _ => Err(AuthConfigError::invalid(&self.key, "must be a string")),
        }
    }

    fn as_url(&self) -> Result<Url, AuthConfigError> {
        let text = self.as_string()?;
        let url = Url::parse(&text).map_err(|err| {
            AuthConfigError::invalid(&self.key, format!("invalid URL {text:?}: {err}"))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(AuthConfigError::invalid(
                &self.key,
                format!("{text:?} is not an http(s) URL"),
            ));
        }
        Ok(url)
    }

    /// An http(s) URL that names only an origin (scheme, host, port).
    fn as_origin(&self) -> Result<Url, AuthConfigError> {
        let url = self.as_url()?;
        if url.path() != "/"
            || url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(AuthConfigError::invalid(
                &self.key,
                format!(
                    "{:?} must be only scheme, host and port, like https://shop.example",
                    url.as_str()
                ),
            ));
        }
        Ok(url)
    }

    fn as_duration(&self) -> Result<Duration, AuthConfigError> {
        let text = self.as_string()?;
        let duration = flamingo_session::config::read::parse_duration(&text).map_err(|_| {
            AuthConfigError::invalid(&self.key, format!("invalid duration {text:?}"))
        })?;
        if duration.is_zero() {
            return Err(AuthConfigError::invalid(
                &self.key,
                "must be longer than zero",
            ));
        }
        Ok(duration)
    }

    fn string_list(&self) -> Result<Vec<String>, AuthConfigError> {
        match self.value {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    Node {
                        key: format!("{}[{i}]", self.key),
                        value: v,
                    }
                    .as_string()
                })
                .collect(),
            // A comma-separated string, as environment variables give lists.
            Value::String(s) => Ok(s
                .split([',', ' '])
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()),
            _ => Err(AuthConfigError::invalid(
                &self.key,
                "must be a list of strings",
            )),
        }
    }

    fn string_map(&self) -> Result<BTreeMap<String, String>, AuthConfigError> {
        let Value::Object(map) = self.value else {
            return Err(AuthConfigError::invalid(
                &self.key,
                "must be a map of strings",
            ));
        };
        map.iter()
            .map(|(k, v)| {
                let n = Node {
                    key: format!("{}.{k}", self.key),
                    value: v,
                };
                Ok((k.clone(), n.as_string()?))
            })
            .collect()
    }
}

fn as_bool(key: &str, value: &Value) -> Result<bool, AuthConfigError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if flamingo_session::config::read::parse_bool(s).is_some() => {
            Ok(flamingo_session::config::read::parse_bool(s) == Some(true))
        }
        other => Err(AuthConfigError::invalid(
            key,
            format!("must be true or false, not {other}"),
        )),
    }
}

/// Looks up a dotted path, matching each segment case-insensitively.
fn path<'a>(root: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(root, |node, segment| {
        let map = node.as_object()?;
        map.get(segment).or_else(|| {
            map.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(segment))
                .map(|(_, v)| v)
        })
    })
}

/// Turns keys like `"core.auth.web.broker"` into nested maps, merging with nested siblings.
fn expand_dotted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = Map::new();
            for (key, child) in map {
                let child = expand_dotted(child);
                let mut segments: Vec<&str> = key.split('.').collect();
                let last = segments.pop().unwrap_or_default();
                let mut target = &mut out;
                for segment in segments {
                    let entry = target
                        .entry(segment.to_owned())
                        .or_insert_with(|| Value::Object(Map::new()));
                    if !entry.is_object() {
                        *entry = Value::Object(Map::new());
                    }
                    target = entry.as_object_mut().expect("made an object above");
                }
                merge(target, last, child);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(expand_dotted).collect()),
        other => other,
    }
}

fn merge(target: &mut Map<String, Value>, key: &str, value: Value) {
    match (target.get_mut(key), value) {
        (Some(Value::Object(existing)), Value::Object(incoming)) => {
            for (k, v) in incoming {
                merge(existing, &k, v);
            }
        }
        (_, value) => {
            target.insert(key.to_owned(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(brokers: Value) -> Result<AuthConfig, AuthConfigError> {
        AuthConfig::from_value(&json!({"core": {"auth": {"web": {"broker": brokers}}}}))
    }

    fn oidc_with(extra: Value) -> Result<AuthConfig, AuthConfigError> {
        let mut broker = json!({
            "broker": "main", "typ": "oidc", "clientID": "c", "clientSecret": "s",
            "endpoint": "https://op.example.com"
        });
        broker
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        parse(json!([broker]))
    }

    #[test]
    fn backchannel_logout_settings_are_strict() {
        let oidc = |extra: Value| match oidc_with(extra).map(|c| c.brokers[0].clone()) {
            Ok(BrokerConfig::Oidc(oidc)) => Ok(oidc.backchannel_logout),
            Ok(_) => panic!("not oidc"),
            Err(err) => Err(err.to_string()),
        };
        assert_eq!(oidc(json!({})).unwrap(), BackchannelLogoutConfig::default());
        let set = oidc(json!({"backchannelLogout": {
            "enabled": false, "maxAge": "5m", "clockSkew": "1s", "signingAlg": "ES256"
        }}))
        .unwrap();
        assert!(!set.enabled);
        assert_eq!(set.max_age, Duration::from_secs(300));
        assert_eq!(set.clock_skew, Duration::from_secs(1));
        assert_eq!(set.signing_alg, "ES256");
        for (extra, message) in [
            (
                json!({"backchannelLogout": {"maxAg": "5m"}}),
                "core.auth.web.broker[0].backchannelLogout.maxAg: unknown key (did you mean \
                 core.auth.web.broker[0].backchannelLogout.maxAge?)",
            ),
            (
                json!({"backchannelLogout": {"signingAlg": "none"}}),
                "core.auth.web.broker[0].backchannelLogout.signingAlg: \"none\" is not accepted",
            ),
            (
                json!({"backchannelLogout": {"signingAlg": "HS256"}}),
                "core.auth.web.broker[0].backchannelLogout.signingAlg: \"HS256\" is not accepted",
            ),
            (
                json!({"backchannelLogout": {"maxAge": "soon"}}),
                "core.auth.web.broker[0].backchannelLogout.maxAge: ",
            ),
        ] {
            let err = oidc(extra).unwrap_err();
            assert!(
                err.starts_with(message),
                "{err:?} does not start with {message:?}"
            );
        }
    }

    #[test]
    fn login_and_auth_parameters_come_from_the_allow_list() {
        let config = oidc_with(json!({
            "loginParameters": ["login_hint", "prompt"],
            "authParameters": {"prompt": "consent", "ui_locales": "de en"},
        }))
        .unwrap();
        let BrokerConfig::Oidc(oidc) = &config.brokers[0] else {
            panic!("not oidc")
        };
        assert_eq!(oidc.login_parameters, ["login_hint", "prompt"]);
        assert_eq!(oidc.auth_parameters["prompt"], "consent");
        for (extra, message) in [
            (
                json!({"loginParameters": ["login_hint", "redirect_uri"]}),
                "core.auth.web.broker[0].loginParameters[1]: \"redirect_uri\" cannot be passed",
            ),
            (
                json!({"authParameters": {"state": "x"}}),
                "core.auth.web.broker[0].authParameters.state: \"state\" cannot be passed",
            ),
            (
                json!({"authParameters": {"prompt": "sometimes"}}),
                "core.auth.web.broker[0].authParameters.prompt: \"sometimes\" is not a prompt value",
            ),
            (
                json!({"loginParameter": ["login_hint"]}),
                "core.auth.web.broker[0].loginParameter: unknown key (did you mean core.auth.web.broker[0].loginParameters?)",
            ),
        ] {
            let err = oidc_with(extra).unwrap_err().to_string();
            assert!(err.starts_with(message), "{err}");
        }
    }

    #[test]
    fn logout_purges_session_is_a_boolean_under_core_auth_web() {
        let read = |value: Value| {
            AuthConfig::from_value(
                &json!({"core": {"auth": {"web": {"logoutPurgesSession": value}}}}),
            )
        };
        assert!(read(json!(true)).unwrap().logout_purges_session);
        assert!(!read(json!("false")).unwrap().logout_purges_session);
        assert!(read(json!("sometimes"))
            .unwrap_err()
            .to_string()
            .starts_with("core.auth.web.logoutPurgesSession: must be true or false"));
    }

    #[test]
    fn refresh_lease_is_a_duration_under_core_auth_web() {
        let read = |value: Value| {
            AuthConfig::from_value(&json!({"core": {"auth": {"web": {"refreshLease": value}}}}))
        };
        assert_eq!(
            read(json!("1500ms")).unwrap().refresh_lease,
            Duration::from_millis(1500)
        );
        assert_eq!(
            AuthConfig::from_value(&json!({})).unwrap().refresh_lease,
            DEFAULT_REFRESH_LEASE
        );
        for bad in ["soon", "0s"] {
            let err = read(json!(bad)).unwrap_err().to_string();
            assert!(err.starts_with("core.auth.web.refreshLease: "), "{err}");
        }
        let typo =
            AuthConfig::from_value(&json!({"core": {"auth": {"web": {"refreshLeas": "2s"}}}}))
                .unwrap_err()
                .to_string();
        assert!(
            typo.contains("did you mean core.auth.web.refreshLease"),
            "{typo}"
        );
    }

    #[test]
    fn oidc_defaults_follow_flamingo() {
        let config = parse(json!([{
            "broker": "main", "typ": "oidc", "clientID": "c", "clientSecret": "s",
            "endpoint": "https://op.example.com"
        }]))
        .unwrap();
        let BrokerConfig::Oidc(oidc) = &config.brokers[0] else {
            panic!("not oidc")
        };
        assert_eq!(oidc.scopes, ["profile", "email"]);
        assert!(oidc.enable_offline_token);
        assert!(oidc.enable_end_session_endpoint);
        assert_eq!(oidc.state_lifetime, Duration::from_secs(1800));
        assert_eq!(oidc.id_token_claims["email"], "email");
        assert!(oidc.override_issuer_url.is_none());
        assert!(oidc.login_parameters.is_empty());
        assert!(
            oidc.auth_parameters.is_empty(),
            "no prompt unless configured"
        );
        assert!(!config.logout_purges_session, "logout keeps the app's data");
        assert!(!config.debug_controller);
        assert!(!format!("{config:?}").contains("\"s\""), "secret in Debug");
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (
                json!([{"broker": "a", "typ": "oidc", "clientSecret": "s", "endpoint": "https://x"}]),
                "core.auth.web.broker[0].clientID: is required",
            ),
            (
                json!([{"broker": "a", "typ": "oidc", "clientID": "c", "clientSecret": "s", "endpoint": "https://x", "stateLifeTime": "soon"}]),
                "core.auth.web.broker[0].stateLifeTime: invalid duration \"soon\"",
            ),
            (
                json!([{"broker": "a", "typ": "oidc", "clientID": "c", "clientSecret": "s", "endpoint": "not a url"}]),
                "core.auth.web.broker[0].endpoint: invalid URL",
            ),
            (
                json!([{"broker": "a", "typ": "fake"}, {"broker": "a", "typ": "http"}]),
                "core.auth.web.broker[1].broker: broker name \"a\" is configured twice",
            ),
            (
                json!([{"typ": "fake"}]),
                "core.auth.web.broker[0].broker: is required",
            ),
            (
                json!([{"broker": "a", "typ": "fake", "validatePassword": "maybe"}]),
                "core.auth.web.broker[0].validatePassword: must be true or false",
            ),
            (json!("nope"), "core.auth.web.broker: must be a list"),
        ];
        for (brokers, expected) in cases {
            let err = parse(brokers).unwrap_err().to_string();
            assert!(
                err.starts_with(expected),
                "{err:?} does not start with {expected:?}"
            );
        }
    }

    #[test]
    fn dotted_and_nested_keys_agree() {
        let dotted = expand_dotted(
            json!({"core.auth.web.broker": [{"broker": "a", "typ": "fake"}], "core": {"auth": {"web": {"debugController": true}}}}),
        );
        let config = AuthConfig::from_value(&dotted).unwrap();
        assert_eq!(config.brokers[0].name(), "a");
        assert!(config.debug_controller);
    }

    #[test]
    fn fake_and_http_settings() {
        let config = parse(json!([
            {"broker": "dev", "typ": "fake", "userConfig": {"alice": {"password": "pw", "claims": {"email": "a@x"}}, "bob": null},
             "validatePassword": "false", "usernameFieldId": "user"},
            {"broker": "basic", "typ": "http", "users": {"admin": "pw"}}
        ]))
        .unwrap();
        let BrokerConfig::Fake(fake) = &config.brokers[0] else {
            panic!()
        };
        assert!(!fake.validate_password);
        assert_eq!(fake.username_field, "user");
        assert_eq!(fake.password_field, "password");
        assert_eq!(
            fake.users["alice"].password.as_ref().unwrap().expose(),
            "pw"
        );
        assert_eq!(fake.users["alice"].claims["email"], "a@x");
        assert!(fake.users["bob"].password.is_none());
        let BrokerConfig::Http(http) = &config.brokers[1] else {
            panic!()
        };
        assert_eq!(http.realm, "basic");
        assert_eq!(http.users["admin"].expose(), "pw");
    }

    #[test]
    fn unknown_keys_are_errors_with_a_suggestion() {
        let cases = [
            (
                json!({"core": {"auth": {"web": {"brokers": []}}}}),
                "core.auth.web.brokers: unknown key (did you mean core.auth.web.broker?)",
            ),
            (
                json!({"core": {"auth": {"web": {"broker": [{"broker": "dev", "typ": "fake", "userConfg": {"alice": {}}}]}}}}),
                "core.auth.web.broker[0].userConfg: unknown key (did you mean \
                 core.auth.web.broker[0].userConfig?)",
            ),
            (
                json!({"core": {"auth": {"web": {"broker": [{"broker": "dev", "typ": "fake", "userConfig": {"alice": {"pasword": "x"}}}]}}}}),
                "core.auth.web.broker[0].userConfig.alice.pasword: unknown key (did you mean \
                 core.auth.web.broker[0].userConfig.alice.password?)",
            ),
            (
                json!({"core": {"auth": {"web": {"broker": [{"broker": "a", "typ": "oidc", "clientID": "c", "clientSecret": "s", "endpoint": "https://x", "claims": {"idTokens": {}}}]}}}}),
                "core.auth.web.broker[0].claims.idTokens: unknown key (did you mean \
                 core.auth.web.broker[0].claims.idToken?)",
            ),
            (
                json!({"core": {"auth": {"web": {"broker": [{"broker": "a", "typ": "http", "userConfig": {}}]}}}}),
                "core.auth.web.broker[0].userConfig: unknown key; the keys here are `broker`, \
                 `typ`, `realm`, `users`",
            ),
            (
                json!({"core": {"auth": {"web": {"httpClient": {"timeout": "1s"}}}}}),
                "core.auth.web.httpClient.timeout: unknown key",
            ),
            (
                json!({"core": {"auth": {"webs": {}}}}),
                "core.auth.webs: unknown key (did you mean core.auth.web?)",
            ),
        ];
        for (tree, expected) in cases {
            let err = AuthConfig::from_value(&tree).unwrap_err().to_string();
            assert!(
                err.starts_with(expected),
                "{err:?} does not start with {expected:?}"
            );
        }
        // Case does not matter, as for every key.
        let config = parse(
            json!([{"broker": "dev", "typ": "FAKE", "USERCONFIG": {"alice": {"PassWord": "pw"}}}]),
        )
        .unwrap();
        let BrokerConfig::Fake(fake) = &config.brokers[0] else {
            panic!()
        };
        assert_eq!(
            fake.users["alice"].password.as_ref().unwrap().expose(),
            "pw"
        );
    }

    #[test]
    fn login_templates_are_checked_at_start_up() {
        let template =
            |t: &str| parse(json!([{"broker": "dev", "typ": "fake", "loginTemplate": t}]));
        assert!(
            template("<form action=\"{{.FormURL}}\">{{ .Message }}{{UsernameID}}</form>").is_ok()
        );
        let err = template("{{.FormUrl}}").unwrap_err().to_string();
        assert!(
            err.starts_with(
                "core.auth.web.broker[0].loginTemplate: unsupported template action {{.FormUrl}}"
            ),
            "{err}"
        );
    }

    #[test]
    fn web_settings_and_their_defaults() {
        let config = AuthConfig::from_value(&json!({})).unwrap();
        assert_eq!(config.base_url, None);
        assert!(config.trusted_proxies.is_empty());
        assert_eq!(config.http_client.connect_timeout, Duration::from_secs(5));
        assert_eq!(config.http_client.request_timeout, Duration::from_secs(30));

        let config = AuthConfig::from_value(&json!({"core": {"auth": {"web": {
            "baseURL": "https://shop.example:8443",
            "trustedProxies": "127.0.0.1, 10.0.0.0/8",
            "httpClient": {"connectTimeout": "250ms", "requestTimeout": "2s"},
        }}}}))
        .unwrap();
        assert_eq!(
            config.base_url.unwrap().as_str(),
            "https://shop.example:8443/"
        );
        assert_eq!(config.trusted_proxies.len(), 2);
        assert!(config.trusted_proxies[1].contains("10.9.8.7".parse().unwrap()));
        assert!(config.trusted_proxies[0].contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!config.trusted_proxies[0].contains("127.0.0.2".parse().unwrap()));
        assert_eq!(
            config.http_client.connect_timeout,
            Duration::from_millis(250)
        );
        assert_eq!(config.http_client.request_timeout, Duration::from_secs(2));

        for (web, expected) in [
            (
                json!({"baseURL": "https://shop.example/app"}),
                "core.auth.web.baseURL: \"https://shop.example/app\" must be only",
            ),
            (
                json!({"baseURL": "ftp://shop.example"}),
                "core.auth.web.baseURL: \"ftp://shop.example\" is not an http(s) URL",
            ),
            (
                json!({"trustedProxies": ["127.0.0.1", "proxy.local"]}),
                "core.auth.web.trustedProxies[1]: \"proxy.local\" is not an IP address",
            ),
            (
                json!({"httpClient": {"requestTimeout": "forever"}}),
                "core.auth.web.httpClient.requestTimeout: invalid duration",
            ),
        ] {
            let err = AuthConfig::from_value(&json!({"core": {"auth": {"web": web}}}))
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(expected),
                "{err:?} does not start with {expected:?}"
            );
        }
    }
}
