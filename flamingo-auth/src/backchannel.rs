//! OpenID Connect Back-Channel Logout 1.0: the provider posts a signed logout token to
//! `POST /core/auth/backchannelLogout/{broker}` (form field `logout_token`) and the sessions it
//! names end, on every instance that shares the session store.
//!
//! # What is checked (spec §2.6), in order
//!
//! 1. the token is a compact JWS (an encrypted token is refused), its header is JSON, `alg` is the
//!    broker's `backchannelLogout.signingAlg` (so never `none`, never an HMAC with a guessable
//!    key), no `crit` header, and `typ`, when present, is `logout+jwt` or `JWT`;
//! 2. the signature verifies with one of the provider's published keys (with a `kid`, the key of
//!    that `kid`; an unknown `kid` makes auth fetch the keys again, at most once per
//!    [`jwks_refetch_interval`](crate::AuthBuilder::jwks_refetch_interval));
//! 3. `iss` is the provider's issuer, `aud` holds the broker's `clientID`, `iat` is present and
//!    at most `maxAge` old and at most `clockSkew` in the future, `exp` (when present) has not
//!    passed;
//! 4. `events` is an object whose member `http://schemas.openid.net/event/backchannel-logout`
//!    is a JSON object; `sub` or `sid` (or both) is present; `nonce` is absent; `jti` is present;
//! 5. the `jti` was not seen before, on any instance: it is remembered for `maxAge + clockSkew`
//!    as a lease of the session backend (or, on a backend without leases, in this process).
//!
//! A valid token answers 200, anything else 400 with
//! `{"error":"invalid_request","error_description":"..."}`; both with
//! `Cache-Control: no-store`. The description is a fixed text: nothing of the token is echoed,
//! and tokens are never logged.
//!
//! # Which sessions end
//!
//! - `sub`: the sessions of (broker, `sub`) in the session index; with `sid` too, only those
//!   whose stored ID token has that `sid` (and those whose ID token records no `sid`).
//! - only `sid`: at login, auth records `sid → sub` as a lease
//!   (`bcl-sid:<broker>:<sid>`, held by the subject for the session's `max.lifetime`, else its
//!   `max.age`); the token's `sid` is looked up there, then as above. A `sid` nobody recorded
//!   ends nothing and still answers 200 (the session is already gone).

use std::time::Duration;

use actix_web::{http::header, web, HttpResponse};
use openidconnect::core::CoreJwsSigningAlgorithm;
use serde_json::{Map, Value};
use tracing::Instrument as _;

use crate::{
    auth::Auth,
    broker::{oidc::jwt_payload, Broker, OidcBroker},
    clock::now,
    error::AuthError,
    jws::{b64url, json_object, verify_signature, SignatureError},
    log::Escaped,
    logout_records::{jti_lease, sid_lease},
    session_data::{oidc_session_key, OidcSessionData},
    user_sessions::session_owner,
};

/// The `events` member that makes a JWT a logout token.
const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The longest logout token accepted, in bytes.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// What a valid logout token names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogoutToken {
    pub(crate) sub: Option<String>,
    pub(crate) sid: Option<String>,
    pub(crate) jti: String,
}

/// Why a logout token was refused: the fixed `error_description` of the 400.
type Refusal = &'static str;

/// `POST /core/auth/backchannelLogout/{broker}`.
pub(crate) async fn route(
    auth: web::Data<Auth>,
    broker: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let span = tracing::info_span!("auth.backchannel_logout", broker = %Escaped(&*broker));
    handle(&auth, &broker, &body).instrument(span).await
}

async fn handle(auth: &Auth, broker: &str, body: &[u8]) -> HttpResponse {
    let broker = match auth.broker(broker) {
        Some(Broker::Oidc(b)) if b.config().backchannel_logout.enabled => b.clone(),
        _ => return refuse("no broker here accepts back-channel logout"),
    };
    let mut tokens = url::form_urlencoded::parse(body)
        .filter(|(name, _)| name == "logout_token")
        .map(|(_, value)| value.into_owned());
    let token = match (tokens.next(), tokens.next()) {
        (Some(token), None) => token,
        (None, _) => return refuse("logout_token is missing"),
        (Some(_), Some(_)) => return refuse("logout_token is given more than once"),
    };
    let claims = match verify(&broker, &token).await {
        Ok(claims) => claims,
        Err(reason) => return refuse(reason),
    };
    let settings = &broker.config().backchannel_logout;
    let replay_ttl = settings.max_age + settings.clock_skew;
    let jti_name = jti_lease(broker.name(), &claims.jti);
    let holder = openidconnect::CsrfToken::new_random().secret().clone();
    let first = match auth.directory().leases() {
        Some(leases) => match leases.acquire(&jti_name, &holder, replay_ttl).await {
            Ok(first) => first,
            Err(err) => {
                tracing::error!(error = %Escaped(&err), "back-channel logout: the session store failed");
                return unavailable();
            }
        },
        None => auth.seen_logout_tokens().first_time(&jti_name, replay_ttl),
    };
    if !first {
        return refuse("the logout token was used before (jti replayed)");
    }
    match end_sessions(auth, &broker, &claims).await {
        Ok(ended) => {
            tracing::info!(
                ended,
                by_sub = claims.sub.is_some(),
                by_sid = claims.sid.is_some(),
                "back-channel logout"
            );
            HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish()
        }
        Err(err) => {
            tracing::error!(error = %Escaped(&err), "back-channel logout: ending the sessions failed");
            // Let the provider try again with the same token.
            match auth.directory().leases() {
                Some(leases) => {
                    let _ = leases.release(&jti_name, &holder).await;
                }
                None => auth.seen_logout_tokens().forget(&jti_name),
            }
            unavailable()
        }
    }
}

fn refuse(reason: Refusal) -> HttpResponse {
    tracing::info!(reason, "back-channel logout refused");
    HttpResponse::BadRequest()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({"error": "invalid_request", "error_description": reason}))
}

fn unavailable() -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({"error": "temporarily_unavailable", "error_description": "the session store failed; try again"}))
}

/// Checks a logout token of `broker` (see the [module documentation](self)) but its `jti`.
async fn verify(broker: &OidcBroker, token: &str) -> Result<LogoutToken, Refusal> {
    if token.len() > MAX_TOKEN_LEN {
        return Err("logout_token is too long");
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, signature] = parts[..] else {
        return Err(if parts.len() == 5 {
            "encrypted logout tokens are not supported"
        } else {
            "logout_token is not a compact JWS"
        });
    };
    let header = json_object(header).ok_or("the JOSE header is not a JSON object")?;
    let settings = &broker.config().backchannel_logout;
    let (alg, kid) = check_header(&header, &settings.signing_alg)?;
    let signature = b64url(signature).ok_or("the signature is not base64url")?;
    let input = &token.as_bytes()[..header_and_payload_len(token)];
    let (keys, issuer) = broker.keys_and_issuer();
    let checked = match verify_signature(&keys, &alg, kid.as_deref(), input, &signature) {
        Err(SignatureError::NoKey) if broker.refetch_keys().await => {
            let (keys, _) = broker.keys_and_issuer();
            verify_signature(&keys, &alg, kid.as_deref(), input, &signature)
        }
        other => other,
    };
    match checked {
        Ok(()) => {}
        Err(SignatureError::NoKey) => return Err("no key of the provider matches the token"),
        Err(SignatureError::Bad) => return Err("the signature does not verify"),
    }
    let claims = json_object(payload).ok_or("the payload is not a JSON object")?;
    check_claims(
        &claims,
        &Expected {
            issuer: &issuer,
            client_id: &broker.config().client_id,
            max_age: settings.max_age,
            clock_skew: settings.clock_skew,
        },
        now(),
    )
}

/// `header.payload` of a compact JWS: what its signature covers.
fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(token.len())
}

/// The algorithm and `kid` of a JOSE header, when `alg` is the expected one.
fn check_header(
    header: &Map<String, Value>,
    expected_alg: &str,
) -> Result<(CoreJwsSigningAlgorithm, Option<String>), Refusal> {
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or("the JOSE header has no alg")?;
    if alg.eq_ignore_ascii_case("none") {
        return Err("unsigned logout tokens (alg none) are refused");
    }
    if alg != expected_alg {
        return Err("the logout token is signed with another algorithm than expected");
    }
    if header.contains_key("crit") {
        return Err("the JOSE header has crit parameters");
    }
    if let Some(typ) = header.get("typ") {
        let typ = typ
            .as_str()
            .ok_or("typ is not a string")?
            .to_ascii_lowercase();
        let typ = typ.strip_prefix("application/").unwrap_or(&typ);
        if typ != "logout+jwt" && typ != "jwt" {
            return Err("typ is neither logout+jwt nor JWT");
        }
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err("kid is not a string"),
    };
    let alg = serde_json::from_value(Value::String(alg.to_owned()))
        .map_err(|_| "the algorithm is unknown")?;
    Ok((alg, kid))
}

/// What the claims of a logout token are checked against.
struct Expected<'a> {
    issuer: &'a str,
    client_id: &'a str,
    max_age: Duration,
    clock_skew: Duration,
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn non_empty_string<'a>(
    claims: &'a Map<String, Value>,
    name: &str,
    refusal: Refusal,
) -> Result<Option<&'a str>, Refusal> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
        Some(_) => Err(refusal),
    }
}

/// Checks the claims of a (signature-checked) logout token at time `now` (Unix seconds).
fn check_claims(
    claims: &Map<String, Value>,
    expected: &Expected<'_>,
    now: i64,
) -> Result<LogoutToken, Refusal> {
    if claims.get("iss").and_then(Value::as_str) != Some(expected.issuer) {
        return Err("iss is not the provider's issuer");
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == expected.client_id,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(expected.client_id)),
        _ => false,
    };
    if !audience_ok {
        return Err("aud does not name this client");
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or("iat is missing or not a number")?;
    if iat > now.saturating_add(secs(expected.clock_skew)) {
        return Err("iat is in the future");
    }
    if now.saturating_sub(iat) > secs(expected.max_age) {
        return Err("the logout token is too old (iat)");
    }
    if let Some(exp) = claims.get("exp") {
        let exp = exp.as_i64().ok_or("exp is not a number")?;
        if exp.saturating_add(secs(expected.clock_skew)) < now {
            return Err("the logout token expired (exp)");
        }
    }
    let event = claims
        .get("events")
        .ok_or("events is missing")?
        .as_object()
        .ok_or("events is not a JSON object")?
        .get(LOGOUT_EVENT)
        .ok_or("events has no back-channel logout event")?;
    if !event.is_object() {
        return Err("the back-channel logout event is not a JSON object");
    }
    if claims.contains_key("nonce") {
        return Err("a logout token must not contain a nonce");
    }
    let sub = non_empty_string(claims, "sub", "sub is not a non-empty string")?;
    let sid = non_empty_string(claims, "sid", "sid is not a non-empty string")?;
    if sub.is_none() && sid.is_none() {
        return Err("the logout token has neither sub nor sid");
    }
    let jti = non_empty_string(claims, "jti", "jti is not a non-empty string")?
        .ok_or("jti is missing")?;
    Ok(LogoutToken {
        sub: sub.map(str::to_owned),
        sid: sid.map(str::to_owned),
        jti: jti.to_owned(),
    })
}

/// Ends the sessions `token` names (see the [module documentation](self)); answers how many.
async fn end_sessions(
    auth: &Auth,
    broker: &OidcBroker,
    token: &LogoutToken,
) -> Result<usize, AuthError> {
    let directory = auth.directory();
    let subject = match (&token.sub, &token.sid) {
        (Some(sub), _) => sub.clone(),
        (None, Some(sid)) => {
            let Some(leases) = directory.leases() else {
                tracing::warn!("a sid-only logout token, but the session backend has no leases to find its subject");
                return Ok(0);
            };
            match leases
                .holder(&sid_lease(broker.name(), sid))
                .await
                .map_err(flamingo_session::DirectoryError::from)?
            {
                Some(subject) => subject,
                None => return Ok(0),
            }
        }
        (None, None) => return Ok(0),
    };
    let Ok(owner) = session_owner(broker.name(), &subject) else {
        return Ok(0);
    };
    let Some(sid) = &token.sid else {
        return Ok(directory.end_all(&owner).await?);
    };
    let key = oidc_session_key(broker.name());
    let mut ended = 0;
    for session in directory.list(&owner).await? {
        let stored = auth
            .repository()
            .load(&session.id)
            .await
            .map_err(flamingo_session::DirectoryError::from)?;
        let Some(stored) = stored else { continue };
        let stored_sid = stored
            .load::<OidcSessionData>(&key)
            .ok()
            .flatten()
            .and_then(|data| jwt_payload(&data.raw_id_token))
            .and_then(|claims| claims.get("sid").and_then(Value::as_str).map(str::to_owned));
        // A session whose ID token records no sid cannot be told apart: it ends.
        if stored_sid.is_none_or(|s| s == *sid)
            && directory.end_by_hash(&owner, &session.id.hash()).await?
        {
            ended += 1;
        }
    }
    if let Some(leases) = directory.leases() {
        let _ = leases
            .release(&sid_lease(broker.name(), sid), &subject)
            .await;
    }
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn expected() -> Expected<'static> {
        Expected {
            issuer: "https://op.example",
            client_id: "app",
            max_age: Duration::from_secs(120),
            clock_skew: Duration::from_secs(30),
        }
    }

    fn valid() -> Value {
        json!({
            "iss": "https://op.example", "aud": ["other", "app"], "iat": NOW - 5, "exp": NOW + 115,
            "jti": "j-1", "sub": "alice", "sid": "s-1",
            "events": { LOGOUT_EVENT: {} },
        })
    }

    fn check(claims: Value) -> Result<LogoutToken, Refusal> {
        check_claims(claims.as_object().unwrap(), &expected(), NOW)
    }

    fn with(change: impl FnOnce(&mut Map<String, Value>)) -> Result<LogoutToken, Refusal> {
        let mut claims = valid();
        change(claims.as_object_mut().unwrap());
        check(claims)
    }

    #[test]
    fn a_valid_token_names_its_sub_sid_and_jti() {
        assert_eq!(
            check(valid()),
            Ok(LogoutToken {
                sub: Some("alice".into()),
                sid: Some("s-1".into()),
                jti: "j-1".into()
            })
        );
        assert!(with(|c| {
            c.remove("sub");
        })
        .is_ok());
        assert!(with(|c| {
            c.remove("sid");
        })
        .is_ok());
        assert!(with(|c| {
            c.remove("exp");
        })
        .is_ok());
        assert!(with(|c| {
            c.insert("aud".into(), json!("app"));
        })
        .is_ok());
        // Within the clock skew.
        assert!(with(|c| {
            c.insert("iat".into(), json!(NOW + 30));
        })
        .is_ok());
    }

    #[test]
    fn every_rule_refuses_with_its_own_reason() {
        type Change = Box<dyn FnOnce(&mut Map<String, Value>)>;
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|c| {
                    c.insert("iss".into(), json!("https://evil.example"));
                }),
                "iss is not the provider's issuer",
            ),
            (
                Box::new(|c| {
                    c.insert("aud".into(), json!("other"));
                }),
                "aud does not name this client",
            ),
            (
                Box::new(|c| {
                    c.remove("aud");
                }),
                "aud does not name this client",
            ),
            (
                Box::new(|c| {
                    c.remove("iat");
                }),
                "iat is missing or not a number",
            ),
            (
                Box::new(|c| {
                    c.insert("iat".into(), json!(NOW - 121));
                }),
                "the logout token is too old (iat)",
            ),
            (
                Box::new(|c| {
                    c.insert("iat".into(), json!(NOW + 31));
                }),
                "iat is in the future",
            ),
            (
                Box::new(|c| {
                    c.insert("exp".into(), json!(NOW - 31));
                }),
                "the logout token expired (exp)",
            ),
            (
                Box::new(|c| {
                    c.remove("events");
                }),
                "events is missing",
            ),
            (
                Box::new(|c| {
                    c.insert("events".into(), json!("x"));
                }),
                "events is not a JSON object",
            ),
            (
                Box::new(|c| {
                    c.insert(
                        "events".into(),
                        json!({"http://schemas.openid.net/event/other": {}}),
                    );
                }),
                "events has no back-channel logout event",
            ),
            (
                Box::new(|c| {
                    c.insert("events".into(), json!({ LOGOUT_EVENT: "yes" }));
                }),
                "the back-channel logout event is not a JSON object",
            ),
            (
                Box::new(|c| {
                    c.insert("nonce".into(), json!("n"));
                }),
                "a logout token must not contain a nonce",
            ),
            (
                Box::new(|c| {
                    c.remove("sub");
                    c.remove("sid");
                }),
                "the logout token has neither sub nor sid",
            ),
            (
                Box::new(|c| {
                    c.insert("sub".into(), json!(""));
                }),
                "sub is not a non-empty string",
            ),
            (
                Box::new(|c| {
                    c.remove("jti");
                }),
                "jti is missing",
            ),
        ];
        for (change, reason) in cases {
            assert_eq!(with(change), Err(reason));
        }
    }

    #[test]
    fn the_header_must_name_the_expected_algorithm() {
        let header = |v: Value| v.as_object().unwrap().clone();
        assert!(check_header(&header(json!({"alg": "RS256", "kid": "k"})), "RS256").is_ok());
        assert!(check_header(
            &header(json!({"alg": "RS256", "typ": "logout+jwt"})),
            "RS256"
        )
        .is_ok());
        for (h, reason) in [
            (
                json!({"alg": "none"}),
                "unsigned logout tokens (alg none) are refused",
            ),
            (
                json!({"alg": "NONE"}),
                "unsigned logout tokens (alg none) are refused",
            ),
            (
                json!({"alg": "HS256"}),
                "the logout token is signed with another algorithm than expected",
            ),
            (
                json!({"alg": "RS512"}),
                "the logout token is signed with another algorithm than expected",
            ),
            (json!({}), "the JOSE header has no alg"),
            (
                json!({"alg": "RS256", "crit": ["exp"]}),
                "the JOSE header has crit parameters",
            ),
            (
                json!({"alg": "RS256", "typ": "at+jwt"}),
                "typ is neither logout+jwt nor JWT",
            ),
            (json!({"alg": "RS256", "kid": 7}), "kid is not a string"),
        ] {
            assert_eq!(check_header(&header(h), "RS256").map(|_| ()), Err(reason));
        }
    }
}
