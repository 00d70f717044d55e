//! JWT access tokens (RFC 9068) checked against the provider's keys: the signature with a key
//! of the JWKS (fetched again, rate-limited, when a token names a `kid` the app does not know),
//! an algorithm from the allow-list, `iss`, `aud`, `exp` and `nbf`.
//!
//! The signature is checked with openidconnect's JSON Web Keys (RSA, RSA-PSS, ECDSA, EdDSA);
//! the claims are checked here, since openidconnect's verifier is for ID tokens (it requires
//! `iat` and `sub` and checks the audience against the client).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use openidconnect::{
    core::{CoreJsonWebKey, CoreJwsSigningAlgorithm},
    JsonWebKeySet, JsonWebKeySetUrl,
};
use serde_json::{Map, Value};
use url::Url;

use super::{Leeway, Rejection};
use crate::{
    clock::now,
    config::OAuth2Config,
    error::BoxError,
    jws::{b64url, json_object, verify_signature, SignatureError},
    log::Escaped,
};

type Jwks = JsonWebKeySet<CoreJsonWebKey>;

pub(super) struct JwtVerifier {
    broker: String,
    issuer: String,
    audience: Vec<String>,
    algorithms: Vec<CoreJwsSigningAlgorithm>,
    jwks_uri: JsonWebKeySetUrl,
    http: reqwest::Client,
    keys: ArcSwap<Jwks>,
    /// When the keys were last fetched again because of an unknown `kid`.
    last_refetch: tokio::sync::Mutex<Option<Instant>>,
    refetch_interval: Duration,
    leeway: Leeway,
}

impl JwtVerifier {
    /// Fetches the keys once.
    pub(super) async fn new(
        config: &OAuth2Config,
        issuer: String,
        audience: Vec<String>,
        jwks_uri: Url,
        http: reqwest::Client,
        refetch_interval: Duration,
    ) -> Result<Self, BoxError> {
        let algorithms = config
            .algorithms
            .iter()
            .map(|alg| serde_json::from_value(Value::String(alg.clone())))
            .collect::<Result<Vec<CoreJwsSigningAlgorithm>, _>>()
            .map_err(|err| format!("algorithms: {err}"))?;
        let jwks_uri = JsonWebKeySetUrl::from_url(jwks_uri);
        let keys = fetch(&jwks_uri, &http).await?;
        Ok(JwtVerifier {
            broker: config.broker.clone(),
            issuer,
            audience,
            algorithms,
            jwks_uri,
            http,
            keys: ArcSwap::from_pointee(keys),
            last_refetch: tokio::sync::Mutex::new(None),
            refetch_interval,
            leeway: Leeway::of(config),
        })
    }

    /// The token's claims when it passes every check.
    pub(super) async fn verify(&self, token: &str) -> Result<Map<String, Value>, Rejection> {
        let jws = Jws::parse(token).ok_or(Rejection::Invalid("not a signed JWT"))?;
        let alg = self.algorithm(&jws.header)?;
        let kid = jws.header.get("kid").and_then(Value::as_str);
        let mut checked = check_signature(&self.keys.load(), &jws, &alg, kid);
        if matches!(checked, Err(Rejection::Invalid(NO_KEY)))
            && kid.is_some()
            && self.refetch().await
        {
            checked = check_signature(&self.keys.load(), &jws, &alg, kid);
        }
        checked?;
        self.check_claims(&jws.claims)?;
        Ok(jws.claims)
    }

    /// The header's `alg`, when the allow-list has it (never `none`, never an HMAC).
    fn algorithm(&self, header: &Map<String, Value>) -> Result<CoreJwsSigningAlgorithm, Rejection> {
        if header.contains_key("crit") {
            return Err(Rejection::Invalid("the JWT has critical header parameters"));
        }
        let alg: CoreJwsSigningAlgorithm = header
            .get("alg")
            .cloned()
            .and_then(|alg| serde_json::from_value(alg).ok())
            .ok_or(Rejection::Invalid("the JWT names no known algorithm"))?;
        if !self.algorithms.contains(&alg) {
            return Err(Rejection::Invalid("the JWT's algorithm is not allowed"));
        }
        Ok(alg)
    }

    fn check_claims(&self, claims: &Map<String, Value>) -> Result<(), Rejection> {
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(Rejection::Invalid("the token is from another issuer"));
        }
        let now = now();
        let time = |name: &str| claims.get(name).and_then(Value::as_i64);
        match time("exp") {
            None => return Err(Rejection::Invalid("the token has no exp")),
            Some(exp) if self.leeway.expired(exp, now) => {
                return Err(Rejection::Invalid("the token expired"))
            }
            Some(_) => {}
        }
        if time("nbf").is_some_and(|nbf| self.leeway.early(nbf, now)) {
            return Err(Rejection::Invalid("the token is not valid yet (nbf)"));
        }
        if claims.contains_key("nbf") && time("nbf").is_none() {
            return Err(Rejection::Invalid("the token's nbf is not a number"));
        }
        if !audience_matches(claims.get("aud"), &self.audience) {
            return Err(Rejection::Invalid("the token is for another audience"));
        }
        Ok(())
    }

    /// Fetches the keys again, at most once per `refetch_interval`. Returns whether new keys
    /// were loaded.
    async fn refetch(&self) -> bool {
        let mut last = self.last_refetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.refetch_interval) {
            tracing::debug!(broker = %self.broker, "unknown signing key; refetch is rate-limited");
            return false;
        }
        *last = Some(Instant::now());
        match fetch(&self.jwks_uri, &self.http).await {
            Ok(keys) => {
                tracing::info!(broker = %self.broker, "unknown signing key: provider keys fetched again");
                self.keys.store(Arc::new(keys));
                true
            }
            Err(err) => {
                tracing::warn!(broker = %self.broker, error = %Escaped(&err), "refetching the provider keys failed");
                false
            }
        }
    }
}

/// Whether `aud` (a string or a list of strings) names one of `accepted`.
pub(super) fn audience_matches(aud: Option<&Value>, accepted: &[String]) -> bool {
    let named = |s: &str| accepted.iter().any(|a| a == s);
    match aud {
        Some(Value::String(s)) => named(s),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(named),
        _ => false,
    }
}

const NO_KEY: &str = "no key of the provider matches the JWT";

fn check_signature(
    keys: &Jwks,
    jws: &Jws<'_>,
    alg: &CoreJwsSigningAlgorithm,
    kid: Option<&str>,
) -> Result<(), Rejection> {
    verify_signature(keys, alg, kid, jws.signing_input.as_bytes(), &jws.signature).map_err(|err| {
        match err {
            SignatureError::NoKey => Rejection::Invalid(NO_KEY),
            SignatureError::Bad => Rejection::Invalid("the JWT's signature is wrong"),
        }
    })
}

/// A compact JWS, decoded but not checked.
struct Jws<'a> {
    signing_input: &'a str,
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signature: Vec<u8>,
}

impl<'a> Jws<'a> {
    fn parse(token: &'a str) -> Option<Self> {
        let mut parts = token.split('.');
        let (header, payload, signature, None) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next())
        else {
            return None;
        };
        Some(Jws {
            signing_input: &token[..header.len() + 1 + payload.len()],
            header: json_object(header)?,
            claims: json_object(payload)?,
            signature: b64url(signature).filter(|s| !s.is_empty())?,
        })
    }
}

async fn fetch(url: &JsonWebKeySetUrl, http: &reqwest::Client) -> Result<Jwks, BoxError> {
    JsonWebKeySet::fetch_async(url, http)
        .await
        .map_err(|err| format!("fetching the keys at {}: {err}", url.as_str()).into())
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use serde_json::json;

    use super::*;

    #[test]
    fn audience_is_a_string_or_a_list() {
        let accepted = ["https://api.example".to_owned()];
        assert!(audience_matches(
            Some(&json!("https://api.example")),
            &accepted
        ));
        assert!(audience_matches(
            Some(&json!(["other", "https://api.example"])),
            &accepted
        ));
        assert!(!audience_matches(Some(&json!("other")), &accepted));
        assert!(!audience_matches(None, &accepted));
        assert!(!audience_matches(
            Some(&json!(["https://api.example"])),
            &[]
        ));
    }

    #[test]
    fn only_compact_jws_parse() {
        let b64 = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let token = format!(
            "{}.{}.c2ln",
            b64(json!({"alg": "RS256"})),
            b64(json!({"sub": "a"}))
        );
        let jws = Jws::parse(&token).unwrap();
        assert_eq!(jws.claims["sub"], "a");
        assert_eq!(jws.signature, b"sig");
        assert!(Jws::parse(&format!("{token}.x")).is_none());
        assert!(Jws::parse("a.b").is_none());
        assert!(Jws::parse(&format!("{}.{}.", b64(json!({})), b64(json!({})))).is_none());
        assert!(Jws::parse(&format!("{}.{}.c2ln", b64(json!([])), b64(json!({})))).is_none());
    }
}
