//! The `fake` broker: a login form for development and tests (Flamingo's core/auth/fake).

use std::collections::BTreeMap;

use serde_json::Value;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::{
    config::FakeConfig,
    identity::{Identity, IdentityKind},
    session_data::{fake_session_key, FakeSessionData},
    template::{Field, Template},
};

use super::{Ctx, LoginFailure, LoginStep};

const DEFAULT_TEMPLATE: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Login</title></head>
<body>
<h1>Login</h1>
<p class="message">{{.Message}}</p>
<form method="post" action="{{.FormURL}}">
<label>User name <input type="text" name="{{.UsernameID}}" id="{{.UsernameID}}" autofocus></label>
<label>Password <input type="password" name="{{.PasswordID}}" id="{{.PasswordID}}"></label>
<button type="submit">Log in</button>
</form>
</body></html>
"#;

pub(crate) struct FakeBroker {
    config: FakeConfig,
    template: Template,
}

impl FakeBroker {
    /// The broker; `loginTemplate` was checked when the config was read (a template that does
    /// not parse here renders as plain text).
    pub(crate) fn new(config: FakeConfig) -> Self {
        let text = config.login_template.as_deref().unwrap_or(DEFAULT_TEMPLATE);
        let template = Template::parse(text)
            .or_else(|_| Template::parse(&text.replace("{{", "&#123;&#123;")))
            .expect("a template without actions parses");
        FakeBroker { config, template }
    }

    pub(crate) fn name(&self) -> &str {
        &self.config.broker
    }

    /// The login form (200, HTML), posting to the callback; `message` says why the last try
    /// failed.
    pub(crate) fn login_form(&self, message: Option<&str>) -> LoginStep {
        let body = self.template.render(|field| match field {
            Field::FormUrl => format!("/core/auth/callback/{}", self.config.broker),
            Field::Message => message.unwrap_or_default().to_owned(),
            Field::UsernameId => self.config.username_field.clone(),
            Field::PasswordId => self.config.password_field.clone(),
        });
        LoginStep::Page(body)
    }

    /// Checks the posted form; on success stores the login. Failures re-render the form with
    /// Flamingo's messages.
    pub(crate) fn callback(
        &self,
        ctx: &Ctx<'_>,
        form: &BTreeMap<String, String>,
    ) -> Result<Identity, LoginFailure> {
        let username = form
            .get(&self.config.username_field)
            .map(|s| s.trim())
            .unwrap_or_default();
        if username.is_empty() {
            return Err(self.retry("missing username"));
        }
        let Some(user) = self.config.users.get(username) else {
            return Err(self.retry("invalid user"));
        };
        if self.config.validate_password {
            let password = form
                .get(&self.config.password_field)
                .map(String::as_str)
                .unwrap_or_default();
            if password.is_empty() {
                return Err(self.retry("missing password"));
            }
            let expected = user
                .password
                .as_ref()
                .map(|p| p.expose())
                .unwrap_or_default();
            let same =
                Sha256::digest(password.as_bytes()).ct_eq(&Sha256::digest(expected.as_bytes()));
            if !bool::from(same) {
                return Err(self.retry("password mismatch"));
            }
        }
        let data = FakeSessionData {
            subject: username.to_owned(),
        };
        if ctx
            .session
            .store(&fake_session_key(&self.config.broker), data)
            .is_err()
        {
            return Err(self.retry("identity not saved in session"));
        }
        Ok(self.identity_of(username))
    }

    /// The form again, saying why the last try failed.
    fn retry(&self, message: &str) -> LoginFailure {
        LoginFailure::Retry(self.login_form(Some(message)))
    }

    pub(crate) fn identify(&self, ctx: &Ctx<'_>) -> Option<Identity> {
        let data = ctx
            .session
            .try_load::<FakeSessionData>(&fake_session_key(&self.config.broker))?;
        // A user removed from the config is logged out.
        self.config
            .users
            .contains_key(&data.subject)
            .then(|| self.identity_of(&data.subject))
    }

    fn identity_of(&self, username: &str) -> Identity {
        let mut claims = self
            .config
            .users
            .get(username)
            .map(|u| u.claims.clone())
            .unwrap_or_default();
        claims
            .entry("sub")
            .or_insert_with(|| Value::String(username.to_owned()));
        Identity::new(&self.config.broker, username, IdentityKind::Fake, claims)
    }

    pub(crate) fn logout(&self, ctx: &Ctx<'_>) {
        ctx.session.delete(&fake_session_key(&self.config.broker));
    }
}
