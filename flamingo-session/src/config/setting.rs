//! One value being read, with its full key: the typed readers every key uses.

use super::{read::parse_duration, *};

// ---------------------------------------------------------------------------------------------
// Reading typed values.

/// The full name of a `flamingo.session` key.
pub(super) fn key(name: &str) -> String {
    format!("flamingo.session.{name}")
}

/// One value being read, with its full key.
pub(super) struct Setting<'a> {
    pub(super) key: &'a str,
    pub(super) value: &'a ValueKind,
    pub(super) secret: bool,
}

impl Setting<'_> {
    /// The value as it may appear in an error message.
    pub(super) fn shown(&self) -> String {
        if self.secret {
            return "<redacted>".to_owned();
        }
        match self.value {
            ValueKind::String(s) => format!("{s:?}"),
            ValueKind::Boolean(b) => b.to_string(),
            ValueKind::I64(n) => n.to_string(),
            ValueKind::I128(n) => n.to_string(),
            ValueKind::U64(n) => n.to_string(),
            ValueKind::U128(n) => n.to_string(),
            ValueKind::Float(n) => n.to_string(),
            ValueKind::Table(_) => "a map".to_owned(),
            ValueKind::Array(_) => "a list".to_owned(),
            ValueKind::Nil => "null".to_owned(),
        }
    }

    pub(super) fn fail(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.key, message)
    }

    pub(super) fn invalid(&self, expected: &str) -> ConfigError {
        self.fail(format!(
            "invalid value {}: expected {expected}",
            self.shown()
        ))
    }

    pub(super) fn string(&self) -> Result<String, ConfigError> {
        match self.value {
            ValueKind::String(s) => Ok(s.clone()),
            ValueKind::Table(_) | ValueKind::Array(_) | ValueKind::Nil => {
                Err(self.invalid("a string"))
            }
            _ => Ok(self.shown_plain()),
        }
    }

    /// A scalar as plain text (not quoted, not redacted).
    pub(super) fn shown_plain(&self) -> String {
        match self.value {
            ValueKind::String(s) => s.clone(),
            ValueKind::Boolean(b) => b.to_string(),
            ValueKind::I64(n) => n.to_string(),
            ValueKind::I128(n) => n.to_string(),
            ValueKind::U64(n) => n.to_string(),
            ValueKind::U128(n) => n.to_string(),
            ValueKind::Float(n) => n.to_string(),
            _ => String::new(),
        }
    }

    pub(super) fn non_empty_string(&self) -> Result<String, ConfigError> {
        let text = self.string()?;
        if text.is_empty() {
            return Err(self.fail("must not be empty"));
        }
        Ok(text)
    }

    pub(super) fn boolean(&self) -> Result<bool, ConfigError> {
        match self.value {
            ValueKind::Boolean(b) => Ok(*b),
            ValueKind::String(s) => {
                read::parse_bool(s).ok_or_else(|| self.invalid("true or false"))
            }
            _ => Err(self.invalid("true or false")),
        }
    }

    /// A whole number; `expected` describes the allowed range for the error message.
    pub(super) fn integer(&self, expected: &str) -> Result<i128, ConfigError> {
        let whole =
            |f: f64| (f.is_finite() && f.fract() == 0.0 && f.abs() < 1e30).then_some(f as i128);
        let number = match self.value {
            ValueKind::I64(n) => Some(i128::from(*n)),
            ValueKind::I128(n) => Some(*n),
            ValueKind::U64(n) => Some(i128::from(*n)),
            ValueKind::U128(n) => i128::try_from(*n).ok(),
            ValueKind::Float(f) => whole(*f),
            ValueKind::String(s) => {
                let s = s.trim();
                s.parse::<i128>()
                    .ok()
                    .or_else(|| s.parse::<f64>().ok().and_then(whole))
            }
            _ => None,
        };
        number.ok_or_else(|| self.invalid(expected))
    }

    pub(super) fn bounded<T: TryFrom<i128>>(
        &self,
        minimum: i128,
        expected: &str,
    ) -> Result<T, ConfigError> {
        let number = self.integer(expected)?;
        if number < minimum {
            return Err(self.invalid(expected));
        }
        T::try_from(number).map_err(|_| self.invalid(expected))
    }

    /// A Go duration string, or a number of seconds.
    pub(super) fn duration(&self) -> Result<Duration, ConfigError> {
        const EXPECTED: &str =
            "a duration such as \"5s\", \"500ms\", \"1m30s\" or a number of seconds";
        let seconds = match self.value {
            ValueKind::String(s) => {
                return parse_duration(s).map_err(|reason| {
                    self.fail(format!("invalid duration {}: {reason}", self.shown()))
                });
            }
            ValueKind::I64(n) => *n as f64,
            ValueKind::I128(n) => *n as f64,
            ValueKind::U64(n) => *n as f64,
            ValueKind::U128(n) => *n as f64,
            ValueKind::Float(f) => *f,
            _ => return Err(self.invalid(EXPECTED)),
        };
        if seconds < 0.0 {
            return Err(self.fail(format!(
                "invalid duration {}: must not be negative",
                self.shown()
            )));
        }
        Duration::try_from_secs_f64(seconds).map_err(|_| self.invalid(EXPECTED))
    }

    /// A duration of at least `minimum`.
    pub(super) fn duration_at_least(
        &self,
        minimum: Duration,
        what: &str,
    ) -> Result<Duration, ConfigError> {
        let duration = self.duration()?;
        if duration < minimum {
            return Err(self.fail(format!("invalid duration {}: {what}", self.shown())));
        }
        Ok(duration)
    }

    /// One of `choices` (compared without regard to case).
    pub(super) fn choice<T: Copy>(
        &self,
        what: &str,
        choices: &[(&str, T)],
    ) -> Result<T, ConfigError> {
        let text = match self.value {
            ValueKind::String(s) => s.trim(),
            _ => "",
        };
        choices
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text))
            .map(|(_, value)| *value)
            .ok_or_else(|| {
                let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
                self.fail(format!(
                    "unknown {what} {}: expected one of {}",
                    self.shown(),
                    names.join(", ")
                ))
            })
    }
}
