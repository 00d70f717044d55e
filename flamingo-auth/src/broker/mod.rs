//! Identity brokers (Flamingo's `RequestIdentifier`s): `oidc`, `oauth2`, `http` and `fake`,
//! and the application's own ([`RequestIdentifier`], [`MockBroker`](mock::MockBroker)).

// A failed callback *is* a response (a form with a message, a 400): it is returned as one.
#![allow(clippy::result_large_err)]

mod fake;
mod http;
mod identifier;
pub mod mock;
pub(crate) mod oauth2;
pub(crate) mod oidc;

use std::{collections::BTreeMap, sync::Arc};

use actix_web::{HttpRequest, HttpResponse};
use flamingo_session::Session;
use url::Url;

use crate::{config::BrokerConfig, error::AuthError, identity::Identity, Auth};

pub use self::identifier::{BrokerRequest, RequestIdentifier};
pub(crate) use self::{
    fake::FakeBroker,
    http::HttpBroker,
    identifier::{BrokerFactory, CustomBroker},
    oauth2::OAuth2Broker,
    oidc::OidcBroker,
};

/// The broker types registered with [`AuthBuilder::broker_type`](crate::AuthBuilder::broker_type),
/// by lowercase `typ`.
pub(crate) type BrokerTypes = BTreeMap<String, (&'static str, BrokerFactory)>;

/// What a broker operation needs from the request.
pub(crate) struct Ctx<'a> {
    pub(crate) req: &'a HttpRequest,
    pub(crate) session: &'a Session,
    pub(crate) auth: &'a Auth,
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
        options: &crate::auth::Options,
        types: &BrokerTypes,
    ) -> Result<Broker, crate::AuthConfigError> {
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
                    return Err(crate::AuthConfigError::invalid(
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
                    return Err(crate::AuthConfigError::invalid(
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
            Broker::Oidc(b) => b.identify(ctx).await,
            Broker::Http(b) => Ok(b.identify(ctx.req)),
            Broker::Fake(b) => Ok(b.identify(ctx)),
            Broker::OAuth2(b) => b.identify(ctx).await,
            Broker::Custom(b) => b.identifier.identify(&ctx.broker_request()).await,
        }
    }

    /// Starts a login (`/core/auth/login/{broker}`).
    pub(crate) fn authenticate(&self, ctx: &Ctx<'_>) -> Result<HttpResponse, AuthError> {
        match self {
            Broker::Oidc(b) => b.authenticate(ctx),
            Broker::Http(b) => Ok(b.authenticate(ctx)),
            Broker::Fake(b) => Ok(b.authenticate(ctx, None)),
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
    ) -> Option<Result<Identity, HttpResponse>> {
        match self {
            Broker::Oidc(b) => Some(b.callback(ctx, params).await),
            Broker::Http(_) => None,
            Broker::Fake(b) => Some(b.callback(ctx, params)),
            Broker::OAuth2(_) => None,
            Broker::Custom(b) => b
                .identifier
                .login(&ctx.broker_request(), params)
                .await
                .map(|result| result.map_err(|err| actix_web::ResponseError::error_response(&err))),
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
fn custom_login(ctx: &Ctx<'_>, broker: &str) -> HttpResponse {
    let mut url = Url::parse("http://localhost/").expect("static URL parses");
    url.path_segments_mut()
        .expect("http URLs have paths")
        .extend(["core", "auth", "callback", broker]);
    let query = ctx.req.query_string();
    let location = if query.is_empty() {
        url.path().to_owned()
    } else {
        format!("{}?{query}", url.path())
    };
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, location))
        .finish()
}
