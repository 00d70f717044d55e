//! The `fake` and `http` brokers end to end, two brokers at once, the open-redirect guard,
//! start-up errors (bad config, unreachable provider, a backend that cannot hold tokens), the
//! debug page and the pluggable callback error handler.

mod support;

use std::time::Duration;

use actix_web::{web, HttpResponse};
use async_trait::async_trait;
use base64::Engine as _;
use flamingo_auth::{Auth, AuthConfigError, Authenticated, RetryPolicy, User};
use flamingo_session::{
    backend::{
        BackendError, HealthStatus, SaveOutcome, SessionBackend, SessionChange, SessionId,
        SessionState,
    },
    MemoryBackend, SessionConfig, Sessions,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::oidc::{browser, free_port, location, TestApp, SESSION_YAML};

const BROKERS: &str = "core.auth.web.broker:
  - broker: dev
    typ: fake
    userConfig:
      alice:
        password: wonderland
        claims: { name: Alice Liddell, email: alice@example.com, groups: [readers] }
      bob: {}
  - broker: basic
    typ: http
    realm: intranet
    users: { admin: s3cret, ops: other }
";

async fn me(user: User) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "loggedIn": user.is_logged_in(),
        "broker": user.broker,
        "user": { "sub": user.sub, "name": user.name, "email": user.email, "groups": user.groups },
    }))
}

async fn private(login: Authenticated) -> HttpResponse {
    HttpResponse::Ok().body(format!("{}@{}", login.user.sub, login.identity.broker()))
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/me", web::get().to(me))
        .route("/private", web::get().to(private));
}

async fn app(extra: &str) -> TestApp {
    TestApp::start(
        free_port(),
        &format!("{SESSION_YAML}{BROKERS}{extra}"),
        |b| b,
        routes,
    )
    .await
}

async fn json(browser: &reqwest::Client, url: &str) -> Value {
    browser.get(url).send().await.unwrap().json().await.unwrap()
}

async fn post_login(
    browser: &reqwest::Client,
    app: &TestApp,
    form: &[(&str, &str)],
) -> reqwest::Response {
    browser
        .post(app.url("/core/auth/callback/dev"))
        .form(form)
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn the_fake_broker_renders_its_form_and_checks_users_and_passwords() {
    let app = app("").await;
    let browser = browser();
    let form = browser
        .get(app.url("/core/auth/login/dev?redirecturl=/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    assert_eq!(form.headers()["content-type"], "text/html; charset=utf-8");
    let html = form.text().await.unwrap();
    assert!(
        html.contains("action=\"/core/auth/callback/dev\""),
        "{html}"
    );
    assert!(html.contains("name=\"username\"") && html.contains("name=\"password\""));

    for (form, message) in [
        (vec![("password", "x")], "missing username"),
        (
            vec![("username", "carol"), ("password", "x")],
            "invalid user",
        ),
        (vec![("username", "alice")], "missing password"),
        (
            vec![("username", "alice"), ("password", "wrong")],
            "password mismatch",
        ),
    ] {
        let response = post_login(&browser, &app, &form).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert!(
            response.text().await.unwrap().contains(message),
            "{message}"
        );
        assert_eq!(json(&browser, &app.url("/me")).await["loggedIn"], false);
    }

    let done = post_login(
        &browser,
        &app,
        &[("username", "alice"), ("password", "wonderland")],
    )
    .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&done).unwrap(), app.url("/me"));
    assert_eq!(
        json(&browser, &app.url("/me")).await,
        json!({"loggedIn": true, "broker": "dev", "user": {
            "sub": "alice", "name": "Alice Liddell", "email": "alice@example.com", "groups": ["readers"]}})
    );
    assert_eq!(
        browser
            .get(app.url("/private"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "alice@dev"
    );

    // Logging out of the only broker with a login purges the session.
    let out = browser
        .get(app.url("/core/auth/logout/dev"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&out).unwrap(), app.url("/"));
    assert_eq!(json(&browser, &app.url("/me")).await["loggedIn"], false);
}

#[actix_web::test]
async fn the_fake_broker_without_password_validation_takes_any_password() {
    let extra = "  - broker: open\n    typ: fake\n    validatePassword: false\n    usernameFieldId: user\n    userConfig: { carol: {} }\n";
    let app = app(extra).await;
    let browser = browser();
    let form = browser
        .get(app.url("/core/auth/login/open"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(form.contains("name=\"user\""));
    let done = browser
        .post(app.url("/core/auth/callback/open"))
        .form(&[("user", "carol")])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    let me = json(&browser, &app.url("/me")).await;
    assert_eq!(
        (me["broker"].as_str(), me["user"]["name"].as_str()),
        (Some("open"), Some("carol"))
    );
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[actix_web::test]
async fn the_http_broker_asks_for_and_checks_basic_credentials() {
    let app = app("").await;
    let client = browser();
    let challenge = client
        .get(app.url("/core/auth/login/basic"))
        .send()
        .await
        .unwrap();
    assert_eq!(challenge.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge.headers()["www-authenticate"],
        "Basic realm=\"intranet\", charset=\"UTF-8\""
    );

    for (user, password, expected) in [
        ("admin", "s3cret", Some("admin")),
        ("ops", "other", Some("ops")),
        ("admin", "other", None),
        ("eve", "s3cret", None),
    ] {
        let me: Value = client
            .get(app.url("/me"))
            .header("Authorization", basic(user, password))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            me["user"]["sub"].as_str().filter(|s| !s.is_empty()),
            expected,
            "{user}:{password}"
        );
    }
    let with_credentials = client
        .get(app.url("/core/auth/login/basic?redirecturl=/me"))
        .header("Authorization", basic("admin", "s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(with_credentials.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&with_credentials).unwrap(), app.url("/me"));

    let no_callback = client
        .get(app.url("/core/auth/callback/basic"))
        .send()
        .await
        .unwrap();
    assert_eq!(no_callback.status(), StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn two_brokers_at_once_and_unknown_brokers() {
    let app = app("").await;
    let browser = browser();
    post_login(
        &browser,
        &app,
        &[("username", "alice"), ("password", "wonderland")],
    )
    .await;
    // The same browser also sends Basic credentials: the first broker in config order wins for
    // User; both identities exist.
    let me: Value = browser
        .get(app.url("/me"))
        .header("Authorization", basic("admin", "s3cret"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["broker"], "dev");
    let other = support::oidc::browser();
    let me: Value = other
        .get(app.url("/me"))
        .header("Authorization", basic("admin", "s3cret"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["broker"], "basic");

    for path in [
        "/core/auth/login/nope",
        "/core/auth/callback/nope",
        "/core/auth/logout/nope",
    ] {
        assert_eq!(
            browser.get(app.url(path)).send().await.unwrap().status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    assert_eq!(
        browser
            .get(app.url("/core/auth/debug"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND,
        "the debug page is off unless configured"
    );
}

#[actix_web::test]
async fn redirecturl_only_accepts_relative_or_same_host_targets() {
    let app = app("").await;
    for (target, expected) in [
        ("https://evil.example/", app.url("/")),
        ("//evil.example/x", app.url("/")),
        ("/account?tab=1", app.url("/account?tab=1")),
        (&app.url("/cart"), app.url("/cart")),
    ] {
        let browser = browser();
        browser
            .get(app.url("/core/auth/login/dev"))
            .query(&[("redirecturl", target)])
            .send()
            .await
            .unwrap();
        let done = post_login(
            &browser,
            &app,
            &[("username", "alice"), ("password", "wonderland")],
        )
        .await;
        assert_eq!(location(&done).unwrap(), expected, "{target}");
    }
    // The same guard protects the logout target.
    let browser = browser();
    let out = browser
        .get(app.url("/core/auth/logout?redirecturl=https://evil.example/"))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&out).unwrap(), app.url("/"));
}

#[actix_web::test]
async fn the_debug_page_lists_brokers_and_identities_when_configured() {
    let app = app("core.auth.web.debugController: true\n").await;
    let browser = browser();
    post_login(
        &browser,
        &app,
        &[("username", "alice"), ("password", "wonderland")],
    )
    .await;
    let page = browser
        .get(app.url("/core/auth/debug"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    for needle in [
        "<td>dev</td><td>fake</td><td>alice</td>",
        "<td>basic</td><td>http</td><td>-</td>",
        "Alice Liddell",
    ] {
        assert!(html.contains(needle), "{needle} in {html}");
    }
}

#[actix_web::test]
async fn bad_config_is_a_start_up_error_naming_the_key() {
    let port = free_port();
    let cases = [
        ("core.auth.web.broker: [{broker: x, typ: saml}]", "core.auth.web.broker[0].typ: unknown broker type \"saml\""),
        (
            "core.auth.web.broker: [{broker: x, typ: oidc, clientID: a, clientSecret: b, endpoint: 'http://127.0.0.1:1', stateLifeTime: later}]",
            "core.auth.web.broker[0].stateLifeTime: invalid duration \"later\"",
        ),
        ("core.auth.web.broker: [{broker: x, typ: oidc, clientSecret: b, endpoint: 'http://127.0.0.1:1'}]", "core.auth.web.broker[0].clientID: is required"),
        // Typos start nothing silently: no users, no brokers, no timeout.
        (
            "core.auth.web.broker: [{broker: x, typ: fake, userConfg: {alice: {password: pw}}}]",
            "core.auth.web.broker[0].userConfg: unknown key (did you mean core.auth.web.broker[0].userConfig?)",
        ),
        (
            "core.auth.web.brokers: [{broker: x, typ: fake}]",
            "core.auth.web.brokers: unknown key (did you mean core.auth.web.broker?)",
        ),
        (
            "core:\n  auth:\n    web:\n      httpClient: {requestTimeot: 1s}",
            "core.auth.web.httpClient.requestTimeot: unknown key (did you mean core.auth.web.httpClient.requestTimeout?)",
        ),
        (
            "core.auth.web.broker: [{broker: x, typ: fake, loginTemplate: '{{.FormURL}} {{.Nope}}'}]",
            "core.auth.web.broker[0].loginTemplate: unsupported template action {{.Nope}}",
        ),
    ];
    for (yaml, expected) in cases {
        let err = TestApp::try_start(port, &format!("{SESSION_YAML}{yaml}"), |b| b, routes)
            .await
            .err()
            .unwrap();
        assert!(err.starts_with(expected), "{err}");
    }
}

#[actix_web::test]
async fn an_unreachable_provider_is_a_clear_start_up_error_after_the_retries() {
    let dead = free_port();
    let yaml = format!(
        "{SESSION_YAML}core.auth.web.broker: [{{broker: sso, typ: oidc, clientID: a, clientSecret: b, endpoint: 'http://127.0.0.1:{dead}'}}]"
    );
    let err = TestApp::try_start(
        free_port(),
        &yaml,
        |b| {
            b.retry_policy(RetryPolicy {
                attempts: 2,
                initial_delay: Duration::from_millis(10),
                ..RetryPolicy::default()
            })
        },
        routes,
    )
    .await
    .err()
    .unwrap();
    let expected = format!(
        "core.auth.web.broker[0].endpoint: OpenID Connect discovery of broker \"sso\" at http://127.0.0.1:{dead}/ failed after 2 attempt(s)"
    );
    assert!(err.starts_with(&expected), "{err}");
}

/// A backend that stores nothing large: it says it cannot hold tokens.
struct TinyBackend(MemoryBackend);

#[async_trait]
impl SessionBackend for TinyBackend {
    fn name(&self) -> &str {
        "tiny-cookie"
    }
    async fn load(&self, key: &SessionId) -> Result<Option<SessionState>, BackendError> {
        self.0.load(key).await
    }
    async fn create(&self, state: SessionState, ttl: Duration) -> Result<SessionId, BackendError> {
        self.0.create(state, ttl).await
    }
    async fn save(
        &self,
        key: &SessionId,
        change: SessionChange,
        ttl: Duration,
    ) -> Result<SaveOutcome, BackendError> {
        self.0.save(key, change, ttl).await
    }
    async fn touch(&self, key: &SessionId, ttl: Duration) -> Result<SaveOutcome, BackendError> {
        self.0.touch(key, ttl).await
    }
    async fn delete(&self, key: &SessionId) -> Result<(), BackendError> {
        self.0.delete(key).await
    }
    async fn health(&self) -> HealthStatus {
        HealthStatus::up()
    }
    fn can_hold_tokens(&self) -> bool {
        false
    }
}

#[actix_web::test]
async fn auth_refuses_a_session_backend_that_cannot_hold_tokens() {
    let session_config = config::Config::builder()
        .add_source(config::File::from_str(
            "flamingo.session.backend: custom",
            config::FileFormat::Yaml,
        ))
        .build()
        .unwrap();
    let sessions = Sessions::builder(SessionConfig::from_config(&session_config).unwrap())
        .custom_backend(TinyBackend(MemoryBackend::new(100, 4096)))
        .build()
        .await
        .unwrap();
    let config = config::Config::builder()
        .add_source(config::File::from_str(BROKERS, config::FileFormat::Yaml))
        .build()
        .unwrap();
    let err = Auth::from_config(&config, &sessions).await.unwrap_err();
    assert!(matches!(
        err,
        AuthConfigError::BackendCannotHoldTokens { .. }
    ));
    assert!(
        err.to_string().contains("\"tiny-cookie\" backend cannot"),
        "{err}"
    );
}

#[actix_web::test]
async fn the_fake_broker_renders_a_flamingo_go_template() {
    let template = r#"<form class="go" action="{{.FormURL}}">{{if .Message}}<em>{{ .Message }}</em>{{else}}<i>welcome</i>{{end}}<input name="{{.UsernameID}}"><input name="{{PasswordID}}"></form>"#;
    let extra = format!(
        "  - broker: go\n    typ: fake\n    usernameFieldId: login\n    userConfig: {{ carol: {{ password: pw }} }}\n    loginTemplate: '{template}'\n"
    );
    let app = app(&extra).await;
    let browser = browser();
    let html = browser
        .get(app.url("/core/auth/login/go"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        html,
        r#"<form class="go" action="/core/auth/callback/go"><i>welcome</i><input name="login"><input name="password"></form>"#
    );
    let retry = browser
        .post(app.url("/core/auth/callback/go"))
        .form(&[("login", "carol"), ("password", "<wrong>")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(retry.contains("<em>password mismatch</em>"), "{retry}");
    let done = browser
        .post(app.url("/core/auth/callback/go"))
        .form(&[("login", "carol"), ("password", "pw")])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(json(&browser, &app.url("/me")).await["loggedIn"], true);
}
