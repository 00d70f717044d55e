//! The `oidc` broker: OpenID Connect authorization code flow with PKCE, state and nonce, through
//! the `openidconnect` crate.
//!
//! - Discovery runs at start-up (with the [`RetryPolicy`]). The metadata and the provider's keys
//!   live behind an [`ArcSwap`]; an ID token signed with a key the app does not know triggers
//!   one re-discovery (at most once per `jwks_refetch_interval`) and a second verification, so
//!   a signing-key rotation at the provider is not a failed login (openidconnect issue #232).
//! - A refreshed ID token may omit the nonce (openidconnect issue #186); when it carries one it
//!   must be the login's, and its `sub` must be the login's.
//! - `at_hash` is checked whenever the ID token carries it.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use base64::Engine as _;
use flamingo_session::backend::SessionId;
use openidconnect::{
    core::{
        CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
        CoreGenderClaim, CoreIdToken, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm, CoreRevocableToken, CoreRevocationErrorResponse,
        CoreTokenIntrospectionResponse, CoreTokenType,
    },
    AccessToken, AccessTokenHash, AuthorizationCode, ClaimsVerificationError, Client, ClientId,
    ClientSecret, CsrfToken, EmptyAdditionalClaims, EndpointMaybeSet, EndpointNotSet, EndpointSet,
    ExtraTokenFields, IdTokenFields, JsonWebKeySet, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, ProviderMetadataWithLogout, RedirectUrl, RefreshToken, RequestTokenError,
    Scope, SignatureVerificationError, StandardErrorResponse, StandardTokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq as _;
use tracing::Instrument as _;
use url::Url;

use crate::{
    auth_params,
    config::OidcConfig,
    error::{AuthConfigError, AuthError, BoxError},
    identity::{Identity, IdentityKind},
    log::Escaped,
    session_data::{oidc_session_key, oidc_states_key, OidcSessionData, OidcState},
    user::map_claims,
};

use super::{CallbackError, Ctx, LoggedIn, LoginFailure, LoginStep, RetryPolicy};

/// At most this many logins may be in progress in one session (one per tab); older ones are
/// dropped first.
const MAX_LIVE_STATES: usize = 16;

/// Extra fields of the token response, kept for `claims.accessToken` (Flamingo takes
/// access-token claims from them too).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct TokenExtras {
    #[serde(flatten)]
    fields: BTreeMap<String, Value>,
}

impl ExtraTokenFields for TokenExtras {}

type IdFields = IdTokenFields<
    EmptyAdditionalClaims,
    TokenExtras,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type TokenResponse = StandardTokenResponse<IdFields, CoreTokenType>;

/// The openidconnect client type after discovery (auth URL set; token and userinfo URLs as the
/// provider advertises them).
type OidcClient = Client<
    EmptyAdditionalClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What discovery found: the metadata (with the keys) and a client built from it.
struct ProviderState {
    metadata: ProviderMetadataWithLogout,
    client: OidcClient,
}

/// An `oidc` broker.
pub(crate) struct OidcBroker {
    config: OidcConfig,
    /// Talks to the provider; never follows redirects (SSRF).
    http: reqwest::Client,
    provider: ArcSwap<ProviderState>,
    /// When the keys were last fetched again because of an unknown `kid`.
    last_refetch: tokio::sync::Mutex<Option<Instant>>,
    refetch_interval: Duration,
}

/// Why a refresh exchange did not give new tokens.
#[derive(Debug)]
pub(crate) enum RefreshError {
    /// The provider refused (`invalid_grant` when the token is unknown, used or revoked), or the
    /// new ID token was rejected: the login is over.
    Refused { invalid_grant: bool, reason: String },
    /// The provider could not be asked.
    Failed(BoxError),
}

/// What a shared refresh ended with; every request of the session gets a clone.
#[derive(Clone)]
pub(crate) enum RefreshOutcome {
    /// New (or another request's fresher) tokens.
    Refreshed(Box<OidcSessionData>),
    /// The provider refused the refresh token, the refreshed ID token was rejected, or the login
    /// ended in another request meanwhile: the login is over.
    Refused(String),
    /// The provider could not be asked (network, store, a refresh elsewhere that never ended):
    /// the login stays, the request fails.
    Failed(String),
}

/// Shares the refresh of a session's tokens ([`crate::refresh::Refresher`]): the requests of a
/// session that find the same tokens expired, in this process and in the others on the store,
/// get the outcome of one exchange ([`OidcBroker::exchange_refresh_token`]).
#[async_trait::async_trait(?Send)]
pub(crate) trait Refresher {
    /// The outcome of refreshing `data`, the login of `session` (`None`: not stored yet) at
    /// `broker`.
    async fn refresh(
        &self,
        broker: Arc<OidcBroker>,
        session: Option<SessionId>,
        data: OidcSessionData,
    ) -> RefreshOutcome;
}

/// How a verified ID token's nonce is checked.
enum NonceCheck<'a> {
    /// At login: the nonce must be the one sent.
    Login(&'a Nonce),
    /// After a refresh: no nonce, or the login's.
    Refresh(Option<&'a str>),
}

/// Why an ID token was refused.
#[derive(Debug, thiserror::Error)]
enum VerifyError {
    #[error(transparent)]
    Claims(#[from] ClaimsVerificationError),
    #[error("at_hash does not match the access token")]
    AccessTokenHash,
    #[error("at_hash could not be checked: {0}")]
    AccessTokenHashUnchecked(String),
    #[error("the ID token's subject differs from the login's")]
    SubjectChanged,
    #[error("the ID token's payload is not JSON")]
    Payload,
}

impl OidcBroker {
    /// Discovers the provider (with retries) and builds the broker.
    pub(crate) async fn new(
        config: OidcConfig,
        index: usize,
        retry: &RetryPolicy,
        refetch_interval: Duration,
    ) -> Result<Self, AuthConfigError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(retry.request_timeout)
            .build()
            .map_err(|err| AuthConfigError::invalid("core.auth.web.broker", err.to_string()))?;
        let mut attempt = 0;
        let mut delay = retry.initial_delay;
        let state = loop {
            attempt += 1;
            match discover(&config, &http).await {
                Ok(state) => break state,
                Err(err) if attempt < retry.attempts => {
                    tracing::warn!(
                        broker = %config.broker, endpoint = %config.endpoint, attempt, error = %Escaped(&err),
                        "OpenID Connect discovery failed; retrying in {delay:?}"
                    );
                    tokio::time::sleep(delay).await;
                    delay = delay.mul_f64(2.0).min(retry.max_delay);
                }
                Err(source) => {
                    return Err(AuthConfigError::Discovery {
                        key: format!("core.auth.web.broker[{index}].endpoint"),
                        broker: config.broker.clone(),
                        endpoint: config.endpoint.to_string(),
                        attempts: attempt,
                        source,
                    })
                }
            }
        };
        tracing::info!(broker = %config.broker, issuer = %Escaped(state.metadata.issuer().as_str()), "OpenID Provider discovered");
        Ok(OidcBroker {
            config,
            http,
            provider: ArcSwap::from_pointee(state),
            last_refetch: tokio::sync::Mutex::new(None),
            refetch_interval,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.config.broker
    }

    /// The discovered end-session endpoint, if logout should use it.
    pub(crate) fn end_session_endpoint(&self) -> Option<Url> {
        if !self.config.enable_end_session_endpoint {
            return None;
        }
        let state = self.provider.load();
        state
            .metadata
            .additional_metadata()
            .end_session_endpoint
            .as_ref()
            .map(|e| e.url().clone())
    }

    fn client_for(&self, state: &ProviderState, ctx: &Ctx<'_>) -> OidcClient {
        let callback = ctx.origin.absolute(
            ctx.req,
            &format!("/core/auth/callback/{}", self.config.broker),
        );
        state
            .client
            .clone()
            .set_redirect_uri(RedirectUrl::from_url(callback))
    }

    /// Starts a login: stores a new state entry and redirects to the provider.
    pub(crate) fn authenticate(&self, ctx: &Ctx<'_>) -> Result<LoginStep, AuthError> {
        let state = self.provider.load();
        let client = self.client_for(&state, ctx);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in self.config.scopes.iter().filter(|s| s.as_str() != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        if self.config.enable_offline_token
            && !self.config.scopes.iter().any(|s| s == "offline_access")
        {
            // No prompt=consent here: it makes every login ask again. Providers that want it
            // for offline_access get it from `authParameters`.
            request = request.add_scope(Scope::new("offline_access".to_owned()));
        }
        if let Some(claims) = self.config.request_claims.to_parameter() {
            request = request.add_extra_param("claims", claims);
        }
        for (name, value) in self.authorization_parameters(ctx)? {
            request = request.add_extra_param(name, value);
        }
        let (url, csrf, nonce) = request.url();

        let key = oidc_states_key(&self.config.broker);
        let mut states = self.live_states(ctx)?;
        states.push(OidcState {
            state: csrf.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            created_at: now(),
        });
        if states.len() > MAX_LIVE_STATES {
            states.drain(..states.len() - MAX_LIVE_STATES);
        }
        ctx.session.store(&key, states)?;
        tracing::debug!(broker = %self.config.broker, "redirecting to the OpenID Provider");
        Ok(LoginStep::Redirect(url.to_string()))
    }

    /// The extra parameters of this login's authorization request: `authParameters`, then the
    /// allowed `loginParameters` of the login URL, then the [`AuthCodeOptioner`]s' (see
    /// [`auth_params`](crate::auth_params)).
    ///
    /// [`AuthCodeOptioner`]: crate::AuthCodeOptioner
    fn authorization_parameters(&self, ctx: &Ctx<'_>) -> Result<Vec<(String, String)>, AuthError> {
        let mut params: Vec<(String, String)> = self
            .config
            .auth_parameters
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        if !self.config.login_parameters.is_empty() {
            for (name, value) in url::form_urlencoded::parse(ctx.req.query_string().as_bytes()) {
                if !self.config.login_parameters.iter().any(|p| *p == name) {
                    continue;
                }
                auth_params::check_value(&name, &value).map_err(|reason| {
                    AuthError::BadLoginRequest {
                        message: format!("login parameter {name}: {reason}"),
                    }
                })?;
                auth_params::set(&mut params, &name, value.into_owned());
            }
        }
        for optioner in ctx.optioners {
            for (name, value) in optioner.options(ctx.req, &self.config.broker) {
                if auth_params::RESERVED_PARAMETERS.contains(&name.as_str()) {
                    tracing::warn!(broker = %self.config.broker, parameter = %Escaped(&name), "an AuthCodeOptioner tried to set a protocol parameter; skipped");
                    continue;
                }
                if name.is_empty() || name.chars().chain(value.chars()).any(char::is_control) {
                    tracing::warn!(broker = %self.config.broker, parameter = %Escaped(&name), "an AuthCodeOptioner gave an empty name or a control character; skipped");
                    continue;
                }
                auth_params::set(&mut params, &name, value);
            }
        }
        Ok(params)
    }

    /// The state entries of this session that have not expired.
    fn live_states(&self, ctx: &Ctx<'_>) -> Result<Vec<OidcState>, AuthError> {
        let key = oidc_states_key(&self.config.broker);
        let lifetime = i64::try_from(self.config.state_lifetime.as_secs()).unwrap_or(i64::MAX);
        let now = now();
        let states: Vec<OidcState> = match ctx.session.load(&key) {
            Ok(states) => states.unwrap_or_default(),
            Err(err) => {
                tracing::warn!(broker = %self.config.broker, error = %Escaped(&err), "dropping unreadable login states");
                Vec::new()
            }
        };
        Ok(states
            .into_iter()
            .filter(|s| now.saturating_sub(s.created_at) <= lifetime)
            .collect())
    }

    /// Takes the state entry matching `state` (one-time use); writes back the other live ones.
    fn take_state(&self, ctx: &Ctx<'_>, state: &str) -> Result<Option<OidcState>, AuthError> {
        let key = oidc_states_key(&self.config.broker);
        let mut states = self.live_states(ctx)?;
        let found = states
            .iter()
            .position(|s| bool::from(s.state.as_bytes().ct_eq(state.as_bytes())));
        let entry = found.map(|index| states.remove(index));
        if states.is_empty() {
            ctx.session.delete(&key);
        } else {
            ctx.session.store(&key, states)?;
        }
        Ok(entry)
    }

    /// The provider redirected back: checks state, exchanges the code, verifies the ID token and
    /// stores the login.
    pub(crate) async fn callback(
        &self,
        ctx: &Ctx<'_>,
        params: &BTreeMap<String, String>,
    ) -> Result<LoggedIn, LoginFailure> {
        self.refuse_provider_error(params)?;
        let entry = self.take_login_state(ctx, params)?;
        let provider = self.provider.load_full();
        check_issuer(&provider, params, &self.config.broker)?;
        let response = self.exchange_code(ctx, &provider, params, &entry).await?;
        let (id_token, claims) = self.verify_login(&response, &entry).await?;
        let data = self.session_data(&response, id_token, &claims, Some(entry.nonce), None);
        let identity = self.identity_of(&data);
        ctx.session
            .store(&oidc_session_key(&self.config.broker), data)
            .map_err(|err| LoginFailure::Error(err.into()))?;
        Ok(LoggedIn {
            identity,
            provider_session: claims.get("sid").and_then(Value::as_str).map(str::to_owned),
        })
    }

    /// Step 1: the provider answered `?error=` (the user denied, `prompt=none` found no login).
    fn refuse_provider_error(&self, params: &BTreeMap<String, String>) -> Result<(), LoginFailure> {
        let Some(error) = params.get("error") else {
            return Ok(());
        };
        let err = CallbackError {
            broker: self.config.broker.clone(),
            error: error.clone(),
            description: params.get("error_description").cloned(),
        };
        tracing::info!(
            broker = %self.config.broker,
            error = %Escaped(&err.error),
            description = %Escaped(err.description.as_deref().unwrap_or_default()),
            "the OpenID Provider returned an error"
        );
        Err(LoginFailure::Provider(err))
    }

    /// Step 2: the login this callback completes, by its `state` (one-time use).
    fn take_login_state(
        &self,
        ctx: &Ctx<'_>,
        params: &BTreeMap<String, String>,
    ) -> Result<OidcState, LoginFailure> {
        let Some(state) = params.get("state") else {
            return Err(LoginFailure::BadRequest("no state in request"));
        };
        match self.take_state(ctx, state) {
            Ok(Some(entry)) => Ok(entry),
            Ok(None) => {
                tracing::warn!(broker = %self.config.broker, "login callback with an unknown or expired state");
                Err(LoginFailure::BadRequest("state mismatch"))
            }
            Err(err) => Err(LoginFailure::Error(err)),
        }
    }

    /// Step 4: the authorization code exchanged for tokens, with the login's PKCE verifier.
    async fn exchange_code(
        &self,
        ctx: &Ctx<'_>,
        provider: &ProviderState,
        params: &BTreeMap<String, String>,
        entry: &OidcState,
    ) -> Result<TokenResponse, LoginFailure> {
        let Some(code) = params.get("code") else {
            return Err(LoginFailure::BadRequest("no code in request"));
        };
        let client = self.client_for(provider, ctx);
        let exchange = client
            .exchange_code(AuthorizationCode::new(code.clone()))
            .map_err(|err| self.provider_failure(err.into()))?;
        let response = exchange
            .set_pkce_verifier(PkceCodeVerifier::new(entry.pkce_verifier.clone()))
            .request_async(&self.http)
            .instrument(tracing::info_span!("oidc.token_exchange", broker = %self.config.broker))
            .await;
        match response {
            Ok(response) => Ok(response),
            Err(RequestTokenError::ServerResponse(err)) => {
                tracing::warn!(broker = %self.config.broker, error = %Escaped(err.error()), "the OpenID Provider refused the authorization code");
                Err(LoginFailure::BadRequest(
                    "login failed: the identity provider refused the authorization code",
                ))
            }
            Err(err) => Err(self.provider_failure(err.into())),
        }
    }

    /// Step 5: the ID token of the response, verified with the login's nonce; its claims.
    async fn verify_login<'r>(
        &self,
        response: &'r TokenResponse,
        entry: &OidcState,
    ) -> Result<(&'r CoreIdToken, Map<String, Value>), LoginFailure> {
        let Some(id_token) = response.extra_fields().id_token() else {
            return Err(self.provider_failure("the token response has no id_token".into()));
        };
        let nonce = Nonce::new(entry.nonce.clone());
        match self
            .verify(
                id_token,
                NonceCheck::Login(&nonce),
                response.access_token(),
                None,
            )
            .await
        {
            Ok(claims) => Ok((id_token, claims)),
            Err(err) => {
                tracing::warn!(broker = %self.config.broker, error = %Escaped(&err), "ID token rejected");
                Err(LoginFailure::Rejected(
                    "login failed: the ID token was rejected",
                ))
            }
        }
    }

    fn provider_failure(&self, err: BoxError) -> LoginFailure {
        tracing::error!(broker = %self.config.broker, error = %Escaped(&err), "OpenID Provider failed during login");
        LoginFailure::Unavailable
    }

    /// Verifies an ID token (signature, issuer, audience, expiry, nonce, `at_hash`) and returns
    /// its claims. An unknown signing key triggers one (rate-limited) key refetch and a retry.
    async fn verify(
        &self,
        id_token: &CoreIdToken,
        nonce: NonceCheck<'_>,
        access_token: &AccessToken,
        subject: Option<&str>,
    ) -> Result<Map<String, Value>, VerifyError> {
        let first = self.verify_with(
            &self.provider.load(),
            id_token,
            &nonce,
            access_token,
            subject,
        );
        match first {
            Err(VerifyError::Claims(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            ))) if self.refetch_keys().await => self.verify_with(
                &self.provider.load(),
                id_token,
                &nonce,
                access_token,
                subject,
            ),
            other => other,
        }
    }

    fn verify_with(
        &self,
        state: &ProviderState,
        id_token: &CoreIdToken,
        nonce: &NonceCheck<'_>,
        access_token: &AccessToken,
        subject: Option<&str>,
    ) -> Result<Map<String, Value>, VerifyError> {
        let verifier = state.client.id_token_verifier();
        let claims = match nonce {
            NonceCheck::Login(expected) => id_token.claims(&verifier, *expected)?,
            NonceCheck::Refresh(expected) => {
                let expected = expected.map(str::to_owned);
                id_token.claims(&verifier, move |got: Option<&Nonce>| {
                    match (got, expected) {
                        (None, _) => Ok(()),
                        (Some(got), Some(expected))
                            if bool::from(got.secret().as_bytes().ct_eq(expected.as_bytes())) =>
                        {
                            Ok(())
                        }
                        (Some(_), _) => {
                            Err("the refreshed ID token carries another nonce".to_owned())
                        }
                    }
                })?
            }
        };
        if let Some(expected) = claims.access_token_hash() {
            let alg = id_token
                .signing_alg()
                .map_err(ClaimsVerificationError::SignatureVerification)?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(ClaimsVerificationError::SignatureVerification)?;
            let actual = AccessTokenHash::from_token(access_token, alg, key)
                .map_err(|err| VerifyError::AccessTokenHashUnchecked(err.to_string()))?;
            if actual != *expected {
                return Err(VerifyError::AccessTokenHash);
            }
        }
        if let Some(subject) = subject {
            if claims.subject().as_str() != subject {
                return Err(VerifyError::SubjectChanged);
            }
        }
        jwt_payload(&id_token.to_string()).ok_or(VerifyError::Payload)
    }

    /// The provider's signing keys as last fetched, and its issuer: what a logout token is
    /// checked against (see [`crate::backchannel`]).
    pub(crate) fn keys_and_issuer(&self) -> (JsonWebKeySet<CoreJsonWebKey>, String) {
        let state = self.provider.load();
        (
            state.metadata.jwks().clone(),
            state.metadata.issuer().as_str().to_owned(),
        )
    }

    pub(crate) fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Discovers the provider again, at most once per `refetch_interval`. Returns whether new
    /// keys were loaded.
    pub(crate) async fn refetch_keys(&self) -> bool {
        let mut last = self.last_refetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.refetch_interval) {
            tracing::debug!(broker = %self.config.broker, "unknown signing key; refetch is rate-limited");
            return false;
        }
        *last = Some(Instant::now());
        match discover(&self.config, &self.http).await {
            Ok(state) => {
                tracing::info!(broker = %self.config.broker, "unknown signing key: provider keys fetched again");
                self.provider.store(Arc::new(state));
                true
            }
            Err(err) => {
                tracing::warn!(broker = %self.config.broker, error = %Escaped(&err), "refetching the provider keys failed");
                false
            }
        }
    }

    /// Builds the session data from a token response.
    fn session_data(
        &self,
        response: &TokenResponse,
        id_token: &CoreIdToken,
        claims: &Map<String, Value>,
        nonce: Option<String>,
        previous_refresh_token: Option<String>,
    ) -> OidcSessionData {
        let issued_at = now();
        let access_token = response.access_token().secret().clone();
        let mut raw_access_claims = jwt_payload(&access_token).unwrap_or_default();
        for (name, value) in &response.extra_fields().extra_fields().fields {
            if name != "id_token" {
                raw_access_claims.insert(name.clone(), value.clone());
            }
        }
        OidcSessionData {
            subject: claims
                .get("sub")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            token_type: "Bearer".to_owned(),
            refresh_token: response
                .refresh_token()
                .map(|t| t.secret().clone())
                .or(previous_refresh_token),
            expires_at: response
                .expires_in()
                .map(|d| issued_at.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))),
            issued_at,
            access_token,
            raw_id_token: id_token.to_string(),
            nonce,
            id_token_claims: map_claims(&self.config.id_token_claims, claims),
            access_token_claims: map_claims(&self.config.access_token_claims, &raw_access_claims),
        }
    }

    fn identity_of(&self, data: &OidcSessionData) -> Identity {
        Identity::new(
            self.config.broker.clone(),
            data.subject.clone(),
            IdentityKind::Oidc {
                access_token_claims: data.access_token_claims.clone(),
            },
            data.id_token_claims.clone(),
        )
    }

    /// The login stored in the session, refreshed first when the access token expired (or
    /// `force_refresh`). `Ok(None)` when nobody is logged in, or the refresh was refused (then
    /// the login is removed).
    pub(crate) async fn session(
        self: &Arc<Self>,
        ctx: &Ctx<'_>,
        force_refresh: bool,
    ) -> Result<Option<OidcSessionData>, AuthError> {
        let key = oidc_session_key(&self.config.broker);
        let data = match ctx.session.load::<OidcSessionData>(&key) {
            Ok(Some(data)) => data,
            Ok(None) => return Ok(None),
            Err(err) => {
                tracing::warn!(broker = %self.config.broker, error = %Escaped(&err), "dropping unreadable login data");
                ctx.session.delete(&key);
                return Ok(None);
            }
        };
        if !force_refresh && !needs_refresh(&data) {
            return Ok(Some(data));
        }
        self.refresh(ctx, data).await
    }

    /// The identity in the session (refreshing as [`session`](Self::session) does).
    pub(crate) async fn identify(
        self: &Arc<Self>,
        ctx: &Ctx<'_>,
    ) -> Result<Option<Identity>, AuthError> {
        Ok(self
            .session(ctx, false)
            .await?
            .map(|data| self.identity_of(&data)))
    }

    /// Refreshes the tokens of the session's login, sharing the exchange with every other
    /// request of the session that presents the same refresh token (see [`crate::refresh`]).
    async fn refresh(
        self: &Arc<Self>,
        ctx: &Ctx<'_>,
        data: OidcSessionData,
    ) -> Result<Option<OidcSessionData>, AuthError> {
        let broker = &self.config.broker;
        let key = oidc_session_key(broker);
        if data.refresh_token.is_none() {
            tracing::info!(broker = %broker, "access token expired and there is no refresh token: logged out");
            ctx.session.delete(&key);
            return Ok(None);
        }
        match ctx
            .refresher
            .refresh(self.clone(), ctx.session.id(), data)
            .await
        {
            RefreshOutcome::Refreshed(new_data) => {
                ctx.session.store(&key, (*new_data).clone())?;
                tracing::debug!(broker = %broker, "access token refreshed");
                Ok(Some(*new_data))
            }
            RefreshOutcome::Refused(reason) => {
                tracing::info!(broker = %broker, reason = %Escaped(&reason), "refresh refused: logged out");
                ctx.session.delete(&key);
                Ok(None)
            }
            RefreshOutcome::Failed(message) => Err(AuthError::provider(broker, message)),
        }
    }

    /// Exchanges the refresh token of `data` at the provider and verifies what comes back; no
    /// session is touched (the caller shares the result, see [`crate::refresh`]).
    pub(crate) async fn exchange_refresh_token(
        &self,
        data: &OidcSessionData,
    ) -> Result<OidcSessionData, RefreshError> {
        let broker = &self.config.broker;
        let refresh_token = data
            .refresh_token
            .clone()
            .ok_or_else(|| RefreshError::Refused {
                invalid_grant: false,
                reason: "no refresh token".to_owned(),
            })?;
        let provider = self.provider.load_full();
        let token = RefreshToken::new(refresh_token.clone());
        let request = provider
            .client
            .exchange_refresh_token(&token)
            .map_err(|err| RefreshError::Failed(err.into()))?;
        let response = request
            .request_async(&self.http)
            .instrument(tracing::info_span!("oidc.refresh", broker = %broker))
            .await;
        let response = match response {
            Ok(response) => response,
            Err(RequestTokenError::ServerResponse(err)) => {
                return Err(RefreshError::Refused {
                    invalid_grant: *err.error() == CoreErrorResponseType::InvalidGrant,
                    reason: format!("the provider answered {}", err.error()),
                });
            }
            Err(err) => return Err(RefreshError::Failed(err.into())),
        };
        let new_data = match response.extra_fields().id_token() {
            Some(id_token) => {
                let claims = self
                    .verify(
                        id_token,
                        NonceCheck::Refresh(data.nonce.as_deref()),
                        response.access_token(),
                        Some(&data.subject),
                    )
                    .await
                    .map_err(|err| RefreshError::Refused {
                        invalid_grant: false,
                        reason: format!("the refreshed ID token was rejected: {err}"),
                    })?;
                self.session_data(
                    &response,
                    id_token,
                    &claims,
                    data.nonce.clone(),
                    Some(refresh_token),
                )
            }
            None => {
                // No new ID token: keep the old one and its claims, take the new access token.
                let issued_at = now();
                OidcSessionData {
                    access_token: response.access_token().secret().clone(),
                    refresh_token: response
                        .refresh_token()
                        .map(|t| t.secret().clone())
                        .or(Some(refresh_token)),
                    expires_at: response.expires_in().map(|d| {
                        issued_at.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                    }),
                    issued_at,
                    ..data.clone()
                }
            }
        };
        Ok(new_data)
    }

    /// Removes the login and the pending states; returns the end-session URL (with
    /// `id_token_hint` and `client_id`) when the user was logged in and the provider supports
    /// RP-initiated logout.
    pub(crate) fn logout(&self, ctx: &Ctx<'_>) -> Option<Url> {
        let key = oidc_session_key(&self.config.broker);
        let data = ctx.session.load::<OidcSessionData>(&key).ok().flatten();
        ctx.session.delete(&key);
        ctx.session.delete(&oidc_states_key(&self.config.broker));
        let data = data?;
        let mut url = self.end_session_endpoint()?;
        url.query_pairs_mut()
            .append_pair("id_token_hint", &data.raw_id_token)
            .append_pair("client_id", &self.config.client_id);
        Some(url)
    }
}

/// Fetches the discovery document and the keys. With `overrideIssuerURL` the document is read
/// from `endpoint` but must name the override as its issuer.
async fn discover(config: &OidcConfig, http: &reqwest::Client) -> Result<ProviderState, BoxError> {
    let expected_issuer = config
        .override_issuer_url
        .as_ref()
        .unwrap_or(&config.endpoint);
    let mut discovery_url = config.endpoint.clone();
    let path = discovery_url.path().trim_end_matches('/').to_owned();
    discovery_url.set_path(&format!("{path}/.well-known/openid-configuration"));
    let response = http
        .get(discovery_url.clone())
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|err| format!("GET {discovery_url}: {err}"))?;
    if !response.status().is_success() {
        return Err(format!("GET {discovery_url}: HTTP {}", response.status()).into());
    }
    let body = response
        .bytes()
        .await
        .map_err(|err| format!("GET {discovery_url}: {err}"))?;
    let metadata: ProviderMetadataWithLogout = serde_json::from_slice(&body)
        .map_err(|err| format!("{discovery_url} is not an OpenID Provider configuration: {err}"))?;
    let trim = |s: &str| s.trim_end_matches('/').to_owned();
    if trim(metadata.issuer().as_str()) != trim(expected_issuer.as_str()) {
        return Err(format!(
            "the provider names its issuer {:?}, expected {:?} (set overrideIssuerURL if that is right)",
            metadata.issuer().as_str(),
            expected_issuer.as_str()
        )
        .into());
    }
    let jwks = JsonWebKeySet::fetch_async(metadata.jwks_uri(), http)
        .await
        .map_err(|err| {
            format!(
                "fetching the keys at {}: {err}",
                metadata.jwks_uri().as_str()
            )
        })?;
    // `none` is never acceptable, whatever the provider advertises.
    let algs: Vec<CoreJwsSigningAlgorithm> = metadata
        .id_token_signing_alg_values_supported()
        .iter()
        .filter(|alg| **alg != CoreJwsSigningAlgorithm::None)
        .cloned()
        .collect();
    let metadata = metadata
        .set_jwks(jwks)
        .set_id_token_signing_alg_values_supported(algs);
    let client = OidcClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(config.client_id.clone()),
        Some(ClientSecret::new(config.client_secret.expose().to_owned())),
    );
    Ok(ProviderState { metadata, client })
}

/// Step 3 of a login callback: RFC 9207, the response names its issuer; a mix-up attack names
/// another.
fn check_issuer(
    provider: &ProviderState,
    params: &BTreeMap<String, String>,
    broker: &str,
) -> Result<(), LoginFailure> {
    match params.get("iss") {
        Some(iss) if iss.as_str() != provider.metadata.issuer().as_str() => {
            tracing::warn!(broker = %broker, "login callback from another issuer");
            Err(LoginFailure::BadRequest("issuer mismatch"))
        }
        _ => Ok(()),
    }
}

pub(crate) use crate::clock::now;

/// Whether the access token should be refreshed now: it expired, or 90% of its lifetime (at
/// most 30 s before the end) has passed.
pub(crate) fn needs_refresh(data: &OidcSessionData) -> bool {
    let Some(expires_at) = data.expires_at else {
        return false;
    };
    let lifetime = expires_at.saturating_sub(data.issued_at).max(0);
    let margin = (lifetime / 10).min(30);
    now() >= expires_at.saturating_sub(margin)
}

/// The payload of a compact JWS as a JSON object, unverified (the caller verified it or only
/// shows it).
pub(crate) fn jwt_payload(token: &str) -> Option<Map<String, Value>> {
    let mut parts = token.split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}
