//! The `oauth2` broker: API requests authenticated by their bearer access token (RFC 6750),
//! checked as a JWT against the provider's keys ([`jwt`]) or by token introspection
//! ([`introspection`]). It identifies; it has no login, callback or logout.
//!
//! A request without `Authorization: Bearer` is nobody's, for this broker. A request whose
//! token fails is marked ([`BearerRejected`] in its extensions) so that the extractors answer
//! 401 with `WWW-Authenticate: Bearer error="invalid_token"` instead of treating it as a guest.
//! The token itself is never logged, shown or kept (the introspection cache keys on its
//! SHA-256); why it failed is logged at debug level.

mod discovery;
mod introspection;
mod jwt;

use actix_web::{http::header, HttpMessage as _, HttpRequest};

use crate::{
    config::{OAuth2Config, TokenVerification},
    error::{AuthConfigError, AuthError, BoxError},
    identity::{Identity, IdentityKind},
    log::Escaped,
    user::map_claims,
};

use self::{introspection::Introspector, jwt::JwtVerifier};
use super::{Ctx, LoginStep, RetryPolicy};
use serde_json::{Map, Value};

/// Why a token was not accepted.
#[derive(Debug)]
pub(crate) enum Rejection {
    /// The token is not good (expired, wrong audience, bad signature, inactive...): 401.
    Invalid(&'static str),
    /// The provider could not be asked (keys or introspection unreachable).
    Failed(BoxError),
}

/// `clockSkew`: the leeway of a token's `exp` and `nbf`, the same for JWTs and introspection
/// answers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Leeway(i64);

impl Leeway {
    pub(super) fn of(config: &OAuth2Config) -> Leeway {
        Leeway(i64::try_from(config.clock_skew.as_secs()).unwrap_or(i64::MAX))
    }

    /// Whether a token with this `exp` has expired at `now` (Unix seconds).
    pub(super) fn expired(self, exp: i64, now: i64) -> bool {
        now >= exp.saturating_add(self.0)
    }

    /// Whether a token with this `nbf` is not valid yet at `now`.
    pub(super) fn early(self, nbf: i64, now: i64) -> bool {
        now < nbf.saturating_sub(self.0)
    }
}

/// What checking a request's bearer token at one broker gave.
#[derive(Debug, Clone)]
enum Checked {
    /// The token's identity, or none (no token, or a refused one).
    Identified(Option<Identity>),
    /// The provider could not be asked; why.
    Failed(String),
}

/// The bearer checks of one request, by broker name (see [`OAuth2Broker::identify`]).
#[derive(Debug, Default)]
struct BearerChecks(Vec<(String, Checked)>);

impl BearerChecks {
    fn of(&self, broker: &str) -> Option<&Checked> {
        self.0
            .iter()
            .find(|(name, _)| name == broker)
            .map(|(_, checked)| checked)
    }
}

/// Marks a request whose bearer token a broker refused.
#[derive(Debug, Clone)]
pub(crate) struct BearerRejected {
    broker: String,
}

/// The [`AuthError::InvalidToken`] of a request whose bearer token was refused, if it was.
pub(crate) fn rejection(req: &HttpRequest) -> Option<AuthError> {
    req.extensions()
        .get::<BearerRejected>()
        .map(|r| AuthError::InvalidToken {
            broker: r.broker.clone(),
        })
}

enum Verifier {
    Jwt(JwtVerifier),
    Introspection(Introspector),
}

pub(crate) struct OAuth2Broker {
    config: OAuth2Config,
    verifier: Verifier,
}

impl OAuth2Broker {
    /// Discovers the provider (with retries) and builds the broker.
    pub(crate) async fn new(
        config: OAuth2Config,
        index: usize,
        retry: &RetryPolicy,
        jwks_refetch_interval: std::time::Duration,
    ) -> Result<Self, AuthConfigError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(retry.request_timeout)
            .build()
            .map_err(|err| AuthConfigError::invalid(crate::config::BROKER_KEY, err.to_string()))?;
        let metadata = discovery::discover_with_retries(&config, index, &http, retry).await?;
        let missing = |what: &str| AuthConfigError::Discovery {
            key: format!("{}[{index}].endpoint", crate::config::BROKER_KEY),
            broker: config.broker.clone(),
            endpoint: config.endpoint.to_string(),
            attempts: 1,
            source: format!("the provider's metadata has no {what}").into(),
        };
        let verifier = match config.verification {
            TokenVerification::Jwt => {
                let jwks_uri = metadata
                    .jwks_uri
                    .clone()
                    .ok_or_else(|| missing("jwks_uri"))?;
                let audience = if config.audience.is_empty() {
                    config.client_id.iter().cloned().collect()
                } else {
                    config.audience.clone()
                };
                Verifier::Jwt(
                    JwtVerifier::new(
                        &config,
                        metadata.issuer.clone(),
                        audience,
                        jwks_uri,
                        http,
                        jwks_refetch_interval,
                    )
                    .await
                    .map_err(|source| AuthConfigError::Discovery {
                        key: format!("{}[{index}].endpoint", crate::config::BROKER_KEY),
                        broker: config.broker.clone(),
                        endpoint: config.endpoint.to_string(),
                        attempts: 1,
                        source,
                    })?,
                )
            }
            TokenVerification::Introspection => {
                let endpoint = metadata
                    .introspection_endpoint
                    .clone()
                    .ok_or_else(|| missing("introspection_endpoint"))?;
                Verifier::Introspection(Introspector::new(
                    &config,
                    metadata.issuer.clone(),
                    endpoint,
                    http,
                ))
            }
        };
        tracing::info!(broker = %config.broker, issuer = %Escaped(&metadata.issuer), "OAuth 2.0 resource server ready");
        Ok(OAuth2Broker { config, verifier })
    }

    pub(crate) fn name(&self) -> &str {
        &self.config.broker
    }

    /// The identity of the request's bearer token; `Ok(None)` without one, or when it was
    /// refused (then the request is marked, see [`rejection`]).
    ///
    /// The token is checked once per request: every extractor that identifies the request
    /// (`User`, `Authenticated`, `AuthManager`) gets the first check's outcome.
    pub(crate) async fn identify(&self, ctx: &Ctx<'_>) -> Result<Option<Identity>, AuthError> {
        let checked = ctx
            .req
            .extensions()
            .get::<BearerChecks>()
            .and_then(|checks| checks.of(self.name()).cloned());
        let outcome = match checked {
            Some(outcome) => outcome,
            None => {
                let outcome = self.check(ctx.req).await;
                let entry = (self.name().to_owned(), outcome.clone());
                let mut extensions = ctx.req.extensions_mut();
                match extensions.get_mut::<BearerChecks>() {
                    Some(checks) => checks.0.push(entry),
                    None => {
                        extensions.insert(BearerChecks(vec![entry]));
                    }
                }
                outcome
            }
        };
        match outcome {
            Checked::Identified(identity) => Ok(identity),
            Checked::Failed(message) => Err(AuthError::provider(self.name(), message)),
        }
    }

    /// Checks the request's bearer token: by signature and claims, or by asking the provider.
    async fn check(&self, req: &HttpRequest) -> Checked {
        let token = match bearer_token(req) {
            None => return Checked::Identified(None),
            Some(Ok(token)) => token,
            Some(Err(reason)) => return Checked::Identified(self.reject(req, reason)),
        };
        let claims = match &self.verifier {
            Verifier::Jwt(v) => v.verify(token).await,
            Verifier::Introspection(v) => v.introspect(token).await,
        };
        Checked::Identified(match claims {
            Ok(claims) => match subject(&claims) {
                Some(subject) => Some(self.identity_of(subject, claims)),
                None => self.reject(req, "the token names no sub or client_id"),
            },
            Err(Rejection::Invalid(reason)) => self.reject(req, reason),
            Err(Rejection::Failed(source)) => return Checked::Failed(source.to_string()),
        })
    }

    fn reject(&self, req: &HttpRequest, reason: &'static str) -> Option<Identity> {
        tracing::debug!(broker = %self.config.broker, reason, "bearer token refused");
        req.extensions_mut().insert(BearerRejected {
            broker: self.config.broker.clone(),
        });
        None
    }

    fn identity_of(&self, subject: String, claims: Map<String, Value>) -> Identity {
        let mapped = map_claims(&self.config.claims, &claims);
        Identity::new(
            self.config.broker.clone(),
            subject,
            IdentityKind::OAuth2 {
                access_token_claims: claims,
            },
            mapped,
        )
    }

    /// The login route of a broker without login: 401 asking for a bearer token.
    pub(crate) fn challenge(&self) -> LoginStep {
        LoginStep::Challenge {
            www_authenticate: "Bearer".to_owned(),
            message: "this broker has no login: send an OAuth 2.0 bearer access token",
        }
    }
}

/// The subject of a token: `sub`, or for a client's own token (client credentials) its
/// `client_id`.
fn subject(claims: &Map<String, Value>) -> Option<String> {
    ["sub", "client_id"]
        .iter()
        .filter_map(|name| claims.get(*name)?.as_str())
        .find(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The bearer token of `Authorization: Bearer <token>`: `None` without one (no header, or
/// another scheme such as `Basic`), an error when it is not a token (RFC 6750 `b64token`).
pub(crate) fn bearer_token(req: &HttpRequest) -> Option<Result<&str, &'static str>> {
    let value = req.headers().get(header::AUTHORIZATION)?;
    let Ok(value) = value.to_str() else {
        return Some(Err("the Authorization header is not text"));
    };
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    let body = token.trim_end_matches('=');
    let valid = !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b));
    Some(if valid {
        Ok(token)
    } else {
        Err("the bearer token is malformed")
    })
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    #[test]
    fn bearer_tokens_are_read_strictly() {
        let read = |value: &str| {
            let req = TestRequest::default()
                .insert_header((header::AUTHORIZATION, value))
                .to_http_request();
            bearer_token(&req).map(|r| r.map(str::to_owned))
        };
        assert_eq!(
            read("Bearer abc.def-_~+/=="),
            Some(Ok("abc.def-_~+/==".into()))
        );
        assert_eq!(read("bearer  abc"), Some(Ok("abc".into())));
        assert_eq!(read("Basic YWxhZGRpbjpvcGVuc2VzYW1l"), None);
        assert!(matches!(read("Bearer"), Some(Err(_))));
        assert!(matches!(read("Bearer a b"), Some(Err(_))));
        assert!(matches!(read("Bearer a\"b"), Some(Err(_))));
        assert_eq!(
            bearer_token(&TestRequest::default().to_http_request()).map(|r| r.is_ok()),
            None
        );
    }

    #[test]
    fn the_subject_falls_back_to_the_client() {
        let claims = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            subject(&claims(
                serde_json::json!({"sub": "alice", "client_id": "app"})
            )),
            Some("alice".into())
        );
        assert_eq!(
            subject(&claims(serde_json::json!({"client_id": "app"}))),
            Some("app".into())
        );
        assert_eq!(subject(&claims(serde_json::json!({"sub": ""}))), None);
    }
}
