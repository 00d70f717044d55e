//! Login and logout events (Flamingo's `WebLoginEvent` and `WebLogoutEvent`).
//!
//! Register listeners with [`Auth::on_login`](crate::Auth::on_login) and
//! [`Auth::on_logout`](crate::Auth::on_logout), in `main` or in the app factory. A listener is
//! an async function of the event; it runs inside the request, after the session got its new
//! ID (login) or before the session gets its new ID or is purged (logout), so what it stores in
//! [`session`](LoginEvent::session) at login is kept.

use std::{future::Future, sync::Arc};

use actix_web::HttpRequest;
use flamingo_session::Session;
use futures_util::future::LocalBoxFuture;

use crate::identity::Identity;

/// A user logged in (Flamingo's `WebLoginEvent`).
///
/// # Examples
///
/// Merging a guest cart into the user's at login:
///
/// ```
/// use flamingo_auth::LoginEvent;
///
/// async fn merge_cart(event: LoginEvent) {
///     let guest_items: Vec<String> = event.session.try_load("cart").unwrap_or_default();
///     let key = format!("cart.{}", event.identity.subject());
///     let mut items: Vec<String> = event.session.try_load(&key).unwrap_or_default();
///     items.extend(guest_items);
///     event.session.delete("cart");
///     let _ = event.session.store(&key, items);
/// }
/// ```
#[doc(alias = "WebLoginEvent")]
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoginEvent {
    /// The callback request.
    pub request: HttpRequest,
    /// The request's session (already with its new ID).
    pub session: Session,
    /// The broker the user logged in at.
    pub broker: String,
    /// Who logged in.
    pub identity: Identity,
}

/// A user logged out at a broker (Flamingo's `WebLogoutEvent`); sent once per broker.
#[doc(alias = "WebLogoutEvent")]
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LogoutEvent {
    /// The logout request.
    pub request: HttpRequest,
    /// The request's session (its auth data already removed; it is purged after the
    /// listeners ran, so what they store there is lost).
    pub session: Session,
    /// The broker logged out of.
    pub broker: String,
}

pub(crate) type LoginListener =
    Arc<dyn Fn(LoginEvent) -> LocalBoxFuture<'static, ()> + Send + Sync>;
pub(crate) type LogoutListener =
    Arc<dyn Fn(LogoutEvent) -> LocalBoxFuture<'static, ()> + Send + Sync>;

/// The registered listeners.
#[derive(Default, Clone)]
pub(crate) struct Listeners {
    pub(crate) login: Vec<LoginListener>,
    pub(crate) logout: Vec<LogoutListener>,
}

pub(crate) fn login_listener<F, Fut>(f: F) -> LoginListener
where
    F: Fn(LoginEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + 'static,
{
    Arc::new(move |event| Box::pin(f(event)))
}

pub(crate) fn logout_listener<F, Fut>(f: F) -> LogoutListener
where
    F: Fn(LogoutEvent) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + 'static,
{
    Arc::new(move |event| Box::pin(f(event)))
}
