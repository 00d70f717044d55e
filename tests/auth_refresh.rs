//! One token refresh per session, against oidc-provider with refresh-token rotation on (a
//! reused refresh token revokes the grant, as at Keycloak, Auth0 and Okta) and off: concurrent
//! requests that find the access token expired share one exchange, counted at the provider.

mod support;

use std::collections::HashMap;

use actix_web::{web, HttpResponse};
use flamingo_auth::{AuthError, AuthManager, User};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::oidc::{
    browser, client, free_port, location, login_at_provider, OidcProvider, ProviderOptions,
    TestApp, SESSION_YAML,
};

const CONCURRENT: usize = 20;

fn config(issuer: &str) -> String {
    format!(
        "{SESSION_YAML}core.auth.web.broker:
  - broker: op
    typ: oidc
    clientID: app
    clientSecret: app-secret
    endpoint: {issuer}
    # oidc-provider issues a refresh token for offline_access only with prompt=consent.
    authParameters: {{ prompt: consent }}
"
    )
}

/// Calls the provider's protected API (`?url=`) through `AuthManager::http_client()`.
async fn api(
    auth: AuthManager,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, AuthError> {
    let client = auth.http_client().await?;
    let response = client.get(query["url"].as_str()).send().await?;
    let status = response.status().as_u16();
    let body: Value = response.json().await.map_err(AuthError::Request)?;
    Ok(HttpResponse::Ok().json(json!({ "status": status, "body": body })))
}

async fn me(user: User) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "loggedIn": user.is_logged_in(), "sub": user.sub }))
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api", web::get().to(api))
        .route("/me", web::get().to(me));
}

struct Setup {
    provider: OidcProvider,
    app: TestApp,
    browser: reqwest::Client,
}

/// A provider with 2-second access tokens, the app, and a browser logged in as alice.
async fn logged_in(rotate_refresh_token: bool) -> Setup {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let provider = OidcProvider::start(ProviderOptions {
        clients: vec![client("app", "app-secret", &base, "op")],
        access_token_ttl: 2,
        rotate_refresh_token,
        ..ProviderOptions::default()
    });
    let app = TestApp::start(port, &config(&provider.issuer()), |b| b, routes).await;
    let browser = browser();
    let started = browser
        .get(app.url("/core/auth/login/op"))
        .send()
        .await
        .unwrap();
    let authorize = location(&started).unwrap();
    let callback = login_at_provider(&browser, &provider.issuer(), &authorize, "alice").await;
    let done = browser.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER, "{}", provider.log());
    Setup {
        provider,
        app,
        browser,
    }
}

/// Fires `CONCURRENT` calls of the protected API at once; returns (HTTP status, API status).
async fn burst(setup: &Setup) -> Vec<(u16, u64)> {
    let url = setup
        .app
        .url(&format!("/api?url={}", setup.provider.whoami_url()));
    let calls = (0..CONCURRENT).map(|_| {
        let request = setup.browser.get(&url).send();
        async move {
            let response = request.await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body["status"].as_u64().unwrap_or(0))
        }
    });
    futures_util::future::join_all(calls).await
}

async fn one_refresh_for_concurrent_requests(rotate_refresh_token: bool) {
    let setup = logged_in(rotate_refresh_token).await;
    assert_eq!(burst(&setup).await, vec![(200, 200); CONCURRENT]);
    assert_eq!(setup.provider.refresh_grants().await, (0, 0));

    for round in 1..=2 {
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
        let answers = burst(&setup).await;
        assert_eq!(
            answers,
            vec![(200, 200); CONCURRENT],
            "round {round}: every request after the expiry is served\n{}",
            setup.provider.log()
        );
        assert_eq!(
            setup.provider.refresh_grants().await,
            (round, 0),
            "round {round}: the provider saw exactly one refresh per expiry"
        );
    }
    let me: Value = setup
        .browser
        .get(setup.app.url("/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me, json!({ "loggedIn": true, "sub": "alice" }));
}

#[actix_web::test]
async fn concurrent_requests_after_expiry_share_one_refresh_with_rotation() {
    one_refresh_for_concurrent_requests(true).await;
}

#[actix_web::test]
async fn concurrent_requests_after_expiry_share_one_refresh_without_rotation() {
    one_refresh_for_concurrent_requests(false).await;
}
