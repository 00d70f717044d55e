//! The `http` broker: HTTP Basic authentication against the configured `users`.

use actix_web::{http::header, HttpRequest};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConstantTimeEq as _};

use crate::{
    config::HttpConfig,
    identity::{Identity, IdentityKind},
    session_data::REDIRECT_KEY,
};

use super::{Ctx, LoginStep};

pub(crate) struct HttpBroker {
    config: HttpConfig,
    /// (SHA-256 of the user name, SHA-256 of the password, user name).
    users: Vec<([u8; 32], [u8; 32], String)>,
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

impl HttpBroker {
    pub(crate) fn new(config: HttpConfig) -> Self {
        let users = config
            .users
            .iter()
            .map(|(name, password)| (digest(name), digest(password.expose()), name.clone()))
            .collect();
        HttpBroker { config, users }
    }

    pub(crate) fn name(&self) -> &str {
        &self.config.broker
    }

    /// Checks the `Authorization: Basic` header. Every configured user is compared, in constant
    /// time over fixed-size digests, so timing tells neither which user exists nor how much of a
    /// password matched.
    pub(crate) fn identify(&self, req: &HttpRequest) -> Option<Identity> {
        let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
        let (scheme, encoded) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        let (user_digest, password_digest) = (digest(user), digest(password));
        let mut matched: Option<&str> = None;
        for (name_digest, pw_digest, name) in &self.users {
            let ok: Choice = name_digest.ct_eq(&user_digest) & pw_digest.ct_eq(&password_digest);
            if bool::from(ok) {
                matched = Some(name);
            }
        }
        let name = matched?;
        Some(Identity::new(
            &self.config.broker,
            name,
            IdentityKind::Http,
            Default::default(),
        ))
    }

    /// The login route: with valid credentials, go to the stored target; otherwise ask the
    /// browser for them (401 with `WWW-Authenticate`).
    pub(crate) fn authenticate(&self, ctx: &Ctx<'_>) -> LoginStep {
        if self.identify(ctx.req).is_some() {
            let target = ctx
                .session
                .try_load::<String>(REDIRECT_KEY)
                .unwrap_or_else(|| "/".to_owned());
            ctx.session.delete(REDIRECT_KEY);
            return LoginStep::Redirect(target);
        }
        self.challenge()
    }

    /// 401 with `WWW-Authenticate: Basic realm="<realm>", charset="UTF-8"`.
    pub(crate) fn challenge(&self) -> LoginStep {
        LoginStep::Challenge {
            www_authenticate: format!("Basic realm=\"{}\", charset=\"UTF-8\"", self.config.realm),
            message: "authentication required",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use actix_web::test::TestRequest;

    fn broker() -> HttpBroker {
        HttpBroker::new(HttpConfig {
            broker: "basic".into(),
            realm: "intranet".into(),
            users: [
                ("admin".to_owned(), Secret::new("pw1")),
                ("bob".to_owned(), Secret::new("pw2")),
            ]
            .into(),
        })
    }

    fn basic(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    #[test]
    fn right_and_wrong_credentials() {
        let b = broker();
        for (user, password, ok) in [
            ("admin", "pw1", true),
            ("bob", "pw2", true),
            ("admin", "pw2", false),
            ("eve", "pw1", false),
            ("bob", "", false),
        ] {
            let req = TestRequest::default()
                .insert_header((header::AUTHORIZATION, basic(user, password)))
                .to_http_request();
            assert_eq!(
                b.identify(&req).map(|i| i.subject().to_owned()),
                ok.then(|| user.to_owned()),
                "{user}:{password}"
            );
        }
        assert!(b
            .identify(&TestRequest::default().to_http_request())
            .is_none());
        let LoginStep::Challenge {
            www_authenticate, ..
        } = b.challenge()
        else {
            panic!("the http broker asks for credentials");
        };
        assert_eq!(
            www_authenticate,
            "Basic realm=\"intranet\", charset=\"UTF-8\""
        );
    }
}
