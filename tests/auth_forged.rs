//! ID tokens the real provider would never mint: a tiny fake OpenID Provider inside the test
//! (discovery, keys and a token endpoint that answers whatever the test queued) checks that
//! the callback refuses bad signatures, other audiences and issuers, expired tokens,
//! `alg: none`, wrong nonces and `at_hash`; that unknown keys are refetched at most once per
//! interval; that states expire and several can be live; that a refreshed ID token may come
//! without a nonce but not with another one; that attacker text in a callback reaches the log
//! escaped; that the token-carrying client gives up on an API that never answers; that an ID
//! token without `kid` is checked against the only key and refused among several; and that a discovery document
//! naming another issuer stops the start.

mod support;

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use actix_web::{web, App, HttpResponse, HttpServer};
use base64::Engine as _;
use flamingo_auth::{AuthError, AuthManager, RetryPolicy, User};
use openidconnect::{
    core::{CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey},
    JsonWebKeyId, PrivateSigningKey as _,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::oidc::{browser, free_port, location, rsa_pem, TestApp, SESSION_YAML};

/// The fake provider's mutable state.
struct Op {
    issuer: String,
    jwks: Mutex<Value>,
    jwks_hits: AtomicUsize,
    responses: Mutex<VecDeque<Value>>,
}

struct FakeOp {
    op: Arc<Op>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for FakeOp {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

async fn discovery(op: web::Data<Op>) -> HttpResponse {
    let issuer = &op.issuer;
    HttpResponse::Ok().json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    }))
}

async fn jwks(op: web::Data<Op>) -> HttpResponse {
    op.jwks_hits.fetch_add(1, Ordering::SeqCst);
    HttpResponse::Ok().json(op.jwks.lock().unwrap().clone())
}

async fn token(op: web::Data<Op>) -> HttpResponse {
    match op.responses.lock().unwrap().pop_front() {
        Some(response) => HttpResponse::Ok().json(response),
        None => HttpResponse::BadRequest().json(json!({"error": "invalid_grant"})),
    }
}

async fn start_op(keys: &[&Key]) -> FakeOp {
    let port = free_port();
    let op = Arc::new(Op {
        issuer: format!("http://127.0.0.1:{port}"),
        jwks: Mutex::new(jwks_of(keys)),
        jwks_hits: AtomicUsize::new(0),
        responses: Mutex::new(VecDeque::new()),
    });
    let data = web::Data::from(op.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route(
                "/.well-known/openid-configuration",
                web::get().to(discovery),
            )
            .route("/jwks", web::get().to(jwks))
            .route("/token", web::post().to(token))
    })
    .workers(1)
    .bind(("127.0.0.1", port))
    .unwrap()
    .run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    FakeOp { op, handle }
}

/// A signing key with its `kid`.
struct Key {
    kid: String,
    key: CoreRsaPrivateSigningKey,
}

impl Key {
    fn new(kid: &str) -> Key {
        let key =
            CoreRsaPrivateSigningKey::from_pem(&rsa_pem(), Some(JsonWebKeyId::new(kid.to_owned())))
                .expect("PEM key");
        Key {
            kid: kid.to_owned(),
            key,
        }
    }
}

fn jwks_of(keys: &[&Key]) -> Value {
    json!({ "keys": keys.iter().map(|k| serde_json::to_value(k.key.as_verification_key()).unwrap()).collect::<Vec<_>>() })
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS of `claims` with `header`, signed by `key` (RS256), or unsigned.
fn jwt(header: Value, claims: &Value, key: Option<&Key>) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = key
        .map(|k| {
            k.key
                .sign(
                    &CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
                    input.as_bytes(),
                )
                .unwrap()
        })
        .unwrap_or_default();
    format!("{input}.{}", b64(&signature))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `at_hash` of an access token for RS256.
fn at_hash(access_token: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(access_token.as_bytes());
    b64(&digest[..16])
}

fn claims(op: &FakeOp, sub: &str, nonce: Option<&str>) -> Value {
    let mut claims = json!({
        "iss": op.op.issuer, "aud": "app", "sub": sub, "iat": now(), "exp": now() + 300,
        "name": format!("{sub} (forged test)"),
    });
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    claims
}

fn signed(key: &Key, claims: &Value) -> String {
    jwt(
        json!({"alg": "RS256", "typ": "JWT", "kid": key.kid}),
        claims,
        Some(key),
    )
}

fn token_response(id_token: &str, access_token: &str, expires_in: u64) -> Value {
    json!({
        "access_token": access_token, "token_type": "Bearer", "expires_in": expires_in,
        "refresh_token": "rt-1", "id_token": id_token, "tenant": "acme",
    })
}

async fn me(user: User) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "loggedIn": user.is_logged_in(), "sub": user.sub, "name": user.name, "tenant": user.get("tenant") }))
}

async fn access(auth: AuthManager) -> Result<HttpResponse, AuthError> {
    let token = auth.access_token().await?;
    Ok(HttpResponse::Ok().body(token.secret().clone()))
}

/// Calls `?url=` with the user's access token; answers the API's status.
async fn call_api(
    auth: AuthManager,
    query: web::Query<BTreeMap<String, String>>,
) -> Result<HttpResponse, AuthError> {
    let response = auth.http_client().await?.get(&query["url"]).send().await?;
    Ok(HttpResponse::Ok().body(response.status().to_string()))
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/me", web::get().to(me))
        .route("/access", web::get().to(access))
        .route("/api", web::get().to(call_api));
}

async fn app_for(op: &FakeOp, extra: &str) -> TestApp {
    let config = format!(
        "{SESSION_YAML}core.auth.web.broker:
  - broker: fop
    typ: oidc
    clientID: app
    clientSecret: secret
    endpoint: {}
    enableOfflineToken: false
    claims:
      accessToken: {{ tenant: tenant }}
{extra}",
        op.op.issuer
    );
    TestApp::start(
        free_port(),
        &config,
        |builder| builder.jwks_refetch_interval(Duration::from_secs(3600)),
        routes,
    )
    .await
}

/// Starts a login; returns (state, nonce) sent to the provider.
async fn begin(browser: &reqwest::Client, app: &TestApp) -> (String, String) {
    let response = browser
        .get(app.url("/core/auth/login/fop"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let url = url::Url::parse(&location(&response).unwrap()).unwrap();
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    (param("state"), param("nonce"))
}

async fn finish(browser: &reqwest::Client, app: &TestApp, state: &str) -> reqwest::Response {
    browser
        .get(app.url(&format!("/core/auth/callback/fop?code=c&state={state}")))
        .send()
        .await
        .unwrap()
}

async fn logged_in(browser: &reqwest::Client, app: &TestApp) -> Value {
    browser
        .get(app.url("/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// One login attempt whose token response carries the ID token `make(nonce)`.
async fn attempt(
    op: &FakeOp,
    app: &TestApp,
    make: impl FnOnce(&str) -> String,
) -> (StatusCode, Value) {
    let browser = browser();
    let (state, nonce) = begin(&browser, app).await;
    op.op
        .responses
        .lock()
        .unwrap()
        .push_back(token_response(&make(&nonce), "at-1", 300));
    let status = finish(&browser, app, &state).await.status();
    (status, logged_in(&browser, app).await)
}

#[actix_web::test]
async fn forged_id_tokens_are_rejected() {
    let key = Key::new("k1");
    let intruder = Key::new("k1");
    let op = start_op(&[&key]).await;
    let app = app_for(&op, "").await;

    let (status, me) = attempt(&op, &app, |nonce| {
        signed(&key, &claims(&op, "alice", Some(nonce)))
    })
    .await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "a well-formed token is accepted"
    );
    assert_eq!(
        me,
        json!({"loggedIn": true, "sub": "alice", "name": "alice (forged test)", "tenant": "acme"})
    );

    let (status, _) = attempt(&op, &app, |nonce| {
        let mut c = claims(&op, "alice", Some(nonce));
        c["at_hash"] = json!(at_hash("at-1"));
        signed(&key, &c)
    })
    .await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "a matching at_hash is accepted"
    );

    type Forge<'a> = Box<dyn Fn(&str) -> String + 'a>;
    let cases: Vec<(&str, Forge<'_>)> = vec![
        (
            "bad signature",
            Box::new(|n| signed(&intruder, &claims(&op, "alice", Some(n)))),
        ),
        (
            "wrong audience",
            Box::new(|n| {
                let mut c = claims(&op, "alice", Some(n));
                c["aud"] = json!("other-app");
                signed(&key, &c)
            }),
        ),
        (
            "wrong issuer",
            Box::new(|n| {
                let mut c = claims(&op, "alice", Some(n));
                c["iss"] = json!("http://127.0.0.1:1");
                signed(&key, &c)
            }),
        ),
        (
            "expired",
            Box::new(|n| {
                let mut c = claims(&op, "alice", Some(n));
                c["exp"] = json!(now() - 60);
                c["iat"] = json!(now() - 120);
                signed(&key, &c)
            }),
        ),
        (
            "alg none",
            Box::new(|n| {
                jwt(
                    json!({"alg": "none", "typ": "JWT"}),
                    &claims(&op, "alice", Some(n)),
                    None,
                )
            }),
        ),
        (
            "alg none with the key id",
            Box::new(|n| {
                jwt(
                    json!({"alg": "none", "kid": "k1"}),
                    &claims(&op, "alice", Some(n)),
                    None,
                )
            }),
        ),
        (
            "wrong nonce",
            Box::new(|_| signed(&key, &claims(&op, "alice", Some("another-nonce")))),
        ),
        (
            "missing nonce",
            Box::new(|_| signed(&key, &claims(&op, "alice", None))),
        ),
        (
            "wrong at_hash",
            Box::new(|n| {
                let mut c = claims(&op, "alice", Some(n));
                c["at_hash"] = json!(at_hash("another-access-token"));
                signed(&key, &c)
            }),
        ),
        ("not a JWT", Box::new(|_| "garbage".to_owned())),
    ];
    for (name, forge) in cases {
        let (status, me) = attempt(&op, &app, |nonce| forge(nonce)).await;
        assert!(
            status.is_client_error() || status.is_server_error(),
            "{name}: answered {status}"
        );
        assert_eq!(me["loggedIn"], false, "{name}: must not log in");
    }
}

#[actix_web::test]
async fn an_unknown_key_id_triggers_one_rate_limited_refetch() {
    let key = Key::new("k1");
    let rotated = Key::new("k2");
    let op = start_op(&[&key]).await;
    let app = app_for(&op, "").await;
    assert_eq!(
        op.op.jwks_hits.load(Ordering::SeqCst),
        1,
        "keys fetched at discovery"
    );

    // The provider rotates to k2 and publishes it: the first k2 token makes the app refetch.
    *op.op.jwks.lock().unwrap() = jwks_of(&[&key, &rotated]);
    let (status, me) = attempt(&op, &app, |n| {
        signed(&rotated, &claims(&op, "alice", Some(n)))
    })
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(me["loggedIn"], true);
    assert_eq!(op.op.jwks_hits.load(Ordering::SeqCst), 2, "one refetch");

    // Tokens signed with keys nobody published: no refetch storm, no login.
    for kid in ["k3", "k4"] {
        let stranger = Key::new(kid);
        let (status, me) = attempt(&op, &app, |n| {
            signed(&stranger, &claims(&op, "alice", Some(n)))
        })
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{kid}");
        assert_eq!(me["loggedIn"], false);
    }
    assert_eq!(
        op.op.jwks_hits.load(Ordering::SeqCst),
        2,
        "refetching is rate-limited"
    );
}

#[actix_web::test]
async fn states_are_one_time_several_can_be_live_and_they_expire() {
    let key = Key::new("k1");
    let op = start_op(&[&key]).await;
    let app = app_for(&op, "    stateLifeTime: 1s\n").await;
    let browser = browser();

    // Two tabs start a login; both complete, in reverse order.
    let (state1, nonce1) = begin(&browser, &app).await;
    let (state2, nonce2) = begin(&browser, &app).await;
    for (state, nonce) in [(&state2, &nonce2), (&state1, &nonce1)] {
        op.op.responses.lock().unwrap().push_back(token_response(
            &signed(&key, &claims(&op, "alice", Some(nonce))),
            "at-1",
            300,
        ));
        assert_eq!(
            finish(&browser, &app, state).await.status(),
            StatusCode::SEE_OTHER
        );
    }
    let reused = finish(&browser, &app, &state1).await;
    assert_eq!(
        reused.status(),
        StatusCode::BAD_REQUEST,
        "a state is used once"
    );

    // A state older than stateLifeTime is refused.
    let (state, _) = begin(&browser, &app).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let late = finish(&browser, &app, &state).await;
    assert_eq!(late.status(), StatusCode::BAD_REQUEST);
    assert_eq!(late.text().await.unwrap(), "state mismatch");

    // A callback naming another issuer (RFC 9207 `iss`) is refused.
    let (state, _) = begin(&browser, &app).await;
    let mixed = browser
        .get(app.url(&format!(
            "/core/auth/callback/fop?code=c&state={state}&iss=http%3A%2F%2Fevil.example"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(mixed.status(), StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn a_refreshed_id_token_may_omit_the_nonce_but_must_not_change_it_or_the_subject() {
    let key = Key::new("k1");
    let op = start_op(&[&key]).await;
    let app = app_for(&op, "").await;

    for (case, refreshed_nonce, refreshed_sub, stays) in [
        ("no nonce", None, "alice", true),
        ("the login's nonce", Some("LOGIN"), "alice", true),
        ("another nonce", Some("another"), "alice", false),
        ("another subject", None, "mallory", false),
    ] {
        let browser = browser();
        let (state, nonce) = begin(&browser, &app).await;
        // An access token that expires at once, so the next use refreshes it.
        op.op.responses.lock().unwrap().push_back(token_response(
            &signed(&key, &claims(&op, "alice", Some(&nonce))),
            "at-1",
            1,
        ));
        assert_eq!(
            finish(&browser, &app, &state).await.status(),
            StatusCode::SEE_OTHER,
            "{case}"
        );
        let refreshed_nonce = refreshed_nonce.map(|n| {
            if n == "LOGIN" {
                nonce.clone()
            } else {
                n.to_owned()
            }
        });
        op.op.responses.lock().unwrap().push_back(token_response(
            &signed(
                &key,
                &claims(&op, refreshed_sub, refreshed_nonce.as_deref()),
            ),
            "at-2",
            300,
        ));
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let access = browser.get(app.url("/access")).send().await.unwrap();
        if stays {
            assert_eq!(access.status(), StatusCode::OK, "{case}");
            assert_eq!(
                access.text().await.unwrap(),
                "at-2",
                "{case}: the refreshed token is used"
            );
            let again = browser.get(app.url("/access")).send().await.unwrap();
            assert_eq!(
                again.text().await.unwrap(),
                "at-2",
                "{case}: and was written back"
            );
        } else {
            assert_eq!(access.status(), StatusCode::UNAUTHORIZED, "{case}");
            assert_eq!(
                logged_in(&browser, &app).await["loggedIn"],
                false,
                "{case}: logged out"
            );
        }
    }
}

#[actix_web::test]
async fn a_provider_error_reaches_the_registered_callback_error_handler() {
    let key = Key::new("k1");
    let op = start_op(&[&key]).await;
    let config = format!(
        "{SESSION_YAML}core.auth.web.broker: [{{broker: fop, typ: oidc, clientID: app, clientSecret: s, endpoint: '{}'}}]",
        op.op.issuer
    );
    let app = TestApp::start(
        free_port(),
        &config,
        |builder| {
            builder.callback_error_handler(|_req, err| {
                (err.error == "login_required").then(|| {
                    HttpResponse::SeeOther()
                        .insert_header(("Location", format!("/welcome?broker={}", err.broker)))
                        .finish()
                })
            })
        },
        routes,
    )
    .await;
    let browser = browser();
    let (_state, _) = begin(&browser, &app).await;
    let handled = browser
        .get(app.url("/core/auth/callback/fop?error=login_required&state=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(handled.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&handled).unwrap(), app.url("/welcome?broker=fop"));
    // Errors the handler declines get the default answer.
    let default = browser
        .get(app.url("/core/auth/callback/fop?error=access_denied&error_description=%3Cb%3E"))
        .send()
        .await
        .unwrap();
    assert_eq!(default.status(), StatusCode::UNAUTHORIZED);
    let body = default.text().await.unwrap();
    assert!(body.ends_with("access_denied"), "{body}");
}

/// Everything logged in this test process, as the `fmt` subscriber writes it (no colours).
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Installs (once per process: the app's workers run on their own threads) a global subscriber
/// that writes into a buffer, and returns the buffer.
fn captured_logs() -> LogBuffer {
    static LOGS: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        buffer
    })
    .clone()
}

#[actix_web::test]
async fn control_characters_from_a_callback_never_reach_the_log_raw() {
    let logs = captured_logs();
    let key = Key::new("k1");
    let op = start_op(&[&key]).await;
    let app = app_for(&op, "").await;
    let marker = format!("forged{}", free_port());
    // No login, no state: the provider-error branch logs first.
    let response = browser()
        .get(app.url(&format!(
            "/core/auth/callback/fop?error=x%0A{marker}%20INFO%20admin%20logged%20in%1b[2J\
             &error_description=y%0D%0A{marker}-description%1b]0;title%07%E2%80%AE"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let text = logs.text();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(&marker)).collect();
    assert!(!lines.is_empty(), "the provider error is logged:\n{text}");
    for line in &lines {
        // A raw line break would start a line of the attacker's with the marker.
        assert!(
            line.contains("the OpenID Provider returned an error"),
            "a forged log line: {line:?}"
        );
        assert!(!line.contains('\u{1b}') && !line.contains('\u{7}') && !line.contains('\r'));
        assert!(!line.contains('\u{202e}'), "a direction override: {line:?}");
    }
    assert!(
        text.contains(&format!("x\\n{marker} INFO admin logged in\\u{{1b}}[2J")),
        "the error code is logged, escaped:\n{text}"
    );
    assert!(
        text.contains(&format!(
            "y\\r\\n{marker}-description\\u{{1b}}]0;title\\u{{7}}"
        )),
        "the description is logged, escaped:\n{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "no raw escape anywhere in the log"
    );
}

#[actix_web::test]
async fn the_token_client_gives_up_on_an_api_that_never_answers() {
    // An API that accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = format!("http://{}/orders", listener.local_addr().unwrap());
    actix_web::rt::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let key = Key::new("k1");
    let op = start_op(&[&key]).await;
    let app = app_for(
        &op,
        "core.auth.web.httpClient: {connectTimeout: 1s, requestTimeout: 1500ms}\n",
    )
    .await;
    let browser = browser();
    let (state, nonce) = begin(&browser, &app).await;
    op.op.responses.lock().unwrap().push_back(token_response(
        &signed(&key, &claims(&op, "alice", Some(&nonce))),
        "at-1",
        300,
    ));
    assert_eq!(
        finish(&browser, &app, &state).await.status(),
        StatusCode::SEE_OTHER
    );

    let started = Instant::now();
    let call = browser
        .get(app.url("/api"))
        .query(&[("url", silent.as_str())])
        .send();
    let response = tokio::time::timeout(Duration::from_secs(15), call)
        .await
        .expect("the app answered instead of waiting for the API forever")
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(
        waited >= Duration::from_millis(1400) && waited < Duration::from_secs(10),
        "gave up after {waited:?}, expected about the configured 1.5 s"
    );
}

/// An ID token without `kid`, signed by `key`.
fn signed_without_kid(key: &Key, claims: &Value) -> String {
    jwt(json!({"alg": "RS256", "typ": "JWT"}), claims, Some(key))
}

/// OpenID Foundation `oidcc-client-test-kid-absent-single-jwks`: a token without `kid` is
/// checked against the provider's only key.
#[actix_web::test]
async fn an_id_token_without_kid_is_checked_against_the_only_key() {
    let key = Key::new("k1");
    let op = start_op(&[&key]).await;
    let app = app_for(&op, "").await;
    let (status, me) = attempt(&op, &app, |n| {
        signed_without_kid(&key, &claims(&op, "alice", Some(n)))
    })
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(me["loggedIn"], true);
    // Signed by another key: still refused.
    let stranger = Key::new("k1");
    let (status, me) = attempt(&op, &app, |n| {
        signed_without_kid(&stranger, &claims(&op, "alice", Some(n)))
    })
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(me["loggedIn"], false);
}

/// OpenID Foundation `oidcc-client-test-kid-absent-multiple-jwks`: a token without `kid` when
/// the provider publishes several keys that fit its `alg`. The plan allows the RP to reject it
/// (it cannot tell which key to use) or to try every key; openidconnect rejects it as ambiguous,
/// and no login happens, whichever key signed it.
#[actix_web::test]
async fn an_id_token_without_kid_among_several_keys_is_rejected() {
    let first = Key::new("k1");
    let second = Key::new("k2");
    let op = start_op(&[&first, &second]).await;
    let app = app_for(&op, "").await;
    for (signer, name) in [(&first, "first"), (&second, "second")] {
        let (status, me) = attempt(&op, &app, |n| {
            signed_without_kid(signer, &claims(&op, "alice", Some(n)))
        })
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "signed by the {name} key");
        assert_eq!(me["loggedIn"], false);
    }
    // With a `kid` the same keys work.
    let (status, _) = attempt(&op, &app, |n| {
        signed(&second, &claims(&op, "alice", Some(n)))
    })
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

/// OpenID Foundation `oidcc-client-test-discovery-issuer-mismatch`: the app is configured with
/// one issuer URL and the discovery document names another: the app does not start.
#[actix_web::test]
async fn a_discovery_document_naming_another_issuer_stops_the_start() {
    let key = Key::new("k1");
    let op = start_op(&[&key]).await;
    let configured = op.op.issuer.replace("127.0.0.1", "localhost");
    let yaml = format!(
        "{SESSION_YAML}core.auth.web.broker: [{{broker: fop, typ: oidc, clientID: app, \
         clientSecret: secret, endpoint: '{configured}'}}]"
    );
    let err = TestApp::try_start(
        free_port(),
        &yaml,
        |b| {
            b.retry_policy(RetryPolicy {
                attempts: 1,
                ..RetryPolicy::default()
            })
        },
        routes,
    )
    .await
    .err()
    .expect("the app refused to start");
    assert!(
        err.starts_with(
            "core.auth.web.broker[0].endpoint: OpenID Connect discovery of broker \"fop\""
        ),
        "{err}"
    );
    assert!(
        err.contains(&format!("names its issuer \"{}", op.op.issuer)),
        "{err}"
    );
}
