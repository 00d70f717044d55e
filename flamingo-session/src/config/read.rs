//! The generic readers of Flamingo-style configuration, shared by flamingo-session and
//! flamingo-auth so that both read durations, booleans and secrets alike and answer an unknown
//! key with the same "did you mean" hint.

use std::{fmt, time::Duration};

/// Flamingo's booleans: `true` or `false` in any case, surrounding blanks ignored.
///
/// # Examples
///
/// ```
/// use flamingo_session::config::read::parse_bool;
/// assert_eq!(parse_bool(" TRUE "), Some(true));
/// assert_eq!(parse_bool("yes"), None);
/// ```
pub fn parse_bool(text: &str) -> Option<bool> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// The known key closest to `unknown`, if it is close enough to be a typo: at most a third of
/// its length in edits (at least one), compared without regard to case.
///
/// # Examples
///
/// ```
/// use flamingo_session::config::read::did_you_mean;
/// let known = ["broker", "debugController", "userConfig"];
/// assert_eq!(did_you_mean("userConfg", known), Some("userConfig"));
/// assert_eq!(did_you_mean("brokers", known), Some("broker"));
/// assert_eq!(did_you_mean("timeout", known), None);
/// ```
pub fn did_you_mean<'a>(
    unknown: &str,
    known: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let unknown = unknown.to_ascii_lowercase();
    let (distance, name) = known
        .into_iter()
        .map(|k| (edit_distance(&k.to_ascii_lowercase(), &unknown), k))
        .min()?;
    (distance <= (unknown.chars().count() / 3).max(1)).then_some(name)
}

/// A secret from the configuration (a session secret, a client secret, a password): its `Debug`
/// never shows it.
///
/// # Examples
///
/// ```
/// use flamingo_session::config::read::Secret;
/// let secret = Secret::new("hunter2");
/// assert_eq!(format!("{secret:?}"), "Secret(***)");
/// assert_eq!(secret.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Parses a Go duration (`time.ParseDuration`): numbers with units `ns`, `us`/`µs`, `ms`, `s`,
/// `m`, `h`, fractions allowed, as in `"1h30m"` or `"1.5s"`. Ours: a bare number means seconds.
/// Negative durations are rejected.
///
/// # Errors
///
/// Why the text is not a duration (never the text itself, which may be a secret mistyped into
/// the wrong key).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use flamingo_session::config::read::parse_duration;
///
/// assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
/// assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
/// assert!(parse_duration("soon").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    const NANOS_PER_SECOND: u128 = 1_000_000_000;
    let text = text.trim();
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.starts_with('-') {
        return Err("must not be negative".to_owned());
    }
    if rest.is_empty() {
        return Err("empty; expected a number with a unit such as \"5s\"".to_owned());
    }
    let digits_end = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let mut total: u128 = 0;
    let mut first = true;
    while !rest.is_empty() {
        let (whole, after) = rest.split_at(digits_end(rest));
        let (fraction, after) = match after.strip_prefix('.') {
            Some(after) => after.split_at(digits_end(after)),
            None => ("", after),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(format!(
                "expected a number at {rest:?}; a duration is numbers with units, such as \"5s\", \
                 \"500ms\" or \"1m30s\""
            ));
        }
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let unit_nanos: u128 = match unit {
            "" if first && after.is_empty() => NANOS_PER_SECOND,
            "" => return Err(format!("missing unit after {whole}{fraction}")),
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => NANOS_PER_SECOND,
            "m" => 60 * NANOS_PER_SECOND,
            "h" => 3_600 * NANOS_PER_SECOND,
            other => {
                return Err(format!(
                    "unknown unit {other:?} (expected ns, us, µs, ms, s, m or h)"
                ))
            }
        };
        let too_long = || "too long".to_owned();
        let whole_value: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| too_long())?
        };
        // Twenty digits of a fraction are far below a nanosecond of an hour.
        let fraction = &fraction[..fraction.len().min(20)];
        let fraction_nanos = if fraction.is_empty() {
            0
        } else {
            let numerator: u128 = fraction.parse().map_err(|_| too_long())?;
            numerator * unit_nanos / 10u128.pow(fraction.len() as u32)
        };
        total = whole_value
            .checked_mul(unit_nanos)
            .and_then(|n| n.checked_add(fraction_nanos))
            .and_then(|n| n.checked_add(total))
            .ok_or_else(too_long)?;
        rest = after;
        first = false;
    }
    let seconds = u64::try_from(total / NANOS_PER_SECOND).map_err(|_| "too long".to_owned())?;
    Ok(Duration::new(seconds, (total % NANOS_PER_SECOND) as u32))
}

/// Levenshtein distance, for "did you mean" hints.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}
