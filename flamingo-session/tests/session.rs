//! The `Session` extractor through the real middleware: typed values, flashes, renew, purge,
//! tampered cookies, and Flamingo's save modes (a port of `sessionstore_test.go`).

use std::{rc::Rc, sync::Arc};

use actix_web::{
    cookie::Cookie,
    dev::{Service, ServiceResponse},
    http::StatusCode,
    test, web, App, HttpResponse,
};
use flamingo_session::{
    backend::{SessionBackend, SessionId},
    MemoryBackend, SaveMode, Session, SessionConfig, SessionError, Sessions,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

#[derive(Debug, Serialize, Deserialize, PartialEq, flamingo_session::SessionValue)]
#[session_value(name = "test.Cart")]
struct Cart {
    items: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, flamingo_session::SessionValue)]
#[session_value(name = "test.User")]
struct User {
    name: String,
}

async fn sessions(mode: SaveMode, backend: Arc<MemoryBackend>) -> Sessions {
    let config = SessionConfig {
        save_mode: mode,
        backend: flamingo_session::config::BackendKind::Custom,
        secret: "a test secret that is long enough to be a real one".into(),
        ..SessionConfig::default()
    };
    Sessions::builder(config)
        .custom_backend_arc(backend)
        .build()
        .await
        .expect("sessions")
}

fn session_cookie(res: &ServiceResponse) -> Option<Cookie<'static>> {
    res.response()
        .cookies()
        .find(|c| c.name() == "flamingo")
        .map(|c| c.into_owned())
}

async fn body_json(res: ServiceResponse) -> serde_json::Value {
    serde_json::from_slice(&test::read_body(res).await).expect("json body")
}

#[actix_web::test]
async fn counter_counts_per_cookie_and_type_mismatch_is_an_error() {
    let backend = Arc::new(MemoryBackend::new(1000, 1 << 20));
    let sessions = sessions(SaveMode::Always, backend.clone()).await;
    let app = test::init_service(
        App::new()
            .wrap(sessions.middleware())
            .route(
                "/counter",
                web::get().to(|s: Session| async move {
                    let n = s.load::<u64>("count")?.unwrap_or(0) + 1;
                    s.store("count", n)?;
                    Ok::<_, SessionError>(
                        HttpResponse::Ok().json(serde_json::json!({ "count": n })),
                    )
                }),
            )
            .route(
                "/cart",
                web::post().to(|s: Session| async move {
                    s.store(
                        "cart",
                        Cart {
                            items: vec!["sku-1".into()],
                        },
                    )?;
                    Ok::<_, SessionError>(HttpResponse::Ok().finish())
                }),
            )
            .route(
                "/as-user",
                web::get().to(|s: Session| async move {
                    match s.load::<User>("cart") {
                        Err(err @ SessionError::TypeMismatch { .. }) => {
                            HttpResponse::Ok().body(err.to_string())
                        }
                        other => HttpResponse::InternalServerError().body(format!("{other:?}")),
                    }
                }),
            ),
    )
    .await;

    let res = test::call_service(&app, test::TestRequest::get().uri("/counter").to_request()).await;
    let cookie = session_cookie(&res).expect("a new session sets the cookie");
    assert!(
        cookie.http_only().unwrap_or(false),
        "the cookie is HttpOnly"
    );
    assert_eq!(cookie.secure(), Some(true), "the library default is Secure");
    assert_eq!(body_json(res).await["count"], 1);
    for expected in 2..=3 {
        let req = test::TestRequest::get()
            .uri("/counter")
            .cookie(cookie.clone())
            .to_request();
        assert_eq!(
            body_json(test::call_service(&app, req).await).await["count"],
            expected
        );
    }
    // A new client starts at 1.
    let res = test::call_service(&app, test::TestRequest::get().uri("/counter").to_request()).await;
    assert_eq!(body_json(res).await["count"], 1);

    // A tampered or garbage cookie is a fresh session, never a 500.
    let mut tampered = cookie.value().to_owned();
    tampered.replace_range(5..9, "AAAA");
    for value in [tampered.as_str(), "garbage", "", "%%%", &"x".repeat(5000)] {
        let req = test::TestRequest::get()
            .uri("/counter")
            .cookie(Cookie::new("flamingo", value.to_owned()))
            .to_request();
        let res = test::call_service(&app, req).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            body_json(res).await["count"],
            1,
            "a bad cookie starts a fresh session"
        );
    }

    // A Cart loaded as a User is a TypeMismatch naming the key and both types.
    let res = test::call_service(&app, test::TestRequest::post().uri("/cart").to_request()).await;
    let cookie = session_cookie(&res).unwrap();
    let req = test::TestRequest::get()
        .uri("/as-user")
        .cookie(cookie)
        .to_request();
    let res = test::call_service(&app, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    let message = String::from_utf8(test::read_body(res).await.to_vec()).unwrap();
    assert!(
        message.contains("\"cart\"")
            && message.contains("test.Cart")
            && message.contains("test.User"),
        "{message}"
    );
}

#[actix_web::test]
async fn flashes_pop_once_and_renew_and_purge_work() {
    let backend = Arc::new(MemoryBackend::new(1000, 1 << 20));
    let sessions = sessions(SaveMode::Always, backend.clone()).await;
    let app = test::init_service(
        App::new()
            .wrap(sessions.middleware())
            .route(
                "/flash",
                web::post().to(|s: Session| async move {
                    s.add_flash("one".to_owned())?;
                    s.add_flash("two".to_owned())?;
                    s.store("keep", 7u8)?;
                    Ok::<_, SessionError>(HttpResponse::Ok().finish())
                }),
            )
            .route(
                "/flash",
                web::get().to(|s: Session| async move {
                    Ok::<_, SessionError>(HttpResponse::Ok().json(s.flashes::<String>()?))
                }),
            )
            .route(
                "/id",
                web::get().to(|s: Session| async move {
                    HttpResponse::Ok().json(serde_json::json!({
                        "id": s.id().map(|id| id.expose().to_owned()),
                        "hash": s.id_hash(),
                        "keys": s.keys(),
                    }))
                }),
            )
            .route(
                "/renew",
                web::post().to(|s: Session| async move {
                    s.renew();
                    HttpResponse::Ok().finish()
                }),
            )
            .route(
                "/purge",
                web::post().to(|s: Session| async move {
                    s.purge();
                    HttpResponse::Ok().finish()
                }),
            ),
    )
    .await;

    let res = test::call_service(&app, test::TestRequest::post().uri("/flash").to_request()).await;
    let cookie = session_cookie(&res).unwrap();
    let get = |uri: &str, c: &Cookie<'static>| {
        test::TestRequest::get()
            .uri(uri)
            .cookie(c.clone())
            .to_request()
    };
    assert_eq!(
        body_json(test::call_service(&app, get("/flash", &cookie)).await).await,
        serde_json::json!(["one", "two"])
    );
    assert_eq!(
        body_json(test::call_service(&app, get("/flash", &cookie)).await).await,
        serde_json::json!([])
    );

    let ids = body_json(test::call_service(&app, get("/id", &cookie)).await).await;
    let id: SessionId = ids["id"]
        .as_str()
        .expect("a stored session knows its id")
        .parse()
        .unwrap();
    assert_eq!(ids["hash"], id.hash());
    assert_eq!(ids["keys"], serde_json::json!(["keep"]));
    assert!(
        cookie.value().starts_with(id.expose()),
        "the cookie carries the ID, signed"
    );

    let res = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/renew")
            .cookie(cookie.clone())
            .to_request(),
    )
    .await;
    let renewed = session_cookie(&res).expect("renew sets a new cookie");
    let after = body_json(test::call_service(&app, get("/id", &renewed)).await).await;
    assert_ne!(after["id"], ids["id"], "renew gives a new ID");
    assert_eq!(
        after["keys"],
        serde_json::json!(["keep"]),
        "renew keeps the data"
    );
    assert!(
        backend.load(&id).await.unwrap().is_none(),
        "the old ID stops working"
    );

    let res = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/purge")
            .cookie(renewed.clone())
            .to_request(),
    )
    .await;
    let removal = session_cookie(&res).expect("purge sends a removal cookie");
    assert_eq!(removal.value(), "");
    let new_id: SessionId = after["id"].as_str().unwrap().parse().unwrap();
    assert!(
        backend.load(&new_id).await.unwrap().is_none(),
        "purge deletes the stored session"
    );
}

/// Flamingo's `sessionstore_test.go`: two requests load the same session, the first saves, then
/// the second saves.
async fn concurrent_scenario(mode: SaveMode, second_clears: bool) -> serde_json::Value {
    let backend = Arc::new(MemoryBackend::new(1000, 1 << 20));
    let sessions = sessions(mode, backend.clone()).await;
    let second_loaded = Rc::new(Notify::new());
    let first_saved = Rc::new(Notify::new());
    let (l1, l2, s2) = (
        second_loaded.clone(),
        second_loaded.clone(),
        first_saved.clone(),
    );
    let app = test::init_service(
        App::new()
            .wrap(sessions.middleware())
            .route(
                "/setup",
                web::post().to(|s: Session| async move {
                    for key in ["key1", "key2", "key3"] {
                        s.store(key, "val0".to_owned())?;
                    }
                    s.add_flash("flash0".to_owned())?;
                    Ok::<_, SessionError>(HttpResponse::Ok().finish())
                }),
            )
            .route(
                "/first",
                web::post().to(move |s: Session| {
                    let l1 = l1.clone();
                    async move {
                        l1.notified().await;
                        s.store("key1", "s1".to_owned())?;
                        s.store("key2", "s1".to_owned())?;
                        s.delete("key3");
                        assert_eq!(s.flashes::<String>()?, vec!["flash0".to_owned()]);
                        Ok::<_, SessionError>(HttpResponse::Ok().finish())
                    }
                }),
            )
            .route(
                "/second",
                web::post().to(move |s: Session| {
                    let (l2, s2) = (l2.clone(), s2.clone());
                    async move {
                        l2.notify_one();
                        s2.notified().await;
                        if second_clears {
                            s.clear_all();
                        }
                        assert!(s.load::<String>("key1")?.is_some() || second_clears);
                        s.store("key4", "s2".to_owned())?;
                        Ok::<_, SessionError>(HttpResponse::Ok().finish())
                    }
                }),
            )
            .route(
                "/dump",
                web::get().to(|s: Session| async move {
                    let mut map = serde_json::Map::new();
                    for key in s.keys() {
                        let value = if key == "_flash" {
                            serde_json::json!(s.flashes::<String>()?)
                        } else {
                            serde_json::json!(s.load::<String>(&key)?)
                        };
                        map.insert(key, value);
                    }
                    Ok::<_, SessionError>(HttpResponse::Ok().json(map))
                }),
            ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::post().uri("/setup").to_request()).await;
    let cookie = session_cookie(&res).unwrap();
    let second = app.call(
        test::TestRequest::post()
            .uri("/second")
            .cookie(cookie.clone())
            .to_request(),
    );
    let first = async {
        let res = app
            .call(
                test::TestRequest::post()
                    .uri("/first")
                    .cookie(cookie.clone())
                    .to_request(),
            )
            .await;
        first_saved.notify_one();
        res
    };
    let (r2, r1) = futures_util::future::join(second, first).await;
    assert_eq!(r1.unwrap().status(), StatusCode::OK);
    assert_eq!(r2.unwrap().status(), StatusCode::OK);
    let req = test::TestRequest::get()
        .uri("/dump")
        .cookie(cookie)
        .to_request();
    body_json(test::call_service(&app, req).await).await
}

#[actix_web::test]
async fn save_mode_always_last_writer_wins() {
    let state = concurrent_scenario(SaveMode::Always, false).await;
    assert_eq!(
        state,
        serde_json::json!({"key1": "val0", "key2": "val0", "key3": "val0", "key4": "s2", "_flash": ["flash0"]}),
        "Always: everything the first request did is lost"
    );
}

#[actix_web::test]
async fn save_mode_on_read_merges_read_and_written_keys() {
    let state = concurrent_scenario(SaveMode::OnRead, false).await;
    assert_eq!(
        state,
        serde_json::json!({"key1": "val0", "key2": "s1", "key4": "s2"}),
        "OnRead: the second request's read of key1 writes back the old value; the rest merges"
    );
}

#[actix_web::test]
async fn save_mode_on_write_merges_written_keys_only() {
    let state = concurrent_scenario(SaveMode::OnWrite, false).await;
    assert_eq!(
        state,
        serde_json::json!({"key1": "s1", "key2": "s1", "key4": "s2"}),
        "OnWrite: reads do not merge; both requests' writes are kept"
    );
}

#[actix_web::test]
async fn clear_all_replaces_everything_even_on_write() {
    let state = concurrent_scenario(SaveMode::OnWrite, true).await;
    assert_eq!(
        state,
        serde_json::json!({"key4": "s2"}),
        "ClearAll: a later save wipes everything"
    );
}

#[actix_web::test]
async fn read_only_requests_slide_the_expiry_at_most_once_per_touch_interval() {
    let backend = Arc::new(MemoryBackend::new(1000, 1 << 20));
    let config = SessionConfig {
        backend: flamingo_session::config::BackendKind::Custom,
        secret: "a test secret that is long enough to be a real one".into(),
        // A touch interval of 1 s (a tenth of max.age).
        max_age: std::time::Duration::from_secs(10),
        ..SessionConfig::default()
    };
    let sessions = Sessions::builder(config)
        .custom_backend_arc(backend.clone())
        .build()
        .await
        .unwrap();
    let app = test::init_service(
        App::new()
            .wrap(sessions.middleware())
            .route(
                "/write",
                web::post().to(|s: Session| async move {
                    s.store("n", 1u8)?;
                    Ok::<_, SessionError>(HttpResponse::Ok().finish())
                }),
            )
            .route(
                "/read",
                web::get().to(|s: Session| async move {
                    Ok::<_, SessionError>(HttpResponse::Ok().json(s.load::<u8>("n")?))
                }),
            ),
    )
    .await;
    let res = test::call_service(&app, test::TestRequest::post().uri("/write").to_request()).await;
    let cookie = session_cookie(&res).unwrap();
    let read = || {
        test::TestRequest::get()
            .uri("/read")
            .cookie(cookie.clone())
            .to_request()
    };
    let res = test::call_service(&app, read()).await;
    assert!(
        session_cookie(&res).is_none(),
        "a fresh session is not written again by a read"
    );
    assert_eq!(body_json(res).await, 1);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let res = test::call_service(&app, read()).await;
    let renewed = session_cookie(&res).expect("a stale session is touched: a new cookie Max-Age");
    assert_eq!(
        renewed.max_age(),
        Some(actix_web::cookie::time::Duration::seconds(10))
    );
    assert_eq!(body_json(res).await, 1, "touching keeps the data");
    let res = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/read")
            .cookie(renewed.clone())
            .to_request(),
    )
    .await;
    assert!(
        session_cookie(&res).is_none(),
        "and then not again within the interval"
    );
}
