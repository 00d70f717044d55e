//! The errors of auth: [`AuthConfigError`] at start-up, [`AuthError`] while serving requests.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use flamingo_session::{backend::BackendError, DirectoryError, SessionError};

/// A boxed error from a lower layer (HTTP transport, openidconnect).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why auth could not start. Every message names the config key (or the component) involved;
/// none contains a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthConfigError {
    /// A configuration value is missing or malformed.
    #[error("{key}: {message}")]
    Invalid {
        /// The full config key, such as `core.auth.web.broker[0].clientID`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The OpenID Provider of an `oidc` broker could not be discovered (after the retries of the
    /// [`RetryPolicy`](crate::RetryPolicy)).
    #[error(
        "{key}: OpenID Connect discovery of broker {broker:?} at {endpoint} failed after \
         {attempts} attempt(s): {source}"
    )]
    Discovery {
        /// The config key of the broker's `endpoint`.
        key: String,
        /// The broker's name.
        broker: String,
        /// The issuer URL that was tried.
        endpoint: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        #[source]
        source: BoxError,
    },
    /// The session backend said it cannot hold tokens
    /// ([`SessionBackend::can_hold_tokens`](flamingo_session::SessionBackend::can_hold_tokens)).
    #[error(
        "flamingo.session.backend: auth needs a session backend that can hold OpenID Connect \
         tokens (several KB per session), but the {backend:?} backend cannot; use the memory, \
         file or redis backend"
    )]
    BackendCannotHoldTokens {
        /// The backend's name.
        backend: String,
    },
}

impl AuthConfigError {
    pub(crate) fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        AuthConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Why an auth operation failed while serving a request.
///
/// Use [`is_not_logged_in`](Self::is_not_logged_in) and
/// [`is_provider_failure`](Self::is_provider_failure) to tell the cases apart. As an actix
/// `ResponseError` it answers 401 when nobody is logged in, 502 when the provider failed, 404
/// for an unknown broker and 500 otherwise. Messages never contain tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Nobody is logged in (at this broker, when one is named), or the login expired and could
    /// not be refreshed.
    #[error("not logged in{}", broker.as_deref().map(|b| format!(" at broker {b:?}")).unwrap_or_default())]
    NotLoggedIn {
        /// The broker asked, if any.
        broker: Option<String>,
    },
    /// No broker with this name is configured in `core.auth.web.broker`.
    #[error("core.auth.web.broker: no broker named {broker:?} is configured")]
    UnknownBroker {
        /// The name asked for.
        broker: String,
    },
    /// The broker does not support the operation (for example an ID token from an `http`
    /// broker).
    #[error("broker {broker:?} (typ {typ}) does not support {operation}")]
    Unsupported {
        /// The broker's name.
        broker: String,
        /// The broker's `typ`.
        typ: &'static str,
        /// What was asked.
        operation: &'static str,
    },
    /// The OpenID Provider could not be reached or answered with something unusable.
    #[error("OpenID Provider of broker {broker:?} failed: {source}")]
    Provider {
        /// The broker's name.
        broker: String,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// A login request that cannot be passed to the provider (e.g. a `loginParameters` value
    /// with a control character): 400 with this message.
    #[error("bad login request: {message}")]
    BadLoginRequest {
        /// What is wrong, naming the parameter.
        message: String,
    },
    /// The request's bearer access token was refused by an `oauth2` broker (expired, for
    /// another audience or issuer, badly signed, inactive): 401 with
    /// `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750).
    #[error("the bearer token was refused by broker {broker:?}")]
    InvalidToken {
        /// The broker's name.
        broker: String,
    },
    /// The session could not be read or written.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The user's sessions could not be listed or ended: the backend keeps no per-owner index
    /// (503 when it cannot be reached, 500 otherwise).
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// A request made with the [`AuthHttpClient`](crate::AuthHttpClient) failed.
    #[error("request with the user's access token failed: {0}")]
    Request(#[source] reqwest::Error),
}

impl AuthError {
    /// Whether the error means "nobody is logged in" (as opposed to a failure).
    ///
    /// # Examples
    ///
    /// ```
    /// use flamingo_auth::AuthError;
    /// assert!(AuthError::NotLoggedIn { broker: None }.is_not_logged_in());
    /// ```
    pub fn is_not_logged_in(&self) -> bool {
        matches!(self, AuthError::NotLoggedIn { .. })
    }

    /// Whether the error is a failure of the OpenID Provider (unreachable, bad answer).
    ///
    /// # Examples
    ///
    /// ```
    /// use flamingo_auth::AuthError;
    /// assert!(!AuthError::NotLoggedIn { broker: None }.is_provider_failure());
    /// ```
    pub fn is_provider_failure(&self) -> bool {
        matches!(self, AuthError::Provider { .. })
    }

    pub(crate) fn provider(broker: &str, source: impl Into<BoxError>) -> Self {
        AuthError::Provider {
            broker: broker.to_owned(),
            source: source.into(),
        }
    }
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        match self {
            AuthError::NotLoggedIn { .. } | AuthError::InvalidToken { .. } => {
                StatusCode::UNAUTHORIZED
            }
            AuthError::UnknownBroker { .. } => StatusCode::NOT_FOUND,
            AuthError::BadLoginRequest { .. } => StatusCode::BAD_REQUEST,
            AuthError::Provider { .. } | AuthError::Request(_) => StatusCode::BAD_GATEWAY,
            AuthError::Directory(DirectoryError::Backend(BackendError::Unavailable(_))) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            AuthError::Unsupported { .. } | AuthError::Session(_) | AuthError::Directory(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = %crate::log::Escaped(self), "auth request failed");
        }
        if let AuthError::InvalidToken { .. } = self {
            return HttpResponse::Unauthorized()
                .insert_header((
                    actix_web::http::header::WWW_AUTHENTICATE,
                    r#"Bearer error="invalid_token""#,
                ))
                .content_type("application/json")
                .body(r#"{"error":"invalid_token"}"#);
        }
        let message = match self {
            // Details of server-side failures stay in the log.
            AuthError::Provider { .. } => "identity provider failed".to_owned(),
            AuthError::Session(_) | AuthError::Unsupported { .. } | AuthError::Directory(_) => {
                "auth failed".to_owned()
            }
            other => other.to_string(),
        };
        HttpResponse::build(status)
            .content_type("text/plain; charset=utf-8")
            .body(message)
    }
}
