//! Identity brokers (Flamingo's `RequestIdentifier`s): `oidc`, `oauth2`, `http` and `fake`,
//! and the application's own ([`RequestIdentifier`], [`MockBroker`](mock::MockBroker)).

//!
//! Brokers answer in domain terms: a [`LoginStep`] to take, a [`LoggedIn`] user or a
//! [`LoginFailure`]; the routes turn those into responses.

mod fake;
mod http;
mod identifier;
pub mod mock;
pub(crate) mod oauth2;
pub(crate) mod oidc;

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use actix_web::{HttpMessage as _, HttpRequest};
use flamingo_session::Session;
use url::Url;

use crate::{
    auth_params::AuthCodeOptioner,
    config::BrokerConfig,
    error::{AuthConfigError, AuthError},
    identity::Identity,
    redirect::Origin,
};

pub use self::identifier::{BrokerRequest, RequestIdentifier};
pub(crate) use self::{
    fake::FakeBroker,
    http::HttpBroker,
    identifier::{BrokerFactory, CustomBroker},
    oauth2::OAuth2Broker,
    oidc::{OidcBroker, Refresher},
};

/// How discovery of an OpenID Provider is retried at start-up.
///
/// Default: 3 attempts, waiting 500 ms, then 1 s (doubling, at most `max_delay` = 5 s); each
/// request times out after 10 s. After the last attempt [`Auth`](crate::Auth) fails to build with
/// [`AuthConfigError::Discovery`], naming the broker and the endpoint.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let policy = flamingo_auth::RetryPolicy { attempts: 5, ..Default::default() };
/// assert_eq!(policy.initial_delay, Duration::from_millis(500));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many times discovery is tried (at least 1). Default: `3`.
    pub attempts: u32,
    /// The wait before the second attempt; it doubles after each failure. Default: 500 ms.
    pub initial_delay: Duration,
    /// The longest wait between attempts. Default: 5 s.
    pub max_delay: Duration,
    /// Timeout of each request to the provider (discovery, token, keys). Default: 10 s.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            initial_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Start-up options of the brokers.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) retry: RetryPolicy,
    pub(crate) jwks_refetch_interval: Duration,
}

/// Marks a request whose credentials a broker could not check: its provider failed.
#[derive(Debug, Clone)]
struct IdentifyFailed {
    broker: String,
    message: String,
}

/// Records that identifying the request at `broker` failed with `err`, when the provider is
/// why (a refresh or a token check it could not answer).
pub(crate) fn record_failure(req: &HttpRequest, broker: &str, err: &AuthError) {
    if let AuthError::Provider { source, .. } = err {
        req.extensions_mut().insert(IdentifyFailed {
            broker: broker.to_owned(),
            message: source.to_string(),
        });
    }
}

/// Why a request that brought credentials has no user: a refused bearer token (401
/// `invalid_token`), or a login or token its provider could not check (502, the login stays).
/// The extractors that need a user answer this instead of treating the request as a guest's.
pub(crate) fn unidentified(req: &HttpRequest) -> Option<AuthError> {
    oauth2::rejection(req).or_else(|| {
        req.extensions()
            .get::<IdentifyFailed>()
            .map(|failed| AuthError::provider(&failed.broker, failed.message.clone()))
    })
}

/// The broker types registered with [`AuthBuilder::broker_type`](crate::AuthBuilder::broker_type),
/// by lowercase `typ`.
pub(crate) type BrokerTypes = BTreeMap<String, (&'static str, BrokerFactory)>;

/// What a broker operation needs: the request, its session, and the parts of the app's auth
/// that brokers use.
pub(crate) struct Ctx<'a> {
    pub(crate) req: &'a HttpRequest,
    pub(crate) session: &'a Session,
    /// Where the site's own URL comes from (the callback URL).
    pub(crate) origin: &'a Origin,
    /// The hooks that add authorization request parameters.
    pub(crate) optioners: &'a [Arc<dyn AuthCodeOptioner>],
    /// Shares token refreshes between the requests (and processes) of a session.
    pub(crate) refresher: &'a dyn Refresher,
}

/// What a login route does next.
#[derive(Debug)]
pub(crate) enum LoginStep {
    /// On to this URL: the provider's authorization endpoint, the stored target, the callback.
    Redirect(String),
    /// This HTML page: a login form.
    Page(String),
    /// Ask for credentials: 401 with this `WWW-Authenticate` challenge and message.
    Challenge {
        www_authenticate: String,
        message: &'static str,
    },
}

/// A completed login, before the routes give the session a new ID and record it.
#[derive(Debug)]
pub(crate) struct LoggedIn {
    pub(crate) identity: Identity,
    /// The provider's session (`sid` of the ID token), for back-channel logout.
    pub(crate) provider_session: Option<String>,
}

impl From<Identity> for LoggedIn {
    fn from(identity: Identity) -> Self {
        LoggedIn {
            identity,
            provider_session: None,
        }
    }
}

/// Why a login callback did not log in.
#[derive(Debug)]
pub(crate) enum LoginFailure {
    /// The provider answered `?error=`: the application's callback-error handler decides.
    Provider(CallbackError),
    /// A callback the login does not accept (400 with this message).
    BadRequest(&'static str),
    /// What the provider sent back was rejected (401 with this message).
    Rejected(&'static str),
    /// The provider could not be used (502); the cause is logged.
    Unavailable,
    /// The login step again, e.g. the form with a message saying why.
    Retry(LoginStep),
    /// The session could not take the login, or an application broker's error.
    Error(AuthError),
}

/// An `?error=` returned by an OpenID Provider to the callback (e.g. `access_denied`, or
/// `login_required` after `prompt=none`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallbackError {
    /// The broker's name.
    pub broker: String,
    /// The OAuth 2.0 error code.
    pub error: String,
    /// The provider's `error_description`, if any (provider-controlled text: escape it).
    pub description: Option<String>,
}

/// A configured broker.
pub(crate) enum Broker {
    Oidc(Arc<OidcBroker>),
    Http(HttpBroker),
    Fake(FakeBroker),
    OAuth2(Box<OAuth2Broker>),
    Custom(CustomBroker),
}

impl<'a> Ctx<'a> {
    fn broker_request(&self) -> BrokerRequest<'a> {
        BrokerRequest::new(self.req, self.session)
    }
}

impl Broker {
    /// Builds a broker; `oidc` brokers discover their provider.
    pub(crate) async fn build(
        config: BrokerConfig,
        index: usize,
        options: &Options,
        types: &BrokerTypes,
    ) -> Result<Broker, AuthConfigError> {
        Ok(match config {
            BrokerConfig::Oidc(c) => Broker::Oidc(Arc::new(
                OidcBroker::new(c, index, &options.retry, options.jwks_refetch_interval).await?,
            )),
            BrokerConfig::Http(c) => Broker::Http(HttpBroker::new(c)),
            BrokerConfig::Fake(c) => Broker::Fake(FakeBroker::new(c)),
            BrokerConfig::OAuth2(c) => Broker::OAuth2(Box::new(
                OAuth2Broker::new(c, index, &options.retry, options.jwks_refetch_interval).await?,
            )),
            BrokerConfig::Custom(c) => {
                let Some((typ, factory)) = types.get(&c.typ().to_ascii_lowercase()) else {
                    let known = ["oidc", "oauth2", "http", "fake"]
                        .into_iter()
                        .chain(types.values().map(|(typ, _)| *typ));
                    let hint = flamingo_session::config::read::did_you_mean(c.typ(), known)
                        .map(|t| format!(" (did you mean {t}?)"))
                        .unwrap_or_default();
                    return Err(AuthConfigError::invalid(
                        c.child_key("typ"),
                        format!(
                            "unknown broker type {:?}{hint}; expected oidc, oauth2, http, fake \
                             or a type registered with AuthBuilder::broker_type",
                            c.typ()
                        ),
                    ));
                };
                let identifier = factory(&c)?;
                if identifier.broker() != c.broker() {
                    return Err(AuthConfigError::invalid(
                        c.child_key("broker"),
                        format!(
                            "the {typ} factory built a broker named {:?} instead of {:?}",
                            identifier.broker(),
                            c.broker()
                        ),
                    ));
                }
                Broker::Custom(CustomBroker { identifier, typ })
            }
        })
    }

    pub(crate) fn name(&self) -> &str {
        match self {
            Broker::Oidc(b) => b.name(),
            Broker::Http(b) => b.name(),
            Broker::Fake(b) => b.name(),
            Broker::OAuth2(b) => b.name(),
            Broker::Custom(b) => b.identifier.broker(),
        }
    }

    pub(crate) fn typ(&self) -> &'static str {
        match self {
            Broker::Oidc(_) => "oidc",
            Broker::Http(_) => "http",
            Broker::Fake(_) => "fake",
            Broker::OAuth2(_) => "oauth2",
            Broker::Custom(b) => b.typ,
        }
    }

    /// Whether the session holds a login of this broker (logout ends only those).
    pub(crate) fn has_login(&self, session: &Session) -> bool {
        let key = match self {
            Broker::Oidc(b) => crate::session_data::oidc_session_key(b.name()),
            Broker::Fake(b) => crate::session_data::fake_session_key(b.name()),
            Broker::Http(_) | Broker::OAuth2(_) => return false,
            Broker::Custom(b) => return b.identifier.has_login(session),
        };
        session.keys().contains(&key)
    }

    /// Who is logged in at this broker, if anyone.
    pub(crate) async fn identify(&self, ctx: &Ctx<'_>) -> Result<Option<Identity>, AuthError> {
        match self {
            Broker::Oidc(b) => OidcBroker::identify(b, ctx).await,
            Broker::Http(b) => Ok(b.identify(ctx.req)),
            Broker::Fake(b) => Ok(b.identify(ctx)),
            Broker::OAuth2(b) => b.identify(ctx).await,
            Broker::Custom(b) => b.identifier.identify(&ctx.broker_request()).await,
        }
    }

    /// Starts a login (`/core/auth/login/{broker}`).
    pub(crate) fn authenticate(&self, ctx: &Ctx<'_>) -> Result<LoginStep, AuthError> {
        match self {
            Broker::Oidc(b) => b.authenticate(ctx),
            Broker::Http(b) => Ok(b.authenticate(ctx)),
            Broker::Fake(b) => Ok(b.login_form(None)),
            Broker::OAuth2(b) => Ok(b.challenge()),
            Broker::Custom(b) => Ok(custom_login(ctx, b.identifier.broker())),
        }
    }

    /// Completes a login (`/core/auth/callback/{broker}`); `None` for brokers without a
    /// callback.
    pub(crate) async fn callback(
        &self,
        ctx: &Ctx<'_>,
        params: &BTreeMap<String, String>,
    ) -> Option<Result<LoggedIn, LoginFailure>> {
        match self {
            Broker::Oidc(b) => Some(b.callback(ctx, params).await),
            Broker::Http(_) => None,
            Broker::Fake(b) => Some(b.callback(ctx, params).map(LoggedIn::from)),
            Broker::OAuth2(_) => None,
            Broker::Custom(b) => b
                .identifier
                .login(&ctx.broker_request(), params)
                .await
                .map(|result| result.map(LoggedIn::from).map_err(LoginFailure::Error)),
        }
    }

    /// Removes the local login; returns a single-sign-out URL to visit, if any.
    pub(crate) fn logout(&self, ctx: &Ctx<'_>) -> Option<Url> {
        match self {
            Broker::Oidc(b) => b.logout(ctx),
            Broker::Http(_) | Broker::OAuth2(_) => None,
            Broker::Fake(b) => {
                b.logout(ctx);
                None
            }
            Broker::Custom(b) => {
                b.identifier.logout(&ctx.broker_request());
                None
            }
        }
    }
}

/// The login route of an application's broker: on to its callback with the same query, where
/// [`RequestIdentifier::login`] runs (after the login route stored `redirecturl`).
fn custom_login(ctx: &Ctx<'_>, broker: &str) -> LoginStep {
    let mut url = Url::parse("http://localhost/").expect("static URL parses");
    url.path_segments_mut()
        .expect("http URLs have paths")
        .extend(["core", "auth", "callback", broker]);
    let query = ctx.req.query_string();
    LoginStep::Redirect(if query.is_empty() {
        url.path().to_owned()
    } else {
        format!("{}?{query}", url.path())
    })
}
