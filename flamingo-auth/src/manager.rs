//! [`AuthManager`]: tokens of the logged-in user (Flamingo's `application.AuthManager`).

use std::sync::Arc;

use actix_web::{dev::Payload, FromRequest, HttpRequest};
use flamingo_session::Session;
use serde_json::{Map, Value};

use crate::{
    auth::Auth,
    broker::{Broker, Ctx, OidcBroker},
    client::AuthHttpClient,
    error::AuthError,
    extract::auth_of,
    identity::Identity,
    session_data::{oidc_session_key, OidcSessionData},
};

pub use openidconnect::AccessToken;

/// A verified ID token of the logged-in user: the raw compact JWS (for `id_token_hint` or a
/// backend) and its claims. `Debug` does not show the raw token.
#[derive(Clone, PartialEq)]
pub struct IdToken {
    raw: String,
    claims: Map<String, Value>,
}

impl std::fmt::Debug for IdToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdToken")
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

impl IdToken {
    /// The raw ID token (a JWT). It is a credential: do not log it.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// All claims of the token (verified when it was received).
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// The `sub` claim.
    pub fn subject(&self) -> &str {
        self.claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// One claim.
    pub fn claim(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }
}

/// Tokens of the user of the current request, for the `oidc` brokers (Flamingo's `AuthManager`).
///
/// An extractor. With several `oidc` brokers, it uses the one chosen with
/// [`broker`](Self::broker), else the first one the user is logged in at, else the first
/// configured one. Access tokens are refreshed with the refresh token when they expire, and the
/// new tokens are written back to the session; a refused refresh logs the user out of that
/// broker ([`AuthError::NotLoggedIn`]).
///
/// # Examples
///
/// ```
/// use actix_web::HttpResponse;
/// use flamingo_auth::{AuthError, AuthManager};
///
/// async fn orders(auth: AuthManager) -> Result<HttpResponse, AuthError> {
///     let id_token = auth.id_token().await?;
///     let client = auth.http_client().await?;
///     let orders = client.get("https://api.example.com/orders").send().await?;
///     Ok(HttpResponse::Ok().body(format!("{} has {} bytes of orders",
///         id_token.subject(), orders.content_length().unwrap_or(0))))
/// }
/// ```
#[derive(Clone)]
pub struct AuthManager {
    auth: Auth,
    req: HttpRequest,
    session: Session,
    broker: Option<String>,
}

impl std::fmt::Debug for AuthManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthManager")
            .field("broker", &self.broker)
            .finish_non_exhaustive()
    }
}

impl FromRequest for AuthManager {
    type Error = actix_web::Error;
    type Future =
        futures_util::future::LocalBoxFuture<'static, Result<AuthManager, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let auth = auth_of(&req)?;
            let session = Session::extract(&req).await?;
            Ok(AuthManager {
                auth,
                req,
                session,
                broker: None,
            })
        })
    }
}

impl AuthManager {
    /// The same manager, fixed to the broker `name`.
    ///
    /// # Errors
    ///
    /// [`AuthError::UnknownBroker`] when no broker has this name.
    ///
    /// # Examples
    ///
    /// ```
    /// # async fn f(auth: flamingo_auth::AuthManager) -> Result<(), flamingo_auth::AuthError> {
    /// let token = auth.broker("partner-sso")?.access_token().await?;
    /// # Ok(()) }
    /// ```
    pub fn broker(&self, name: &str) -> Result<AuthManager, AuthError> {
        self.auth
            .broker(name)
            .ok_or_else(|| AuthError::UnknownBroker {
                broker: name.to_owned(),
            })?;
        Ok(AuthManager {
            broker: Some(name.to_owned()),
            ..self.clone()
        })
    }

    /// The configured brokers as (name, `typ`).
    pub fn brokers(&self) -> Vec<(&str, &'static str)> {
        self.auth.brokers()
    }

    /// The session of the request.
    pub fn session(&self) -> &Session {
        &self.session
    }

    pub(crate) fn auth(&self) -> &Auth {
        &self.auth
    }

    fn ctx(&self) -> Ctx<'_> {
        self.auth.ctx(&self.req, &self.session)
    }

    /// Every identity of the request, one per broker logged in at (Flamingo's `IdentifyAll`).
    pub async fn identities(&self) -> Vec<Identity> {
        self.auth.identities(&self.req, &self.session).await
    }

    /// The identity at the chosen broker, or the first one found.
    ///
    /// # Errors
    ///
    /// [`AuthError::NotLoggedIn`] when there is none, [`AuthError::Provider`] when a needed
    /// refresh failed at the provider.
    pub async fn identity(&self) -> Result<Identity, AuthError> {
        match &self.broker {
            Some(name) => {
                let broker = self
                    .auth
                    .broker(name)
                    .ok_or_else(|| AuthError::UnknownBroker {
                        broker: name.clone(),
                    })?;
                broker
                    .identify(&self.ctx())
                    .await?
                    .ok_or_else(|| AuthError::NotLoggedIn {
                        broker: Some(name.clone()),
                    })
            }
            None => match self.auth.identify(&self.req, &self.session).await {
                Some(identity) => Ok(identity),
                None => Err(crate::broker::unidentified(&self.req)
                    .unwrap_or(AuthError::NotLoggedIn { broker: None })),
            },
        }
    }

    /// The `oidc` broker to use.
    fn oidc(&self) -> Result<&Arc<OidcBroker>, AuthError> {
        if let Some(name) = &self.broker {
            return match self.auth.broker(name) {
                Some(Broker::Oidc(b)) => Ok(b),
                Some(other) => Err(AuthError::Unsupported {
                    broker: name.clone(),
                    typ: other.typ(),
                    operation: "tokens",
                }),
                None => Err(AuthError::UnknownBroker {
                    broker: name.clone(),
                }),
            };
        }
        let oidc: Vec<&Arc<OidcBroker>> = self
            .auth
            .all_brokers()
            .iter()
            .filter_map(|b| match b {
                Broker::Oidc(b) => Some(b),
                _ => None,
            })
            .collect();
        let keys = self.session.keys();
        oidc.iter()
            .find(|b| keys.contains(&oidc_session_key(b.name())))
            .or(oidc.first())
            .copied()
            .ok_or(AuthError::NotLoggedIn { broker: None })
    }

    /// The request's own bearer token, when an `oauth2` broker identifies the request by it:
    /// the chosen broker, or (none chosen, and no `oidc` login in the session) the first that
    /// does. `Ok(None)` when the tokens come from an `oidc` login instead.
    async fn relayed(&self) -> Result<Option<Relayed>, AuthError> {
        let candidates: Vec<&Broker> = match &self.broker {
            Some(name) => match self.auth.broker(name) {
                Some(broker @ Broker::OAuth2(_)) => vec![broker],
                _ => return Ok(None),
            },
            None => {
                let oidc_login = self
                    .auth
                    .all_brokers()
                    .iter()
                    .any(|b| matches!(b, Broker::Oidc(_)) && b.has_login(&self.session));
                if oidc_login {
                    return Ok(None);
                }
                let bearer: Vec<&Broker> = self
                    .auth
                    .all_brokers()
                    .iter()
                    .filter(|b| matches!(b, Broker::OAuth2(_)))
                    .collect();
                if bearer.is_empty() {
                    return Ok(None);
                }
                bearer
            }
        };
        let ctx = self.ctx();
        for broker in &candidates {
            if broker.identify(&ctx).await?.is_some() {
                if let Some(Ok(token)) = crate::broker::oauth2::bearer_token(&self.req) {
                    return Ok(Some(Relayed {
                        broker: broker.name().to_owned(),
                        token: AccessToken::new(token.to_owned()),
                    }));
                }
            }
        }
        match (crate::broker::unidentified(&self.req), &self.broker) {
            (Some(err), _) => Err(err),
            (None, Some(name)) => Err(AuthError::NotLoggedIn {
                broker: Some(name.clone()),
            }),
            // No bearer token: the oidc path says who is (not) logged in.
            (None, None) => Ok(None),
        }
    }

    async fn data(&self, force_refresh: bool) -> Result<OidcSessionData, AuthError> {
        let broker = self.oidc()?;
        broker
            .session(&self.ctx(), force_refresh)
            .await?
            .ok_or_else(|| AuthError::NotLoggedIn {
                broker: Some(broker.name().to_owned()),
            })
    }

    /// The user's ID token (Flamingo's `IDToken`), refreshed with the access token.
    ///
    /// # Errors
    ///
    /// [`AuthError::NotLoggedIn`], or [`AuthError::Provider`] when a needed refresh failed.
    pub async fn id_token(&self) -> Result<IdToken, AuthError> {
        let data = self.data(false).await?;
        let claims = crate::broker::oidc::jwt_payload(&data.raw_id_token).unwrap_or_default();
        Ok(IdToken {
            raw: data.raw_id_token,
            claims,
        })
    }

    /// The user's access token, refreshed first when it expired (and written back to the
    /// session). A request identified by an `oauth2` broker gets its own bearer token (token
    /// relay).
    ///
    /// # Errors
    ///
    /// [`AuthError::NotLoggedIn`] (also when the refresh was refused: the user is then logged
    /// out), or [`AuthError::Provider`] when the provider could not be reached.
    pub async fn access_token(&self) -> Result<AccessToken, AuthError> {
        if let Some(relayed) = self.relayed().await? {
            return Ok(relayed.token);
        }
        Ok(AccessToken::new(self.data(false).await?.access_token))
    }

    /// Refreshes the tokens now, whether or not they expired (Flamingo's `RefreshIdentity`).
    ///
    /// # Errors
    ///
    /// As [`access_token`](Self::access_token); [`AuthError::Unsupported`] for a relayed bearer
    /// token (its client refreshes it).
    pub async fn refresh(&self) -> Result<AccessToken, AuthError> {
        if let Some(relayed) = self.relayed().await? {
            return Err(relayed.cannot_refresh());
        }
        Ok(AccessToken::new(self.data(true).await?.access_token))
    }

    /// An HTTP client that sends `Authorization: Bearer <access token>` of the user with every
    /// request, refreshing the token (and writing it back) when it expires (Flamingo's
    /// `HTTPClient`).
    ///
    /// For a request identified by an `oauth2` broker, the client sends the request's own bearer
    /// token on (token relay), as it came: it is not refreshed.
    ///
    /// # Errors
    ///
    /// [`AuthError::NotLoggedIn`] when there is no login at the broker. A request of the client
    /// fails with [`AuthError::Request`] when the API does not answer within the timeouts of
    /// `core.auth.web.httpClient` (see [`config`](crate::config#timeouts-of-the-token-carrying-client)).
    pub async fn http_client(&self) -> Result<AuthHttpClient, AuthError> {
        if let Some(relayed) = self.relayed().await? {
            return Ok(AuthHttpClient::new(
                self.auth.api_client().clone(),
                self.auth.request_timeout(),
                std::rc::Rc::new(relayed),
            ));
        }
        let broker = self.oidc()?.name().to_owned();
        // Fail early when nobody is logged in.
        self.data(false).await?;
        Ok(AuthHttpClient::new(
            self.auth.api_client().clone(),
            self.auth.request_timeout(),
            std::rc::Rc::new(self.broker(&broker)?),
        ))
    }
}

impl crate::client::TokenSource for AuthManager {
    fn token(
        &self,
        refresh: bool,
    ) -> futures_util::future::LocalBoxFuture<'_, Result<AccessToken, AuthError>> {
        Box::pin(async move {
            if refresh {
                self.refresh().await
            } else {
                self.access_token().await
            }
        })
    }
}

/// A request's own bearer token, passed on to the APIs it calls.
struct Relayed {
    broker: String,
    token: AccessToken,
}

impl Relayed {
    fn cannot_refresh(&self) -> AuthError {
        AuthError::Unsupported {
            broker: self.broker.clone(),
            typ: "oauth2",
            operation: "refreshing a relayed bearer token",
        }
    }
}

impl std::fmt::Debug for Relayed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relayed")
            .field("broker", &self.broker)
            .finish_non_exhaustive()
    }
}

impl crate::client::TokenSource for Relayed {
    fn token(
        &self,
        refresh: bool,
    ) -> futures_util::future::LocalBoxFuture<'_, Result<AccessToken, AuthError>> {
        let token = if refresh {
            Err(self.cannot_refresh())
        } else {
            Ok(self.token.clone())
        };
        Box::pin(std::future::ready(token))
    }
}
