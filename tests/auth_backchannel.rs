//! Back-channel logout (OpenID Connect Back-Channel Logout 1.0), one test per case of the OpenID
//! Foundation's back-channel RP test plan (`oidcc-client-back-channel-logout-rp`: valid token,
//! `alg: none`, no `events`, wrong event, `nonce` present, wrong `alg`, wrong `aud`, wrong
//! issuer), plus neither `sid` nor `sub`, a stale `iat`, a replayed `jti`, a `sid`-only token
//! (also for a session kept alive past the login lifetime) and a signature by a key the provider
//! does not publish.
//!
//! A user logs in at the real oidc-provider, which signs with a key the test holds too, so the
//! test can sign logout tokens the provider's JWKS verifies; each case posts one to
//! `/core/auth/backchannelLogout/op` and checks the answer and whether the login survived.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::{web, HttpResponse};
use base64::Engine as _;
use flamingo_auth::{AuthError, AuthManager, User};
use openidconnect::{
    core::{CoreHmacKey, CoreJwsSigningAlgorithm, CoreRsaPrivateSigningKey},
    JsonWebKeyId, PrivateSigningKey as _,
};
use reqwest::StatusCode;
use serde_json::{json, Value};
use support::oidc::{
    browser, free_port, location, login_at_provider, rsa_pem, OidcProvider, ProviderOptions,
    TestApp, SESSION_YAML,
};

const KID: &str = "bcl-test-key";
const CLIENT_SECRET: &str = "bcl-secret-at-least-32-bytes-long!!";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

async fn me(user: User) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "loggedIn": user.is_logged_in(), "sub": user.sub }))
}

/// The ID token's `sid`, which oidc-provider sets for clients that require it.
async fn sid(auth: AuthManager) -> Result<HttpResponse, AuthError> {
    let token = auth.id_token().await?;
    Ok(HttpResponse::Ok().json(json!({ "sid": token.claim("sid") })))
}

fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/me", web::get().to(me))
        .route("/sid", web::get().to(sid));
}

/// A provider, an app logged in at it, and the provider's signing key.
struct Fixture {
    provider: OidcProvider,
    app: TestApp,
    key: CoreRsaPrivateSigningKey,
}

impl Fixture {
    async fn start() -> Fixture {
        Fixture::start_with(
            ProviderOptions::default(),
            "",
            "    enableOfflineToken: false\n",
        )
        .await
    }

    /// With these provider options, session config lines and broker config lines.
    async fn start_with(options: ProviderOptions, session: &str, broker: &str) -> Fixture {
        let pem = rsa_pem();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut client = support::oidc::client("app", CLIENT_SECRET, &base, "op");
        client["backchannel_logout_uri"] = json!(format!("{base}/core/auth/backchannelLogout/op"));
        client["backchannel_logout_session_required"] = json!(true);
        let provider = OidcProvider::start(ProviderOptions {
            clients: vec![client],
            signing_key: Some((pem.clone(), KID.to_owned())),
            ..options
        });
        let config = format!(
            "{SESSION_YAML}{session}core.auth.web.broker:\n  - broker: op\n    typ: oidc\n    clientID: app\n    \
             clientSecret: {CLIENT_SECRET}\n    endpoint: {}\n{broker}",
            provider.issuer()
        );
        let app = TestApp::start(port, &config, |b| b, routes).await;
        let key = CoreRsaPrivateSigningKey::from_pem(&pem, Some(JsonWebKeyId::new(KID.into())))
            .expect("the PEM key");
        Fixture { provider, app, key }
    }

    /// Logs `user` in with a new browser; returns the browser.
    async fn login(&self, user: &str) -> reqwest::Client {
        let browser = browser();
        let started = browser
            .get(self.app.url("/core/auth/login/op"))
            .send()
            .await
            .unwrap();
        let authorize = location(&started).expect("redirect to the provider");
        let callback = login_at_provider(&browser, &self.provider.issuer(), &authorize, user).await;
        let done = browser.get(&callback).send().await.unwrap();
        assert_eq!(done.status(), StatusCode::SEE_OTHER, "the login completes");
        assert!(self.logged_in(&browser).await, "logged in after the login");
        browser
    }

    async fn logged_in(&self, browser: &reqwest::Client) -> bool {
        let me: Value = browser
            .get(self.app.url("/me"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        me["loggedIn"].as_bool().expect("loggedIn")
    }

    async fn sid(&self, browser: &reqwest::Client) -> String {
        let body: Value = browser
            .get(self.app.url("/sid"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["sid"]
            .as_str()
            .expect("the ID token carries a sid")
            .to_owned()
    }

    /// The claims of a valid logout token for `sub` (a fresh `jti`).
    fn claims(&self, sub: &str) -> Value {
        json!({
            "iss": self.provider.issuer(), "aud": "app", "iat": now(), "exp": now() + 120,
            "jti": format!("jti-{}", rand_suffix()), "sub": sub,
            "events": { EVENT: {} },
        })
    }

    /// The claims of a valid logout token naming only the provider session `sid` (no `sub`).
    fn sid_only_claims(&self, sid: &str) -> Value {
        // `claims` with its `sub` taken out again.
        let mut claims = self.claims("");
        claims.as_object_mut().unwrap().remove("sub");
        claims["sid"] = json!(sid);
        claims
    }

    /// `claims` signed by the provider's key (RS256, with its `kid`).
    fn sign(&self, claims: &Value) -> String {
        jws(
            &json!({"alg": "RS256", "kid": KID, "typ": "logout+jwt"}),
            claims,
            |input| {
                self.key
                    .sign(&CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, input)
                    .unwrap()
            },
        )
    }

    /// Posts `token` to the back-channel endpoint; returns (status, JSON body or Null).
    async fn post(&self, token: &str) -> (StatusCode, Value) {
        let response = reqwest::Client::new()
            .post(self.app.url("/core/auth/backchannelLogout/op"))
            .form(&[("logout_token", token)])
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert_eq!(
            response.headers()[reqwest::header::CACHE_CONTROL],
            "no-store",
            "every back-channel answer is no-store"
        );
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    /// Posts `token`, expects 400 `invalid_request` with a description containing `reason`, and
    /// checks that the login survived.
    async fn refused(&self, browser: &reqwest::Client, token: &str, why: &str, reason: &str) {
        let (status, body) = self.post(token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}: {body}");
        assert_eq!(body["error"], "invalid_request", "{why}: {body}");
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| d.contains(reason)),
            "{why}: expected a description with {reason:?}: {body}"
        );
        assert!(
            self.logged_in(browser).await,
            "{why}: a refused token ends nothing"
        );
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn rand_suffix() -> String {
    openidconnect::CsrfToken::new_random().secret().clone()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn jws(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = sign(input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

// oidcc-client-test-rp-backchannel-rpinitlogout
#[actix_web::test]
async fn a_valid_logout_token_ends_the_users_session() {
    let f = Fixture::start().await;
    let alice = f.login("alice").await;
    let bob = f.login("bob").await;
    let mut claims = f.claims("alice");
    claims["sid"] = json!(f.sid(&alice).await);
    let (status, body) = f.post(&f.sign(&claims)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!f.logged_in(&alice).await, "alice's session ended");
    assert!(f.logged_in(&bob).await, "bob's session is not alice's");
}

// oidcc-client-test-rp-backchannel-rpinitlogout-alg-none
#[actix_web::test]
async fn an_unsigned_token_is_refused() {
    let f = Fixture::start().await;
    let alice = f.login("alice").await;
    let claims = f.claims("alice");
    let unsigned = jws(&json!({"alg": "none"}), &claims, |_| Vec::new());
    f.refused(&alice, &unsigned, "alg none", "alg none").await;
    // The same token properly signed works: the refusal was about the algorithm.
    assert_eq!(f.post(&f.sign(&claims)).await.0, StatusCode::OK);
    assert!(!f.logged_in(&alice).await);
}

// oidcc-client-test-rp-backchannel-rpinitlogout-no-event
#[actix_web::test]
async fn a_token_without_events_is_refused() {
    let f = Fixture::start().await;
    let alice = f.login("alice").await;
    let mut claims = f.claims("alice");
    claims.as_object_mut().unwrap().remove("events");
    f.refused(&alice, &f.sign(&claims), "no events", "events is missing")
        .await;
}

// oidcc-client-test-rp-backchannel-rpinitlogout-wrong-event
#[actix_web::test]
async fn a_token_with_another_event_is_refused() {
    let f = Fixture::start().await;
    let alice = f.login("alice").await;
    let mut claims = f.claims("alice");
    claims["events"] = json!({"http://schemas.openid.net/event/other": {}});
    f.refused(
        &alice,
        &f.sign(&claims),
        "wrong event",
        "no back-channel logout event",
    )
    .await;
    claims["events"] = json!({ EVENT: "not an object" });
    f.refused(
        &alice,
        &f.sign(&claims),
        "event value not an object",
        "not a JSON object",
    )
    .await;
}

// oidcc-client-test-rp-backchannel-rpinitlogout-with-nonce
#[actix_web::test]
async fn a_token_with_a_nonce_is_refused() {
    let f = Fixture::start().await;
    let alice = f.login("alice").await;
    let mut claims = f.claims("alice");
    claims["nonce"] = json!("n-1");
    f.refused(&alice, &f.sign(&claims), "nonce present", "nonce")
        .await;
}

// oidcc-client-test-rp-backchannel-rpinitlogout-wrong-alg
#[actix_web::test]
async fn a_token_signed_with_another_algorithm_is_refused() {
    let f = Fixture::start().await;
    let alice = f.login("alice").await;
    let claims = f.claims("alice");
    // HS256 keyed with the client secret: the classic algorithm confusion.
    let hmac = CoreHmacKey::new(CLIENT_SECRET.as_bytes());
    let hs256 = jws(&json!({"alg": "HS256", "kid": KID}), &claims, |input| {
        hmac.sign(&CoreJwsSigningAlgorithm::HmacSha256, input)
            .unwrap()
    });
    f.refused(&alice, &hs256, "HS256", "another algorithm")
        .await;
    // RS512 with the provider's own key: a valid signature, but not the registered algorithm.
    let rs512 = jws(&json!({"alg": "RS512", "kid": KID}), &claims, |input| {
        f.key
            .sign(&CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512, input)
            .unwrap()
    });
    f.refused(&alice, &rs512, "RS512", "another algorithm")
        .await;
}

// oidcc-client-test-rp-backchannel-rpinitlogout-wrong-aud
#[actix_web::test]
async fn a_token_for_another_client_is_refused() {
    let f = Fixture::start().await;
    let alice = f.login("alice").await;
    let mut claims = f.claims("alice");
    claims["aud"] = json!("another-client");
    f.refused(&alice, &f.sign(&claims), "wrong aud", "aud")
        .await;
    claims["aud"] = json!(["another-client", "third"]);
    f.refused(&alice, &f.sign(&claims), "wrong aud list", "aud")
        .await;
}

// oidcc-client-test-rp-backchannel-rpinitlogout-wrong-iss
#[actix_web::test]
async fn a_token_from_another_issuer_is_refused() {
    let f = Fixture::start().await;
    let alice = f.login("alice").await;
    let mut claims = f.claims("alice");
    claims["iss"] = json!("https://evil.example");
    f.refused(&alice, &f.sign(&claims), "wrong iss", "iss")
        .await;
}

#[actix_web::test]
async fn a_token_without_sid_and_sub_is_refused() {
    let f = Fixture::start().await;
    let alice = f.login("alice").await;
    let mut claims = f.claims("alice");
    claims.as_object_mut().unwrap().remove("sub");
    f.refused(
        &alice,
        &f.sign(&claims),
        "neither sub nor sid",
        "neither sub nor sid",
    )
    .await;
}

#[actix_web::test]
async fn a_stale_or_future_iat_is_refused() {
    let f = Fixture::start().await;
    let alice = f.login("alice").await;
    let mut claims = f.claims("alice");
    // The default maxAge is 2 minutes.
    claims["iat"] = json!(now() - 600);
    f.refused(&alice, &f.sign(&claims), "stale iat", "too old")
        .await;
    claims["iat"] = json!(now() + 600);
    f.refused(&alice, &f.sign(&claims), "iat in the future", "future")
        .await;
    claims.as_object_mut().unwrap().remove("iat");
    f.refused(&alice, &f.sign(&claims), "no iat", "iat is missing")
        .await;
}

#[actix_web::test]
async fn a_replayed_jti_is_refused() {
    let f = Fixture::start().await;
    let first = f.login("alice").await;
    let token = f.sign(&f.claims("alice"));
    assert_eq!(f.post(&token).await.0, StatusCode::OK);
    assert!(!f.logged_in(&first).await);
    // The user logs in again; the same token posted again (by an attacker who saw it) must
    // not end the new session.
    let again = f.login("alice").await;
    f.refused(&again, &token, "replayed jti", "jti replayed")
        .await;
}

#[actix_web::test]
async fn a_sid_only_token_ends_the_session_of_that_provider_session() {
    let f = Fixture::start().await;
    let alice = f.login("alice").await;
    let other_alice = f.login("alice").await;
    let sid = f.sid(&alice).await;
    assert_ne!(
        sid,
        f.sid(&other_alice).await,
        "two provider sessions, two sids"
    );
    let mut claims = f.sid_only_claims(&sid);
    let (status, body) = f.post(&f.sign(&claims)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!f.logged_in(&alice).await, "the sid's session ended");
    assert!(
        f.logged_in(&other_alice).await,
        "alice's session at another provider session lives on"
    );
    // An unknown sid ends nothing and is not an error.
    claims["sid"] = json!("unknown-sid");
    claims["jti"] = json!(format!("jti-{}", rand_suffix()));
    assert_eq!(f.post(&f.sign(&claims)).await.0, StatusCode::OK);
    assert!(f.logged_in(&other_alice).await);
}

/// The `sid` record lives for the login lifetime (here `max.age`, 3 s), but a session in use
/// slides past it: every token refresh renews the record, so a `sid`-only logout token still
/// finds the session after 5 s of use.
#[actix_web::test]
async fn a_sid_only_token_finds_a_session_kept_alive_past_the_login_lifetime() {
    let f = Fixture::start_with(
        ProviderOptions {
            access_token_ttl: 1,
            ..ProviderOptions::default()
        },
        "flamingo.session.max.age: 3s\n",
        // oidc-provider issues a refresh token for offline_access only with prompt=consent.
        "    authParameters: { prompt: consent }\n",
    )
    .await;
    let alice = f.login("alice").await;
    let sid = f.sid(&alice).await;
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(5) {
        tokio::time::sleep(std::time::Duration::from_millis(600)).await;
        assert!(
            f.logged_in(&alice).await,
            "the session slides and refreshes"
        );
    }
    let claims = f.sid_only_claims(&sid);
    let (status, body) = f.post(&f.sign(&claims)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        !f.logged_in(&alice).await,
        "the session of the sid ended, 5 s after a login whose record was taken for 3 s"
    );
}

#[actix_web::test]
async fn a_signature_by_a_key_the_provider_does_not_publish_is_refused() {
    let f = Fixture::start().await;
    let alice = f.login("alice").await;
    let claims = f.claims("alice");
    let stranger = CoreRsaPrivateSigningKey::from_pem(&rsa_pem(), None).unwrap();
    let sign = |input: &[u8]| {
        stranger
            .sign(&CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, input)
            .unwrap()
    };
    // With the provider's kid (the signature does not verify) and with an unknown kid (no key;
    // the keys are fetched again, still none).
    let same_kid = jws(&json!({"alg": "RS256", "kid": KID}), &claims, sign);
    f.refused(
        &alice,
        &same_kid,
        "forged signature, known kid",
        "does not verify",
    )
    .await;
    let other_kid = jws(&json!({"alg": "RS256", "kid": "other"}), &claims, sign);
    f.refused(
        &alice,
        &other_kid,
        "forged signature, unknown kid",
        "no key",
    )
    .await;
    assert!(!f.provider.log().contains("server_error"));
}

#[actix_web::test]
async fn malformed_requests_are_refused() {
    let f = Fixture::start().await;
    let alice = f.login("alice").await;
    for (body, why) in [
        ("", "no logout_token"),
        ("logout_token=a.b", "not a JWS"),
        ("logout_token=a.b.c.d.e", "encrypted"),
        ("logout_token=%0A%1b%5B2J.x.y", "control characters"),
    ] {
        let response = reqwest::Client::new()
            .post(f.app.url("/core/auth/backchannelLogout/op"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{why}");
        let text = response.text().await.unwrap();
        assert!(!text.contains('\u{1b}'), "{why}: nothing is echoed: {text}");
    }
    let response = reqwest::Client::new()
        .post(f.app.url("/core/auth/backchannelLogout/nope"))
        .form(&[("logout_token", f.sign(&f.claims("alice")))])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "unknown broker");
    assert!(f.logged_in(&alice).await);
}
