//! Token introspection (RFC 7662): the provider says whether a token is `active`, with the
//! broker's client credentials. Answers, active or not, are kept for `introspectionCacheTime`
//! (never past the token's `exp`), keyed by the token's SHA-256, so that a busy API does not
//! ask the provider on every request and the cache holds no usable token.

use std::{collections::HashMap, sync::Mutex, time::Duration};

use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use url::Url;

use super::{jwt::audience_matches, Leeway, Rejection};
use crate::{
    clock::now,
    config::{OAuth2Config, Secret},
};

/// At most this many answers are cached; when full, expired ones go, then all.
const MAX_CACHED: usize = 10_000;

type Verdict = Result<Map<String, Value>, &'static str>;

pub(super) struct Introspector {
    issuer: String,
    audience: Vec<String>,
    endpoint: Url,
    client_id: String,
    client_secret: Secret,
    http: reqwest::Client,
    cache_time: Duration,
    leeway: Leeway,
    /// SHA-256 of the token → (cached until, in Unix seconds; the verdict).
    cache: Mutex<HashMap<[u8; 32], (i64, Verdict)>>,
}

impl Introspector {
    pub(super) fn new(
        config: &OAuth2Config,
        issuer: String,
        endpoint: Url,
        http: reqwest::Client,
    ) -> Self {
        Introspector {
            issuer,
            audience: config.audience.clone(),
            endpoint,
            client_id: config.client_id.clone().unwrap_or_default(),
            client_secret: config
                .client_secret
                .clone()
                .unwrap_or_else(|| Secret::new("")),
            http,
            cache_time: config.introspection_cache_time,
            leeway: Leeway::of(config),
            cache: Mutex::default(),
        }
    }

    /// The token's claims when the provider says it is active (and it passes the local checks).
    pub(super) async fn introspect(&self, token: &str) -> Result<Map<String, Value>, Rejection> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = now();
        if let Some(verdict) = self.cached(&key, now) {
            return verdict.map_err(Rejection::Invalid);
        }
        let answer = self.ask(token).await.map_err(Rejection::Failed)?;
        let verdict = self.judge(answer, now);
        let mut until = now.saturating_add(i64::try_from(self.cache_time.as_secs()).unwrap_or(0));
        if let Ok(claims) = &verdict {
            if let Some(exp) = claims.get("exp").and_then(Value::as_i64) {
                until = until.min(exp);
            }
        }
        self.remember(key, until, verdict.clone(), now);
        verdict.map_err(Rejection::Invalid)
    }

    fn cached(&self, key: &[u8; 32], now: i64) -> Option<Verdict> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match cache.get(key) {
            Some((until, verdict)) if *until > now => Some(verdict.clone()),
            Some(_) => {
                cache.remove(key);
                None
            }
            None => None,
        }
    }

    fn remember(&self, key: [u8; 32], until: i64, verdict: Verdict, now: i64) {
        if until <= now {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED {
            cache.retain(|_, (until, _)| *until > now);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
        }
        cache.insert(key, (until, verdict));
    }

    /// Posts the token to the introspection endpoint (client authentication
    /// `client_secret_basic`, with the credentials form-encoded first as RFC 6749 §2.3.1 says).
    async fn ask(&self, token: &str) -> Result<Map<String, Value>, crate::error::BoxError> {
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .append_pair("token_type_hint", "access_token")
            .finish();
        let response = self
            .http
            .post(self.endpoint.clone())
            .basic_auth(
                encode(&self.client_id),
                Some(encode(self.client_secret.expose())),
            )
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|err| format!("introspection at {}: {}", self.endpoint, err.without_url()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(
                format!("introspection at {} answered HTTP {status}", self.endpoint).into(),
            );
        }
        match response.json::<Value>().await {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(format!(
                "introspection at {} did not answer a JSON object",
                self.endpoint
            )
            .into()),
        }
    }

    /// Whether the answer accepts the token: `active: true`, not expired or early, from this
    /// issuer when it names one, and for one of `audience` when that is configured.
    fn judge(&self, answer: Map<String, Value>, now: i64) -> Verdict {
        if answer.get("active") != Some(&Value::Bool(true)) {
            return Err("the token is not active");
        }
        let time = |name: &str| answer.get(name).and_then(Value::as_i64);
        if time("exp").is_some_and(|exp| self.leeway.expired(exp, now)) {
            return Err("the token expired");
        }
        if time("nbf").is_some_and(|nbf| self.leeway.early(nbf, now)) {
            return Err("the token is not valid yet (nbf)");
        }
        if let Some(iss) = answer.get("iss") {
            if iss.as_str() != Some(self.issuer.as_str()) {
                return Err("the token is from another issuer");
            }
        }
        if !self.audience.is_empty() && !audience_matches(answer.get("aud"), &self.audience) {
            return Err("the token is for another audience");
        }
        Ok(answer)
    }
}
