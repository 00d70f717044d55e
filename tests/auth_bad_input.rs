//! Hostile input to the auth routes: generated OIDC callback parameters (with and without a
//! live state), login redirect targets and fake-broker form posts. The invariant: never a
//! panic, never a 500 caused by client input.

mod support;

use proptest::{prelude::*, strategy::ValueTree, test_runner::TestRunner};
use reqwest::StatusCode;
use support::oidc::{
    browser, client, free_port, OidcProvider, ProviderOptions, TestApp, SESSION_YAML,
};

fn generate(runner: &mut TestRunner, strategy: impl Strategy<Value = String>) -> String {
    strategy.new_tree(runner).expect("generate").current()
}

/// Printable junk, URL-unsafe characters, long strings and plausible tokens.
fn junk() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,40}",
        "[A-Za-z0-9_-]{10,60}",
        "\\PC{0,20}",
        "[a-z]{1,4}".prop_map(|s| s.repeat(600)),
        Just(String::new()),
    ]
}

#[actix_web::test]
async fn generated_callback_and_login_parameters_never_cause_a_500() {
    let port = free_port();
    let app_base = format!("http://127.0.0.1:{port}");
    let provider = OidcProvider::start(ProviderOptions {
        clients: vec![client("fuzz", "fuzz-secret", &app_base, "op")],
        ..ProviderOptions::default()
    });
    let yaml = format!(
        "{SESSION_YAML}core.auth.web.broker:\n  - broker: op\n    typ: oidc\n    clientID: fuzz\n    \
         clientSecret: fuzz-secret\n    endpoint: {}\n  - broker: dev\n    typ: fake\n    \
         userConfig: {{ alice: {{ password: pw }} }}\n",
        provider.issuer()
    );
    let app = TestApp::start(port, &yaml, |b| b, |_| {}).await;
    let mut runner = TestRunner::default();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut record = |status: StatusCode, what: &str| {
        assert_ne!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{what} caused a 500"
        );
        assert!(
            status.as_u16() < 500 || status == StatusCode::BAD_GATEWAY,
            "{what}: {status}"
        );
        *statuses.entry(status.as_u16()).or_default() += 1;
    };

    for round in 0..150 {
        let user = browser();
        // Half the rounds carry a live state: the callback then reaches the code exchange.
        let live_state = if round % 2 == 0 {
            let res = user
                .get(app.url("/core/auth/login/op"))
                .send()
                .await
                .unwrap();
            let location = res.headers()["location"].to_str().unwrap().to_owned();
            url::Url::parse(&location)
                .unwrap()
                .query_pairs()
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.into_owned())
        } else {
            None
        };
        let state = live_state.unwrap_or_else(|| generate(&mut runner, junk()));
        let mut params: Vec<(String, String)> = vec![("state".into(), state)];
        for name in ["code", "error", "error_description", "iss", "session_state"] {
            if generate(&mut runner, "[01]") == "1" {
                params.push((name.into(), generate(&mut runner, junk())));
            }
        }
        let mut url = url::Url::parse(&app.url("/core/auth/callback/op")).unwrap();
        url.query_pairs_mut().extend_pairs(&params);
        let res = user.get(url.clone()).send().await.unwrap();
        record(res.status(), &format!("callback {params:?}"));

        // A login with a generated redirect target.
        let target = generate(&mut runner, junk());
        let mut login = url::Url::parse(&app.url("/core/auth/login/dev")).unwrap();
        login.query_pairs_mut().append_pair("redirecturl", &target);
        let res = user.get(login).send().await.unwrap();
        record(res.status(), &format!("login redirecturl={target:?}"));

        // A fake-broker form post with generated fields.
        let form = [
            ("username", generate(&mut runner, junk())),
            ("password", generate(&mut runner, junk())),
        ];
        let res = user
            .post(app.url("/core/auth/callback/dev"))
            .form(&form)
            .send()
            .await
            .unwrap();
        record(res.status(), &format!("fake callback {form:?}"));

        // Unknown brokers and raw junk in the path.
        let broker = generate(&mut runner, "[A-Za-z0-9%._~-]{1,30}");
        let res = user
            .get(app.url(&format!("/core/auth/callback/{broker}")))
            .send()
            .await
            .unwrap();
        record(res.status(), &format!("callback for broker {broker:?}"));
    }
    println!("status counts over 600 generated requests: {statuses:?}");
    drop(provider);
}
