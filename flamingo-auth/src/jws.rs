//! The pieces of a compact JWS both token checkers use (back-channel logout tokens and the
//! `oauth2` broker's bearer JWTs): base64url parts, JSON-object parts, and the signature checked
//! with the provider's keys that fit.

use base64::Engine as _;
use openidconnect::{
    core::{CoreJsonWebKey, CoreJwsSigningAlgorithm},
    JsonWebKey as _, JsonWebKeyAlgorithm, JsonWebKeySet, JsonWebKeyUse as _,
};
use serde_json::{Map, Value};

/// A base64url part (no padding) decoded; `None` when it is not base64url.
pub(crate) fn b64url(part: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()
}

/// A base64url part holding a JSON object; `None` when it is anything else.
pub(crate) fn json_object(part: &str) -> Option<Map<String, Value>> {
    match serde_json::from_slice(&b64url(part)?).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// Why a signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignatureError {
    /// No published key fits (`kid`, key use, algorithm): the keys may have rotated.
    NoKey,
    /// Keys fit, none verifies.
    Bad,
}

/// Verifies `signature` over `input` with the keys of `keys` that fit `kid` (when given), are
/// for signing, and are for `alg` (or name no algorithm).
pub(crate) fn verify_signature(
    keys: &JsonWebKeySet<CoreJsonWebKey>,
    alg: &CoreJwsSigningAlgorithm,
    kid: Option<&str>,
    input: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let mut fitting = keys
        .keys()
        .iter()
        .filter(|key| kid.is_none_or(|kid| key.key_id().is_some_and(|id| id.as_str() == kid)))
        .filter(|key| key.key_use().is_none_or(|u| u.allows_signature()))
        .filter(|key| match key.signing_alg() {
            JsonWebKeyAlgorithm::Algorithm(key_alg) => key_alg == alg,
            JsonWebKeyAlgorithm::Unspecified => true,
            JsonWebKeyAlgorithm::Unsupported => false,
        })
        .peekable();
    if fitting.peek().is_none() {
        return Err(SignatureError::NoKey);
    }
    if fitting.any(|key| key.verify_signature(alg, input, signature).is_ok()) {
        Ok(())
    } else {
        Err(SignatureError::Bad)
    }
}
