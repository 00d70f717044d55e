//! Flamingo's auth routes (core/auth/controller.go), mounted by [`Auth::configure`].

use std::collections::BTreeMap;

use actix_web::{
    http::{header, StatusCode},
    web, HttpRequest, HttpResponse,
};
use flamingo_session::Session;
use subtle::ConstantTimeEq as _;
use tracing::Instrument as _;

use crate::{
    auth::Auth,
    backchannel,
    broker::{Broker, Ctx, LoggedIn, LoginFailure, LoginStep},
    debug,
    error::AuthError,
    events::{LoginEvent, LogoutEvent},
    log::Escaped,
    logout_records,
    redirect::{self, see_other},
    session_data::{
        self, LogoutRedirects, LogoutState, LOGOUT_REDIRECTS_KEY, LOGOUT_REDIRECT_KEY,
        LOGOUT_STATE_KEY, REDIRECT_KEY,
    },
    user_sessions,
};

/// The path of the logout callback, where single-sign-out redirects come back to.
pub(crate) const LOGOUT_CALLBACK_PATH: &str = "/core/auth/logoutCallback";

/// Where the OpenID Providers post logout tokens (OpenID Connect Back-Channel Logout).
pub(crate) const BACKCHANNEL_LOGOUT_PATH: &str = "/core/auth/backchannelLogout/{broker}";

impl Auth {
    /// Mounts the routes (`/core/auth/login/{broker}`, `/core/auth/callback/{broker}`,
    /// `/core/auth/logout`, `/core/auth/logout/{broker}`, `/core/auth/logoutCallback`,
    /// `POST /core/auth/backchannelLogout/{broker}` (see [`backchannel`](crate::backchannel)), and
    /// `/core/auth/debug` when `core.auth.web.debugController` is on) and the app data of the
    /// extractors. Use with `App::configure`.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn app(auth: flamingo_auth::Auth, sessions: flamingo_session::Sessions) {
    /// let app = actix_web::App::new()
    ///     .wrap(sessions.middleware())
    ///     .configure(|cfg| auth.configure(cfg));
    /// # }
    /// ```
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(web::Data::new(self.clone()));
        mount(cfg, self.debug_controller());
    }
}

fn mount(cfg: &mut web::ServiceConfig, debug: bool) {
    cfg.route("/core/auth/login/{broker}", web::get().to(login))
        .service(
            web::resource("/core/auth/callback/{broker}")
                .route(web::get().to(callback))
                .route(web::post().to(callback)),
        )
        .service(
            web::resource("/core/auth/logout")
                .route(web::get().to(logout_all))
                .route(web::post().to(logout_all)),
        )
        .service(
            web::resource("/core/auth/logout/{broker}")
                .route(web::get().to(logout_broker))
                .route(web::post().to(logout_broker)),
        )
        .route(LOGOUT_CALLBACK_PATH, web::get().to(logout_callback))
        .route(BACKCHANNEL_LOGOUT_PATH, web::post().to(backchannel::route));
    if debug {
        cfg.route("/core/auth/debug", web::get().to(debug::page));
    }
}

fn query(req: &HttpRequest) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .into_owned()
        .collect()
}

/// A plain-text answer.
fn text(status: StatusCode, message: &'static str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .body(message)
}

fn not_found(message: &'static str) -> HttpResponse {
    text(StatusCode::NOT_FOUND, message)
}

/// The response for a broker's next login step.
fn step_response(step: LoginStep) -> HttpResponse {
    match step {
        LoginStep::Redirect(location) => see_other(&location),
        LoginStep::Page(html) => HttpResponse::Ok()
            .content_type("text/html; charset=utf-8")
            .body(html),
        LoginStep::Challenge {
            www_authenticate,
            message,
        } => HttpResponse::Unauthorized()
            .insert_header((header::WWW_AUTHENTICATE, www_authenticate))
            .content_type("text/plain; charset=utf-8")
            .body(message),
    }
}

/// The response for a callback that did not log in.
fn failure_response(auth: &Auth, req: &HttpRequest, failure: LoginFailure) -> HttpResponse {
    match failure {
        LoginFailure::Provider(err) => auth.handle_callback_error(req, &err),
        LoginFailure::BadRequest(message) => bad_request(message),
        LoginFailure::Rejected(message) => text(StatusCode::UNAUTHORIZED, message),
        LoginFailure::Unavailable => text(
            StatusCode::BAD_GATEWAY,
            "login failed: the identity provider could not be used",
        ),
        LoginFailure::Retry(step) => step_response(step),
        LoginFailure::Error(err) => actix_web::ResponseError::error_response(&err),
    }
}

/// `GET /core/auth/login/{broker}?redirecturl=`: remembers where to go afterwards (only
/// same-host or relative targets; else the site root) and starts the broker's login.
async fn login(
    req: HttpRequest,
    session: Session,
    auth: web::Data<Auth>,
    broker: web::Path<String>,
) -> HttpResponse {
    let Some(broker) = auth.broker(&broker) else {
        return not_found("broker for login not found");
    };
    let params = query(&req);
    let target = redirect::login_target(
        auth.origin(),
        &req,
        params.get("redirecturl").map(String::as_str),
    );
    if let Err(err) = session.store(REDIRECT_KEY, target) {
        return actix_web::ResponseError::error_response(&AuthError::from(err));
    }
    let span = tracing::info_span!("auth.login", broker = broker.name());
    let _entered = span.enter();
    match broker.authenticate(&auth.ctx(&req, &session)) {
        Ok(step) => step_response(step),
        Err(err) => actix_web::ResponseError::error_response(&err),
    }
}

/// `GET|POST /core/auth/callback/{broker}`: completes a login.
async fn callback(
    req: HttpRequest,
    session: Session,
    auth: web::Data<Auth>,
    broker: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let Some(broker) = auth.broker(&broker) else {
        return not_found("broker for callback not found");
    };
    let mut params = query(&req);
    if req.method() == actix_web::http::Method::POST {
        params.extend(url::form_urlencoded::parse(&body).into_owned());
    }
    let span = tracing::info_span!("auth.callback", broker = broker.name());
    async {
        let ctx = auth.ctx(&req, &session);
        match broker.callback(&ctx, &params).await {
            None => not_found("broker has no callback"),
            Some(Err(failure)) => failure_response(&auth, &req, failure),
            Some(Ok(login)) => complete_login(&auth, &ctx, broker, login).await,
        }
    }
    .instrument(span)
    .await
}

/// After a successful login: the provider's session remembered for back-channel logout, a new
/// session ID recorded in the user's session index (so that it can be listed and ended with the
/// user's other sessions), the login listeners, and the redirect to the remembered target.
async fn complete_login(
    auth: &Auth,
    ctx: &Ctx<'_>,
    broker: &Broker,
    login: LoggedIn,
) -> HttpResponse {
    let LoggedIn {
        identity,
        provider_session,
    } = login;
    if let Some(sid) = provider_session {
        let leases = auth.directory().leases();
        logout_records::record_sid(
            leases,
            broker.name(),
            &sid,
            identity.subject(),
            auth.login_lifetime(),
        )
        .await;
    }
    match user_sessions::owner_of(&identity) {
        Ok(owner) => ctx.session.renew_for(owner),
        Err(err) => {
            // Only an absurdly long subject gets here: the login works, unlisted.
            tracing::warn!(broker = broker.name(), error = %err, "login not recorded in the session index");
            ctx.session.renew();
        }
    }
    let target = ctx
        .session
        .try_load::<String>(REDIRECT_KEY)
        .unwrap_or_else(|| auth.origin().base_url(ctx.req).to_string());
    ctx.session.delete(REDIRECT_KEY);
    tracing::info!(broker = broker.name(), "login");
    auth.dispatch_login(LoginEvent {
        request: ctx.req.clone(),
        session: ctx.session.clone(),
        broker: broker.name().to_owned(),
        identity,
    })
    .await;
    see_other(&target)
}

/// `GET|POST /core/auth/logout?redirecturl=`: logs out of every broker.
async fn logout_all(req: HttpRequest, session: Session, auth: web::Data<Auth>) -> HttpResponse {
    let brokers: Vec<&Broker> = auth.all_brokers().iter().collect();
    logout(&req, &session, &auth, brokers, true).await
}

/// `GET|POST /core/auth/logout/{broker}?redirecturl=`: logs out of one broker.
async fn logout_broker(
    req: HttpRequest,
    session: Session,
    auth: web::Data<Auth>,
    broker: web::Path<String>,
) -> HttpResponse {
    let Some(broker) = auth.broker(&broker) else {
        return not_found("broker for logout not found");
    };
    logout(&req, &session, &auth, vec![broker], false).await
}

fn has_stored_login(session: &Session, broker: &Broker) -> bool {
    broker.has_login(session)
}

fn bad_request(message: &'static str) -> HttpResponse {
    text(StatusCode::BAD_REQUEST, message)
}

/// Logs out of `brokers` (Flamingo's `Logout`/`LogoutFor`).
///
/// - A guest (no login at any of `brokers`) changes nothing: no new ID, no purge, no cookie.
/// - Otherwise each broker's login data is removed and its listeners run; with `all`, every
///   other `core.auth.*` key goes too. The session then gets a new ID and keeps the
///   application's data (Flamingo keeps the cart), or, with
///   `core.auth.web.logoutPurgesSession`, is purged.
/// - End-session URLs of the providers are queued and visited through the logout callback.
async fn logout(
    req: &HttpRequest,
    session: &Session,
    auth: &Auth,
    brokers: Vec<&Broker>,
    all: bool,
) -> HttpResponse {
    let ctx = auth.ctx(req, session);
    let target = redirect::guard(
        auth.origin(),
        req,
        query(req).get("redirecturl").map(String::as_str),
    );
    let logged_in: Vec<&Broker> = brokers
        .into_iter()
        .filter(|b| has_stored_login(session, b))
        .collect();
    if logged_in.is_empty() {
        tracing::debug!("logout without a login: nothing to end");
        return see_other(&target);
    }
    let mut queue: Vec<String> = Vec::new();
    for broker in &logged_in {
        if let Some(url) = broker.logout(&ctx) {
            queue.push(url.to_string());
        }
        tracing::info!(broker = broker.name(), "logout");
        auth.dispatch_logout(LogoutEvent {
            request: req.clone(),
            session: session.clone(),
            broker: broker.name().to_owned(),
        })
        .await;
    }
    if auth.logout_purges_session() {
        session.purge();
    } else {
        let stale: Vec<String> = if all {
            session
                .keys()
                .into_iter()
                .filter(|k| session_data::is_auth_key(k))
                .collect()
        } else {
            session_data::AUTH_KEYS
                .iter()
                .map(|k| (*k).to_owned())
                .collect()
        };
        for key in stale {
            session.delete(&key);
        }
        session.renew();
    }
    if queue.is_empty() {
        return see_other(&target);
    }
    // The providers must be visited first; the logout callback walks the queue.
    let stored = session
        .store(LOGOUT_REDIRECTS_KEY, LogoutRedirects(queue))
        .and_then(|()| session.store(LOGOUT_REDIRECT_KEY, target.clone()));
    if let Err(err) = stored {
        tracing::error!(error = %Escaped(&err), "storing the logout redirects failed");
        return see_other(&target);
    }
    see_other(LOGOUT_CALLBACK_PATH)
}

/// Ends the logout chain: removes the logout keys and redirects to the target checked at logout.
fn finish_logout(req: &HttpRequest, session: &Session, auth: &Auth) -> HttpResponse {
    let target = session
        .try_load::<String>(LOGOUT_REDIRECT_KEY)
        .unwrap_or_else(|| auth.origin().base_url(req).to_string());
    for key in [LOGOUT_REDIRECTS_KEY, LOGOUT_REDIRECT_KEY, LOGOUT_STATE_KEY] {
        session.delete(key);
    }
    see_other(&target)
}

/// `GET /core/auth/logoutCallback`: sends the browser to the next queued end-session URL with
/// `post_logout_redirect_uri` pointing back here and a fresh `state`; when the provider sends
/// the browser back, checks that `state` (400 when it is missing or wrong: nothing is
/// redirected then). At the end redirects to the target remembered (and checked) at logout.
async fn logout_callback(
    req: HttpRequest,
    session: Session,
    auth: web::Data<Auth>,
) -> HttpResponse {
    let origin = auth.origin();
    let params = query(&req);
    let expected = session.try_load::<LogoutState>(LOGOUT_STATE_KEY);
    match (expected, params.get("state")) {
        (Some(LogoutState(expected)), Some(got))
            if bool::from(expected.as_bytes().ct_eq(got.as_bytes())) =>
        {
            session.delete(LOGOUT_STATE_KEY);
        }
        (Some(_), Some(_)) => {
            tracing::warn!("logout callback with a wrong state");
            return bad_request("logout callback: state mismatch");
        }
        (Some(_), None) => {
            tracing::warn!("logout callback without the state sent to the provider");
            return bad_request("logout callback: no state in request");
        }
        (None, Some(_)) => {
            tracing::warn!("logout callback with a state, but no logout is waiting for one");
            return bad_request("logout callback: no logout in progress for this state");
        }
        // The first hop, straight from the logout: no provider was visited yet.
        (None, None) => {}
    }
    let Some(LogoutRedirects(mut queue)) =
        session.try_load::<LogoutRedirects>(LOGOUT_REDIRECTS_KEY)
    else {
        return see_other(origin.base_url(&req).as_str());
    };
    if queue.is_empty() {
        return finish_logout(&req, &session, &auth);
    }
    let next = queue.remove(0);
    let Ok(mut url) = url::Url::parse(&next) else {
        tracing::error!("a queued end-session URL does not parse; skipping the rest");
        return finish_logout(&req, &session, &auth);
    };
    let state = openidconnect::CsrfToken::new_random().secret().clone();
    let stored = session
        .store(LOGOUT_REDIRECTS_KEY, LogoutRedirects(queue))
        .and_then(|()| session.store(LOGOUT_STATE_KEY, LogoutState(state.clone())));
    if let Err(err) = stored {
        tracing::error!(error = %Escaped(&err), "storing the logout state failed");
        return finish_logout(&req, &session, &auth);
    }
    let back = origin.absolute(&req, LOGOUT_CALLBACK_PATH);
    url.query_pairs_mut()
        .append_pair("post_logout_redirect_uri", back.as_str())
        .append_pair("state", &state);
    see_other(url.as_str())
}
