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

use std::{future::Future, pin::Pin, rc::Rc};

use actix_web::{
    body::MessageBody,
    dev::{Service, ServiceRequest, ServiceResponse, Transform},
    HttpMessage as _,
};

pub mod compat;
pub(crate) mod cookie;
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
        std::future::ready(Ok(SessionService {
            service: Rc::new(service),
            shared: self.shared.clone(),
        }))
    }
}

/// The service [`SessionMiddleware`] wraps around the app.
pub struct SessionService<S> {
    service: Rc<S>,
    shared: Rc<Shared>,
}

impl<S, B> Service<ServiceRequest> for SessionService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<ServiceResponse<B>, actix_web::Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        req.extensions_mut().insert(self.shared.clone());
        let service = self.service.clone();
        let shared = self.shared.clone();
        Box::pin(async move {
            let mut res = service.call(req).await?;
            let slot = res.request().extensions_mut().remove::<Slot>();
            let Some(state) = slot.and_then(|slot| slot.get().cloned()) else {
                return Ok(res);
            };
            let state = {
                let mut state = state.borrow_mut();
                let empty = state.emptied();
                std::mem::replace(&mut *state, empty)
            };
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
}
