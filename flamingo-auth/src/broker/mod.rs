//! Identity brokers (Flamingo's `RequestIdentifier`s): `oidc`, `http` and `fake`.

// A failed callback *is* a response (a form with a message, a 400): it is returned as one.
#![allow(clippy::result_large_err)]

mod fake;
mod http;
pub(crate) mod oidc;

use std::{collections::BTreeMap, sync::Arc};

use actix_web::{HttpRequest, HttpResponse};
use flamingo_session::Session;
use url::Url;

use crate::{config::BrokerConfig, error::AuthError, identity::Identity, Auth};

pub(crate) use self::{fake::FakeBroker, http::HttpBroker, oidc::OidcBroker};

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
}

impl Broker {
    /// Builds a broker; `oidc` brokers discover their provider.
    pub(crate) async fn build(
        config: BrokerConfig,
        index: usize,
        options: &crate::auth::Options,
    ) -> Result<Broker, crate::AuthConfigError> {
        Ok(match config {
            BrokerConfig::Oidc(c) => Broker::Oidc(Arc::new(
                OidcBroker::new(c, index, &options.retry, options.jwks_refetch_interval).await?,
            )),
            BrokerConfig::Http(c) => Broker::Http(HttpBroker::new(c)),
            BrokerConfig::Fake(c) => Broker::Fake(FakeBroker::new(c)),
        })
    }

    pub(crate) fn name(&self) -> &str {
        match self {
            Broker::Oidc(b) => b.name(),
            Broker::Http(b) => b.name(),
            Broker::Fake(b) => b.name(),
        }
    }

    pub(crate) fn typ(&self) -> &'static str {
        match self {
            Broker::Oidc(_) => "oidc",
            Broker::Http(_) => "http",
            Broker::Fake(_) => "fake",
        }
    }

    /// Who is logged in at this broker, if anyone.
    pub(crate) async fn identify(&self, ctx: &Ctx<'_>) -> Result<Option<Identity>, AuthError> {
        match self {
            Broker::Oidc(b) => b.identify(ctx).await,
            Broker::Http(b) => Ok(b.identify(ctx.req)),
            Broker::Fake(b) => Ok(b.identify(ctx)),
        }
    }

    /// Starts a login (`/core/auth/login/{broker}`).
    pub(crate) fn authenticate(&self, ctx: &Ctx<'_>) -> Result<HttpResponse, AuthError> {
        match self {
            Broker::Oidc(b) => b.authenticate(ctx),
            Broker::Http(b) => Ok(b.authenticate(ctx)),
            Broker::Fake(b) => Ok(b.authenticate(ctx, None)),
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
        }
    }

    /// Removes the local login; returns a single-sign-out URL to visit, if any.
    pub(crate) fn logout(&self, ctx: &Ctx<'_>) -> Option<Url> {
        match self {
            Broker::Oidc(b) => b.logout(ctx),
            Broker::Http(_) => None,
            Broker::Fake(b) => {
                b.logout(ctx);
                None
            }
        }
    }
}
