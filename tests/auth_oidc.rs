//! End-to-end OpenID Connect login against the real, certified OpenID Provider `oidc-provider`
//! (tests/oidc), driven over HTTP like a browser: login and consent forms, tokens, refresh,
//! the token-carrying HTTP client, logout at the provider, key rotation and the rejections.

mod support;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use actix_web::{web, HttpResponse};
use flamingo_auth::{
    session_data::{oidc_session_key, OidcSessionData},
    AuthError, AuthManager, Authenticated, User,
};
use flamingo_session::Session;
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::oidc::{
    browser, client, confirm_logout_at_provider, free_port, location, login_at_provider,
    OidcProvider, ProviderOptions, TestApp, SESSION_YAML,
};

const BROKER: &str = "op";

fn config(issuer: &str) -> String {
    format!(
        "{SESSION_YAML}core.auth.web.broker:
  - broker: {BROKER}
    typ: oidc
    clientID: app
    clientSecret: app-secret
    endpoint: {issuer}
    scopes: [profile, email, groups]
    # oidc-provider issues a refresh token for offline_access only with prompt=consent.
    authParameters: {{ prompt: consent }}
    requestClaims:
      idToken: [department]
    claims:
      idToken:
        firstName: given_name
        lastName: family_name
        groups: groups
        department: \"dept;department\"
"
    )
}

async fn me(user: User) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "loggedIn": user.is_logged_in(),
        "broker": user.broker,
        "user": {
            "sub": user.sub, "name": user.name, "email": user.email, "groups": user.groups,
            "firstName": user.first_name, "lastName": user.last_name,
            "department": user.get("department"),
        },
    }))
}

/// Starts a session holding a guest cart; answers the session's ID hash.
async fn touch(session: Session) -> HttpResponse {
    session.store("visited", true).unwrap();
    session.store("cart", vec!["apple".to_owned()]).unwrap();
    HttpResponse::Ok().body(session.id_hash().unwrap_or_default())
}

async fn sid(session: Session) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "idHash": session.id_hash(),
        "visited": session.try_load::<bool>("visited"),
        "cart": session.try_load::<Vec<String>>("cart"),
        "userCart": session.try_load::<Vec<String>>("cart.alice"),
    }))
}

/// Calls the provider's protected API (`?url=`) with the user's access token.
async fn api(
    auth: AuthManager,
    query: web::Query<std::collections::HashMap<String, String>>,
) -> Result<HttpResponse, AuthError> {
    let client = auth.http_client().await?;
    let response = client.get(query["url"].as_str()).send().await?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.map_err(AuthError::Request)?;
    Ok(HttpResponse::Ok().json(json!({ "status": status, "body": body })))
}

/// The access token as stored in the session right now (no refresh), hashed.
async fn stored_token(session: Session) -> HttpResponse {
    let data = session
        .load::<OidcSessionData>(&oidc_session_key(BROKER))
        .unwrap();
    HttpResponse::Ok().json(json!({
        "token": data.as_ref().map(|d| hex_sha256(&d.access_token)),
        "hasRefreshToken": data.as_ref().map(|d| d.refresh_token.is_some()),
    }))
}

async fn id_token(auth: AuthManager) -> Result<HttpResponse, AuthError> {
    let token = auth.id_token().await?;
    Ok(HttpResponse::Ok()
        .json(json!({ "claims": token.claims(), "rawParts": token.raw().split('.').count() })))
}

async fn private(login: Authenticated) -> HttpResponse {
    HttpResponse::Ok().body(login.user.sub)
}

fn hex_sha256(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/me", web::get().to(me))
        .route("/touch", web::get().to(touch))
        .route("/sid", web::get().to(sid))
        .route("/api", web::get().to(api))
        .route("/stored-token", web::get().to(stored_token))
        .route("/idtoken", web::get().to(id_token))
        .route("/private", web::get().to(private));
}

struct Setup {
    provider: OidcProvider,
    app: TestApp,
    logins: Arc<AtomicUsize>,
}

/// A provider with a client for the app, and the app with a login listener that counts logins
/// and merges the guest cart into the user's.
async fn setup(options: ProviderOptions) -> Setup {
    let port = free_port();
    let app_base = format!("http://127.0.0.1:{port}");
    let provider = OidcProvider::start(ProviderOptions {
        clients: vec![client("app", "app-secret", &app_base, BROKER)],
        ..options
    });
    let logins = Arc::new(AtomicUsize::new(0));
    let counter = logins.clone();
    let app = TestApp::start(
        port,
        &config(&provider.issuer()),
        move |builder| {
            builder.on_login(move |event| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let guest: Vec<String> = event.session.try_load("cart").unwrap_or_default();
                    let key = format!("cart.{}", event.identity.subject());
                    let mut items: Vec<String> = event.session.try_load(&key).unwrap_or_default();
                    items.extend(guest);
                    event.session.delete("cart");
                    event.session.store(&key, items).unwrap();
                }
            })
        },
        routes,
    )
    .await;
    Setup {
        provider,
        app,
        logins,
    }
}

async fn get_json(browser: &reqwest::Client, url: &str) -> Value {
    let response = browser.get(url).send().await.expect("GET");
    assert_eq!(response.status(), StatusCode::OK, "GET {url}");
    response.json().await.expect("JSON")
}

/// Starts a login at the app; returns the provider's authorization URL.
async fn start_login(browser: &reqwest::Client, app: &TestApp, redirect: &str) -> String {
    let response = browser
        .get(app.url(&format!("/core/auth/login/{BROKER}?redirecturl={redirect}")))
        .send()
        .await
        .expect("GET login");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    location(&response).expect("redirect to the provider")
}

/// A whole login as `user`; returns the app's answer to the callback.
async fn login(browser: &reqwest::Client, setup: &Setup, user: &str) -> reqwest::Response {
    let authorize = start_login(browser, &setup.app, "/me").await;
    assert!(
        authorize.starts_with(&setup.provider.issuer()),
        "{authorize}"
    );
    let callback = login_at_provider(browser, &setup.provider.issuer(), &authorize, user).await;
    assert!(
        callback.starts_with(&setup.app.url("/core/auth/callback/op?")),
        "{callback}"
    );
    browser.get(&callback).send().await.expect("GET callback")
}

#[actix_web::test]
async fn full_login_maps_claims_renews_the_session_and_runs_the_listener_once() {
    let setup = setup(ProviderOptions::default()).await;
    let browser = browser();
    let guest = get_json(&browser, &setup.app.url("/me")).await;
    assert_eq!(guest["loggedIn"], false);
    assert_eq!(guest["user"]["name"], "Guest");

    browser.get(setup.app.url("/touch")).send().await.unwrap();
    let before = get_json(&browser, &setup.app.url("/sid")).await["idHash"].clone();
    assert_eq!(
        before.as_str().map(str::len),
        Some(64),
        "a session exists before the login"
    );

    let authorize = start_login(&browser, &setup.app, "/me").await;
    for (param, value) in [("code_challenge_method", "S256"), ("response_type", "code")] {
        assert!(
            authorize.contains(&format!("{param}={value}")),
            "{authorize}"
        );
    }
    for param in [
        "state=",
        "nonce=",
        "code_challenge=",
        "prompt=consent",
        "offline_access",
    ] {
        assert!(authorize.contains(param), "{param} missing in {authorize}");
    }
    let callback = login_at_provider(&browser, &setup.provider.issuer(), &authorize, "alice").await;
    let done = browser.get(&callback).send().await.unwrap();
    assert_eq!(
        done.status(),
        StatusCode::SEE_OTHER,
        "{}",
        setup.provider.log()
    );
    assert_eq!(
        location(&done).as_deref(),
        Some(setup.app.url("/me").as_str())
    );

    let me = get_json(&browser, &setup.app.url("/me")).await;
    assert_eq!(
        me,
        json!({
            "loggedIn": true,
            "broker": "op",
            "user": {
                "sub": "alice", "name": "Alice Anderson", "email": "alice@example.com",
                "groups": ["admins", "staff"], "firstName": "Alice", "lastName": "Anderson",
                "department": "Engineering",
            },
        })
    );

    let session = get_json(&browser, &setup.app.url("/sid")).await;
    assert_ne!(
        session["idHash"], before,
        "login must give the session a new ID"
    );
    assert_eq!(session["visited"], true, "the session keeps its data");
    assert_eq!(
        session["cart"],
        Value::Null,
        "the listener moved the guest cart"
    );
    assert_eq!(
        session["userCart"],
        json!(["apple"]),
        "the listener's change persisted"
    );
    assert_eq!(
        setup.logins.load(Ordering::SeqCst),
        1,
        "one login, one event"
    );

    let token = get_json(&browser, &setup.app.url("/idtoken")).await;
    assert_eq!(token["claims"]["iss"], setup.provider.issuer());
    assert_eq!(token["claims"]["aud"], "app");
    assert_eq!(token["claims"]["sub"], "alice");
    assert_eq!(token["rawParts"], 3);

    let private = browser.get(setup.app.url("/private")).send().await.unwrap();
    assert_eq!(private.text().await.unwrap(), "alice");

    // Logging in again (single sign-on at the provider: no login form) is a second event.
    let again = login(&browser, &setup, "alice").await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    assert_eq!(setup.logins.load(Ordering::SeqCst), 2);
    let session = get_json(&browser, &setup.app.url("/sid")).await;
    assert_eq!(session["userCart"], json!(["apple"]));

    // Another browser logs in as bob.
    let other = support::oidc::browser();
    assert_eq!(
        login(&other, &setup, "bob").await.status(),
        StatusCode::SEE_OTHER
    );
    let me = get_json(&other, &setup.app.url("/me")).await;
    assert_eq!(me["user"]["sub"], "bob");
    assert_eq!(me["user"]["groups"], json!(["staff"]));
    assert_eq!(setup.logins.load(Ordering::SeqCst), 3);
}

#[actix_web::test]
async fn http_client_calls_a_protected_api_with_the_bearer_token() {
    let setup = setup(ProviderOptions::default()).await;
    let whoami = format!("/api?url={}", setup.provider.whoami_url());

    let anonymous = browser();
    let refused = anonymous.get(setup.app.url(&whoami)).send().await.unwrap();
    assert_eq!(
        refused.status(),
        StatusCode::UNAUTHORIZED,
        "not logged in is a 401"
    );
    let private = anonymous
        .get(setup.app.url("/private"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        private.status(),
        StatusCode::UNAUTHORIZED,
        "an API request gets a 401"
    );
    let private = anonymous
        .get(setup.app.url("/private?x=1"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        private.status(),
        StatusCode::SEE_OTHER,
        "a browser is sent to the login"
    );
    assert_eq!(
        location(&private).unwrap(),
        setup
            .app
            .url("/core/auth/login/op?redirecturl=%2Fprivate%3Fx%3D1")
    );

    let browser = browser();
    assert_eq!(
        login(&browser, &setup, "alice").await.status(),
        StatusCode::SEE_OTHER
    );
    let called = get_json(&browser, &setup.app.url(&whoami)).await;
    assert_eq!(called["status"], 200, "{called}");
    assert_eq!(called["body"]["sub"], "alice");
    assert_eq!(called["body"]["client"], "app");
}

#[actix_web::test]
async fn an_expired_access_token_is_refreshed_and_written_back_and_a_refused_refresh_logs_out() {
    let mut setup = setup(ProviderOptions {
        access_token_ttl: 2,
        ..ProviderOptions::default()
    })
    .await;
    let whoami = format!("/api?url={}", setup.provider.whoami_url());
    let browser = browser();
    assert_eq!(
        login(&browser, &setup, "alice").await.status(),
        StatusCode::SEE_OTHER
    );

    let first = get_json(&browser, &setup.app.url("/stored-token")).await;
    assert_eq!(
        first["hasRefreshToken"], true,
        "offline_access gave a refresh token"
    );
    assert_eq!(
        get_json(&browser, &setup.app.url(&whoami)).await["status"],
        200
    );

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let called = get_json(&browser, &setup.app.url(&whoami)).await;
    assert_eq!(
        called["status"], 200,
        "the expired token was refreshed before the call: {called}"
    );
    assert_eq!(called["body"]["sub"], "alice");
    let second = get_json(&browser, &setup.app.url("/stored-token")).await;
    assert_ne!(
        second["token"], first["token"],
        "the new access token was written back"
    );
    assert_eq!(
        get_json(&browser, &setup.app.url("/me")).await["user"]["sub"],
        "alice"
    );

    // The provider forgets every grant (and changes its key): the next refresh is refused.
    setup.provider.restart();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let refused = browser.get(setup.app.url(&whoami)).send().await.unwrap();
    assert_eq!(
        refused.status(),
        StatusCode::UNAUTHORIZED,
        "a refused refresh is 'not logged in'"
    );
    let me = get_json(&browser, &setup.app.url("/me")).await;
    assert_eq!(me["loggedIn"], false, "a refused refresh logs the user out");
    assert_eq!(
        get_json(&browser, &setup.app.url("/stored-token")).await["token"],
        Value::Null
    );
}

/// A refresh the provider cannot answer (it is down) is not a logout: the user's request fails
/// with 502 instead of showing a guest, and the login stays for when the provider is back.
#[actix_web::test]
async fn a_refresh_while_the_provider_is_down_is_a_502_and_keeps_the_login() {
    let mut setup = setup(ProviderOptions {
        access_token_ttl: 2,
        ..ProviderOptions::default()
    })
    .await;
    let browser = browser();
    assert_eq!(
        login(&browser, &setup, "alice").await.status(),
        StatusCode::SEE_OTHER
    );
    let before = get_json(&browser, &setup.app.url("/stored-token")).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    setup.provider.stop();
    let me = browser.get(setup.app.url("/me")).send().await.unwrap();
    assert_eq!(me.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(me.text().await.unwrap(), "identity provider failed");
    assert_eq!(
        get_json(&browser, &setup.app.url("/stored-token")).await["token"],
        before["token"],
        "the login and its tokens stay"
    );
}

#[actix_web::test]
async fn logout_ends_the_login_locally_and_at_the_provider_and_checks_the_state() {
    let setup = setup(ProviderOptions::default()).await;
    let browser = browser();
    browser.get(setup.app.url("/touch")).send().await.unwrap();
    assert_eq!(
        login(&browser, &setup, "alice").await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        get_json(&browser, &setup.app.url("/me")).await["loggedIn"],
        true
    );
    let logged_in = get_json(&browser, &setup.app.url("/sid")).await;

    let logout = browser
        .get(setup.app.url("/core/auth/logout?redirecturl=/me"))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&logout).unwrap(),
        setup.app.url("/core/auth/logoutCallback")
    );
    // Already logged out locally, before the provider was visited.
    assert_eq!(
        get_json(&browser, &setup.app.url("/me")).await["loggedIn"],
        false
    );

    let to_provider = browser
        .get(setup.app.url("/core/auth/logoutCallback"))
        .send()
        .await
        .unwrap();
    let end_session = location(&to_provider).unwrap();
    let end_url = url::Url::parse(&end_session).unwrap();
    assert_eq!(end_url.path(), "/session/end");
    let params: std::collections::HashMap<_, _> = end_url.query_pairs().into_owned().collect();
    assert_eq!(
        params["post_logout_redirect_uri"],
        setup.app.url("/core/auth/logoutCallback")
    );
    assert_eq!(params["id_token_hint"].split('.').count(), 3);
    assert_eq!(params["client_id"], "app");

    let state = params["state"].clone();
    assert!(state.len() >= 16, "a logout state is sent: {end_session}");

    // Only the provider's way back, with the state it was sent, is followed.
    for (query, why) in [
        (
            "?state=forged".to_owned(),
            "logout callback: state mismatch",
        ),
        (String::new(), "logout callback: no state in request"),
    ] {
        let forged = browser
            .get(setup.app.url(&format!("/core/auth/logoutCallback{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::BAD_REQUEST, "{query:?}");
        assert!(forged.headers().get("location").is_none(), "{query:?}");
        assert_eq!(forged.text().await.unwrap(), why);
    }

    let back = confirm_logout_at_provider(&browser, &end_session).await;
    assert!(
        back.starts_with(&setup.app.url("/core/auth/logoutCallback")),
        "{back}"
    );
    assert!(back.contains(&format!("state={state}")), "{back}");
    let last = browser.get(&back).send().await.unwrap();
    assert_eq!(last.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&last).unwrap(),
        setup.app.url("/me"),
        "the post-logout target"
    );
    let replayed = browser.get(&back).send().await.unwrap();
    assert_eq!(
        replayed.status(),
        StatusCode::BAD_REQUEST,
        "a state is good once"
    );

    let session = get_json(&browser, &setup.app.url("/sid")).await;
    assert_eq!(
        session["visited"], true,
        "the session's own data survives logout"
    );
    assert_ne!(session["idHash"], logged_in["idHash"], "with a new ID");
    assert_eq!(
        get_json(&browser, &setup.app.url("/me")).await["loggedIn"],
        false
    );
    assert_eq!(
        get_json(&browser, &setup.app.url("/stored-token")).await["token"],
        Value::Null,
        "the tokens are gone"
    );

    // The provider forgot the login too: a new login shows its login form again.
    let authorize = start_login(&browser, &setup.app, "/me").await;
    let mut response = browser.get(&authorize).send().await.unwrap();
    while response.status().is_redirection() {
        response = browser
            .get(location(&response).unwrap())
            .send()
            .await
            .unwrap();
    }
    let page = response.text().await.unwrap();
    assert!(
        page.contains("name=\"login\""),
        "expected the provider's login form: {page}"
    );
}

#[actix_web::test]
async fn callback_rejects_missing_or_wrong_state_and_a_replayed_code() {
    let setup = setup(ProviderOptions::default()).await;
    let callback = setup.app.url("/core/auth/callback/op");

    let browser = browser();
    let missing = browser
        .get(format!("{callback}?code=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::BAD_REQUEST);
    assert_eq!(missing.text().await.unwrap(), "no state in request");

    // A login in progress, then a callback with another state.
    let _authorize = start_login(&browser, &setup.app, "/me").await;
    let wrong = browser
        .get(format!("{callback}?code=x&state=forged"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    assert_eq!(wrong.text().await.unwrap(), "state mismatch");

    // The victim logs in; its callback URL (code and state) leaks.
    let victim = browser;
    let authorize = start_login(&victim, &setup.app, "/me").await;
    let leaked = login_at_provider(&victim, &setup.provider.issuer(), &authorize, "alice").await;
    assert_eq!(
        victim.get(&leaked).send().await.unwrap().status(),
        StatusCode::SEE_OTHER
    );

    // Replaying it in the same session: the state was used up.
    let replay = victim.get(&leaked).send().await.unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);

    // An attacker with a state of its own replays the code: the provider refuses it (used,
    // and bound to the victim's PKCE verifier).
    let attacker = support::oidc::browser();
    let own = start_login(&attacker, &setup.app, "/me").await;
    let own_state = url::Url::parse(&own)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let code = url::Url::parse(&leaked)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let stolen = attacker
        .get(format!("{callback}?code={code}&state={own_state}"))
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        get_json(&attacker, &setup.app.url("/me")).await["loggedIn"],
        false
    );

    // The provider's error at the callback reaches the (default) error handler.
    let _ = start_login(&attacker, &setup.app, "/me").await;
    let denied = attacker
        .get(format!(
            "{callback}?error=access_denied&error_description=no"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), StatusCode::UNAUTHORIZED);
    assert!(denied.text().await.unwrap().contains("access_denied"));
}

#[actix_web::test]
async fn a_rotated_signing_key_is_fetched_again_instead_of_failing_the_login() {
    let mut setup = setup(ProviderOptions::default()).await;
    let browser = browser();
    assert_eq!(
        login(&browser, &setup, "alice").await.status(),
        StatusCode::SEE_OTHER
    );

    // Same issuer, new signing key (and no sessions): the app only knows the old key.
    setup.provider.restart();
    let other = support::oidc::browser();
    let done = login(&other, &setup, "bob").await;
    assert_eq!(
        done.status(),
        StatusCode::SEE_OTHER,
        "{}",
        done.text().await.unwrap()
    );
    assert_eq!(
        get_json(&other, &setup.app.url("/me")).await["user"]["sub"],
        "bob"
    );
}

#[actix_web::test]
async fn a_redirecturl_to_another_host_is_replaced_by_the_site_root() {
    let setup = setup(ProviderOptions::default()).await;
    let browser = browser();
    let authorize = start_login(&browser, &setup.app, "https://evil.example/steal").await;
    let callback = login_at_provider(&browser, &setup.provider.issuer(), &authorize, "alice").await;
    let done = browser.get(&callback).send().await.unwrap();
    assert_eq!(location(&done).unwrap(), setup.app.url("/"));
}
