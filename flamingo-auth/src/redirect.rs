//! URLs: the site's own absolute base, and the open-redirect guard for `redirecturl`.
//!
//! The base comes from `core.auth.web.baseURL` when set; else from the forwarding headers when
//! the peer is a trusted proxy (`core.auth.web.trustedProxies`); else from the request's `Host`.
//! A client that is not a trusted proxy cannot move the base with `X-Forwarded-Host` or
//! `Forwarded`, and no header can make the scheme anything but `http` or `https`.

use actix_web::{http::header, HttpRequest, HttpResponse};
use url::Url;

use crate::config::ProxyRange;

/// Where the site's own URL comes from (see the module docs).
#[derive(Debug, Clone, Default)]
pub(crate) struct Origin {
    pub(crate) base_url: Option<Url>,
    pub(crate) trusted_proxies: Vec<ProxyRange>,
}

impl Origin {
    /// Whether the request came straight from a trusted proxy.
    fn is_trusted_proxy(&self, req: &HttpRequest) -> bool {
        req.peer_addr()
            .is_some_and(|peer| self.trusted_proxies.iter().any(|r| r.contains(peer.ip())))
    }

    /// The absolute URL of the site root for this request (`scheme://host/`).
    pub(crate) fn base_url(&self, req: &HttpRequest) -> Url {
        if let Some(base) = &self.base_url {
            return base.clone();
        }
        let own_scheme = own_scheme(req);
        let own_host = own_host(req);
        if self.is_trusted_proxy(req) {
            let info = req.connection_info();
            let scheme = match info.scheme().to_ascii_lowercase().as_str() {
                "http" => "http",
                "https" => "https",
                _ => own_scheme,
            };
            if let Some(url) = origin(scheme, info.host()) {
                return url;
            }
        }
        own_host
            .and_then(|host| origin(own_scheme, host))
            .or_else(|| origin(own_scheme, req.app_config().host()))
            .unwrap_or_else(|| Url::parse("http://localhost/").expect("static URL parses"))
    }

    /// The absolute URL of `path` (which starts with `/`) on this site.
    pub(crate) fn absolute(&self, req: &HttpRequest, path: &str) -> Url {
        let mut url = self.base_url(req);
        url.set_path(path);
        url
    }
}

/// The scheme the server itself speaks on this connection.
fn own_scheme(req: &HttpRequest) -> &'static str {
    if req.uri().scheme_str() == Some("https") || req.app_config().secure() {
        "https"
    } else {
        "http"
    }
}

/// The `Host` header, else the request target's authority (HTTP/2).
fn own_host(req: &HttpRequest) -> Option<&str> {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
}

/// `scheme://host/` when `host` is a host with an optional port and nothing else.
fn origin(scheme: &str, host: &str) -> Option<Url> {
    if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:[]".contains(c))
    {
        return None;
    }
    let url = Url::parse(&format!("{scheme}://{host}/")).ok()?;
    (url.path() == "/" && url.host().is_some()).then_some(url)
}

/// The open-redirect guard (Flamingo's `storeRedirectURL`, stricter): a relative path
/// (`/...`, but not `//host` or `/\host`), or an absolute http(s) URL on the request's own host
/// and port, is kept; anything else, and any URL under `/core/auth/` (which would loop), becomes
/// the site root.
pub(crate) fn guard(origin: &Origin, req: &HttpRequest, candidate: Option<&str>) -> String {
    let own = origin.base_url(req);
    let root = own.to_string();
    let Some(candidate) = candidate.map(str::trim).filter(|c| !c.is_empty()) else {
        return root;
    };
    if candidate.chars().any(|c| c.is_control()) {
        return root;
    }
    if candidate.starts_with('/') {
        if candidate.starts_with("//") || candidate.starts_with("/\\") {
            return root;
        }
        let path = candidate.split(['?', '#']).next().unwrap_or_default();
        if path.starts_with("/core/auth/") {
            return root;
        }
        return candidate.to_owned();
    }
    let Ok(url) = Url::parse(candidate) else {
        return root;
    };
    let same_origin = matches!(url.scheme(), "http" | "https")
        && url.host_str() == own.host_str()
        && url.port_or_known_default() == own.port_or_known_default()
        && url.username().is_empty()
        && url.password().is_none();
    if !same_origin || url.path().starts_with("/core/auth/") {
        return root;
    }
    url.to_string()
}

/// The login target: `redirecturl` if given, else the `Referer` header, through [`guard`].
pub(crate) fn login_target(
    origin: &Origin,
    req: &HttpRequest,
    redirect_url: Option<&str>,
) -> String {
    let referer = req
        .headers()
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok());
    guard(origin, req, redirect_url.or(referer))
}

/// `303 See Other` to `location`.
pub(crate) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn open() -> Origin {
        Origin::default()
    }

    fn req() -> HttpRequest {
        TestRequest::default()
            .insert_header((header::HOST, "shop.example:8080"))
            .to_http_request()
    }

    #[test]
    fn keeps_same_host_and_relative_targets() {
        let req = req();
        assert_eq!(guard(&open(), &req, Some("/account?x=1")), "/account?x=1");
        assert_eq!(
            guard(&open(), &req, Some("http://shop.example:8080/cart")),
            "http://shop.example:8080/cart"
        );
    }

    #[test]
    fn replaces_everything_else_with_the_root() {
        let req = req();
        let root = "http://shop.example:8080/";
        for bad in [
            "https://evil.example/",
            "//evil.example/x",
            "/\\evil.example",
            "http://shop.example:9999/",
            "javascript:alert(1)",
            "http://user@shop.example:8080/",
            "/core/auth/login/x",
            "",
            "relative",
            "/a\r\nSet-Cookie: x",
        ] {
            assert_eq!(guard(&open(), &req, Some(bad)), root, "{bad:?}");
        }
        assert_eq!(guard(&open(), &req, None), root);
    }

    #[test]
    fn referer_is_the_fallback() {
        let req = TestRequest::default()
            .insert_header((header::HOST, "shop.example"))
            .insert_header((header::REFERER, "http://shop.example/products"))
            .to_http_request();
        assert_eq!(
            login_target(&open(), &req, None),
            "http://shop.example/products"
        );
        assert_eq!(login_target(&open(), &req, Some("/x")), "/x");
    }

    fn proxied(peer: &str) -> HttpRequest {
        TestRequest::default()
            .peer_addr(peer.parse().unwrap())
            .insert_header((header::HOST, "backend:8080"))
            .insert_header(("X-Forwarded-Host", "shop.example"))
            .insert_header(("X-Forwarded-Proto", "https"))
            .to_http_request()
    }

    #[test]
    fn forwarding_headers_count_only_from_trusted_proxies() {
        let origin = Origin {
            base_url: None,
            trusted_proxies: vec!["10.0.0.0/8".parse().unwrap()],
        };
        assert_eq!(
            origin.base_url(&proxied("10.1.1.1:4000")).as_str(),
            "https://shop.example/"
        );
        assert_eq!(
            origin.base_url(&proxied("192.0.2.1:4000")).as_str(),
            "http://backend:8080/"
        );
        assert_eq!(
            open().base_url(&proxied("10.1.1.1:4000")).as_str(),
            "http://backend:8080/"
        );
        let pinned = Origin {
            base_url: Some(Url::parse("https://pinned.example").unwrap()),
            ..origin
        };
        assert_eq!(
            pinned.base_url(&proxied("10.1.1.1:4000")).as_str(),
            "https://pinned.example/"
        );
    }

    #[test]
    fn the_scheme_is_only_ever_http_or_https_and_the_host_only_a_host() {
        let origin = Origin {
            base_url: None,
            trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
        };
        let req = TestRequest::default()
            .peer_addr("127.0.0.1:4000".parse().unwrap())
            .insert_header((header::HOST, "shop.example"))
            .insert_header(("X-Forwarded-Proto", "javascript"))
            .to_http_request();
        assert_eq!(origin.base_url(&req).as_str(), "http://shop.example/");
        for host in [
            "evil.example/x",
            "a@evil.example",
            "evil.example?x",
            "",
            "a b",
        ] {
            let req = TestRequest::default()
                .insert_header((header::HOST, host))
                .to_http_request();
            let base = open().base_url(&req);
            assert!(!base.as_str().contains("evil"), "{host:?} gave {base}");
        }
    }
}
