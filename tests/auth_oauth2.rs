//! The `oauth2` broker against the test OpenID Provider: API requests authenticated by their
//! bearer access token, as a JWT checked against the provider's keys or by introspection.

mod support;

use std::time::Duration;

use actix_web::{
    body::MessageBody,
    dev::{Service, ServiceResponse},
    http::header,
    test, web, App, HttpResponse,
};
use base64::Engine as _;
use flamingo_auth::{Auth, AuthError, AuthManager, Authenticated, User};
use flamingo_session::Sessions;
use serde_json::{json, Value};
use support::oidc::{OidcProvider, ProviderOptions};

const API: &str = "https://api.flamingo.test";
const SHORT_LIVED: &str = "https://short.flamingo.test";
const OTHER_API: &str = "https://other.flamingo.test";

/// A client of the API: gets tokens with the client credentials grant.
const CLIENT: (&str, &str) = ("api-client", "api-client-secret");
/// The API itself, for introspection.
const RESOURCE: (&str, &str) = ("my-api", "my-api-secret");

fn credentials_client((id, secret): (&str, &str)) -> Value {
    json!({
        "client_id": id,
        "client_secret": secret,
        "grant_types": ["client_credentials"],
        "response_types": [],
        "redirect_uris": [],
        "token_endpoint_auth_method": "client_secret_basic",
    })
}

fn provider() -> OidcProvider {
    OidcProvider::start(ProviderOptions {
        clients: vec![credentials_client(CLIENT), credentials_client(RESOURCE)],
        resource_servers: vec![
            (API.to_owned(), 3600),
            (SHORT_LIVED.to_owned(), 1),
            (OTHER_API.to_owned(), 3600),
        ],
        test_signer: true,
        ..ProviderOptions::default()
    })
}

async fn me(user: User) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "loggedIn": user.is_logged_in(),
        "broker": user.broker,
        "sub": user.sub,
    }))
}

/// Calls `?url=` with the request's token, through the token-carrying client.
async fn relay(
    auth: AuthManager,
    query: web::Query<std::collections::HashMap<String, String>>,
) -> Result<HttpResponse, AuthError> {
    let client = auth.http_client().await?;
    let response = client.get(&query["url"]).send().await?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(AuthError::Request)?;
    Ok(HttpResponse::Ok().json(json!({"status": status, "body": body})))
}

async fn private(login: Authenticated) -> HttpResponse {
    HttpResponse::Ok().body(format!("{}@{}", login.user.sub, login.identity.broker()))
}

/// The app with one `oauth2` broker `api`, configured by `broker` (YAML lines of the entry
/// after `typ`).
async fn app(
    provider: &OidcProvider,
    broker: &str,
) -> impl Service<
    actix_http::Request,
    Response = ServiceResponse<impl MessageBody>,
    Error = actix_web::Error,
> {
    let yaml = format!(
        "flamingo.session.cookie.secure: false\ncore.auth.web.broker:\n  - broker: api\n    \
         typ: oauth2\n    endpoint: {}\n{broker}",
        provider.issuer()
    );
    let config = config::Config::builder()
        .add_source(config::File::from_str(&yaml, config::FileFormat::Yaml))
        .build()
        .unwrap();
    let sessions = Sessions::from_config(&config).await.unwrap();
    let auth = Auth::from_config(&config, &sessions).await.unwrap();
    test::init_service(
        App::new()
            .wrap(sessions.middleware())
            .configure(|cfg| auth.configure(cfg))
            .route("/api/me", web::get().to(me))
            .route("/api/private", web::get().to(private))
            .route("/api/relay", web::get().to(relay)),
    )
    .await
}

const JWT_BROKER: &str =
    "    audience: [https://api.flamingo.test, https://short.flamingo.test]\n    algorithms: [RS256]\n";
const INTROSPECTION_BROKER: &str = "    verification: introspection\n    clientID: my-api\n    \
                                    clientSecret: my-api-secret\n";

/// GET `path` with `Authorization: Bearer <token>`: (status, WWW-Authenticate, body, whether a
/// cookie was set).
async fn get(
    app: &impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    >,
    path: &str,
    token: Option<&str>,
) -> (u16, Option<String>, String, bool) {
    let mut request = test::TestRequest::get().uri(path);
    if let Some(token) = token {
        request = request.insert_header((header::AUTHORIZATION, format!("Bearer {token}")));
    }
    let response = test::call_service(app, request.to_request()).await;
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let cookie = response.headers().contains_key(header::SET_COOKIE);
    let body = test::read_body(response).await;
    (
        status,
        challenge,
        String::from_utf8_lossy(&body).into_owned(),
        cookie,
    )
}

/// Asserts the RFC 6750 refusal of a bad token, and that the answer does not echo it.
async fn assert_refused(
    app: &impl Service<
        actix_http::Request,
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
    >,
    token: &str,
) {
    for path in ["/api/me", "/api/private"] {
        let (status, challenge, body, _) = get(app, path, Some(token)).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(
            challenge.as_deref(),
            Some(r#"Bearer error="invalid_token""#),
            "{path}"
        );
        assert_eq!(body, r#"{"error":"invalid_token"}"#);
        assert!(!body.contains(token));
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[actix_web::test]
async fn a_valid_jwt_access_token_gives_the_user_without_a_session() {
    let provider = provider();
    let app = app(&provider, JWT_BROKER).await;
    let token = provider
        .client_credentials_token(CLIENT.0, CLIENT.1, Some(API))
        .await;
    assert_eq!(token.split('.').count(), 3, "a JWT access token");

    let (status, _, body, cookie) = get(&app, "/api/me", Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    let me: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        me,
        json!({"loggedIn": true, "broker": "api", "sub": "api-client"})
    );
    assert!(!cookie, "an API call with a token starts no session");
    let (status, _, body, _) = get(&app, "/api/private", Some(&token)).await;
    assert_eq!((status, body.as_str()), (200, "api-client@api"));
}

#[actix_web::test]
async fn without_a_token_the_user_is_a_guest_and_a_login_is_asked_for() {
    let provider = provider();
    let app = app(&provider, JWT_BROKER).await;
    let (status, _, body, _) = get(&app, "/api/me", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["loggedIn"],
        false
    );
    // RFC 6750 §3.1: no error code when the request had no token at all.
    let (status, challenge, _, _) = get(&app, "/api/private", None).await;
    assert_eq!((status, challenge.as_deref()), (401, Some("Bearer")));
    // The login route of a bearer broker has nothing to show.
    let (status, challenge, _, _) = get(&app, "/core/auth/login/api", None).await;
    assert_eq!((status, challenge.as_deref()), (401, Some("Bearer")));
}

#[actix_web::test]
async fn an_expired_jwt_is_refused() {
    let provider = provider();
    let app = app(&provider, JWT_BROKER).await;
    let token = provider
        .client_credentials_token(CLIENT.0, CLIENT.1, Some(SHORT_LIVED))
        .await;
    let (status, _, body, _) = get(&app, "/api/me", Some(&token)).await;
    assert_eq!(status, 200, "valid before it expires: {body}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_refused(&app, &token).await;
}

#[actix_web::test]
async fn a_jwt_for_another_audience_is_refused() {
    let provider = provider();
    let app = app(&provider, JWT_BROKER).await;
    let token = provider
        .client_credentials_token(CLIENT.0, CLIENT.1, Some(OTHER_API))
        .await;
    assert_refused(&app, &token).await;
}

#[actix_web::test]
async fn a_jwt_from_another_issuer_is_refused() {
    let provider = provider();
    let app = app(&provider, JWT_BROKER).await;
    let claims = |iss: &str| json!({"iss": iss, "aud": API, "sub": "mallory", "exp": now() + 300, "iat": now()});
    // Signed by the provider's key: only the issuer differs from a token that passes.
    let right = provider.sign(&claims(&provider.issuer())).await;
    assert_eq!(get(&app, "/api/me", Some(&right)).await.0, 200);
    let wrong = provider.sign(&claims("http://127.0.0.1:1")).await;
    assert_refused(&app, &wrong).await;
}

#[actix_web::test]
async fn a_jwt_not_valid_yet_is_refused() {
    let provider = provider();
    let app = app(&provider, JWT_BROKER).await;
    let token = provider
        .sign(&json!({
            "iss": provider.issuer(), "aud": API, "sub": "early",
            "exp": now() + 600, "nbf": now() + 300,
        }))
        .await;
    assert_refused(&app, &token).await;
}

#[actix_web::test]
async fn a_bad_signature_or_no_signature_is_refused() {
    let provider = provider();
    let app = app(&provider, JWT_BROKER).await;
    let token = provider
        .client_credentials_token(CLIENT.0, CLIENT.1, Some(API))
        .await;
    // One character in the middle of the signature changed.
    let at = token.rfind('.').unwrap() + 20;
    let mut forged = token.clone().into_bytes();
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    assert_refused(&app, &String::from_utf8(forged).unwrap()).await;
    // The same claims with `alg: none` and no signature.
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let payload = token.split('.').nth(1).unwrap();
    let unsigned = format!("{}.{payload}.", b64(&json!({"alg": "none"})));
    assert_refused(&app, &unsigned).await;
    // Garbage that is not a token.
    assert_refused(&app, "not-a-jwt").await;
}

#[actix_web::test]
async fn introspection_accepts_an_active_token() {
    let provider = provider();
    let app = app(&provider, INTROSPECTION_BROKER).await;
    let token = provider
        .client_credentials_token(CLIENT.0, CLIENT.1, None)
        .await;
    assert_ne!(token.split('.').count(), 3, "an opaque token");
    let (status, _, body, cookie) = get(&app, "/api/me", Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"loggedIn": true, "broker": "api", "sub": "api-client"})
    );
    assert!(!cookie);
    // The cached answer serves the next request too.
    assert_eq!(get(&app, "/api/private", Some(&token)).await.0, 200);
}

#[actix_web::test]
async fn introspection_refuses_an_inactive_token() {
    let provider = provider();
    let app = app(&provider, INTROSPECTION_BROKER).await;
    let token = provider
        .client_credentials_token(CLIENT.0, CLIENT.1, None)
        .await;
    provider.revoke(CLIENT.0, CLIENT.1, &token).await;
    assert_refused(&app, &token).await;
    assert_refused(&app, "never-issued-by-the-provider").await;
}

#[actix_web::test]
async fn start_up_fails_when_introspection_has_no_credentials() {
    let yaml = "core.auth.web.broker:\n  - broker: api\n    typ: oauth2\n    \
                endpoint: http://127.0.0.1:1\n    verification: introspection\n    \
                clientID: my-api\n";
    let config = config::Config::builder()
        .add_source(config::File::from_str(yaml, config::FileFormat::Yaml))
        .build()
        .unwrap();
    let sessions = Sessions::from_config(&config).await.unwrap();
    let err = Auth::from_config(&config, &sessions).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "core.auth.web.broker[0].clientSecret: is required for verification: introspection"
    );
}

/// A token the provider cannot be asked about (down) is neither a user nor a guest: the
/// extractors answer 502 (a client retries later; a 401 would make it drop a good token), and
/// the answer names no token.
#[actix_web::test]
async fn a_token_that_cannot_be_checked_because_the_provider_is_down_is_a_502() {
    let mut provider = provider();
    let app = app(&provider, INTROSPECTION_BROKER).await;
    let token = provider
        .client_credentials_token(CLIENT.0, CLIENT.1, None)
        .await;
    provider.stop();
    for path in ["/api/me", "/api/private"] {
        let (status, challenge, body, cookie) = get(&app, path, Some(&token)).await;
        assert_eq!(status, 502, "{path}: {body}");
        assert_eq!(
            challenge, None,
            "{path}: no invalid_token for a token never checked"
        );
        assert_eq!(body, "identity provider failed");
        assert!(!cookie);
    }
    // Without a token the request is still a guest's.
    let (status, _, body, _) = get(&app, "/api/me", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["loggedIn"],
        json!(false)
    );
}

/// `clockSkew` gives `exp` and `nbf` leeway for clocks that differ; without it they are exact.
#[actix_web::test]
async fn clock_skew_gives_exp_and_nbf_leeway() {
    let provider = provider();
    let exact = app(&provider, JWT_BROKER).await;
    let lenient = app(&provider, &format!("{JWT_BROKER}    clockSkew: 30s\n")).await;
    let token = |exp: i64, nbf: i64| json!({"iss": provider.issuer(), "aud": API, "sub": "skewed", "exp": exp, "nbf": nbf});
    let expired_a_moment_ago = provider.sign(&token(now() - 10, now() - 60)).await;
    let valid_in_a_moment = provider.sign(&token(now() + 600, now() + 10)).await;
    let long_expired = provider.sign(&token(now() - 120, now() - 600)).await;
    for early_or_late in [&expired_a_moment_ago, &valid_in_a_moment] {
        assert_refused(&exact, early_or_late).await;
        let (status, _, body, _) = get(&lenient, "/api/me", Some(early_or_late)).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_refused(&lenient, &long_expired).await;
}

/// A downstream API on loopback that answers every request with its `Authorization` header
/// (401 on the path `/refuse`, else 200); returns its base URL.
async fn echo_api() -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    actix_web::rt::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let authorization = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("authorization")
                        .then(|| value.trim().to_owned())
                })
                .unwrap_or_default();
            let status = if head.starts_with("GET /refuse ") {
                "401 Unauthorized"
            } else {
                "200 OK"
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{authorization}",
                authorization.len()
            );
            let _ = stream.write_all(reply.as_bytes()).await;
        }
    });
    url
}

/// An API that an `oauth2` broker protects calls the next API with the caller's own token
/// (token relay) through `AuthManager::http_client`; `access_token` is that token too.
#[actix_web::test]
async fn the_token_carrying_client_relays_the_requests_bearer_token() {
    let provider = provider();
    let app = app(&provider, JWT_BROKER).await;
    let api = echo_api().await;
    let token = provider
        .client_credentials_token(CLIENT.0, CLIENT.1, Some(API))
        .await;
    let path = format!("/api/relay?url={api}/echo");
    let (status, _, body, cookie) = get(&app, &path, Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"status": 200, "body": format!("Bearer {token}")})
    );
    assert!(!cookie);
    // The next API refuses it: the answer comes back as it is (a relayed token is not
    // refreshed).
    let (status, _, body, _) =
        get(&app, &format!("/api/relay?url={api}/refuse"), Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"status": 401, "body": format!("Bearer {token}")})
    );
    // Without a token there is nothing to relay; a refused token is refused before any call.
    assert_eq!(get(&app, &path, None).await.0, 401);
    assert_refused(&app, "not-a-jwt").await;
    let (status, _, _, _) = get(&app, &path, Some("not-a-jwt")).await;
    assert_eq!(status, 401);
}
