//! [`RequestIdentifier`]: broker types of the application (Flamingo's `RequestIdentifier`),
//! registered on the [`AuthBuilder`](crate::AuthBuilder) next to the built-in `oidc`, `oauth2`,
//! `http` and `fake`.

use std::{collections::BTreeMap, fmt, sync::Arc};

use actix_web::HttpRequest;
use async_trait::async_trait;
use flamingo_session::Session;

use crate::{
    config::CustomBrokerConfig,
    error::{AuthConfigError, AuthError},
    identity::Identity,
};

/// What a [`RequestIdentifier`] may look at: the request and its session.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub struct BrokerRequest<'a> {
    /// The request (its headers, its peer address, its app data).
    pub request: &'a HttpRequest,
    /// The session of the request, already loaded.
    pub session: &'a Session,
}

impl fmt::Debug for BrokerRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerRequest")
            .field("path", &self.request.path())
            .finish_non_exhaustive()
    }
}

impl<'a> BrokerRequest<'a> {
    /// A request for a broker, e.g. to test a broker's `identify` in a unit test.
    pub fn new(request: &'a HttpRequest, session: &'a Session) -> Self {
        BrokerRequest { request, session }
    }
}

/// A broker type of the application: says who made a request (Flamingo's
/// `RequestIdentifier`), e.g. from an API key header, a client certificate, or a login of its
/// own kept in the session.
///
/// Register an instance with [`AuthBuilder::broker`](crate::AuthBuilder::broker), or a factory
/// for a `typ` of `core.auth.web.broker` with
/// [`AuthBuilder::broker_type`](crate::AuthBuilder::broker_type). Its identities reach the
/// [`User`](crate::User), [`Authenticated`](crate::Authenticated) and
/// [`AuthManager::identity`](crate::AuthManager::identity) like those of the built-in brokers;
/// brokers are asked in configured order, registered instances after the configured ones.
///
/// Only [`broker`](Self::broker) and [`identify`](Self::identify) are required. A broker that
/// logs users in implements [`login`](Self::login) too: `/core/auth/login/<broker>?...` sends
/// the browser to `/core/auth/callback/<broker>?...` (with the same query), whose parameters
/// (and form fields, for a `POST`) reach `login`; a login there gets a new session ID, runs the
/// login listeners and redirects to the `redirecturl` given at the login route, as for the
/// built-in brokers. A broker that keeps a login in the session says so in
/// [`has_login`](Self::has_login) and removes it in [`logout`](Self::logout).
///
/// Implement it with [`async_trait`](macro@crate::async_trait) (`?Send`: an actix request is
/// not `Send`).
///
/// # Examples
///
/// An API-key broker (the runnable version is `examples/custom_broker.rs`):
///
/// ```
/// use flamingo_auth::{async_trait, AuthError, BrokerRequest, Identity, IdentityKind, RequestIdentifier};
///
/// struct ApiKeys {
///     name: String,
///     keys: Vec<(String, String)>, // (key, subject)
/// }
///
/// #[async_trait(?Send)]
/// impl RequestIdentifier for ApiKeys {
///     fn broker(&self) -> &str {
///         &self.name
///     }
///
///     async fn identify(&self, request: &BrokerRequest<'_>) -> Result<Option<Identity>, AuthError> {
///         let Some(key) = request.request.headers().get("x-api-key") else {
///             return Ok(None);
///         };
///         Ok(self
///             .keys
///             .iter()
///             .find(|(k, _)| k.as_bytes() == key.as_bytes())
///             .map(|(_, subject)| {
///                 Identity::new(&self.name, subject, IdentityKind::Custom, Default::default())
///             }))
///     }
/// }
///
/// # async fn f(config: config::Config, sessions: flamingo_session::Sessions) -> Result<(), flamingo_auth::AuthConfigError> {
/// let keys = ApiKeys { name: "keys".into(), keys: vec![("k-123".into(), "reporting".into())] };
/// let auth = flamingo_auth::Auth::builder(&config, &sessions)?.broker(keys).build().await?;
/// # Ok(()) }
/// ```
#[async_trait(?Send)]
pub trait RequestIdentifier: Send + Sync + 'static {
    /// The broker's name, as in `/core/auth/login/<name>` and [`Identity::broker`]. Unique
    /// among all brokers of the app.
    fn broker(&self) -> &str;

    /// The broker's type, as [`Auth::brokers`](crate::Auth::brokers) lists it. Default:
    /// `"custom"`; a broker built by a [`broker_type`](crate::AuthBuilder::broker_type)
    /// factory is listed with that `typ` instead.
    fn typ(&self) -> &'static str {
        "custom"
    }

    /// Who made the request, if anyone (Flamingo's `Identify`).
    ///
    /// # Errors
    ///
    /// Whatever kept the broker from telling; the error is logged (escaped) and the next
    /// broker is asked, as in Flamingo.
    async fn identify(&self, request: &BrokerRequest<'_>) -> Result<Option<Identity>, AuthError>;

    /// Completes a login at `/core/auth/callback/<broker>` with its query parameters (and form
    /// fields for a `POST`). `None` (the default): the broker has no login, the callback
    /// answers 404.
    ///
    /// # Errors
    ///
    /// A refused login; it is answered as an [`AuthError`] (e.g.
    /// [`AuthError::NotLoggedIn`]: 401).
    async fn login(
        &self,
        request: &BrokerRequest<'_>,
        params: &BTreeMap<String, String>,
    ) -> Option<Result<Identity, AuthError>> {
        let _ = (request, params);
        None
    }

    /// Whether the session holds a login of this broker (the logout routes end only those).
    /// Default: `false`.
    fn has_login(&self, session: &Session) -> bool {
        let _ = session;
        false
    }

    /// Removes the broker's login from the session (Flamingo's `WebLogouter`). Default:
    /// nothing.
    fn logout(&self, request: &BrokerRequest<'_>) {
        let _ = request;
    }
}

/// Builds a broker of a registered `typ` from its entry in `core.auth.web.broker`.
pub(crate) type BrokerFactory = Arc<
    dyn Fn(&CustomBrokerConfig) -> Result<Arc<dyn RequestIdentifier>, AuthConfigError>
        + Send
        + Sync,
>;

/// A broker of the application, as configured.
pub(crate) struct CustomBroker {
    pub(crate) identifier: Arc<dyn RequestIdentifier>,
    pub(crate) typ: &'static str,
}
