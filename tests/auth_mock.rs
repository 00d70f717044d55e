//! The mock broker: application tests log a user in without any provider, and handlers that
//! take a `User` or `Authenticated` see that user. Also brokers of the application's own
//! types, built from config by a registered factory.

use std::collections::BTreeMap;

use actix_web::{
    body::MessageBody,
    dev::{Service, ServiceResponse},
    http::header,
    test, web, App, HttpResponse,
};
use flamingo_auth::{
    async_trait,
    mock::{self, MockBroker},
    Auth, AuthBuilder, AuthError, Authenticated, BrokerRequest, Identity, IdentityKind,
    RequestIdentifier, User,
};
use flamingo_session::Sessions;
use serde_json::{json, Value};

async fn me(user: User) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "loggedIn": user.is_logged_in(),
        "broker": user.broker,
        "sub": user.sub,
        "name": user.name,
        "groups": user.groups,
    }))
}

async fn private(login: Authenticated) -> HttpResponse {
    HttpResponse::Ok().body(format!("{}@{}", login.user.sub, login.identity.broker()))
}

async fn app(
    yaml: &str,
    customize: impl FnOnce(AuthBuilder) -> AuthBuilder,
) -> Result<
    impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    >,
    String,
> {
    let config = config::Config::builder()
        .add_source(config::File::from_str(
            &format!("flamingo.session.cookie.secure: false\n{yaml}"),
            config::FileFormat::Yaml,
        ))
        .build()
        .unwrap();
    let sessions = Sessions::from_config(&config).await.unwrap();
    let auth = customize(Auth::builder(&config, &sessions).map_err(|e| e.to_string())?)
        .build()
        .await
        .map_err(|e| e.to_string())?;
    Ok(test::init_service(
        App::new()
            .wrap(sessions.middleware())
            .configure(|cfg| auth.configure(cfg))
            .route("/me", web::get().to(me))
            .route("/private", web::get().to(private)),
    )
    .await)
}

fn mock_broker() -> MockBroker {
    MockBroker::new("mock")
        .with_user(
            "alice",
            json!({"name": "Alice", "groups": ["admins", "staff"]}),
        )
        .with_user("bob", json!({}))
}

async fn body_of(response: ServiceResponse<impl MessageBody>) -> Value {
    serde_json::from_slice(&test::read_body(response).await).unwrap()
}

#[actix_web::test]
async fn a_handler_taking_user_sees_the_mock_login() {
    let app = app("", |b| b.broker(mock_broker())).await.unwrap();
    let cookie = mock::login(&app, "mock", "alice").await;
    let request = test::TestRequest::get().uri("/me").cookie(cookie.clone());
    let me = body_of(test::call_service(&app, request.to_request()).await).await;
    assert_eq!(
        me,
        json!({"loggedIn": true, "broker": "mock", "sub": "alice", "name": "Alice",
               "groups": ["admins", "staff"]})
    );
    let request = test::TestRequest::get().uri("/private").cookie(cookie);
    let body = test::call_and_read_body(&app, request.to_request()).await;
    assert_eq!(body, "alice@mock");
}

#[actix_web::test]
async fn without_the_mock_login_the_user_is_a_guest() {
    let app = app("", |b| b.broker(mock_broker())).await.unwrap();
    let me =
        body_of(test::call_service(&app, test::TestRequest::get().uri("/me").to_request()).await)
            .await;
    assert_eq!(me["loggedIn"], false);
    let response =
        test::call_service(&app, test::TestRequest::get().uri("/private").to_request()).await;
    assert_eq!(response.status(), 401);
    assert!(!response.headers().contains_key(header::WWW_AUTHENTICATE));
}

#[actix_web::test]
async fn the_login_route_logs_in_and_redirects_like_a_real_broker() {
    let app = app("", |b| b.broker(mock_broker())).await.unwrap();
    let request = test::TestRequest::get().uri("/core/auth/login/mock?user=bob&redirecturl=/me");
    let response = test::call_service(&app, request.to_request()).await;
    assert_eq!(response.status(), 303);
    let callback = response
        .headers()
        .get(header::LOCATION)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        callback.starts_with("/core/auth/callback/mock?"),
        "{callback}"
    );
    let cookie = response.response().cookies().next().unwrap().into_owned();
    let request = test::TestRequest::get().uri(&callback).cookie(cookie);
    let response = test::call_service(&app, request.to_request()).await;
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers().get(header::LOCATION).unwrap(), "/me");
}

#[actix_web::test]
async fn an_unknown_mock_user_is_a_bad_request() {
    let app = app("", |b| b.broker(mock_broker())).await.unwrap();
    let request = test::TestRequest::get().uri("/core/auth/callback/mock?user=mallory");
    let response = test::call_service(&app, request.to_request()).await;
    assert_eq!(response.status(), 400);
    let body = test::read_body(response).await;
    assert!(String::from_utf8_lossy(&body).contains("has no user \"mallory\""));
}

#[actix_web::test]
async fn logout_ends_the_mock_login() {
    let app = app("", |b| b.broker(mock_broker())).await.unwrap();
    let cookie = mock::login(&app, "mock", "alice").await;
    let request = test::TestRequest::get()
        .uri("/core/auth/logout")
        .cookie(cookie);
    let response = test::call_service(&app, request.to_request()).await;
    assert_eq!(response.status(), 303);
    let cookie = response
        .response()
        .cookies()
        .next()
        .expect("logout renews the session ID")
        .into_owned();
    let request = test::TestRequest::get().uri("/me").cookie(cookie);
    let me = body_of(test::call_service(&app, request.to_request()).await).await;
    assert_eq!(me["loggedIn"], false);
}

#[actix_web::test]
async fn a_registered_broker_name_must_be_unique() {
    let yaml = "core.auth.web.broker: [{broker: mock, typ: fake}]";
    let err = app(yaml, |b| b.broker(mock_broker())).await.err().unwrap();
    assert!(
        err.contains("\"mock\" of a registered broker is configured twice"),
        "{err}"
    );
}

/// A broker type of the application: `X-Api-Key` against the configured `keys`.
struct ApiKeys {
    name: String,
    keys: BTreeMap<String, String>,
}

#[async_trait(?Send)]
impl RequestIdentifier for ApiKeys {
    fn broker(&self) -> &str {
        &self.name
    }

    async fn identify(&self, request: &BrokerRequest<'_>) -> Result<Option<Identity>, AuthError> {
        let key = request.request.headers().get("x-api-key");
        Ok(key
            .and_then(|k| self.keys.get(k.to_str().ok()?))
            .map(|subject| {
                Identity::new(
                    &self.name,
                    subject,
                    IdentityKind::Custom,
                    Default::default(),
                )
            }))
    }
}

fn api_keys(builder: AuthBuilder) -> AuthBuilder {
    builder.broker_type("apikey", |entry| {
        entry.check_keys(&["keys"])?;
        let keys = match entry.get("keys") {
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect(),
            _ => return Err(entry.invalid("keys", "must be a map of key to subject")),
        };
        Ok(ApiKeys {
            name: entry.broker().to_owned(),
            keys,
        })
    })
}

#[actix_web::test]
async fn a_registered_broker_type_is_built_from_config() {
    let yaml = "core.auth.web.broker: [{broker: keys, typ: apikey, keys: {k-1: reporting}}]";
    let app = app(yaml, api_keys).await.unwrap();
    let request = test::TestRequest::get()
        .uri("/private")
        .insert_header(("x-api-key", "k-1"));
    let body = test::call_and_read_body(&app, request.to_request()).await;
    assert_eq!(body, "reporting@keys");
    let request = test::TestRequest::get()
        .uri("/private")
        .insert_header(("x-api-key", "wrong"));
    assert_eq!(
        test::call_service(&app, request.to_request())
            .await
            .status(),
        401
    );
}

#[actix_web::test]
async fn config_of_a_registered_type_is_strict() {
    let yaml = "core.auth.web.broker: [{broker: keys, typ: apikey, key: {}}]";
    let err = app(yaml, api_keys).await.err().unwrap();
    assert_eq!(
        err,
        "core.auth.web.broker[0].key: unknown key (did you mean core.auth.web.broker[0].keys?)"
    );
    let yaml = "core.auth.web.broker: [{broker: keys, typ: apikye}]";
    let err = app(yaml, api_keys).await.err().unwrap();
    assert!(
        err.starts_with(
            "core.auth.web.broker[0].typ: unknown broker type \"apikye\" (did you mean apikey?)"
        ),
        "{err}"
    );
    let err = app("core.auth.web.broker: [{broker: x, typ: nope}]", |b| b)
        .await
        .err()
        .unwrap();
    assert!(
        err.starts_with("core.auth.web.broker[0].typ: unknown broker type \"nope\""),
        "{err}"
    );
}
