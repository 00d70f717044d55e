//! A user's sessions across two demo processes sharing one Redis: `GET /me/sessions` lists
//! them all with the right `current`, `DELETE /me/sessions` on one instance logs the user out
//! on the other, and a logout at the OpenID Provider (back-channel logout, posted to one
//! instance) ends the user's sessions of that provider session on both.

mod support;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{
    demo::{browser, free_port, Demo},
    oidc::{form_action, hidden_value, location, login_at_provider, OidcProvider, ProviderOptions},
    redis::RedisServer,
};

fn redis_yaml(redis: &RedisServer) -> String {
    format!(
        "flamingo.session.backend: redis\nflamingo.session.redis.host: {}\n\
         flamingo.session.redis.timeout: 1s\n",
        redis.host()
    )
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("a JSON answer")
}

async fn logged_in(browser: &reqwest::Client, demo: &Demo) -> bool {
    let me = json_of(browser.get(demo.url("/me")).send().await.unwrap()).await;
    me["loggedIn"].as_bool().expect("loggedIn")
}

/// `GET /me/sessions`: checks the no-store header; returns the list.
async fn sessions(browser: &reqwest::Client, demo: &Demo) -> Vec<Value> {
    let response = browser.get(demo.url("/me/sessions")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", demo.log());
    assert_eq!(
        response.headers()[reqwest::header::CACHE_CONTROL],
        "no-store"
    );
    json_of(response).await["sessions"]
        .as_array()
        .expect("sessions is a list")
        .clone()
}

async fn fake_login(browser: &reqwest::Client, demo: &Demo, user: &str, password: &str) {
    let done = browser
        .post(demo.url("/core/auth/callback/fake"))
        .form(&[("username", user), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER, "{}", demo.log());
    assert!(logged_in(browser, demo).await);
}

/// Polls `check` until it holds (or 10 s pass); returns how long it took.
async fn within_10s<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what} did not happen within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_listed_and_ended_across_two_instances() {
    let redis = RedisServer::standalone();
    let (a, b) = (
        Demo::start(&redis_yaml(&redis)),
        Demo::start(&redis_yaml(&redis)),
    );
    let guest = browser();
    assert!(sessions(&guest, &a).await.is_empty(), "a guest has none");

    let (alice_a, alice_b, bob) = (browser(), browser(), browser());
    fake_login(&alice_a, &a, "alice", "alicepw").await;
    fake_login(&alice_b, &b, "alice", "alicepw").await;
    fake_login(&bob, &a, "bob", "bobpw").await;

    let on_a = sessions(&alice_a, &a).await;
    let on_b = sessions(&alice_b, &b).await;
    assert_eq!(
        on_a.len(),
        2,
        "both instances' sessions are listed: {on_a:?}"
    );
    let hashes = |list: &[Value]| {
        let mut h: Vec<String> = list
            .iter()
            .map(|s| s["idHash"].as_str().unwrap().to_owned())
            .collect();
        h.sort();
        h
    };
    assert_eq!(hashes(&on_a), hashes(&on_b), "one index for both instances");
    for (list, who) in [(&on_a, "on a"), (&on_b, "on b")] {
        assert_eq!(
            list.iter().filter(|s| s["current"] == json!(true)).count(),
            1,
            "{who}: exactly the request's session is current: {list:?}"
        );
        for s in list.iter() {
            let (created, seen) = (
                s["created"].as_u64().unwrap(),
                s["lastSeen"].as_u64().unwrap(),
            );
            assert!(created > 1_600_000_000 && seen >= created, "{s}");
        }
    }
    let current = |list: &[Value]| {
        list.iter().find(|s| s["current"] == json!(true)).unwrap()["idHash"].clone()
    };
    assert_ne!(
        current(&on_a),
        current(&on_b),
        "each browser is its own session"
    );
    assert_eq!(sessions(&bob, &a).await.len(), 1, "bob sees only his own");

    // Log out everywhere from instance b: alice's browser on instance a is logged out too.
    let response = alice_b.delete(b.url("/me/sessions")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", b.log());
    assert_eq!(
        response.headers()[reqwest::header::CACHE_CONTROL],
        "no-store"
    );
    let ended_at = Instant::now();
    assert_eq!(json_of(response).await["ended"], 2);
    assert!(
        !logged_in(&alice_a, &a).await,
        "logged out on the other instance"
    );
    let latency = ended_at.elapsed();
    assert!(!logged_in(&alice_b, &b).await, "and on this one");
    assert!(sessions(&alice_a, &a).await.is_empty());
    assert!(logged_in(&bob, &a).await, "another user's session lives on");
    println!("logout everywhere: 2 sessions on 2 instances ended; the other instance answered logged out {latency:?} after the DELETE");
}

/// The provider's `end_session_endpoint`.
async fn end_session_endpoint(provider: &OidcProvider) -> String {
    let discovery = json_of(
        reqwest::get(format!(
            "{}/.well-known/openid-configuration",
            provider.issuer()
        ))
        .await
        .unwrap(),
    )
    .await;
    discovery["end_session_endpoint"]
        .as_str()
        .expect("the provider supports logout")
        .to_owned()
}

/// Logs in at `demo`'s `oidc` broker with `browser` (at the provider as `user`, or with the
/// browser's provider session).
async fn oidc_login(browser: &reqwest::Client, demo: &Demo, provider: &OidcProvider, user: &str) {
    let started = browser
        .get(demo.url("/core/auth/login/oidc"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::SEE_OTHER, "{}", demo.log());
    let authorize = location(&started).unwrap();
    let callback = login_at_provider(browser, &provider.issuer(), &authorize, user).await;
    let done = browser.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER, "{}", demo.log());
    assert!(logged_in(browser, demo).await, "{}", demo.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_at_the_provider_ends_the_sessions_on_both_instances() {
    let redis = RedisServer::standalone();
    let (port_a, port_b) = (free_port(), free_port());
    let (base_a, base_b) = (
        format!("http://127.0.0.1:{port_a}"),
        format!("http://127.0.0.1:{port_b}"),
    );
    // One client, two instances; the provider posts logout tokens to instance a only.
    let client = json!({
        "client_id": "demo",
        "client_secret": "demo-secret",
        "redirect_uris": [
            format!("{base_a}/core/auth/callback/oidc"),
            format!("{base_b}/core/auth/callback/oidc"),
        ],
        "post_logout_redirect_uris": [
            format!("{base_a}/core/auth/logoutCallback"),
            format!("{base_b}/core/auth/logoutCallback"),
        ],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "backchannel_logout_uri": format!("{base_a}/core/auth/backchannelLogout/oidc"),
        "backchannel_logout_session_required": true,
    });
    let provider = OidcProvider::start(ProviderOptions {
        clients: vec![client],
        ..ProviderOptions::default()
    });
    // Two cookie names, so that one browser (one provider session) holds a session at each
    // instance: cookies do not tell ports apart.
    let yaml = |cookie: &str| {
        format!(
            "{}flamingo.session.name: {cookie}\ncore.auth.web.broker:\n  - broker: oidc\n    typ: oidc\n    \
             clientID: demo\n    clientSecret: demo-secret\n    endpoint: {}\n    enableOfflineToken: false\n",
            redis_yaml(&redis),
            provider.issuer()
        )
    };
    let a = Demo::start_at(port_a, &yaml("site_a"));
    let b = Demo::start_at(port_b, &yaml("site_b"));

    // One provider session with a login at both instances, and alice's second device (its own
    // provider session) at instance b.
    let device = browser();
    oidc_login(&device, &a, &provider, "alice").await;
    oidc_login(&device, &b, &provider, "alice").await;
    let other_device = browser();
    oidc_login(&other_device, &b, &provider, "alice").await;
    assert_eq!(sessions(&device, &a).await.len(), 3, "{}", a.log());

    // Log out at the provider itself (no RP is asked): it posts the logout token to instance a.
    let end_session = end_session_endpoint(&provider).await;
    let page = device.get(&end_session).send().await.unwrap();
    let page_url = page.url().clone();
    let html = page.text().await.unwrap();
    let xsrf = hidden_value(&html, "xsrf").expect("the provider's logout form");
    let started = Instant::now();
    let confirmed = device
        .post(form_action(&html, &page_url))
        .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")])
        .send()
        .await
        .unwrap();
    assert!(
        confirmed.status().is_redirection(),
        "the provider confirms the logout: {}",
        confirmed.status()
    );
    let gone = within_10s("the logout on both instances", || async {
        !logged_in(&device, &a).await && !logged_in(&device, &b).await
    })
    .await;
    let since_confirm = started.elapsed();
    assert_eq!(
        provider.backchannel_posts().await,
        (1, 0),
        "one logout token, answered 200:\n{}",
        provider.log()
    );
    assert!(
        !logged_in(&device, &a).await,
        "ended on the instance that got the token"
    );
    assert!(
        !logged_in(&device, &b).await,
        "ended on the other instance too"
    );
    assert!(
        logged_in(&other_device, &b).await,
        "the session of another provider session lives on"
    );
    println!(
        "back-channel logout: from the logout POST at the provider to both sessions gone: \
         {since_confirm:?} (polling after the provider answered: {gone:?})"
    );
}
