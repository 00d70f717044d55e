//! `typ: oauth2`: a broker that authenticates API requests by their bearer access token.

use std::{collections::BTreeMap, time::Duration};

use url::Url;

use super::{Node, Secret};
use crate::error::AuthConfigError;

/// The keys of an `oauth2` broker entry.
pub(super) const OAUTH2_KEYS: &[&str] = &[
    "broker",
    "typ",
    "endpoint",
    "overrideIssuerURL",
    "verification",
    "audience",
    "algorithms",
    "clientID",
    "clientSecret",
    "claims",
    "introspectionCacheTime",
    "clockSkew",
];

/// The signature algorithms an `oauth2` broker may accept: the asymmetric ones (a provider's
/// public keys cannot check an HMAC, and `none` is never a signature).
pub const OAUTH2_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// How an `oauth2` broker checks a bearer access token (`verification`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenVerification {
    /// `jwt`: the token is a JWT (RFC 9068), checked against the provider's keys (JWKS):
    /// signature, `iss`, `aud`, `exp`, `nbf` and the algorithm allow-list.
    Jwt,
    /// `introspection`: the provider is asked (RFC 7662) with the broker's client credentials;
    /// answers are cached for `introspectionCacheTime`.
    Introspection,
}

/// An `oauth2` broker: the API requests' `Authorization: Bearer <token>` (RFC 6750), checked
/// as a JWT or by introspection. It has no login: the client gets its token elsewhere.
///
/// ```yaml
/// core.auth.web.broker:
///   - broker: api
///     typ: oauth2
///     endpoint: https://accounts.example.com     # the issuer; discovery starts here
///     verification: jwt                          # or introspection
///     audience: [https://api.example.com]        # jwt: default [clientID]
///     algorithms: [RS256, ES256]                 # default: every asymmetric one
///     clientID: my-api                           # introspection: required
///     clientSecret: my-api-secret                # introspection: required
///     claims: { name: name, email: email, groups: groups }
///     introspectionCacheTime: 30s
///     clockSkew: 0s                              # leeway for exp and nbf
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OAuth2Config {
    /// `broker`.
    pub broker: String,
    /// `endpoint`: the issuer URL, where discovery starts (`/.well-known/openid-configuration`,
    /// else `/.well-known/oauth-authorization-server`). Required.
    pub endpoint: Url,
    /// `overrideIssuerURL`: the issuer expected in the metadata and the tokens when it differs
    /// from `endpoint`. Default: unset.
    pub override_issuer_url: Option<Url>,
    /// `verification`: `jwt` or `introspection`. Default: `jwt`.
    pub verification: TokenVerification,
    /// `audience`: the `aud` values accepted; a token must name one of them. Default: the
    /// `clientID` for `jwt` (one of the two is required then); for `introspection` no check
    /// unless set.
    pub audience: Vec<String>,
    /// `algorithms`: the JWS algorithms accepted, from [`OAUTH2_ALGORITHMS`]. Default: all of
    /// them (never `none` or an HMAC).
    pub algorithms: Vec<String>,
    /// `clientID`: the API's client at the provider. Required for `introspection`.
    pub client_id: Option<String>,
    /// `clientSecret`: its secret. Required for `introspection`.
    pub client_secret: Option<Secret>,
    /// `claims`: user field → claim of the token (or of the introspection answer), as for
    /// `oidc`'s `claims.idToken` (`"a;b"` falls back from `a` to `b`). Default:
    /// `{sub: sub, email: email, name: name}`; configured entries are added to it.
    pub claims: BTreeMap<String, String>,
    /// `introspectionCacheTime`: how long an introspection answer is reused (never past the
    /// token's `exp`). Default: 30 s.
    pub introspection_cache_time: Duration,
    /// `clockSkew`: how far `exp` and `nbf` may be off for clocks that differ between the
    /// provider and this app (RFC 9068 allows "a reasonable leeway"); at most 5 minutes.
    /// Default: `0s`, checked exactly.
    pub clock_skew: Duration,
}

/// The largest `clockSkew`: more would keep tokens alive well past their `exp`.
const MAX_CLOCK_SKEW: Duration = Duration::from_secs(300);

pub(super) fn parse(node: &Node<'_>, broker: String) -> Result<OAuth2Config, AuthConfigError> {
    let endpoint = node.required_url("endpoint")?;
    let override_issuer_url = match node.child("overrideIssuerURL") {
        Some(n) if n.as_string()?.is_empty() => None,
        Some(n) => Some(n.as_url()?),
        None => None,
    };
    let verification = match node.child("verification") {
        None => TokenVerification::Jwt,
        Some(n) => match n.as_string()?.to_ascii_lowercase().as_str() {
            "jwt" => TokenVerification::Jwt,
            "introspection" => TokenVerification::Introspection,
            other => {
                return Err(AuthConfigError::invalid(
                    n.key,
                    format!("{other:?} is not a verification; expected jwt or introspection"),
                ))
            }
        },
    };
    let optional = |name: &str| -> Result<Option<String>, AuthConfigError> {
        Ok(node
            .child(name)
            .map(|n| n.as_string())
            .transpose()?
            .filter(|s| !s.is_empty()))
    };
    let client_id = optional("clientID")?;
    let client_secret = optional("clientSecret")?.map(Secret::new);
    let audience = match node.child("audience") {
        Some(n) => n.string_list()?,
        None => Vec::new(),
    };
    match verification {
        TokenVerification::Jwt if audience.is_empty() && client_id.is_none() => {
            return Err(AuthConfigError::invalid(
                node.child_key("audience"),
                "is required for verification: jwt (or set clientID): a token for another API \
                 must not pass",
            ))
        }
        TokenVerification::Introspection if client_id.is_none() => {
            return Err(AuthConfigError::invalid(
                node.child_key("clientID"),
                "is required for verification: introspection",
            ))
        }
        TokenVerification::Introspection if client_secret.is_none() => {
            return Err(AuthConfigError::invalid(
                node.child_key("clientSecret"),
                "is required for verification: introspection",
            ))
        }
        _ => {}
    }
    let algorithms = match node.child("algorithms") {
        None => OAUTH2_ALGORITHMS.iter().map(|a| (*a).to_owned()).collect(),
        Some(n) => {
            let list = n.string_list()?;
            for (i, alg) in list.iter().enumerate() {
                if !OAUTH2_ALGORITHMS.contains(&alg.as_str()) {
                    return Err(AuthConfigError::invalid(
                        format!("{}[{i}]", n.key),
                        format!(
                            "{alg:?} is not accepted; allowed are {} (a provider's public keys \
                             cannot check an HMAC, and `none` is no signature)",
                            OAUTH2_ALGORITHMS.join(", ")
                        ),
                    ));
                }
            }
            if list.is_empty() {
                return Err(AuthConfigError::invalid(n.key, "must name an algorithm"));
            }
            list
        }
    };
    let mut claims: BTreeMap<String, String> =
        [("sub", "sub"), ("email", "email"), ("name", "name")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
    if let Some(n) = node.child("claims") {
        claims.extend(n.string_map()?);
    }
    let introspection_cache_time = match node.child("introspectionCacheTime") {
        Some(n) => n.as_duration()?,
        None => Duration::from_secs(30),
    };
    let clock_skew = match node.child("clockSkew") {
        Some(n) => {
            let skew = n.as_duration()?;
            if skew > MAX_CLOCK_SKEW {
                return Err(AuthConfigError::invalid(
                    n.key,
                    format!(
                        "{skew:?} is more than the {MAX_CLOCK_SKEW:?} a token may be off; fix \
                         the clocks (NTP) instead"
                    ),
                ));
            }
            skew
        }
        None => Duration::ZERO,
    };
    Ok(OAuth2Config {
        broker,
        endpoint,
        override_issuer_url,
        verification,
        audience,
        algorithms,
        client_id,
        client_secret,
        claims,
        introspection_cache_time,
        clock_skew,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::config::{AuthConfig, BrokerConfig};

    fn oauth2(extra: Value) -> Result<OAuth2Config, AuthConfigError> {
        let mut broker =
            json!({"broker": "api", "typ": "oauth2", "endpoint": "https://op.example"});
        broker
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let config =
            AuthConfig::from_value(&json!({"core": {"auth": {"web": {"broker": [broker]}}}}))?;
        match config.brokers.into_iter().next() {
            Some(BrokerConfig::OAuth2(c)) => Ok(c),
            other => panic!("not oauth2: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_safe() {
        let c = oauth2(json!({"clientID": "api"})).unwrap();
        assert_eq!(c.verification, TokenVerification::Jwt);
        assert!(c.audience.is_empty());
        assert_eq!(c.algorithms.len(), OAUTH2_ALGORITHMS.len());
        assert!(!c
            .algorithms
            .iter()
            .any(|a| a.starts_with("HS") || a == "none"));
        assert_eq!(c.claims["sub"], "sub");
        assert_eq!(c.introspection_cache_time, Duration::from_secs(30));
        assert_eq!(c.clock_skew, Duration::ZERO);
        let c = oauth2(json!({"clientID": "api", "clockSkew": "30s"})).unwrap();
        assert_eq!(c.clock_skew, Duration::from_secs(30));
    }

    #[test]
    fn errors_name_the_key() {
        for (extra, expected) in [
            (
                json!({}),
                "core.auth.web.broker[0].audience: is required for verification: jwt",
            ),
            (
                json!({"audience": "a", "algorithms": ["RS256", "HS256"]}),
                "core.auth.web.broker[0].algorithms[1]: \"HS256\" is not accepted",
            ),
            (
                json!({"audience": "a", "algorithms": ["none"]}),
                "core.auth.web.broker[0].algorithms[0]: \"none\" is not accepted",
            ),
            (
                json!({"verification": "introspection", "clientID": "api"}),
                "core.auth.web.broker[0].clientSecret: is required for verification: introspection",
            ),
            (
                json!({"verification": "magic"}),
                "core.auth.web.broker[0].verification: \"magic\" is not a verification",
            ),
            (
                json!({"audience": "a", "introspectionCacheTime": "soon"}),
                "core.auth.web.broker[0].introspectionCacheTime: invalid duration",
            ),
            (
                json!({"audience": "a", "clockSkew": "10m"}),
                "core.auth.web.broker[0].clockSkew: 600s is more than the 300s a token may be off",
            ),
            (
                json!({"audience": "a", "audiences": ["b"]}),
                "core.auth.web.broker[0].audiences: unknown key (did you mean \
                 core.auth.web.broker[0].audience?)",
            ),
        ] {
            let err = oauth2(extra).unwrap_err().to_string();
            assert!(
                err.starts_with(expected),
                "{err:?} does not start with {expected:?}"
            );
        }
    }

    #[test]
    fn secret_is_not_in_debug() {
        let c = oauth2(
            json!({"verification": "introspection", "clientID": "api", "clientSecret": "hunter2"}),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
