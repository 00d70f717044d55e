//! Extra parameters of the OpenID Connect authorization request: the allow-list of names a
//! login may pass through (`loginParameters`), how their values are checked, and the
//! [`AuthCodeOptioner`] hook (Flamingo's `AuthCodeOptioner`).
//!
//! An authorization request gets, after the protocol's own parameters, in this order (a later
//! source replaces an earlier value of the same name):
//!
//! 1. `core.auth.web.broker[].authParameters`: fixed parameters of every login of the broker,
//!    e.g. `{prompt: consent}`;
//! 2. the query parameters of `/core/auth/login/{broker}` named in
//!    `core.auth.web.broker[].loginParameters`, e.g. `?login_hint=alice&prompt=none`;
//! 3. what the [`AuthCodeOptioner`]s registered with
//!    [`AuthBuilder::auth_code_optioner`](crate::AuthBuilder::auth_code_optioner) return for the
//!    request.
//!
//! Names in 1 and 2 must be in [`LOGIN_PARAMETERS`]. A value from a login request that does not
//! pass [`check_value`] makes the login a 400 that names the parameter; a protocol parameter
//! ([`RESERVED_PARAMETERS`]) is never taken from any of the three.

use actix_web::HttpRequest;

/// The parameters `loginParameters` and `authParameters` may name (OpenID Connect Core 1.0
/// §3.1.2.1, plus the provider hints of Keycloak and Microsoft Entra ID).
///
/// | name | value |
/// |---|---|
/// | `login_hint` | free text (an e-mail address, a user name) |
/// | `prompt` | space-separated `none`, `login`, `consent`, `select_account`, `create`; `none` alone |
/// | `ui_locales`, `claims_locales` | space-separated BCP 47 language tags |
/// | `acr_values` | space-separated authentication context class references |
/// | `max_age` | seconds (digits) |
/// | `display` | `page`, `popup`, `touch` or `wap` |
/// | `kc_idp_hint` | Keycloak: the identity provider to go to |
/// | `domain_hint` | Microsoft Entra ID: the user's domain |
///
/// Every value is at most [`MAX_VALUE_LEN`] bytes, not empty, and has no control characters.
pub const LOGIN_PARAMETERS: &[&str] = &[
    "login_hint",
    "prompt",
    "ui_locales",
    "claims_locales",
    "acr_values",
    "max_age",
    "display",
    "kc_idp_hint",
    "domain_hint",
];

/// The parameters auth sets itself; no configuration, login request or hook can set them.
pub const RESERVED_PARAMETERS: &[&str] = &[
    "response_type",
    "response_mode",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "claims",
    "request",
    "request_uri",
];

/// The longest value accepted for a login parameter, in bytes.
pub const MAX_VALUE_LEN: usize = 512;

const PROMPTS: &[&str] = &["none", "login", "consent", "select_account", "create"];
const DISPLAYS: &[&str] = &["page", "popup", "touch", "wap"];

/// Checks the value of the allowed parameter `name`; `Err` says what is wrong with it.
///
/// # Errors
///
/// A message naming the problem: empty, too long, a control character, or a value the
/// parameter does not take (see [`LOGIN_PARAMETERS`]).
///
/// # Examples
///
/// ```
/// use flamingo_auth::auth_params::check_value;
/// assert!(check_value("prompt", "login consent").is_ok());
/// assert!(check_value("prompt", "none login").is_err());
/// assert!(check_value("login_hint", "alice\nSet-Cookie: x").is_err());
/// assert!(check_value("max_age", "3600").is_ok());
/// ```
pub fn check_value(name: &str, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(format!("is longer than {MAX_VALUE_LEN} bytes"));
    }
    if value.chars().any(char::is_control) {
        return Err("contains a control character".to_owned());
    }
    match name {
        "prompt" => {
            let values: Vec<&str> = value.split(' ').collect();
            if let Some(bad) = values.iter().find(|v| !PROMPTS.contains(v)) {
                return Err(format!(
                    "{bad:?} is not a prompt value; expected {}",
                    PROMPTS.join(", ")
                ));
            }
            if values.len() > 1 && values.contains(&"none") {
                return Err("`none` cannot be combined with other prompt values".to_owned());
            }
        }
        "max_age" if !value.bytes().all(|b| b.is_ascii_digit()) || value.len() > 10 => {
            return Err("must be a number of seconds".to_owned());
        }
        "display" if !DISPLAYS.contains(&value) => {
            return Err(format!("expected one of {}", DISPLAYS.join(", ")));
        }
        "ui_locales" | "claims_locales" | "acr_values"
            if value.split(' ').any(str::is_empty) || value.contains(['"', '\\']) =>
        {
            return Err("must be values separated by single spaces".to_owned());
        }
        _ => {}
    }
    Ok(())
}

/// Adds parameters to the authorization request of a login, per request (Flamingo's
/// `AuthCodeOptioner`). Register it with
/// [`AuthBuilder::auth_code_optioner`](crate::AuthBuilder::auth_code_optioner); a closure
/// `Fn(&HttpRequest, &str) -> Vec<(String, String)>` is one.
///
/// It runs at `/core/auth/login/{broker}` for every `oidc` broker, gets the login request and
/// the broker's name, and returns `(name, value)` pairs. They replace a configured or passed
/// through value of the same name. Any name is allowed except the protocol's own
/// ([`RESERVED_PARAMETERS`], skipped with a warning); a value with a control character is
/// skipped with a warning.
///
/// # Examples
///
/// ```
/// use actix_web::HttpRequest;
///
/// // Send shop customers to the customer realm of the provider, in the shop's language.
/// fn options(req: &HttpRequest, broker: &str) -> Vec<(String, String)> {
///     let mut options = vec![("kc_idp_hint".to_owned(), format!("{broker}-customers"))];
///     if let Some(lang) = req.cookie("lang") {
///         options.push(("ui_locales".to_owned(), lang.value().to_owned()));
///     }
///     options
/// }
/// # async fn f(config: config::Config, sessions: flamingo_session::Sessions) -> Result<(), flamingo_auth::AuthConfigError> {
/// let auth = flamingo_auth::Auth::builder(&config, &sessions)?
///     .auth_code_optioner(options)
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
pub trait AuthCodeOptioner: Send + Sync + 'static {
    /// The extra parameters for a login at `broker` started by `req`.
    fn options(&self, req: &HttpRequest, broker: &str) -> Vec<(String, String)>;
}

impl<F> AuthCodeOptioner for F
where
    F: Fn(&HttpRequest, &str) -> Vec<(String, String)> + Send + Sync + 'static,
{
    fn options(&self, req: &HttpRequest, broker: &str) -> Vec<(String, String)> {
        self(req, broker)
    }
}

/// Sets `name` to `value` in `params`, replacing an earlier value of the same name.
pub(crate) fn set(params: &mut Vec<(String, String)>, name: &str, value: String) {
    params.retain(|(n, _)| n != name);
    params.push((name.to_owned(), value));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_per_parameter() {
        for (name, value) in [
            ("prompt", "none"),
            ("prompt", "select_account consent"),
            ("ui_locales", "de-DE en"),
            ("display", "popup"),
            ("login_hint", "alice@example.com"),
        ] {
            assert_eq!(check_value(name, value), Ok(()), "{name}={value}");
        }
        for (name, value) in [
            ("prompt", "none consent"),
            ("prompt", "always"),
            ("prompt", ""),
            ("max_age", "-1"),
            ("display", "desktop"),
            ("ui_locales", "de  en"),
            ("login_hint", "a\u{7}"),
            ("acr_values", "a\tb"),
        ] {
            assert!(check_value(name, value).is_err(), "{name}={value:?}");
        }
        assert!(check_value("login_hint", &"a".repeat(MAX_VALUE_LEN + 1)).is_err());
    }

    #[test]
    fn the_allow_list_never_names_a_protocol_parameter() {
        for name in LOGIN_PARAMETERS {
            assert!(!RESERVED_PARAMETERS.contains(name), "{name}");
        }
    }
}
