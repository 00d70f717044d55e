//! Forwarding headers move the site's URL only when a trusted proxy sends them: the redirect
//! guard of `/core/auth/logout?redirecturl=` and the redirects after logout use the request's
//! `Host` otherwise, and the scheme is never anything but http or https.

use actix_web::{
    dev::{Service, ServiceResponse},
    http::header,
    test, App,
};
use flamingo_auth::Auth;
use flamingo_session::Sessions;

const BROKER: &str = "
flamingo.session.cookie.secure: false
core.auth.web.broker: [{broker: dev, typ: fake, userConfig: {alice: {password: pw}}}]
";

/// The `Location` of `GET {uri}` from `peer` with `headers`, on an app configured with
/// `BROKER` plus `extra`.
async fn location(extra: &str, peer: &str, uri: &str, headers: &[(&str, &str)]) -> String {
    let config = config::Config::builder()
        .add_source(config::File::from_str(
            &format!("{BROKER}{extra}"),
            config::FileFormat::Yaml,
        ))
        .build()
        .unwrap();
    let sessions = Sessions::from_config(&config).await.unwrap();
    let auth = Auth::from_config(&config, &sessions).await.unwrap();
    let app = test::init_service(
        App::new()
            .wrap(sessions.middleware())
            .configure(|cfg| auth.configure(cfg)),
    )
    .await;
    let mut req = test::TestRequest::get()
        .uri(uri)
        .peer_addr(peer.parse().unwrap())
        .insert_header((header::HOST, "shop.example"));
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    let res: ServiceResponse = app.call(req.to_request()).await.unwrap();
    assert!(res.status().is_redirection(), "{}", res.status());
    res.headers()
        .get(header::LOCATION)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

const EVIL_LOGOUT: &str = "/core/auth/logout?redirecturl=http://evil.example/x";

#[actix_web::test]
async fn forwarded_hosts_from_an_untrusted_peer_do_not_open_the_redirect() {
    for headers in [
        &[("X-Forwarded-Host", "evil.example")][..],
        &[("Forwarded", "host=evil.example;proto=http")][..],
    ] {
        // No trusted proxies configured, and a peer that is not one of the configured ones.
        for extra in ["", "core.auth.web.trustedProxies: [10.0.0.1]\n"] {
            let to = location(extra, "192.0.2.7:5000", EVIL_LOGOUT, headers).await;
            assert_eq!(to, "http://shop.example/", "{headers:?} {extra:?}");
        }
    }
}

#[actix_web::test]
async fn a_trusted_proxy_sets_the_host_and_scheme() {
    let trusted = "core.auth.web.trustedProxies: [127.0.0.1, 10.0.0.0/8]\n";
    let to = location(
        trusted,
        "10.2.3.4:5000",
        "/core/auth/logout?redirecturl=https://www.shop.example/cart",
        &[
            ("X-Forwarded-Host", "www.shop.example"),
            ("X-Forwarded-Proto", "https"),
        ],
    )
    .await;
    assert_eq!(to, "https://www.shop.example/cart");
    let to = location(
        trusted,
        "127.0.0.1:5000",
        "/core/auth/logout",
        &[("Forwarded", "host=www.shop.example;proto=https")],
    )
    .await;
    assert_eq!(to, "https://www.shop.example/");
}

#[actix_web::test]
async fn a_forwarded_scheme_other_than_http_or_https_is_never_used() {
    for (extra, peer) in [
        ("", "192.0.2.7:5000"),
        (
            "core.auth.web.trustedProxies: [127.0.0.1]\n",
            "127.0.0.1:5000",
        ),
    ] {
        for headers in [
            &[("X-Forwarded-Proto", "javascript")][..],
            &[("Forwarded", "proto=javascript")][..],
        ] {
            for uri in [
                "/core/auth/logout",
                "/core/auth/logout?redirecturl=javascript://shop.example/%0Aalert(1)",
            ] {
                let to = location(extra, peer, uri, headers).await;
                assert_eq!(to, "http://shop.example/", "{headers:?} {uri}");
            }
        }
    }
}

#[actix_web::test]
async fn a_configured_base_url_pins_the_site() {
    let to = location(
        "core.auth.web.baseURL: https://shop.example\ncore.auth.web.trustedProxies: [127.0.0.1]\n",
        "127.0.0.1:5000",
        EVIL_LOGOUT,
        &[("X-Forwarded-Host", "evil.example")],
    )
    .await;
    assert_eq!(to, "https://shop.example/");
}
