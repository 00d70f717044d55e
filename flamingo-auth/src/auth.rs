//! [`Auth`]: the configured brokers, built at start-up, mounted with [`Auth::configure`].

use std::{future::Future, sync::Arc, time::Duration};

use actix_web::{HttpRequest, HttpResponse};
use flamingo_session::{
    backend::SessionBackend, Session, SessionDirectory, SessionRepository, Sessions,
};

use crate::{
    auth_params::AuthCodeOptioner,
    broker::{
        self, Broker, BrokerTypes, CallbackError, Ctx, CustomBroker, Options, RequestIdentifier,
        RetryPolicy,
    },
    config::{AuthConfig, CustomBrokerConfig, BROKER_KEY, HTTP_CLIENT_KEY},
    error::AuthConfigError,
    events::{login_listener, logout_listener, Listeners, LoginEvent, LogoutEvent},
    identity::Identity,
    log::Escaped,
    logout_records::SeenTokens,
    redirect::Origin,
    refresh::{Refresher, Store},
};

/// How long a session that logged in can live: `max.lifetime` when set (it ends the session
/// however active), else `max.age` (a session used at least that often lives on; a record kept
/// this long may expire before such a session does).
fn login_lifetime(config: &flamingo_session::SessionConfig) -> Duration {
    if config.max_lifetime.is_zero() {
        config.max_age
    } else {
        config.max_lifetime
    }
}

/// Who is logged in at `broker`; a failure is logged, recorded on the request (see
/// [`broker::unidentified`]) and answered as nobody.
async fn identified(broker: &Broker, ctx: &Ctx<'_>) -> Option<Identity> {
    match broker.identify(ctx).await {
        Ok(identity) => identity,
        Err(err) => {
            tracing::warn!(broker = broker.name(), error = %Escaped(&err), "identify failed");
            broker::record_failure(ctx.req, broker.name(), &err);
            None
        }
    }
}

type CallbackErrorHandler =
    Arc<dyn Fn(&HttpRequest, &CallbackError) -> Option<HttpResponse> + Send + Sync>;

struct Inner {
    brokers: Vec<Broker>,
    debug: bool,
    login_broker: Option<String>,
    api_client: reqwest::Client,
    request_timeout: Duration,
    origin: Origin,
    callback_error_handler: Option<CallbackErrorHandler>,
    logout_purges_session: bool,
    auth_code_optioners: Vec<Arc<dyn AuthCodeOptioner>>,
    repository: SessionRepository,
    directory: SessionDirectory,
    /// How long a login's records (the back-channel `sid` record) live: the session's
    /// `max.lifetime` when set, else its `max.age`.
    login_lifetime: Duration,
    refresher: Refresher,
    seen_logout_tokens: SeenTokens,
}

/// Flamingo's core/auth for an actix-web app: the brokers of `core.auth.web.broker`, their
/// routes and the data the extractors ([`User`](crate::User),
/// [`AuthManager`](crate::AuthManager), [`Authenticated`](crate::Authenticated),
/// [`UserService`](crate::UserService)) need.
///
/// Build it once in `main` (discovery of OpenID Providers happens here), then mount it in the
/// app factory with [`configure`](Self::configure). The app must also wrap the session
/// middleware of the same [`Sessions`].
///
/// # Examples
///
/// ```no_run
/// use actix_web::{App, HttpServer};
/// use flamingo_auth::Auth;
/// use flamingo_session::Sessions;
///
/// #[actix_web::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     let config = config::Config::builder()
///         .add_source(config::File::with_name("config.yaml"))
///         .build()?;
///     let sessions = Sessions::from_config(&config).await?;
///     let auth = Auth::from_config(&config, &sessions).await?;
///     HttpServer::new(move || {
///         App::new()
///             .wrap(sessions.middleware())
///             .configure(|cfg| auth.configure(cfg))
///     })
///     .bind(("127.0.0.1", 8080))?
///     .run()
///     .await?;
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
    listeners: Arc<Listeners>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field(
                "brokers",
                &self
                    .inner
                    .brokers
                    .iter()
                    .map(|b| (b.name(), b.typ()))
                    .collect::<Vec<_>>(),
            )
            .field("debug", &self.inner.debug)
            .finish_non_exhaustive()
    }
}

/// Builds an [`Auth`]: retries, key refetching, listeners, the callback error handler.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use flamingo_auth::{Auth, RetryPolicy};
/// # async fn run(config: config::Config, sessions: flamingo_session::Sessions) -> Result<(), flamingo_auth::AuthConfigError> {
/// let auth = Auth::builder(&config, &sessions)?
///     .retry_policy(RetryPolicy { attempts: 10, ..Default::default() })
///     .jwks_refetch_interval(Duration::from_secs(60))
///     .on_login(|event| async move {
///         tracing::info!(broker = %event.broker, "login");
///     })
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[must_use = "call .build().await"]
pub struct AuthBuilder {
    config: AuthConfig,
    options: Options,
    login_broker: Option<String>,
    api_client: Option<reqwest::Client>,
    callback_error_handler: Option<CallbackErrorHandler>,
    listeners: Listeners,
    auth_code_optioners: Vec<Arc<dyn AuthCodeOptioner>>,
    repository: SessionRepository,
    backend: Arc<dyn SessionBackend>,
    directory: SessionDirectory,
    login_lifetime: Duration,
    broker_types: BrokerTypes,
    registered_brokers: Vec<Arc<dyn RequestIdentifier>>,
}

impl std::fmt::Debug for AuthBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AuthBuilder {
    /// A builder for `config` on `sessions`.
    ///
    /// # Errors
    ///
    /// [`AuthConfigError::BackendCannotHoldTokens`] when the session backend says it cannot
    /// hold tokens (auth stores tokens and login states in the session).
    pub fn new(config: AuthConfig, sessions: &Sessions) -> Result<AuthBuilder, AuthConfigError> {
        let backend = sessions.backend();
        if !backend.can_hold_tokens() {
            return Err(AuthConfigError::BackendCannotHoldTokens {
                backend: backend.name().to_owned(),
            });
        }
        Ok(AuthBuilder {
            config,
            options: Options {
                retry: RetryPolicy::default(),
                jwks_refetch_interval: Duration::from_secs(30),
            },
            login_broker: None,
            api_client: None,
            callback_error_handler: None,
            listeners: Listeners::default(),
            auth_code_optioners: Vec::new(),
            repository: sessions.repository(),
            backend,
            directory: sessions.directory(),
            login_lifetime: login_lifetime(sessions.config()),
            broker_types: BrokerTypes::new(),
            registered_brokers: Vec::new(),
        })
    }

    /// Adds a broker of the application's own (see [`RequestIdentifier`]), after the brokers
    /// of `core.auth.web.broker`. Its name must differ from every other broker's. Default:
    /// none.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(config: config::Config, sessions: flamingo_session::Sessions) -> Result<(), flamingo_auth::AuthConfigError> {
    /// use flamingo_auth::mock::MockBroker;
    /// let auth = flamingo_auth::Auth::builder(&config, &sessions)?
    ///     .broker(MockBroker::new("mock").with_user("alice", serde_json::json!({})))
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn broker(mut self, identifier: impl RequestIdentifier) -> Self {
        self.registered_brokers.push(Arc::new(identifier));
        self
    }

    /// Registers a broker type: entries of `core.auth.web.broker` with this `typ` (compared
    /// case-insensitively) are built by `factory` from their
    /// [`CustomBrokerConfig`] (Flamingo's `RequestIdentifierFactory`). The factory should
    /// check its keys with [`CustomBrokerConfig::check_keys`]. An entry whose `typ` is neither
    /// built in nor registered stops [`build`](Self::build). Default: none.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use flamingo_auth::{async_trait, AuthError, BrokerRequest, Identity, RequestIdentifier};
    ///
    /// struct Nobody(String);
    ///
    /// #[async_trait(?Send)]
    /// impl RequestIdentifier for Nobody {
    ///     fn broker(&self) -> &str { &self.0 }
    ///     async fn identify(&self, _: &BrokerRequest<'_>) -> Result<Option<Identity>, AuthError> {
    ///         Ok(None)
    ///     }
    /// }
    ///
    /// # async fn f(config: config::Config, sessions: flamingo_session::Sessions) -> Result<(), flamingo_auth::AuthConfigError> {
    /// // core.auth.web.broker: [{broker: closed, typ: nobody}]
    /// let auth = flamingo_auth::Auth::builder(&config, &sessions)?
    ///     .broker_type("nobody", |entry| {
    ///         entry.check_keys(&[])?;
    ///         Ok(Nobody(entry.broker().to_owned()))
    ///     })
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn broker_type<F, I>(mut self, typ: &'static str, factory: F) -> Self
    where
        F: Fn(&CustomBrokerConfig) -> Result<I, AuthConfigError> + Send + Sync + 'static,
        I: RequestIdentifier,
    {
        self.broker_types.insert(
            typ.to_ascii_lowercase(),
            (
                typ,
                Arc::new(move |config: &CustomBrokerConfig| {
                    factory(config).map(|b| Arc::new(b) as Arc<dyn RequestIdentifier>)
                }),
            ),
        );
        self
    }

    /// Adds an [`AuthCodeOptioner`]: parameters added to the authorization request of every
    /// `oidc` login, per request (Flamingo's `AuthCodeOptioner`). Several may be added; they run
    /// in the order added, after `authParameters` and `loginParameters` (see
    /// [`auth_params`](crate::auth_params)). Default: none.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn f(config: config::Config, sessions: flamingo_session::Sessions) -> Result<(), flamingo_auth::AuthConfigError> {
    /// let auth = flamingo_auth::Auth::builder(&config, &sessions)?
    ///     .auth_code_optioner(|_req: &actix_web::HttpRequest, _broker: &str| {
    ///         vec![("acr_values".to_owned(), "urn:example:mfa".to_owned())]
    ///     })
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn auth_code_optioner(mut self, optioner: impl AuthCodeOptioner) -> Self {
        self.auth_code_optioners.push(Arc::new(optioner));
        self
    }

    /// How OpenID Provider discovery is retried at start-up. Default: [`RetryPolicy::default`].
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.options.retry = RetryPolicy {
            attempts: policy.attempts.max(1),
            ..policy
        };
        self
    }

    /// The shortest time between two refetches of a provider's keys, triggered by an ID token
    /// signed with an unknown key. Default: 30 s.
    pub fn jwks_refetch_interval(mut self, interval: Duration) -> Self {
        self.options.jwks_refetch_interval = interval;
        self
    }

    /// The broker [`Authenticated`](crate::Authenticated) sends browsers to. Default: the
    /// first configured broker.
    pub fn login_broker(mut self, broker: impl Into<String>) -> Self {
        self.login_broker = Some(broker.into());
        self
    }

    /// The reqwest client [`AuthHttpClient`](crate::AuthHttpClient) sends requests with.
    /// Default: a client that gives up connecting after
    /// `core.auth.web.httpClient.connectTimeout` (5 s). Whatever the client,
    /// `core.auth.web.httpClient.requestTimeout` (30 s) bounds each request; change it for one
    /// request with `.map(|r| r.timeout(...))`.
    pub fn api_client(mut self, client: reqwest::Client) -> Self {
        self.api_client = Some(client);
        self
    }

    /// Handles an `?error=` from an OpenID Provider at the callback (Flamingo's
    /// `CallbackErrorHandler`), e.g. to send a `login_required` after `prompt=none` to a page.
    /// Returning `None` gives the default: 401 with a plain-text message naming the error code.
    pub fn callback_error_handler<F>(mut self, handler: F) -> Self
    where
        F: Fn(&HttpRequest, &CallbackError) -> Option<HttpResponse> + Send + Sync + 'static,
    {
        self.callback_error_handler = Some(Arc::new(handler));
        self
    }

    /// Adds a login listener (see [`Auth::on_login`]).
    pub fn on_login<F, Fut>(mut self, listener: F) -> Self
    where
        F: Fn(LoginEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.listeners.login.push(login_listener(listener));
        self
    }

    /// Adds a logout listener (see [`Auth::on_logout`]).
    pub fn on_logout<F, Fut>(mut self, listener: F) -> Self
    where
        F: Fn(LogoutEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.listeners.logout.push(logout_listener(listener));
        self
    }

    /// Builds the brokers; `oidc` brokers discover their provider now.
    ///
    /// # Errors
    ///
    /// [`AuthConfigError::Discovery`] when a provider cannot be discovered,
    /// [`AuthConfigError::Invalid`] for an unknown `login_broker`.
    pub async fn build(self) -> Result<Auth, AuthConfigError> {
        if let Some(name) = &self.login_broker {
            if !self.config.brokers.iter().any(|b| b.name() == name) {
                return Err(AuthConfigError::invalid(
                    BROKER_KEY,
                    format!("login broker {name:?} is not configured"),
                ));
            }
        }
        if let Some(typ) = self
            .broker_types
            .keys()
            .find(|t| ["oidc", "oauth2", "http", "fake"].contains(&t.as_str()))
        {
            return Err(AuthConfigError::invalid(
                BROKER_KEY,
                format!("broker type {typ:?} is built in and cannot be registered"),
            ));
        }
        let mut brokers = Vec::with_capacity(self.config.brokers.len());
        for (index, config) in self.config.brokers.into_iter().enumerate() {
            brokers.push(Broker::build(config, index, &self.options, &self.broker_types).await?);
        }
        for identifier in self.registered_brokers {
            if brokers.iter().any(|b| b.name() == identifier.broker()) {
                return Err(AuthConfigError::invalid(
                    BROKER_KEY,
                    format!(
                        "broker name {:?} of a registered broker is configured twice",
                        identifier.broker()
                    ),
                ));
            }
            let typ = identifier.typ();
            brokers.push(Broker::Custom(CustomBroker { identifier, typ }));
        }
        let login_broker = self.login_broker.or_else(|| {
            // A browser cannot log in at an `oauth2` broker.
            brokers
                .iter()
                .find(|b| !matches!(b, Broker::OAuth2(_)))
                .map(|b| b.name().to_owned())
        });
        let timeouts = self.config.http_client;
        let api_client = match self.api_client {
            Some(client) => client,
            None => reqwest::Client::builder()
                .connect_timeout(timeouts.connect_timeout)
                .timeout(timeouts.request_timeout)
                .build()
                .map_err(|err| AuthConfigError::invalid(HTTP_CLIENT_KEY, err.to_string()))?,
        };
        Ok(Auth {
            inner: Arc::new(Inner {
                brokers,
                debug: self.config.debug_controller,
                login_broker,
                api_client,
                request_timeout: timeouts.request_timeout,
                origin: Origin {
                    base_url: self.config.base_url,
                    trusted_proxies: self.config.trusted_proxies,
                },
                callback_error_handler: self.callback_error_handler,
                logout_purges_session: self.config.logout_purges_session,
                auth_code_optioners: self.auth_code_optioners,
                repository: self.repository.clone(),
                directory: self.directory,
                login_lifetime: self.login_lifetime,
                refresher: Refresher::new(Store {
                    repository: self.repository,
                    backend: self.backend,
                    lease_time: self.config.refresh_lease,
                    login_lifetime: self.login_lifetime,
                }),
                seen_logout_tokens: SeenTokens::default(),
            }),
            listeners: Arc::new(self.listeners),
        })
    }
}

impl Auth {
    /// Reads `core.auth.*` and builds the brokers with default options.
    ///
    /// # Errors
    ///
    /// As [`Auth::builder`] and [`AuthBuilder::build`].
    pub async fn from_config(
        config: &config::Config,
        sessions: &Sessions,
    ) -> Result<Auth, AuthConfigError> {
        Self::builder(config, sessions)?.build().await
    }

    /// A builder reading `core.auth.*` from `config`.
    ///
    /// # Errors
    ///
    /// [`AuthConfigError::Invalid`] naming the key for bad configuration,
    /// [`AuthConfigError::BackendCannotHoldTokens`] for an unsuitable session backend.
    pub fn builder(
        config: &config::Config,
        sessions: &Sessions,
    ) -> Result<AuthBuilder, AuthConfigError> {
        AuthBuilder::new(AuthConfig::from_config(config)?, sessions)
    }

    /// Adds a login listener; returns the `Auth` with it (cheap: brokers are shared), so it can
    /// be called in the app factory as well as in `main`.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn app(auth: flamingo_auth::Auth) {
    /// let auth = auth.on_login(|event| async move {
    ///     let _ = event.session.store("greeting", format!("Welcome, {}", event.identity.subject()));
    /// });
    /// # }
    /// ```
    pub fn on_login<F, Fut>(mut self, listener: F) -> Self
    where
        F: Fn(LoginEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        Arc::make_mut(&mut self.listeners)
            .login
            .push(login_listener(listener));
        self
    }

    /// Adds a logout listener, called once per broker logged out of.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn app(auth: flamingo_auth::Auth) {
    /// let auth = auth.on_logout(|event| async move {
    ///     tracing::info!(broker = %event.broker, "logout");
    /// });
    /// # }
    /// ```
    pub fn on_logout<F, Fut>(mut self, listener: F) -> Self
    where
        F: Fn(LogoutEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        Arc::make_mut(&mut self.listeners)
            .logout
            .push(logout_listener(listener));
        self
    }

    /// The configured brokers as (name, `typ`), in configured order.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn show(auth: &flamingo_auth::Auth) {
    /// for (name, typ) in auth.brokers() {
    ///     println!("{name} ({typ}): /core/auth/login/{name}");
    /// }
    /// # }
    /// ```
    pub fn brokers(&self) -> Vec<(&str, &'static str)> {
        self.inner
            .brokers
            .iter()
            .map(|b| (b.name(), b.typ()))
            .collect()
    }

    pub(crate) fn broker(&self, name: &str) -> Option<&Broker> {
        self.inner.brokers.iter().find(|b| b.name() == name)
    }

    /// `core.auth.web.debugController`: whether `/core/auth/debug` is mounted.
    pub(crate) fn debug_controller(&self) -> bool {
        self.inner.debug
    }

    /// `core.auth.web.logoutPurgesSession`.
    pub(crate) fn logout_purges_session(&self) -> bool {
        self.inner.logout_purges_session
    }

    /// The session store, for reading a session again outside its request's copy.
    pub(crate) fn repository(&self) -> &SessionRepository {
        &self.inner.repository
    }

    /// The owners' session indexes and the leases of the session backend.
    pub(crate) fn directory(&self) -> &SessionDirectory {
        &self.inner.directory
    }

    /// How long a login's shared records live (see [`login_lifetime`]).
    pub(crate) fn login_lifetime(&self) -> Duration {
        self.inner.login_lifetime
    }

    /// The logout-token `jti`s seen by this process (for backends without leases).
    pub(crate) fn seen_logout_tokens(&self) -> &SeenTokens {
        &self.inner.seen_logout_tokens
    }

    /// What brokers need for one request's `session`.
    pub(crate) fn ctx<'a>(&'a self, req: &'a HttpRequest, session: &'a Session) -> Ctx<'a> {
        Ctx {
            req,
            session,
            origin: &self.inner.origin,
            optioners: &self.inner.auth_code_optioners,
            refresher: &self.inner.refresher,
        }
    }

    pub(crate) fn all_brokers(&self) -> &[Broker] {
        &self.inner.brokers
    }

    /// Whether an `oauth2` broker is configured (a refused API request then asks for a bearer
    /// token).
    pub(crate) fn has_bearer_broker(&self) -> bool {
        self.inner
            .brokers
            .iter()
            .any(|b| matches!(b, Broker::OAuth2(_)))
    }

    pub(crate) fn login_broker(&self) -> Option<&str> {
        self.inner.login_broker.as_deref()
    }

    pub(crate) fn api_client(&self) -> &reqwest::Client {
        &self.inner.api_client
    }

    /// `core.auth.web.httpClient.requestTimeout`.
    pub(crate) fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    /// Where the site's own URL comes from.
    pub(crate) fn origin(&self) -> &Origin {
        &self.inner.origin
    }

    /// Every identity of the request, in broker order (Flamingo's `IdentifyAll`). Errors of
    /// single brokers are logged and skipped.
    pub(crate) async fn identities(&self, req: &HttpRequest, session: &Session) -> Vec<Identity> {
        let ctx = self.ctx(req, session);
        let mut found = Vec::new();
        for broker in &self.inner.brokers {
            found.extend(identified(broker, &ctx).await);
        }
        found
    }

    /// The first identity of the request (Flamingo's `Identify`).
    pub(crate) async fn identify(&self, req: &HttpRequest, session: &Session) -> Option<Identity> {
        let ctx = self.ctx(req, session);
        for broker in &self.inner.brokers {
            if let Some(identity) = identified(broker, &ctx).await {
                return Some(identity);
            }
        }
        None
    }

    pub(crate) fn handle_callback_error(
        &self,
        req: &HttpRequest,
        err: &CallbackError,
    ) -> HttpResponse {
        if let Some(handler) = &self.inner.callback_error_handler {
            if let Some(response) = handler(req, err) {
                return response;
            }
        }
        let code: String = err
            .error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .take(64)
            .collect();
        HttpResponse::Unauthorized()
            .content_type("text/plain; charset=utf-8")
            .body(format!(
                "login was not completed at the identity provider: {code}"
            ))
    }

    pub(crate) async fn dispatch_login(&self, event: LoginEvent) {
        for listener in &self.listeners.login {
            listener(event.clone()).await;
        }
    }

    pub(crate) async fn dispatch_logout(&self, event: LogoutEvent) {
        for listener in &self.listeners.logout {
            listener(event.clone()).await;
        }
    }
}
