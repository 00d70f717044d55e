//! The extractors built on [`Auth`]: [`User`], [`UserService`] and [`Authenticated`].

use actix_web::{
    dev::Payload, http::header, web, FromRequest, HttpRequest, HttpResponse, ResponseError,
};
use flamingo_session::Session;
use futures_util::future::LocalBoxFuture;

use crate::{auth::Auth, identity::Identity, user::User};

/// The [`Auth`] of the app, or an error saying how to mount it.
pub(crate) fn auth_of(req: &HttpRequest) -> Result<Auth, actix_web::Error> {
    req.app_data::<web::Data<Auth>>()
        .map(|data| data.get_ref().clone())
        .ok_or_else(|| {
            actix_web::error::ErrorInternalServerError(
                "flamingo-auth is not mounted: call App::configure(|cfg| auth.configure(cfg))",
            )
        })
}

impl FromRequest for User {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<User, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let auth = auth_of(&req)?;
            let session = Session::extract(&req).await?;
            match auth.identify(&req, &session).await {
                Some(identity) => Ok(User::from_identity(&identity)),
                // A refused bearer token is not a guest (401 `invalid_token`), nor is a login
                // or a token that the provider could not check (502).
                None => match crate::broker::unidentified(&req) {
                    Some(refused) => Err(refused.into()),
                    None => Ok(User::guest()),
                },
            }
        })
    }
}

/// Flamingo's `UserService`: the user of the request, on demand.
///
/// # Examples
///
/// ```
/// use actix_web::HttpResponse;
/// use flamingo_auth::UserService;
///
/// async fn account(users: UserService) -> HttpResponse {
///     if !users.is_logged_in().await {
///         return HttpResponse::Unauthorized().finish();
///     }
///     HttpResponse::Ok().json(users.get_user().await)
/// }
/// ```
#[derive(Clone)]
pub struct UserService {
    auth: Auth,
    req: HttpRequest,
    session: Session,
}

impl std::fmt::Debug for UserService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserService").finish_non_exhaustive()
    }
}

impl UserService {
    /// The logged-in user (of the first broker with a login), or the guest. Never fails: any
    /// error gives the guest, as in Flamingo.
    pub async fn get_user(&self) -> User {
        self.auth
            .identify(&self.req, &self.session)
            .await
            .map(|id| User::from_identity(&id))
            .unwrap_or_else(User::guest)
    }

    /// Whether somebody is logged in.
    pub async fn is_logged_in(&self) -> bool {
        self.get_user().await.is_logged_in()
    }
}

impl FromRequest for UserService {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<UserService, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let auth = auth_of(&req)?;
            let session = Session::extract(&req).await?;
            Ok(UserService { auth, req, session })
        })
    }
}

/// Requires a login: extracts the [`User`] and its [`Identity`], or refuses the request — 401
/// for API requests, a redirect to the login route (with `redirecturl` set to the current page)
/// for browser requests (those whose `Accept` names `text/html`).
///
/// The login route is `/core/auth/login/<broker>` of the
/// [`login_broker`](crate::AuthBuilder::login_broker), by default the first configured broker.
///
/// # Examples
///
/// ```
/// use actix_web::HttpResponse;
/// use flamingo_auth::Authenticated;
///
/// async fn account(auth: Authenticated) -> HttpResponse {
///     HttpResponse::Ok().body(format!("{} via {}", auth.user.name, auth.identity.broker()))
/// }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Authenticated {
    /// The logged-in user.
    pub user: User,
    /// The identity the user was taken from.
    pub identity: Identity,
}

/// The refusal of [`Authenticated`]: 401, or a redirect to the login route.
#[derive(Debug, thiserror::Error)]
#[error("login required")]
pub struct LoginRequired {
    redirect: Option<String>,
    /// An `oauth2` broker is configured: the 401 asks for a bearer token (RFC 6750 §3).
    bearer: bool,
}

impl ResponseError for LoginRequired {
    fn status_code(&self) -> actix_web::http::StatusCode {
        match self.redirect {
            Some(_) => actix_web::http::StatusCode::SEE_OTHER,
            None => actix_web::http::StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match &self.redirect {
            Some(location) => crate::redirect::see_other(location),
            None => {
                let mut response = HttpResponse::Unauthorized();
                if self.bearer {
                    response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
                }
                response
                    .content_type("application/json")
                    .body(r#"{"error":"login required"}"#)
            }
        }
    }
}

fn wants_html(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

impl FromRequest for Authenticated {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Authenticated, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let auth = auth_of(&req)?;
            let session = Session::extract(&req).await?;
            if let Some(identity) = auth.identify(&req, &session).await {
                return Ok(Authenticated {
                    user: User::from_identity(&identity),
                    identity,
                });
            }
            if let Some(refused) = crate::broker::unidentified(&req) {
                return Err(refused.into());
            }
            let redirect = match (wants_html(&req), auth.login_broker()) {
                (true, Some(broker)) => {
                    let here = req
                        .uri()
                        .path_and_query()
                        .map(|pq| pq.as_str())
                        .unwrap_or("/");
                    let mut url =
                        url::Url::parse("http://placeholder/").expect("static URL parses");
                    url.set_path(&format!("/core/auth/login/{broker}"));
                    url.query_pairs_mut().append_pair("redirecturl", here);
                    Some(format!(
                        "{}?{}",
                        url.path(),
                        url.query().unwrap_or_default()
                    ))
                }
                _ => None,
            };
            let bearer = redirect.is_none() && auth.has_bearer_broker();
            Err(LoginRequired { redirect, bearer }.into())
        })
    }
}
