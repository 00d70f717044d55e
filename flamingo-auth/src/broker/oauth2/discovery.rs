//! Where an `oauth2` broker's provider keeps its keys and its introspection endpoint: OpenID
//! Connect discovery, else RFC 8414 authorization server metadata.

use serde_json::{Map, Value};
use url::Url;

use crate::{
    broker::RetryPolicy,
    config::OAuth2Config,
    error::{AuthConfigError, BoxError},
    log::Escaped,
};

/// What an `oauth2` broker needs of the provider's metadata.
#[derive(Debug, Clone)]
pub(super) struct Metadata {
    /// The issuer, exactly as the metadata names it (tokens must name the same).
    pub(super) issuer: String,
    pub(super) jwks_uri: Option<Url>,
    pub(super) introspection_endpoint: Option<Url>,
}

/// [`discover`] with the retries of the [`RetryPolicy`].
pub(super) async fn discover_with_retries(
    config: &OAuth2Config,
    index: usize,
    http: &reqwest::Client,
    retry: &RetryPolicy,
) -> Result<Metadata, AuthConfigError> {
    let mut attempt = 0;
    let mut delay = retry.initial_delay;
    loop {
        attempt += 1;
        match discover(config, http).await {
            Ok(metadata) => return Ok(metadata),
            Err(err) if attempt < retry.attempts => {
                tracing::warn!(
                    broker = %config.broker, endpoint = %config.endpoint, attempt, error = %Escaped(&err),
                    "OAuth 2.0 metadata discovery failed; retrying in {delay:?}"
                );
                tokio::time::sleep(delay).await;
                delay = delay.mul_f64(2.0).min(retry.max_delay);
            }
            Err(source) => {
                return Err(AuthConfigError::Discovery {
                    key: format!("{}[{index}].endpoint", crate::config::BROKER_KEY),
                    broker: config.broker.clone(),
                    endpoint: config.endpoint.to_string(),
                    attempts: attempt,
                    source,
                })
            }
        }
    }
}

/// Reads the metadata at `endpoint` and checks that it names the expected issuer (`endpoint`,
/// or `overrideIssuerURL`).
async fn discover(config: &OAuth2Config, http: &reqwest::Client) -> Result<Metadata, BoxError> {
    let expected = config
        .override_issuer_url
        .as_ref()
        .unwrap_or(&config.endpoint);
    let base = config.endpoint.path().trim_end_matches('/').to_owned();
    let mut last = None;
    for document in ["openid-configuration", "oauth-authorization-server"] {
        let mut url = config.endpoint.clone();
        url.set_path(&format!("{base}/.well-known/{document}"));
        let response = http
            .get(url.clone())
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|err| format!("GET {url}: {err}"))?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            last = Some(format!("GET {url}: HTTP 404"));
            continue;
        }
        if !response.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", response.status()).into());
        }
        let body = response
            .bytes()
            .await
            .map_err(|err| format!("GET {url}: {err}"))?;
        let Ok(Value::Object(metadata)) = serde_json::from_slice::<Value>(&body) else {
            return Err(format!("{url} is not a metadata document (a JSON object)").into());
        };
        return parse(&metadata, expected);
    }
    Err(last
        .unwrap_or_else(|| "no metadata document".to_owned())
        .into())
}

fn parse(metadata: &Map<String, Value>, expected: &Url) -> Result<Metadata, BoxError> {
    let issuer = metadata
        .get("issuer")
        .and_then(Value::as_str)
        .ok_or("the metadata names no issuer")?;
    let trim = |s: &str| s.trim_end_matches('/').to_owned();
    if trim(issuer) != trim(expected.as_str()) {
        return Err(format!(
            "the provider names its issuer {issuer:?}, expected {:?} (set overrideIssuerURL if \
             that is right)",
            expected.as_str()
        )
        .into());
    }
    let url = |name: &str| -> Result<Option<Url>, BoxError> {
        metadata
            .get(name)
            .and_then(Value::as_str)
            .map(|s| Url::parse(s).map_err(|err| format!("{name} {s:?}: {err}").into()))
            .transpose()
    };
    Ok(Metadata {
        issuer: issuer.to_owned(),
        jwks_uri: url("jwks_uri")?,
        introspection_endpoint: url("introspection_endpoint")?,
    })
}
