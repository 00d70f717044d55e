//! Flamingo's core/auth for actix-web: OpenID Connect, HTTP Basic and fake identity brokers
//! configured in a file, with Flamingo's routes, an [`AuthManager`] for tokens, a [`User`], and
//! an HTTP client that carries the user's access token.
//!
//! # Concepts
//!
//! - **Brokers** are configured as a list under `core.auth.web.broker`; each has a name
//!   (`broker`) and a type (`typ`): `oidc` (OpenID Connect login at a provider), `http` (HTTP
//!   Basic), `fake` (a login form for development and tests) or `oauth2` (API requests with a
//!   bearer access token, checked as a JWT or by introspection; see
//!   [`OAuth2Config`](config::OAuth2Config)). Several can be active at once. See [`config`]
//!   for every key and its default. The application adds its own broker types with a
//!   [`RequestIdentifier`], and tests log users in with a [`MockBroker`](mock::MockBroker).
//! - **Routes**, as in Flamingo: `/core/auth/login/{broker}?redirecturl=`,
//!   `/core/auth/callback/{broker}`, `/core/auth/logout`, `/core/auth/logout/{broker}`,
//!   `/core/auth/logoutCallback`, and `/core/auth/debug` when `core.auth.web.debugController`
//!   is on. `redirecturl` may only be relative or on the same host; the site's host comes from
//!   `core.auth.web.baseURL`, from forwarding headers of `core.auth.web.trustedProxies` only, or
//!   from `Host` (see [the site's own URL](config#the-sites-own-url)).
//! - **Back-channel logout**: `POST /core/auth/backchannelLogout/{broker}` takes an `oidc`
//!   provider's logout token and ends the sessions it names on every instance (see
//!   [`backchannel`]).
//! - **The user's sessions**: every login is recorded in the session backend's per-user index
//!   ([`session_owner`]); [`AuthManager::sessions`] lists them and
//!   [`AuthManager::end_all_sessions`] logs out everywhere.
//! - **Extractors**: [`User`] (a guest when nobody is logged in; 502 when the provider could not
//!   check a login or token), [`Authenticated`] (requires a
//!   login: 401 for APIs, a redirect to the login for browsers), [`UserService`], and
//!   [`AuthManager`] for the ID token, the access token (refreshed when it expires) and
//!   [`AuthHttpClient`].
//! - **Events**: [`LoginEvent`] and [`LogoutEvent`] listeners, e.g. to merge a guest cart at
//!   login.
//! - **Sessions**: everything is kept in the [`flamingo_session::Session`] under Flamingo's keys
//!   ([`session_data`]). Login gives the session a new ID; logout ends the logins and gives it
//!   a new ID too, keeping the application's data (or purges it, with
//!   `core.auth.web.logoutPurgesSession`). Auth refuses to start on a session backend that
//!   cannot hold tokens.
//!
//! # Getting started
//!
//! ```yaml
//! # config.yaml
//! flamingo.session.cookie.secure: false   # local http only
//! core.auth.web.broker:
//!   - broker: main
//!     typ: oidc
//!     clientID: my-app
//!     clientSecret: my-secret
//!     endpoint: https://accounts.example.com
//!     claims:
//!       idToken: { firstName: given_name, lastName: family_name, groups: groups }
//! ```
//!
//! ```no_run
//! use actix_web::{get, web, App, HttpResponse, HttpServer};
//! use flamingo_auth::{Auth, AuthError, AuthManager, Authenticated, User};
//! use flamingo_session::Sessions;
//!
//! #[get("/me")]
//! async fn me(user: User) -> HttpResponse {
//!     HttpResponse::Ok().json(serde_json::json!({
//!         "loggedIn": user.is_logged_in(),
//!         "broker": user.broker,
//!         "user": { "sub": user.sub, "name": user.name, "email": user.email, "groups": user.groups },
//!     }))
//! }
//!
//! #[get("/orders")]
//! async fn orders(_login: Authenticated, auth: AuthManager) -> Result<HttpResponse, AuthError> {
//!     let api = auth.http_client().await?;
//!     let response = api.get("https://api.example.com/orders").send().await?;
//!     let body = response.text().await.map_err(AuthError::Request)?;
//!     Ok(HttpResponse::Ok().content_type("application/json").body(body))
//! }
//!
//! #[actix_web::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let config = config::Config::builder()
//!         .add_source(config::File::with_name("config.yaml"))
//!         .build()?;
//!     let sessions = Sessions::from_config(&config).await?;
//!     let auth = Auth::from_config(&config, &sessions).await?;
//!     HttpServer::new(move || {
//!         App::new()
//!             .wrap(sessions.middleware())
//!             .configure(|cfg| auth.configure(cfg))
//!             .service(me)
//!             .service(orders)
//!     })
//!     .bind(("127.0.0.1", 8080))?
//!     .run()
//!     .await?;
//!     Ok(())
//! }
//! ```
//!
//! Log in at `/core/auth/login/main?redirecturl=/me`, log out at `/core/auth/logout`.
//!
//! # OpenID Connect
//!
//! Discovery runs when [`Auth`] is built (retried as the [`RetryPolicy`] says; an unreachable
//! provider is an [`AuthConfigError::Discovery`]). Logins use the authorization code flow with
//! PKCE (S256), a `state` per login (several may be live, each for `stateLifeTime`) and a
//! `nonce`. The callback checks `state` (400 when missing or unknown) and `iss` (RFC 9207),
//! exchanges the code, and verifies the ID token: signature (never `alg: none`), issuer,
//! audience, expiry, nonce and `at_hash`. An ID token signed with an unknown key makes auth
//! fetch the provider's keys again (at most once per
//! [`jwks_refetch_interval`](AuthBuilder::jwks_refetch_interval)). Logout sends the browser to
//! the provider's `end_session_endpoint` with `id_token_hint` and `post_logout_redirect_uri`
//! (`/core/auth/logoutCallback`, which must be registered at the provider, like the callback
//! `/core/auth/callback/<broker>`).
//!
//! Tokens, codes, secrets and session IDs are never logged, and text from a request or a
//! provider is logged with its control characters escaped. The session values that hold tokens,
//! nonces, verifiers and states are `#[session_value(sensitive)]`: pages that list a session
//! through the registry show `"<redacted>"` for them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod auth;
pub mod auth_params;
pub mod backchannel;
mod broker;
mod client;
mod clock;
pub mod config;
mod debug;
mod error;
pub mod events;
mod extract;
mod identity;
mod jws;
mod log;
mod logout_records;
mod manager;
mod redirect;
pub mod refresh;
mod routes;
pub mod session_data;
mod template;
pub mod user;
mod user_sessions;

pub use async_trait::async_trait;
pub use auth::{Auth, AuthBuilder};
pub use auth_params::AuthCodeOptioner;
pub use broker::{mock, BrokerRequest, CallbackError, RequestIdentifier, RetryPolicy};
pub use client::{AuthHttpClient, AuthRequest};
pub use error::{AuthConfigError, AuthError, BoxError};
pub use events::{LoginEvent, LogoutEvent};
pub use extract::{Authenticated, LoginRequired, UserService};
pub use identity::{Identity, IdentityKind};
pub use manager::{AccessToken, AuthManager, IdToken};
pub use user::{User, UserType};
pub use user_sessions::{session_owner, UserSession};
