//! The authorization request's extra parameters against oidc-provider's discovery: the
//! allowed `loginParameters` of the login URL pass through, nothing else does, the
//! `AuthCodeOptioner` hook adds its own, and `prompt` is sent only when configured.

mod support;

use std::collections::BTreeMap;

use reqwest::StatusCode;
use support::oidc::{
    browser, client, free_port, location, OidcProvider, ProviderOptions, TestApp, SESSION_YAML,
};

fn config(issuer: &str) -> String {
    format!(
        "{SESSION_YAML}core.auth.web.broker:
  - broker: op
    typ: oidc
    clientID: app
    clientSecret: app-secret
    endpoint: {issuer}
    loginParameters: [login_hint, prompt, ui_locales]
  - broker: plain
    typ: oidc
    clientID: app
    clientSecret: app-secret
    endpoint: {issuer}
"
    )
}

async fn setup() -> (OidcProvider, TestApp) {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let provider = OidcProvider::start(ProviderOptions {
        clients: vec![client("app", "app-secret", &base, "op")],
        ..ProviderOptions::default()
    });
    let app = TestApp::start(
        port,
        &config(&provider.issuer()),
        |builder| {
            builder.auth_code_optioner(|req: &actix_web::HttpRequest, broker: &str| {
                if broker != "op" {
                    return Vec::new();
                }
                let mut options = vec![
                    ("acr_values".to_owned(), "urn:test:hook".to_owned()),
                    // Protocol parameters are never the hook's: skipped.
                    ("state".to_owned(), "hook-state".to_owned()),
                ];
                if req.query_string().contains("from_hook") {
                    options.push(("ui_locales".to_owned(), "fr".to_owned()));
                }
                options
            })
        },
        |_| {},
    )
    .await;
    (provider, app)
}

/// Starts a login at `path`; returns the provider's authorization request parameters, each
/// name with all its values.
async fn authorize(app: &TestApp, path: &str) -> BTreeMap<String, Vec<String>> {
    let response = browser().get(app.url(path)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
    let url = url::Url::parse(&location(&response).unwrap()).unwrap();
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in url.query_pairs().into_owned() {
        params.entry(name).or_default().push(value);
    }
    params
}

const PROTOCOL: &[&str] = &[
    "client_id",
    "code_challenge",
    "code_challenge_method",
    "nonce",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
];

fn names(params: &BTreeMap<String, Vec<String>>) -> Vec<&str> {
    params.keys().map(String::as_str).collect()
}

#[actix_web::test]
async fn only_the_configured_login_parameters_pass_through_and_the_hook_adds_its_own() {
    let (_provider, app) = setup().await;
    let params = authorize(
        &app,
        "/core/auth/login/op?login_hint=alice&prompt=none&max_age=5&state=evil&redirect_uri=http://evil.example/&kc_idp_hint=x",
    )
    .await;
    let mut expected: Vec<&str> = PROTOCOL.to_vec();
    expected.extend(["acr_values", "login_hint", "prompt"]);
    expected.sort_unstable();
    assert_eq!(names(&params), expected, "{params:?}");
    assert_eq!(params["login_hint"], ["alice"]);
    assert_eq!(params["prompt"], ["none"]);
    assert_eq!(
        params["acr_values"],
        ["urn:test:hook"],
        "the hook's parameter"
    );
    assert_eq!(params["state"].len(), 1);
    assert_ne!(params["state"][0], "evil");
    assert_ne!(params["state"][0], "hook-state");
    assert_eq!(
        params["redirect_uri"],
        [app.url("/core/auth/callback/op")],
        "the login URL cannot move the callback"
    );

    // The hook runs last: its value replaces one passed through.
    let params = authorize(&app, "/core/auth/login/op?ui_locales=de&from_hook=1").await;
    assert_eq!(params["ui_locales"], ["fr"]);
}

#[actix_web::test]
async fn without_configuration_no_parameter_passes_and_no_prompt_is_sent() {
    let (_provider, app) = setup().await;
    let params = authorize(
        &app,
        "/core/auth/login/plain?login_hint=alice&prompt=consent&ui_locales=de",
    )
    .await;
    assert_eq!(names(&params), PROTOCOL, "{params:?}");
    assert!(
        params["scope"][0].split(' ').any(|s| s == "offline_access"),
        "enableOfflineToken still asks for a refresh token: {params:?}"
    );
}

#[actix_web::test]
async fn a_bad_login_parameter_value_is_a_400_that_names_it() {
    let (_provider, app) = setup().await;
    for (query, name) in [
        ("login_hint=alice%0ASet-Cookie:%20x", "login_hint"),
        ("prompt=always", "prompt"),
        ("prompt=none%20login", "prompt"),
    ] {
        let response = browser()
            .get(app.url(&format!("/core/auth/login/op?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        assert!(response.headers().get("location").is_none());
        let body = response.text().await.unwrap();
        assert!(body.contains(name), "{query}: {body}");
        assert!(!body.contains('\n'), "{query}: the value is not echoed raw");
    }
}
