//! Logout as Flamingo does it: every login ends and the session gets a new ID, but the
//! application's data (the cart) stays; a guest's logout changes nothing; with
//! `core.auth.web.logoutPurgesSession` the whole session goes. (The provider side of logout,
//! the end-session chain and its `state`, is in `auth_oidc.rs`.)

mod support;

use std::sync::Mutex;

use actix_web::{web, HttpResponse};
use flamingo_auth::User;
use flamingo_session::Session;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use support::oidc::{free_port, location, TestApp, SESSION_YAML};

const BROKERS: &str = "core.auth.web.broker:
  - broker: dev
    typ: fake
    userConfig: { alice: { password: wonderland } }
  - broker: other
    typ: fake
    userConfig: { bob: { password: builder } }
";

/// Puts a guest cart into the session.
async fn touch(session: Session) -> HttpResponse {
    session.store("cart", vec!["apple".to_owned()]).unwrap();
    HttpResponse::Ok().finish()
}

/// What the session holds, and who is logged in.
async fn state(session: Session, user: User) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "idHash": session.id_hash(),
        "cart": session.try_load::<Vec<String>>("cart"),
        "keys": session.keys(),
        "loggedIn": user.is_logged_in(),
        "broker": user.broker,
    }))
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/touch", web::get().to(touch))
        .route("/state", web::get().to(state));
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

/// A browser whose one cookie the test can read and set.
struct Browser {
    http: reqwest::Client,
    cookie: Mutex<Option<String>>,
}

impl Browser {
    fn new() -> Browser {
        Browser {
            http: support::oidc::browser(),
            cookie: Mutex::new(None),
        }
    }

    fn cookie(&self) -> Option<String> {
        self.cookie.lock().unwrap().clone()
    }

    fn set_cookie(&self, cookie: Option<String>) {
        *self.cookie.lock().unwrap() = cookie;
    }

    /// Sends the request with the cookie; takes a `Set-Cookie` of the answer. Returns the
    /// answer and whether it set (or removed) the cookie.
    async fn send(&self, request: RequestBuilder) -> (Response, bool) {
        let request = match self.cookie() {
            Some(cookie) => request.header(reqwest::header::COOKIE, cookie),
            None => request,
        };
        let response = request.send().await.expect("request");
        let mut changed = false;
        for value in response.headers().get_all(reqwest::header::SET_COOKIE) {
            let value = value.to_str().unwrap();
            changed = true;
            let pair = value.split(';').next().unwrap().to_owned();
            let removed = value.to_ascii_lowercase().contains("max-age=0") || pair.ends_with('=');
            self.set_cookie((!removed).then_some(pair));
        }
        (response, changed)
    }

    async fn get(&self, url: &str) -> (Response, bool) {
        self.send(self.http.get(url)).await
    }

    async fn state(&self, app: &TestApp) -> Value {
        let (response, _) = self.get(&app.url("/state")).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    async fn login(&self, app: &TestApp, broker: &str, user: &str, password: &str) {
        let (response, _) = self
            .send(
                self.http
                    .post(app.url(&format!("/core/auth/callback/{broker}")))
                    .form(&[("username", user), ("password", password)]),
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "login as {user}");
    }
}

fn auth_keys(state: &Value) -> Vec<String> {
    state["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|k| k.starts_with("core.auth."))
        .map(str::to_owned)
        .collect()
}

#[actix_web::test]
async fn logout_ends_every_login_keeps_the_cart_and_gives_the_session_a_new_id() {
    let app = app("").await;
    let browser = Browser::new();
    browser.get(&app.url("/touch")).await;
    browser.login(&app, "dev", "alice", "wonderland").await;
    browser.login(&app, "other", "bob", "builder").await;
    let before = browser.state(&app).await;
    assert_eq!(before["loggedIn"], true);
    assert_eq!(before["cart"], json!(["apple"]));
    assert_eq!(auth_keys(&before).len(), 2, "{before}");
    let logged_in_cookie = browser.cookie();

    let (out, cookie_changed) = browser
        .get(&app.url("/core/auth/logout?redirecturl=/state"))
        .await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&out).unwrap(), app.url("/state"));
    assert!(cookie_changed, "the new session ID is sent");

    let after = browser.state(&app).await;
    assert_eq!(after["loggedIn"], false, "every login ended: {after}");
    assert_eq!(
        auth_keys(&after),
        Vec::<String>::new(),
        "no auth data is left"
    );
    assert_eq!(after["cart"], json!(["apple"]), "the cart survives logout");
    assert_ne!(after["idHash"], before["idHash"], "a new session ID");
    assert!(after["idHash"].is_string(), "the session lives on");

    // The cookie from before the logout names a session that no longer exists.
    let current = browser.cookie();
    browser.set_cookie(logged_in_cookie);
    let old = browser.state(&app).await;
    assert_eq!(old["loggedIn"], false, "the old cookie is not logged in");
    assert_eq!(old["cart"], Value::Null, "the old session ID is dead");
    browser.set_cookie(current);
    assert_eq!(browser.state(&app).await["cart"], json!(["apple"]));
}

#[actix_web::test]
async fn logout_of_one_broker_keeps_the_other_login() {
    let app = app("").await;
    let browser = Browser::new();
    browser.get(&app.url("/touch")).await;
    browser.login(&app, "dev", "alice", "wonderland").await;
    browser.login(&app, "other", "bob", "builder").await;
    let before = browser.state(&app).await;

    let (out, _) = browser.get(&app.url("/core/auth/logout/dev")).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let after = browser.state(&app).await;
    assert_eq!(after["broker"], "other", "{after}");
    assert_eq!(auth_keys(&after), ["core.auth.fake.other.data"]);
    assert_eq!(after["cart"], json!(["apple"]));
    assert_ne!(after["idHash"], before["idHash"]);
}

#[actix_web::test]
async fn a_guest_logout_changes_nothing() {
    let app = app("").await;
    let browser = Browser::new();
    browser.get(&app.url("/touch")).await;
    let before = browser.state(&app).await;
    let cookie = browser.cookie();
    assert!(cookie.is_some());

    for path in ["/core/auth/logout", "/core/auth/logout/dev"] {
        let (out, cookie_changed) = browser.get(&app.url(path)).await;
        assert_eq!(out.status(), StatusCode::SEE_OTHER, "{path}");
        assert!(!cookie_changed, "{path}: a guest's logout sets no cookie");
        assert_eq!(browser.cookie(), cookie);
        let after = browser.state(&app).await;
        assert_eq!(after["idHash"], before["idHash"], "{path}: no new ID");
        assert_eq!(after["cart"], json!(["apple"]), "{path}: nothing purged");
    }
}

#[actix_web::test]
async fn with_logout_purges_session_the_whole_session_goes() {
    let app = app("core.auth.web.logoutPurgesSession: true\n").await;
    let browser = Browser::new();
    browser.get(&app.url("/touch")).await;
    browser.login(&app, "dev", "alice", "wonderland").await;
    let logged_in_cookie = browser.cookie();
    assert_eq!(browser.state(&app).await["loggedIn"], true);

    let (out, cookie_changed) = browser.get(&app.url("/core/auth/logout")).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(cookie_changed, "the cookie is removed");
    assert_eq!(browser.cookie(), None);
    let after = browser.state(&app).await;
    assert_eq!(after["loggedIn"], false);
    assert_eq!(after["cart"], Value::Null, "the cart went with the session");
    assert_eq!(after["idHash"], Value::Null, "no session is left");

    browser.set_cookie(logged_in_cookie);
    let old = browser.state(&app).await;
    assert_eq!(old["loggedIn"], false);
    assert_eq!(old["cart"], Value::Null);
}
