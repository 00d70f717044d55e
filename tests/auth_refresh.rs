//! One token refresh per session, against oidc-provider with refresh-token rotation on (a
//! reused refresh token revokes the grant, as at Keycloak, Auth0 and Okta) and off: concurrent
//! requests that find the access token expired share one exchange, counted at the provider, in
//! one process and across two demo processes on one Redis; a slow exchange keeps its lease; a
//! request in flight across a logout does not bring the login back.

mod support;

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use actix_web::{web, HttpResponse};
use flamingo_auth::{AuthError, AuthManager, User};
use reqwest::{cookie::CookieStore as _, StatusCode};
use serde_json::{json, Value};
use support::{
    demo::Demo,
    oidc::{
        browser, client, free_port, location, login_at_provider, OidcProvider, ProviderOptions,
        TestApp, SESSION_YAML,
    },
    redis::RedisServer,
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

fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// Prints the figures of a burst (RELIABILITY.md; `-- --nocapture` shows them).
fn report(what: &str, statuses: impl Iterator<Item = u16>, (refreshed, refused): (u64, u64)) {
    let statuses: Vec<u16> = statuses.collect();
    let failed = statuses.iter().filter(|s| **s != 200).count();
    println!(
        "{what}: {} requests, {failed} failed; refresh grants at the provider so far: {refreshed} \
         (refused: {refused})",
        statuses.len()
    );
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
        report(
            &format!(
                "one process, rotation {}, round {round}",
                on_off(rotate_refresh_token)
            ),
            answers.iter().map(|(status, _)| *status),
            setup.provider.refresh_grants().await,
        );
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

/// Two demo processes on one Redis, and a browser logged in as alice through the first.
struct TwoDemos {
    provider: OidcProvider,
    demos: [Demo; 2],
    browser: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
    /// When the login's access token expired at the latest.
    expired_at: Instant,
    _redis: RedisServer,
}

struct TwoDemosOptions {
    rotate_refresh_token: bool,
    access_token_ttl: u64,
    refresh_delay: Duration,
    refresh_lease: &'static str,
}

impl Default for TwoDemosOptions {
    fn default() -> Self {
        TwoDemosOptions {
            rotate_refresh_token: true,
            access_token_ttl: 2,
            refresh_delay: Duration::ZERO,
            refresh_lease: "5s",
        }
    }
}

async fn two_demos_logged_in(options: TwoDemosOptions) -> TwoDemos {
    let redis = RedisServer::standalone();
    let port = free_port();
    let provider = OidcProvider::start(ProviderOptions {
        clients: vec![client(
            "demo",
            "demo-secret",
            &format!("http://127.0.0.1:{port}"),
            "oidc",
        )],
        access_token_ttl: options.access_token_ttl,
        rotate_refresh_token: options.rotate_refresh_token,
        refresh_delay: options.refresh_delay,
        ..ProviderOptions::default()
    });
    let yaml = format!(
        "flamingo.session.backend: redis
flamingo.session.redis.host: {redis}
flamingo.session.redis.timeout: 2s
demo.protectedApi: {whoami}
core.auth.web.refreshLease: {lease}
core.auth.web.broker:
  - broker: oidc
    typ: oidc
    clientID: demo
    clientSecret: demo-secret
    endpoint: {issuer}
    authParameters: {{ prompt: consent }}
",
        redis = redis.host(),
        whoami = provider.whoami_url(),
        lease = options.refresh_lease,
        issuer = provider.issuer(),
    );
    let demos = [Demo::start_at(port, &yaml), Demo::start(&yaml)];
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let browser = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let started = browser
        .get(demos[0].url("/core/auth/login/oidc"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        started.status(),
        StatusCode::SEE_OTHER,
        "{}",
        demos[0].log()
    );
    let authorize = location(&started).unwrap();
    let callback = login_at_provider(&browser, &provider.issuer(), &authorize, "alice").await;
    let done = browser.get(&callback).send().await.unwrap();
    assert_eq!(
        done.status(),
        StatusCode::SEE_OTHER,
        "{}\n{}",
        demos[0].log(),
        provider.log()
    );
    let expired_at = Instant::now() + Duration::from_millis(options.access_token_ttl * 1000 + 300);
    TwoDemos {
        provider,
        demos,
        browser,
        jar,
        expired_at,
        _redis: redis,
    }
}

impl TwoDemos {
    /// `GET /me` on demo `n`: (logged in, sub).
    async fn me(&self, client: &reqwest::Client, n: usize) -> Value {
        let response = client.get(self.demos[n].url("/me")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{}", self.demos[n].log());
        let me: Value = response.json().await.unwrap();
        json!({ "loggedIn": me["loggedIn"], "sub": me["user"]["sub"] })
    }

    /// `GET /api/whoami` on demo `n`: the HTTP status and the `sub` the protected API saw.
    fn whoami(&self, n: usize) -> impl std::future::Future<Output = (u16, Value)> + 'static {
        let request = self.browser.get(self.demos[n].url("/api/whoami")).send();
        async move {
            let response = request.await.expect("the demo answers");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body["sub"].clone())
        }
    }

    /// `CONCURRENT` calls of the protected API at once, alternating between the two demos.
    async fn burst(&self) -> Vec<(u16, Value)> {
        futures_util::future::join_all((0..CONCURRENT).map(|i| self.whoami(i % 2))).await
    }

    fn logs(&self) -> String {
        format!(
            "demo 1:\n{}\ndemo 2:\n{}\nprovider:\n{}",
            self.demos[0].log(),
            self.demos[1].log(),
            self.provider.log()
        )
    }
}

async fn one_refresh_across_two_processes(rotate_refresh_token: bool) {
    let setup = two_demos_logged_in(TwoDemosOptions {
        rotate_refresh_token,
        ..TwoDemosOptions::default()
    })
    .await;
    let served = vec![(200, json!("alice")); CONCURRENT];
    assert_eq!(setup.burst().await, served, "{}", setup.logs());
    assert_eq!(setup.provider.refresh_grants().await, (0, 0));
    let mut expired_at = setup.expired_at;
    for round in 1..=2 {
        tokio::time::sleep_until(expired_at.into()).await;
        let answers = setup.burst().await;
        report(
            &format!(
                "two processes, rotation {}, round {round}",
                on_off(rotate_refresh_token)
            ),
            answers.iter().map(|(status, _)| *status),
            setup.provider.refresh_grants().await,
        );
        // The next expiry counts from the refresh this burst made.
        expired_at = Instant::now() + Duration::from_millis(2300);
        assert_eq!(
            answers,
            served,
            "round {round}: every request after the expiry is served, on both processes\n{}",
            setup.logs()
        );
        assert_eq!(
            setup.provider.refresh_grants().await,
            (round, 0),
            "round {round}: the provider saw exactly one refresh for both processes\n{}",
            setup.logs()
        );
    }
    for n in 0..2 {
        assert_eq!(
            setup.me(&setup.browser, n).await,
            json!({ "loggedIn": true, "sub": "alice" }),
            "demo {n}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_redis_share_one_refresh_with_rotation() {
    one_refresh_across_two_processes(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_redis_share_one_refresh_without_rotation() {
    one_refresh_across_two_processes(false).await;
}

/// The exchange takes twice the lease's time: only the holder's renewals keep the other
/// process from taking the lease and exchanging the (then reused) refresh token as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_exchange_keeps_its_lease_and_stays_the_only_refresh() {
    let setup = two_demos_logged_in(TwoDemosOptions {
        access_token_ttl: 5,
        refresh_delay: Duration::from_secs(2),
        refresh_lease: "1s",
        ..TwoDemosOptions::default()
    })
    .await;
    tokio::time::sleep_until(setup.expired_at.into()).await;
    let answers = setup.burst().await;
    report(
        "two processes, exchange 2 s, lease 1 s",
        answers.iter().map(|(status, _)| *status),
        setup.provider.refresh_grants().await,
    );
    assert_eq!(
        answers,
        vec![(200, json!("alice")); CONCURRENT],
        "{}",
        setup.logs()
    );
    assert_eq!(
        setup.provider.refresh_grants().await,
        (1, 0),
        "the lease was renewed while the exchange ran\n{}",
        setup.logs()
    );
}

/// A refresh held at the provider while the user logs out: the holder's request is served with
/// its new token, the other process's waiting request finds the login gone, and neither the
/// old session nor the login comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_across_a_logout_does_not_bring_the_session_back() {
    let setup = two_demos_logged_in(TwoDemosOptions {
        access_token_ttl: 3,
        refresh_delay: Duration::from_millis(1500),
        ..TwoDemosOptions::default()
    })
    .await;
    let app_url: url::Url = setup.demos[0].url("/").parse().unwrap();
    let old_cookie = setup.jar.cookies(&app_url).expect("the login's cookie");
    let old_session = reqwest::Client::builder()
        .default_headers(reqwest::header::HeaderMap::from_iter([(
            reqwest::header::COOKIE,
            old_cookie,
        )]))
        .build()
        .unwrap();
    tokio::time::sleep_until(setup.expired_at.into()).await;
    let in_flight = [tokio::spawn(setup.whoami(0)), tokio::spawn(setup.whoami(1))];
    // The exchange was made and its answer is held: log out now.
    setup
        .provider
        .wait_for_refresh_grants(1, Duration::from_secs(10))
        .await;
    let logout = setup
        .browser
        .get(setup.demos[0].url("/core/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::SEE_OTHER, "{}", setup.logs());
    let mut answers = Vec::new();
    for request in in_flight {
        answers.push(request.await.unwrap());
    }
    answers.sort_by_key(|(status, _)| *status);
    assert_eq!(
        answers,
        vec![(200, json!("alice")), (401, Value::Null)],
        "the holder is served, the waiter finds the login ended\n{}",
        setup.logs()
    );
    for n in 0..2 {
        let guest = json!({ "loggedIn": false, "sub": "" });
        assert_eq!(
            setup.me(&old_session, n).await,
            guest,
            "demo {n}: the old session stays ended\n{}",
            setup.logs()
        );
        assert_eq!(
            setup.me(&setup.browser, n).await,
            guest,
            "demo {n}: the session after the logout holds no login\n{}",
            setup.logs()
        );
    }
    assert_eq!(
        setup.provider.refresh_grants().await,
        (1, 0),
        "the waiter did not ask the provider"
    );
}
