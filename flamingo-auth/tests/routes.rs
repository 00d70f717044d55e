//! The routes and extractors in-process (actix-web's test service, memory sessions, the `fake`
//! broker): login with a new session ID and a listener whose changes persist, the extractors,
//! logout purging the session. The end-to-end tests against a real OpenID Provider live in the
//! workspace's `tests/auth_*.rs`.

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use actix_web::{
    body::MessageBody,
    dev::{Service, ServiceResponse},
    http::{header, StatusCode},
    test, web, App, HttpResponse,
};
use flamingo_auth::{Auth, Authenticated, User, UserService};
use flamingo_session::{Session, Sessions};

const CONFIG: &str = "
flamingo.session.cookie.secure: false
core.auth.web.broker:
  - broker: dev
    typ: fake
    userConfig:
      alice: { password: pw, claims: { name: Alice, groups: 'a,b' } }
";

async fn me(user: User) -> HttpResponse {
    HttpResponse::Ok().json(&user)
}

async fn welcome(session: Session) -> HttpResponse {
    HttpResponse::Ok().body(session.try_load::<String>("welcome").unwrap_or_default())
}

async fn logged_in(users: UserService) -> HttpResponse {
    HttpResponse::Ok().body(users.is_logged_in().await.to_string())
}

async fn private(login: Authenticated) -> HttpResponse {
    HttpResponse::Ok().body(login.user.sub)
}

fn cookie(response: &ServiceResponse<impl MessageBody>) -> Option<String> {
    let value = response.headers().get(header::SET_COOKIE)?.to_str().ok()?;
    Some(value.split(';').next()?.to_owned())
}

#[actix_web::test]
async fn fake_login_renews_the_session_runs_listeners_and_logout_purges() {
    let config = config::Config::builder()
        .add_source(config::File::from_str(CONFIG, config::FileFormat::Yaml))
        .build()
        .unwrap();
    let sessions = Sessions::from_config(&config).await.unwrap();
    let logins = Arc::new(AtomicUsize::new(0));
    let logouts = Arc::new(AtomicUsize::new(0));
    let (login_count, logout_count) = (logins.clone(), logouts.clone());
    let auth = Auth::from_config(&config, &sessions)
        .await
        .unwrap()
        .on_login(move |event| {
            let count = login_count.clone();
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                let greeting = format!("hello {} via {}", event.identity.subject(), event.broker);
                event.session.store("welcome", greeting).unwrap();
            }
        })
        .on_logout(move |_| {
            let count = logout_count.clone();
            async move {
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
    let app = test::init_service(
        App::new()
            .wrap(sessions.middleware())
            .configure(|cfg| auth.configure(cfg))
            .route("/me", web::get().to(me))
            .route("/welcome", web::get().to(welcome))
            .route("/logged-in", web::get().to(logged_in))
            .route("/private", web::get().to(private)),
    )
    .await;

    // Before the login: a guest, and the protected route sends browsers to the login.
    let guest: serde_json::Value =
        test::call_and_read_body_json(&app, test::TestRequest::get().uri("/me").to_request()).await;
    assert_eq!(
        (guest["name"].as_str(), guest["type"].as_str()),
        (Some("Guest"), Some("guest"))
    );
    let refused = app
        .call(
            test::TestRequest::get()
                .uri("/private")
                .insert_header((header::ACCEPT, "text/html"))
                .to_request(),
        )
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        refused.headers().get(header::LOCATION).unwrap(),
        "/core/auth/login/dev?redirecturl=%2Fprivate"
    );

    // The login route stores the target (and starts the session).
    let form = app
        .call(
            test::TestRequest::get()
                .uri("/core/auth/login/dev?redirecturl=/welcome")
                .to_request(),
        )
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let before = cookie(&form).expect("a session cookie");

    let done = app
        .call(
            test::TestRequest::post()
                .uri("/core/auth/callback/dev")
                .insert_header((header::COOKIE, before.clone()))
                .set_form([("username", "alice"), ("password", "pw")])
                .to_request(),
        )
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(done.headers().get(header::LOCATION).unwrap(), "/welcome");
    let after = cookie(&done).expect("the renewed session's cookie");
    assert_ne!(after, before);
    assert_eq!(logins.load(Ordering::SeqCst), 1);

    let get = |uri: &str, cookie: &str| {
        test::TestRequest::get()
            .uri(uri)
            .insert_header((header::COOKIE, cookie.to_owned()))
            .to_request()
    };
    let body = test::call_and_read_body(&app, get("/welcome", &after)).await;
    assert_eq!(
        body, "hello alice via dev",
        "the listener's session change persisted"
    );
    let user: serde_json::Value = test::call_and_read_body_json(&app, get("/me", &after)).await;
    assert_eq!(user["name"], "Alice");
    assert_eq!(user["groups"], serde_json::json!(["a", "b"]));
    assert_eq!(
        test::call_and_read_body(&app, get("/logged-in", &after)).await,
        "true"
    );
    assert_eq!(
        test::call_and_read_body(&app, get("/private", &after)).await,
        "alice"
    );
    // The old session ID no longer logs anybody in.
    assert_eq!(
        test::call_and_read_body(&app, get("/logged-in", &before)).await,
        "false"
    );

    let out = app.call(get("/core/auth/logout", &after)).await.unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(logouts.load(Ordering::SeqCst), 1);
    assert_eq!(
        test::call_and_read_body(&app, get("/logged-in", &after)).await,
        "false"
    );
    assert_eq!(
        test::call_and_read_body(&app, get("/welcome", &after)).await,
        "",
        "purged"
    );
}
