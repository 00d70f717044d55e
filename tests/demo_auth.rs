//! The demo's auth defaults, run as a process: the fake broker is on without any flag, the
//! public built-in secret is warned about, and the `/` page (which lists the session) shows no
//! token, nonce, PKCE verifier or state and is never cached.

mod support;

use reqwest::StatusCode;
use support::{
    demo::{browser, Demo},
    oidc::{client, free_port, location, login_at_provider, OidcProvider, ProviderOptions},
};

async fn page(browser: &reqwest::Client, demo: &Demo) -> String {
    let response = browser.get(demo.url("/")).send().await.expect("GET /");
    assert_eq!(response.status(), StatusCode::OK, "{}", demo.log());
    assert_eq!(
        response.headers()[reqwest::header::CACHE_CONTROL],
        "no-store",
        "a page with session data is never cached"
    );
    response.text().await.unwrap()
}

fn query_param(url: &str, name: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_demo_logs_in_with_the_fake_broker_and_warns_about_its_secret() {
    let demo = Demo::start("");
    assert!(
        demo.log()
            .contains("flamingo.session.secret is the insecure default"),
        "the demo's secret is public and must be warned about:\n{}",
        demo.log()
    );
    for (user, password, name) in [
        ("alice", "alicepw", "Alice Anderson"),
        ("bob", "bobpw", "Bob Brown"),
    ] {
        let browser = browser();
        let home = page(&browser, &demo).await;
        assert!(home.contains("id=\"login-fake\""), "{home}");
        let form = browser
            .get(demo.url("/core/auth/login/fake?redirecturl=/"))
            .send()
            .await
            .unwrap();
        assert_eq!(form.status(), StatusCode::OK);
        let done = browser
            .post(demo.url("/core/auth/callback/fake"))
            .form(&[("username", user), ("password", password)])
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), StatusCode::SEE_OTHER, "{user}");
        let home = page(&browser, &demo).await;
        assert!(
            home.contains(&format!("<span id=\"user-name\">{name}</span>")),
            "{home}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_home_page_shows_no_token_nonce_verifier_or_state() {
    let port = free_port();
    let app = format!("http://127.0.0.1:{port}");
    let provider = OidcProvider::start(ProviderOptions {
        clients: vec![client("demo", "demo-secret", &app, "oidc")],
        ..ProviderOptions::default()
    });
    let yaml = format!(
        "core.auth.web.broker:\n  - broker: oidc\n    typ: oidc\n    clientID: demo\n    \
         clientSecret: demo-secret\n    endpoint: {issuer}\n    claims:\n      idToken: {{ name: name }}\n",
        issuer = provider.issuer(),
    );
    let demo = Demo::start_at(port, &yaml);
    let browser = browser();

    // A login in progress: its state, nonce and verifier are in the session.
    let started = browser
        .get(demo.url("/core/auth/login/oidc?redirecturl=/"))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::SEE_OTHER, "{}", demo.log());
    let authorize = location(&started).unwrap();
    let (state, nonce) = (
        query_param(&authorize, "state"),
        query_param(&authorize, "nonce"),
    );
    let during_login = page(&browser, &demo).await;
    assert!(
        during_login.contains("core.auth.oidc.oidc.states"),
        "{during_login}"
    );

    // Logged in: the tokens are in the session.
    let callback = login_at_provider(&browser, &provider.issuer(), &authorize, "alice").await;
    let done = browser.get(&callback).send().await.unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER, "{}", demo.log());
    let logged_in = page(&browser, &demo).await;
    assert!(logged_in.contains("id=\"user-name\""), "{logged_in}");
    assert!(
        logged_in.contains("core.auth.oidc.oidc.sessiondata"),
        "{logged_in}"
    );

    // Logging out: the end-session URLs, which carry the ID token, are queued in the session.
    let out = browser
        .get(demo.url("/core/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        location(&out).unwrap(),
        demo.url("/core/auth/logoutCallback")
    );
    let during_logout = page(&browser, &demo).await;
    assert!(
        during_logout.contains("core.auth.logoutredirects"),
        "{during_logout}"
    );
    let end_session = browser
        .get(demo.url("/core/auth/logoutCallback"))
        .send()
        .await
        .unwrap();
    let id_token = query_param(&location(&end_session).unwrap(), "id_token_hint");

    for (when, html) in [
        ("during the login", &during_login),
        ("after the login", &logged_in),
        ("during the logout", &during_logout),
    ] {
        for (what, secret) in [
            ("the state", state.as_str()),
            ("the nonce", nonce.as_str()),
            ("the ID token", id_token.as_str()),
        ] {
            assert!(!html.contains(secret), "{when}, `/` shows {what}:\n{html}");
        }
        for field in [
            "access_token",
            "refresh_token",
            "raw_id_token",
            "pkce_verifier",
            "nonce",
            "eyJ",
        ] {
            assert!(!html.contains(field), "{when}, `/` shows {field}:\n{html}");
        }
        assert!(html.contains("&lt;redacted&gt;"), "{when}: {html}");
    }
    drop(provider);
}
