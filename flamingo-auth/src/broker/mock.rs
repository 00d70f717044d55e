//! A broker for application tests: log a chosen user in without any provider.
//!
//! Register a [`MockBroker`] with the users a test needs, then log one in with [`login`]
//! (actix's test service) or by visiting `/core/auth/login/<broker>?user=<name>` (a real
//! server and a client with a cookie jar). The login goes through auth's own routes, so the
//! session gets a new ID, the login listeners run and [`User`](crate::User),
//! [`Authenticated`](crate::Authenticated) and logout behave as with a real broker.
//!
//! The mock exists only where code registers it: no config can turn it on. Do not register it
//! in a production build.
//!
//! # Examples
//!
//! ```
//! use actix_web::{test, web, App, HttpResponse};
//! use flamingo_auth::{mock::{self, MockBroker}, Auth, User};
//! use flamingo_session::Sessions;
//!
//! async fn hello(user: User) -> HttpResponse {
//!     HttpResponse::Ok().body(format!("Hello {}", user.name))
//! }
//!
//! # actix_web::rt::System::new().block_on(async {
//! let config = config::Config::builder()
//!     .add_source(config::File::from_str(
//!         "flamingo.session.cookie.secure: false",
//!         config::FileFormat::Yaml,
//!     ))
//!     .build()
//!     .unwrap();
//! let sessions = Sessions::from_config(&config).await.unwrap();
//! let auth = Auth::builder(&config, &sessions)
//!     .unwrap()
//!     .broker(MockBroker::new("mock").with_user("alice", serde_json::json!({"name": "Alice"})))
//!     .build()
//!     .await
//!     .unwrap();
//! let app = test::init_service(
//!     App::new()
//!         .wrap(sessions.middleware())
//!         .configure(|cfg| auth.configure(cfg))
//!         .route("/hello", web::get().to(hello)),
//! )
//! .await;
//!
//! let cookie = mock::login(&app, "mock", "alice").await;
//! let request = test::TestRequest::get().uri("/hello").cookie(cookie).to_request();
//! let body = test::call_and_read_body(&app, request).await;
//! assert_eq!(body, "Hello Alice");
//! # });
//! ```

use std::collections::BTreeMap;

use actix_web::{
    body::MessageBody,
    cookie::Cookie,
    dev::{Service, ServiceResponse},
    test,
};
use async_trait::async_trait;
use flamingo_session::{Session, SessionValue};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::identifier::{BrokerRequest, RequestIdentifier};
use crate::{
    error::AuthError,
    identity::{Identity, IdentityKind},
};

/// A broker whose users log in by name, for tests (Flamingo's `core/auth/mock`).
///
/// `GET /core/auth/login/<broker>?user=<name>` (or the callback with the same query) logs in
/// the user `<name>` if it was added with [`with_user`](Self::with_user); any other name is a
/// 400. The login is kept in the session like a `fake` login, until logout.
///
/// # Examples
///
/// ```
/// use flamingo_auth::mock::MockBroker;
/// let mock = MockBroker::new("mock")
///     .with_user("alice", serde_json::json!({"name": "Alice", "groups": ["admins"]}))
///     .with_user("bob", serde_json::json!({}));
/// ```
#[derive(Debug, Clone)]
pub struct MockBroker {
    name: String,
    users: BTreeMap<String, Map<String, Value>>,
}

/// The login of a [`MockBroker`] in the session.
#[derive(Debug, Clone, Serialize, Deserialize, SessionValue, PartialEq)]
#[session_value(name = "flamingo.auth.MockSessionData")]
struct MockSessionData {
    subject: String,
}

impl MockBroker {
    /// A mock broker named `name` (as in `/core/auth/login/<name>`), with no users yet.
    pub fn new(name: impl Into<String>) -> Self {
        MockBroker {
            name: name.into(),
            users: BTreeMap::new(),
        }
    }

    /// Adds a user who may log in, with its claims as the [`User`](crate::User) fields read
    /// them (`name`, `email`, `firstName`, `groups`, ...; every other key is a custom field).
    /// `sub` defaults to `subject`. Claims that are not a JSON object count as none.
    pub fn with_user(mut self, subject: impl Into<String>, claims: Value) -> Self {
        let subject = subject.into();
        let mut claims = match claims {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        claims
            .entry("sub")
            .or_insert_with(|| Value::String(subject.clone()));
        self.users.insert(subject, claims);
        self
    }

    fn key(&self) -> String {
        format!("core.auth.mock.{}.data", self.name)
    }

    fn identity_of(&self, subject: &str) -> Option<Identity> {
        let claims = self.users.get(subject)?;
        Some(Identity::new(
            &self.name,
            subject,
            IdentityKind::Custom,
            claims.clone(),
        ))
    }
}

#[async_trait(?Send)]
impl RequestIdentifier for MockBroker {
    fn broker(&self) -> &str {
        &self.name
    }

    fn typ(&self) -> &'static str {
        "mock"
    }

    async fn identify(&self, request: &BrokerRequest<'_>) -> Result<Option<Identity>, AuthError> {
        Ok(request
            .session
            .try_load::<MockSessionData>(&self.key())
            .and_then(|data| self.identity_of(&data.subject)))
    }

    async fn login(
        &self,
        request: &BrokerRequest<'_>,
        params: &BTreeMap<String, String>,
    ) -> Option<Result<Identity, AuthError>> {
        let subject = params.get("user").map(String::as_str).unwrap_or_default();
        let Some(identity) = self.identity_of(subject) else {
            return Some(Err(AuthError::BadLoginRequest {
                message: format!(
                    "mock broker {:?} has no user {subject:?}: add it with MockBroker::with_user",
                    self.name
                ),
            }));
        };
        let data = MockSessionData {
            subject: subject.to_owned(),
        };
        Some(
            request
                .session
                .store(&self.key(), data)
                .map(|()| identity)
                .map_err(AuthError::from),
        )
    }

    fn has_login(&self, session: &Session) -> bool {
        session.keys().contains(&self.key())
    }

    fn logout(&self, request: &BrokerRequest<'_>) {
        request.session.delete(&self.key());
    }
}

/// Logs `user` in at the [`MockBroker`] `broker` of the actix test service `app` and returns
/// the session cookie to send with the test's requests.
///
/// # Panics
///
/// When the login does not succeed (no such broker or user, no session middleware), with the
/// status and body of the answer.
pub async fn login<S, B>(app: &S, broker: &str, user: &str) -> Cookie<'static>
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut url = url::Url::parse("http://localhost/").expect("static URL parses");
    url.path_segments_mut()
        .expect("http URLs have paths")
        .extend(["core", "auth", "callback", broker]);
    url.query_pairs_mut().append_pair("user", user);
    let uri = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    let response = test::call_service(app, test::TestRequest::get().uri(&uri).to_request()).await;
    let status = response.status();
    let cookie = response.response().cookies().next().map(|c| c.into_owned());
    match cookie {
        Some(cookie) if status.is_redirection() => cookie,
        _ => {
            let body = test::read_body(response).await;
            panic!(
                "mock login of {user:?} at broker {broker:?} failed: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            )
        }
    }
}
