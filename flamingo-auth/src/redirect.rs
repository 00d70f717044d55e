//! URLs: the request's absolute base, and the open-redirect guard for `redirecturl`.

use actix_web::{http::header, HttpRequest};
use url::Url;

/// The absolute URL of the site root for this request (`scheme://host/`).
pub(crate) fn base_url(req: &HttpRequest) -> Url {
    let info = req.connection_info();
    Url::parse(&format!("{}://{}/", info.scheme(), info.host()))
        .unwrap_or_else(|_| Url::parse("http://localhost/").expect("static URL parses"))
}

/// The absolute URL of `path` (which starts with `/`) on this request's host.
pub(crate) fn absolute(req: &HttpRequest, path: &str) -> Url {
    let mut url = base_url(req);
    url.set_path(path);
    url
}

/// The open-redirect guard (Flamingo's `storeRedirectURL`, stricter): a relative path
/// (`/...`, but not `//host` or `/\host`), or an absolute http(s) URL on the request's own host
/// and port, is kept; anything else, and any URL under `/core/auth/` (which would loop), becomes
/// the site root.
pub(crate) fn guard(req: &HttpRequest, candidate: Option<&str>) -> String {
    let root = base_url(req).to_string();
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
    let own = base_url(req);
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
pub(crate) fn login_target(req: &HttpRequest, redirect_url: Option<&str>) -> String {
    let referer = req
        .headers()
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok());
    guard(req, redirect_url.or(referer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn req() -> HttpRequest {
        TestRequest::default()
            .insert_header((header::HOST, "shop.example:8080"))
            .to_http_request()
    }

    #[test]
    fn keeps_same_host_and_relative_targets() {
        let req = req();
        assert_eq!(guard(&req, Some("/account?x=1")), "/account?x=1");
        assert_eq!(
            guard(&req, Some("http://shop.example:8080/cart")),
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
            assert_eq!(guard(&req, Some(bad)), root, "{bad:?}");
        }
        assert_eq!(guard(&req, None), root);
    }

    #[test]
    fn referer_is_the_fallback() {
        let req = TestRequest::default()
            .insert_header((header::HOST, "shop.example"))
            .insert_header((header::REFERER, "http://shop.example/products"))
            .to_http_request();
        assert_eq!(login_target(&req, None), "http://shop.example/products");
        assert_eq!(login_target(&req, Some("/x")), "/x");
    }
}
