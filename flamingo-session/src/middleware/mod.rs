//! The request path: our session middleware, the session cookie, and actix-session adapted both
//! ways.
//!
//! [`SessionMiddleware`] (what [`Sessions::middleware`](crate::Sessions::middleware) returns)
//! owns the request:
//!
//! 1. it puts a handle to the backend into the request's extensions and does nothing else: a
//!    route that never extracts the session reads no cookie, does no store I/O, sets no cookie
//!    and works while the store is down;
//! 2. the first extraction of [`Session`](crate::Session) (or of anything built on it) checks the
//!    signed cookie and loads the session, once per request;
//! 3. after the handler it writes only what the request changed ([`SaveMode`]), and sets a
//!    cookie only for a new, renewed or purged session or when the sliding expiry is due (a
//!    tenth of `max.age`, at most an hour, after the cookie was last sent);
//! 4. it answers its own failures: store unavailable 503, over `store.length` 413 naming the key.
//!
//! A session that ended while the request ran (logout, renew, expiry) is never brought back by
//! that request: the backend answers [`SaveOutcome::Gone`](crate::backend::SaveOutcome::Gone),
//! the changes are dropped with a warning and no cookie is sent.
//!
//! [`compat`] holds the two adapters to actix-session.
//!
//! [`SaveMode`]: crate::SaveMode

use std::{
    future::Future,
    pin::Pin,
    rc::Rc,
    task::{ready, Context, Poll},
};

use actix_web::{
    body::MessageBody,
    dev::{Extensions, Service, ServiceRequest, ServiceResponse, Transform},
    HttpMessage as _,
};
use futures_util::future::LocalBoxFuture;

pub mod compat;
pub(crate) mod cookie;
mod data;
pub(crate) mod state;

pub use state::SessionUnavailable;
use state::{CookieAction, Shared, Slot};

/// The session middleware: wrap the app in it (`App::wrap(sessions.middleware())`).
///
/// # Examples
///
/// ```
/// use actix_web::{web, App, HttpResponse};
/// use flamingo_session::{Session, SessionConfig, SessionError, Sessions};
///
/// # actix_web::rt::System::new().block_on(async {
/// let sessions = Sessions::builder(SessionConfig::default()).build().await.unwrap();
/// let app = App::new().wrap(sessions.middleware()).route(
///     "/visits",
///     web::get().to(|session: Session| async move {
///         let n = session.load::<u32>("visits")?.unwrap_or(0) + 1;
///         session.store("visits", n)?;
///         Ok::<_, SessionError>(HttpResponse::Ok().body(n.to_string()))
///     }),
/// );
/// # });
/// ```
pub struct SessionMiddleware {
    shared: Rc<Shared>,
}

impl SessionMiddleware {
    pub(crate) fn new(shared: Shared) -> Self {
        SessionMiddleware {
            shared: Rc::new(shared),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for SessionMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = SessionService<S>;
    type InitError = ();
    type Future = std::future::Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        let mut data = Extensions::new();
        data.insert(self.shared.clone());
        std::future::ready(Ok(SessionService {
            service: Rc::new(service),
            shared: self.shared.clone(),
            data: Rc::new(data),
        }))
    }
}

/// The service [`SessionMiddleware`] wraps around the app.
pub struct SessionService<S> {
    service: Rc<S>,
    shared: Rc<Shared>,
    /// Holds `shared` as app data: handing it to a request is an `Rc` clone into a small vector,
    /// no allocation.
    data: Rc<Extensions>,
}

impl<S, B> Service<ServiceRequest> for SessionService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = SessionResponse<S::Future, B>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        req.add_data_container(self.data.clone());
        SessionResponse::Handler {
            fut: self.service.call(req),
            shared: self.shared.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`SessionService`]: the handler's, then (only when the request used the
    /// session and something must be written) the write-back.
    #[project = SessionResponseProj]
    #[allow(missing_docs)] // the fields are the state machine's, not an API
    pub enum SessionResponse<F, B> {
        /// The handler runs.
        Handler { #[pin] fut: F, shared: Rc<Shared> },
        /// The session is written back.
        Commit { fut: LocalBoxFuture<'static, Result<ServiceResponse<B>, actix_web::Error>> },
    }
}

impl<F, B> Future for SessionResponse<F, B>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: 'static,
{
    type Output = Result<ServiceResponse<B>, actix_web::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let commit = match self.as_mut().project() {
            SessionResponseProj::Handler { fut, shared } => {
                let res = ready!(fut.poll(cx))?;
                let slot = res.request().extensions_mut().remove::<Rc<Slot>>();
                let Some(state) = slot.as_deref().and_then(Slot::loaded) else {
                    return Poll::Ready(Ok(res));
                };
                let state = {
                    let mut state = state.borrow_mut();
                    let empty = state.emptied();
                    std::mem::replace(&mut *state, empty)
                };
                if !shared.must_write(&state) {
                    return Poll::Ready(Ok(res));
                }
                let shared = shared.clone();
                Box::pin(async move {
                    let mut res = res;
                    match shared.commit(state).await {
                        Ok(CookieAction::Keep) => Ok(res),
                        Ok(CookieAction::Set(cookie)) => {
                            res.response_mut().add_cookie(&cookie)?;
                            Ok(res)
                        }
                        Err(err) => Err(err.into_error()),
                    }
                })
            }
            SessionResponseProj::Commit { fut } => return fut.as_mut().poll(cx),
        };
        self.set(SessionResponse::Commit { fut: commit });
        self.project_commit(cx)
    }
}

impl<F, B> SessionResponse<F, B> {
    fn project_commit(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<ServiceResponse<B>, actix_web::Error>> {
        match self.project() {
            SessionResponseProj::Commit { fut } => fut.as_mut().poll(cx),
            SessionResponseProj::Handler { .. } => unreachable!("set to Commit just before"),
        }
    }
}
