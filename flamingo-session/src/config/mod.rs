//! Flamingo's `flamingo.session.*` configuration, read through the `config` crate.
//!
//! [`SessionConfig::from_config`] reads the subtree `flamingo.session` of a [`config::Config`]
//! built from any mix of YAML or TOML files and environment variables, checks every value, and
//! fills in Flamingo's defaults for what is not set. [`SessionConfig::default()`] is the
//! configuration of an application that sets nothing. [`RedisConfig::resolve`] applies
//! Flamingo's precedence between `redis.url` and the single `redis.*` keys.
//!
//! ```
//! use config::{Config, File, FileFormat};
//! use flamingo_session::config::{environment, BackendKind, SessionConfig};
//!
//! let yaml = "
//! flamingo.session.backend: redis
//! flamingo.session.redis.url: redis://cache.internal:6379/2
//! flamingo:
//!   session:
//!     cookie:
//!       sameSite: strict
//! ";
//! let config = Config::builder()
//!     .add_source(File::from_str(yaml, FileFormat::Yaml))
//!     .add_source(environment()) // FLAMINGO__SESSION__... variables override the files
//!     .build()?;
//! let session = SessionConfig::from_config(&config)?;
//! assert_eq!(session.backend, BackendKind::Redis);
//! assert_eq!(session.redis.resolve()?.database, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Keys
//!
//! Every key lives under `flamingo.session.`. Keys marked *(ours)* are not Flamingo's.
//!
//! | Key | Default | Meaning |
//! |---|---|---|
//! | `name` | `flamingo` | Cookie name; must be a valid cookie-name token. |
//! | `saveMode` | `Always` | How changes are written back: `Always` (whole session, last writer wins), `OnRead` (merge keys read or written), `OnWrite` (merge keys written). |
//! | `backend` | `memory` | `memory`, `file`, `redis` or `custom` (the backend the application registers). |
//! | `secret` | `flamingosecret` | Secret the cookie-signing key is derived from; not empty. The default is insecure and logged as such. |
//! | `healthcheck` | `true` | Register the `session` health check. |
//! | `file` | `/sessions` | Folder of the `file` backend. |
//! | `fileCleanupInterval` *(ours)* | `5m` | How often the `file` backend removes expired session files; a duration. |
//! | `fileSync` *(ours)* | `true` | `fsync` each session file before it replaces the old one (safe against power loss); `false` keeps crash-atomic writes and is much faster on slow disks. |
//! | `store.length` | `1048576` | Largest encoded session in bytes; `0` means no limit. |
//! | `max.age` | `2592000` (30 days) | How long a session lives after its last use, in seconds (or a duration such as `720h`): cookie Max-Age and store TTL; 1 s to 400 days. |
//! | `max.lifetime` *(ours)* | `0` (off) | Absolute limit from creation or renewal at login, after which the session ends however active; a duration. |
//! | `memory.capacity` *(ours)* | `1000000` | Sessions the `memory` backend holds before it evicts the least recently used; above 0. |
//! | `cookie.secure` | `true` | Send the cookie over HTTPS only. Set `false` for local plain-HTTP development. |
//! | `cookie.path` | `/` | Cookie Path; starts with `/`. |
//! | `cookie.domain` *(ours)* | unset | Cookie Domain; unset sends the cookie to the host that set it only. |
//! | `cookie.persistent` *(ours)* | `true` | `false` sends a browser-session cookie (no Max-Age); the store keeps `max.age`. |
//! | `cookie.sameSite` | `lax` | `lax`, `strict`, `none` (needs `cookie.secure: true`) or `default` (no SameSite attribute). |
//! | `redis.url` | unset | `redis://[user[:password]@]host[:port][/db][?db=N]`, or `rediss://` for TLS. Its parts beat the keys below. |
//! | `redis.host` | `redis` | `host:port` (port 6379 when left out); in cluster mode a comma-separated list of seed nodes. |
//! | `redis.username` | unset | ACL user name; an empty string is an error. |
//! | `redis.password` | empty | Password; empty means none. |
//! | `redis.idle.connections` | `1` | Multiplexed connections each worker thread opens; at least 1 (Flamingo's `10` sized a pool; one multiplexed connection per thread is fastest here, BENCHMARKS.md). |
//! | `redis.database` | `0` | Database number, 0 or more; always 0 in cluster mode. |
//! | `redis.tls` | `false` | Connect with TLS, verifying the server against the system's roots. |
//! | `redis.tlsCaFile` *(ours)* | unset | PEM file with the CA that signed the server's certificate (a private CA); needs TLS on. |
//! | `redis.clusterMode` | `false` | Talk to a Redis Cluster, seeded from `redis.host` (or the URL's host). |
//! | `redis.timeout` | `5s` | Bounds connecting and every command: a duration. |
//! | `redis.keyPrefix` | `session:` | Prefix of every session key in Redis; trimmed, and empty means `session:`. |
//!
//! # Spelling keys
//!
//! As in Flamingo, a dot in a key and a level of nesting mean the same, and both mix freely: all of
//! these set the same value (YAML shown; TOML works alike).
//!
//! ```yaml
//! flamingo.session.redis.host: cache:6379
//! flamingo: {session: {redis: {host: cache:6379}}}
//! flamingo.session: {redis.host: cache:6379}
//! ```
//!
//! Key names are compared without regard to case (`saveMode`, `savemode` and `SAVEMODE` are one
//! key), because environment variable names reach the `config` crate in lower case while files
//! keep the case they are written in. A key under `flamingo.session` that is not in the table is an
//! error that names it (`flamingo.session.backnd: unknown key (did you mean
//! flamingo.session.backend?)`), so a typo never silently falls back to a default. A `null` value
//! counts as not set.
//!
//! Files layered with the same spelling of a key override each other in the order they are added,
//! as the `config` crate does. The crate does not record that order for *different* spellings of a
//! key (say `max.age` in one file and `max: {age: ...}` in another), so:
//!
//! - a value from the environment beats every file spelling of the same key;
//! - two different spellings with different values from files are an error that names the key and
//!   both spellings; use one spelling for a key across your files.
//!
//! # Environment variables
//!
//! [`environment()`] is the source to add last to a `config` builder. It reads the variables that
//! start with `FLAMINGO__`, with `__` (two underscores) between the levels of a key; names are not
//! case sensitive:
//!
//! | Variable | Key |
//! |---|---|
//! | `FLAMINGO__SESSION__BACKEND=redis` | `flamingo.session.backend` |
//! | `FLAMINGO__SESSION__SAVEMODE=OnWrite` | `flamingo.session.saveMode` |
//! | `FLAMINGO__SESSION__MAX__AGE=3600` | `flamingo.session.max.age` |
//! | `FLAMINGO__SESSION__COOKIE__SECURE=false` | `flamingo.session.cookie.secure` |
//! | `FLAMINGO__SESSION__REDIS__HOST=cache:6379` | `flamingo.session.redis.host` |
//! | `FLAMINGO__SESSION__REDIS__IDLE__CONNECTIONS=20` | `flamingo.session.redis.idle.connections` |
//! | `FLAMINGO__SESSION__REDIS__TLSCAFILE=/etc/ca.pem` | `flamingo.session.redis.tlsCaFile` |
//!
//! Every environment value is a string, so wherever a number or a boolean is expected a string
//! holding one is accepted too (`"60"`, `"1.5"`, `"true"`, `"FALSE"`). An empty variable is an
//! empty string, not "unset": `FLAMINGO__SESSION__REDIS__USERNAME=` is an error.
//! `config::Environment::default().separator("__")` works as well, but also loads every other
//! variable of the process into the configuration.
//!
//! # Durations
//!
//! `redis.timeout`, `fileCleanupInterval` and `max.age` take Go's duration syntax, as
//! Flamingo's `time.ParseDuration` does: a sequence of numbers with units `ns`, `us` (or `µs`),
//! `ms`, `s`, `m`, `h`, fractions allowed: `"5s"`, `"500ms"`, `"1m30s"`, `"1.5h"`. A bare number
//! (`5`, `"5"`, `2.5`) means seconds. Negative durations are errors.
//!
//! # Redis: URL versus keys
//!
//! [`RedisConfig::resolve`] follows Flamingo:
//!
//! - a host in the URL beats `redis.host`;
//! - a non-empty user name in the URL beats `redis.username`;
//! - a password present in the URL beats `redis.password`, even an empty one (`redis://user:@host`);
//! - the database comes from the URL path (`/3`), else from `?db=3`, else from `redis.database`;
//! - `rediss://` turns TLS on (`redis.tls: true` turns it on for `redis://` too);
//! - in cluster mode the database is 0.
//!
//! # Differences from Flamingo
//!
//! - A bad value is an error at start-up that names the key and the value. Flamingo panics on a bad
//!   `redis.timeout` or URL, treats an unknown `saveMode` as `Always`, and ignores unknown keys.
//! - `saveMode`, `backend` and `cookie.sameSite` values are not case sensitive.
//! - `cookie.sameSite: none` without `cookie.secure: true` is an error: browsers drop such cookies.
//! - `store.length`, `redis.idle.connections` and `redis.database` must be whole numbers (Flamingo
//!   truncates `1.5` to `1`).
//! - `max.age` and `redis.timeout` accept both numbers of seconds and Go durations.
//! - The `redis.url` scheme must be `redis` or `rediss`, and `rediss` turns TLS on; a `host` without
//!   a port gets `:6379`; `redis.host` may list several cluster seeds.
//! - `redis.timeout` bounds every command, not only the first PING.
//! - An empty `redis.url` or `redis.tlsCaFile` means unset.
//!
//! Flamingo's legacy aliases (`session.backend`, `session.secret`, `session.file`,
//! `session.store.length`, `session.max.age`, `session.cookie.secure`, `session.cookie.path`,
//! `session.redis.url`, `session.redis.host`, `session.redis.password`,
//! `session.redis.idle.connections`, `session.name`, and `core.healthcheck.checkSession` /
//! `healthcheck.checkSession` for `healthcheck`) are still read, with a deprecation warning, when
//! the `flamingo.session` key itself is not set.

use std::{collections::BTreeMap, fmt, path::PathBuf, time::Duration};

use ::config::ValueKind;

mod keys;
pub mod read;
mod redis;
mod setting;
mod tree;

use keys::{unknown_key, KEYS};
pub use redis::{RedisConfig, RedisConnection};
use setting::{key, Setting};
use tree::{flatten, legacy_alias, merge_spellings, Walk, ROOT};

/// How a request's changes are written back (Flamingo's `flamingo.session.saveMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SaveMode {
    /// Write the whole session when anything changed: last writer wins (Flamingo's default).
    #[default]
    Always,
    /// Track keys that were read or written; merge only those into the stored session.
    OnRead,
    /// Track keys that were written; merge only those into the stored session.
    OnWrite,
}

/// Which backend stores the sessions (`flamingo.session.backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BackendKind {
    /// In-process memory (the default): for development and tests.
    #[default]
    Memory,
    /// One file per session under `flamingo.session.file`.
    File,
    /// Redis or a Redis-compatible server, standalone or cluster.
    Redis,
    /// The backend the application registers.
    Custom,
}

/// The cookie's SameSite attribute (`flamingo.session.cookie.sameSite`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SameSiteSetting {
    /// `SameSite=Lax` (the default).
    #[default]
    Lax,
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=None` (requires `cookie.secure`).
    None,
    /// No SameSite attribute at all (`default`).
    Default,
}

/// Cookie settings (`flamingo.session.cookie.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieConfig {
    /// `cookie.secure`. Default: `true`.
    pub secure: bool,
    /// `cookie.path`. Default: `"/"`.
    pub path: String,
    /// `cookie.sameSite`. Default: `lax`.
    pub same_site: SameSiteSetting,
    /// `cookie.domain`: the cookie's Domain attribute. Default: none, the cookie goes to the host
    /// that set it only.
    pub domain: Option<String>,
    /// `cookie.persistent`: send Max-Age (`max.age`) with the cookie. `false` sends a browser
    /// session cookie, dropped when the browser closes, while the store still keeps the session
    /// for `max.age`. Default: `true`.
    pub persistent: bool,
}

/// The whole `flamingo.session` configuration with Flamingo's defaults.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// `name`: the cookie name. Default: `"flamingo"`.
    pub name: String,
    /// `saveMode`. Default: `Always`.
    pub save_mode: SaveMode,
    /// `backend`. Default: `memory`.
    pub backend: BackendKind,
    /// `secret`: the cookie key is derived from it. Default: `"flamingosecret"` (insecure; a
    /// warning is logged at start-up while it is in use).
    pub secret: String,
    /// `healthcheck`: register the `session` health check. Default: `true`.
    pub healthcheck: bool,
    /// `file`: the folder of the file backend. Default: `/sessions`.
    pub file: PathBuf,
    /// `fileCleanupInterval` (ours): how often expired session files are removed. Default: `5m`.
    pub file_cleanup_interval: Duration,
    /// `fileSync` (ours): `fsync` every written session file before it replaces the old one, so
    /// that a power loss cannot lose an acknowledged write. Default: `true`.
    pub file_sync: bool,
    /// `store.length`: the largest encoded session in bytes; 0 = no limit. Default: `1048576`.
    pub store_length: usize,
    /// `max.age`: how long a session lives after it was last used: cookie Max-Age and store
    /// TTL, at most 400 days (what browsers keep a cookie, RFC 6265bis). Default: 30 days.
    pub max_age: Duration,
    /// `max.lifetime` (ours): an absolute limit counted from when the session was created or
    /// renewed (at login), after which it ends however active it is (OWASP session management);
    /// `0` turns it off. Default: `0`.
    pub max_lifetime: Duration,
    /// `memory.capacity` (ours): how many sessions the memory backend holds before evicting the
    /// least recently used. Default: `1000000`.
    pub memory_capacity: u64,
    /// `cookie.*`.
    pub cookie: CookieConfig,
    /// `redis.*`.
    pub redis: RedisConfig,
}

impl fmt::Debug for SessionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("name", &self.name)
            .field("save_mode", &self.save_mode)
            .field("backend", &self.backend)
            .field("secret", &"<redacted>")
            .field("healthcheck", &self.healthcheck)
            .field("file", &self.file)
            .field("file_cleanup_interval", &self.file_cleanup_interval)
            .field("file_sync", &self.file_sync)
            .field("store_length", &self.store_length)
            .field("max_age", &self.max_age)
            .field("memory_capacity", &self.memory_capacity)
            .field("cookie", &self.cookie)
            .field("redis", &self.redis)
            .finish()
    }
}

/// The default secret, Flamingo's; a loud warning is logged while it is in use.
pub const INSECURE_DEFAULT_SECRET: &str = "flamingosecret";

/// A bad configuration value. The message names the full key and the value (never a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// The full key, e.g. `flamingo.session.redis.timeout`.
    pub key: String,
    /// What is wrong and what is allowed, e.g. `invalid duration "foo"`.
    pub message: String,
}

impl Default for CookieConfig {
    /// Flamingo's cookie defaults: `secure: true`, `path: "/"`, `sameSite: lax`.
    ///
    /// # Examples
    ///
    /// ```
    /// use flamingo_session::config::{CookieConfig, SameSiteSetting};
    ///
    /// let cookie = CookieConfig::default();
    /// assert!(cookie.secure);
    /// assert_eq!(cookie.path, "/");
    /// assert_eq!(cookie.same_site, SameSiteSetting::Lax);
    /// ```
    fn default() -> Self {
        Self {
            secure: true,
            path: "/".to_owned(),
            same_site: SameSiteSetting::Lax,
            domain: None,
            persistent: true,
        }
    }
}

impl Default for SessionConfig {
    /// Flamingo's defaults for every `flamingo.session` key (see the [module docs](self) for the
    /// table), plus ours: `fileCleanupInterval: 5m` and `memory.capacity: 1000000`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flamingo_session::config::{BackendKind, SessionConfig};
    ///
    /// let config = SessionConfig::default();
    /// assert_eq!(config.name, "flamingo");
    /// assert_eq!(config.backend, BackendKind::Memory);
    /// assert_eq!(config.max_age, Duration::from_secs(30 * 24 * 60 * 60));
    /// ```
    fn default() -> Self {
        Self {
            name: "flamingo".to_owned(),
            save_mode: SaveMode::Always,
            backend: BackendKind::Memory,
            secret: INSECURE_DEFAULT_SECRET.to_owned(),
            healthcheck: true,
            file: PathBuf::from("/sessions"),
            file_cleanup_interval: Duration::from_secs(5 * 60),
            file_sync: true,
            store_length: 1024 * 1024,
            max_age: Duration::from_secs(60 * 60 * 24 * 30),
            max_lifetime: Duration::ZERO,
            memory_capacity: 1_000_000,
            cookie: CookieConfig::default(),
            redis: RedisConfig::default(),
        }
    }
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The source for environment variables: `FLAMINGO__SESSION__REDIS__HOST=h` sets
/// `flamingo.session.redis.host`.
///
/// Only variables whose name starts with `FLAMINGO__` are read; `__` separates the levels of a
/// key, and names are not case sensitive. Add it after the files so that it overrides them. See
/// the [module docs](self#environment-variables) for more examples.
///
/// # Examples
///
/// ```
/// use config::{Config, Map};
/// use flamingo_session::config::{environment, SaveMode, SessionConfig};
///
/// // Tests inject the variables; an application uses `environment()` as it is.
/// let vars = Map::from([("FLAMINGO__SESSION__SAVEMODE".to_owned(), "OnWrite".to_owned())]);
/// let config = Config::builder().add_source(environment().source(Some(vars))).build()?;
/// assert_eq!(SessionConfig::from_config(&config)?.save_mode, SaveMode::OnWrite);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn environment() -> ::config::Environment {
    ::config::Environment::with_prefix("FLAMINGO")
        .prefix_separator("__")
        .separator("__")
        .keep_prefix(true)
}

impl SessionConfig {
    /// Reads and checks `flamingo.session.*` from `config`; what is not set keeps its default.
    ///
    /// Dotted keys and nested maps both work and mix freely, key names are compared without
    /// regard to case, and strings are accepted where numbers or booleans are expected (as the
    /// environment delivers them). See the [module docs](self) for every key.
    ///
    /// # Examples
    ///
    /// ```
    /// use config::{Config, File, FileFormat};
    /// use flamingo_session::config::SessionConfig;
    ///
    /// let yaml = "flamingo.session: {max.age: 3600, cookie: {secure: false}}";
    /// let config = Config::builder()
    ///     .add_source(File::from_str(yaml, FileFormat::Yaml))
    ///     .build()?;
    /// let session = SessionConfig::from_config(&config)?;
    /// assert_eq!(session.max_age.as_secs(), 3600);
    /// assert!(!session.cookie.secure);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the key (and the value, unless it is a secret, a password or a
    /// URL) when a key under `flamingo.session` is unknown, a value has the wrong type or is out
    /// of range, a key is spelled twice with different values, or, with `backend: redis`, when
    /// [`RedisConfig::resolve`] fails.
    pub fn from_config(config: &::config::Config) -> Result<Self, ConfigError> {
        let mut found = Vec::new();
        flatten(&config.cache, &mut Walk::default(), &mut found);
        let settings = merge_spellings(found)?;

        // Relative key (lower case) -> the key as shown in errors, the legacy alias it came
        // from (if any), and the value.
        let mut ours: BTreeMap<String, (String, Option<&'static str>, &ValueKind)> =
            BTreeMap::new();
        let mut legacy = Vec::new();
        for (path, entry) in &settings {
            if path.len() >= ROOT.len() && path.iter().zip(ROOT).all(|(a, b)| a == b) {
                let relative = path[ROOT.len()..].join(".");
                let tail = &entry.segments[ROOT.len()..];
                let shown = std::iter::once(ROOT.join("."))
                    .chain((!tail.is_empty()).then(|| tail.join(".")))
                    .collect::<Vec<_>>()
                    .join(".");
                ours.insert(relative, (shown, None, &entry.value));
            } else if let Some((alias, target)) = legacy_alias(path) {
                legacy.push((alias, target, &entry.value));
            }
        }
        for (alias, target, value) in legacy {
            let relative = target.to_ascii_lowercase();
            let new_key = key(target);
            match ours.get(&relative) {
                Some((_, None, _)) => tracing::warn!(
                    legacy_key = alias,
                    key = %new_key,
                    "deprecated configuration key ignored: the new key is set"
                ),
                Some((_, Some(other), _)) => tracing::warn!(
                    legacy_key = alias,
                    key = %new_key,
                    "deprecated configuration key ignored: {other} is set too"
                ),
                None => {
                    tracing::warn!(
                        legacy_key = alias,
                        key = %new_key,
                        "deprecated configuration key: use the new key"
                    );
                    ours.insert(relative, (alias.to_owned(), Some(alias), value));
                }
            }
        }

        let mut session = Self::default();
        for (relative, (shown, alias, value)) in &ours {
            if relative.is_empty() {
                return Err(ConfigError::new(
                    shown,
                    "expected a map of session settings, got a single value",
                ));
            }
            let Some(spec) = KEYS.iter().find(|k| k.name.eq_ignore_ascii_case(relative)) else {
                return Err(unknown_key(relative, shown));
            };
            // Errors name Flamingo's spelling of the key, or the legacy alias that was used.
            let shown_key = alias.map_or_else(|| key(spec.name), str::to_owned);
            let setting = Setting {
                key: &shown_key,
                value,
                secret: spec.secret,
            };
            (spec.apply)(&mut session, &setting)?;
        }

        if session.cookie.same_site == SameSiteSetting::None && !session.cookie.secure {
            return Err(ConfigError::new(
                "flamingo.session.cookie.sameSite",
                "\"none\" needs flamingo.session.cookie.secure: true (browsers drop SameSite=None \
                 cookies that are not Secure)",
            ));
        }
        if session.backend == BackendKind::Redis {
            session.redis.resolve()?;
        }
        Ok(session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use super::{keys::*, read::*, redis::*};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn go_durations_parse() {
        let cases = [
            ("5s", Duration::from_secs(5)),
            ("500ms", ms(500)),
            ("1m30s", Duration::from_secs(90)),
            ("2h", Duration::from_secs(7200)),
            ("1.5s", ms(1500)),
            (".5s", ms(500)),
            ("1.s", Duration::from_secs(1)),
            ("1h2m3s4ms5us6ns", Duration::new(3723, 4_005_006)),
            ("3µs", Duration::from_micros(3)),
            ("3μs", Duration::from_micros(3)),
            ("3us", Duration::from_micros(3)),
            ("7ns", Duration::from_nanos(7)),
            ("+5s", Duration::from_secs(5)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
            ("1.25h", Duration::from_secs(4500)),
            ("0.000000001s", Duration::from_nanos(1)),
            (" 5s ", Duration::from_secs(5)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(expected), "{text:?}");
        }
    }

    #[test]
    fn a_bare_number_means_seconds() {
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2.5"), Ok(ms(2500)));
    }

    #[test]
    fn bad_durations_say_why() {
        let cases = [
            ("foo", "expected a number"),
            ("", "empty"),
            ("-5s", "negative"),
            ("5x", "unknown unit \"x\""),
            ("5S", "unknown unit \"S\""),
            ("1h30", "missing unit"),
            (".s", "expected a number"),
            ("5 s", "unknown unit \" s\""),
            ("1s.", "expected a number"),
            ("99999999999999999999999999999999999999999h", "too long"),
            ("9999999999999999999999h", "too long"),
        ];
        for (text, reason) in cases {
            let error = parse_duration(text).expect_err(text);
            assert!(error.contains(reason), "{text:?}: {error}");
        }
    }

    #[test]
    fn hosts_get_the_default_port() {
        assert_eq!(parse_hosts("redis"), Ok(vec!["redis:6379".to_owned()]));
        assert_eq!(parse_hosts("redis:7000"), Ok(vec!["redis:7000".to_owned()]));
        assert_eq!(
            parse_hosts("a:7000, b ,[::1]:7002,[::1],::1"),
            Ok(vec![
                "a:7000".to_owned(),
                "b:6379".to_owned(),
                "[::1]:7002".to_owned(),
                "[::1]:6379".to_owned(),
                "[::1]:6379".to_owned(),
            ])
        );
    }

    #[test]
    fn bad_hosts_are_rejected() {
        for text in [
            "", "a,,b", "a:b", "a:0", "a:70000", ":6379", "a b", "[::1", "[x]:1", "a:1:2:z",
        ] {
            assert!(parse_hosts(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn urls_keep_an_empty_password() {
        let url = parse_redis_url("redis://user:@host/0").unwrap();
        assert_eq!(url.password.as_deref(), Some(""));
        assert_eq!(url.username.as_deref(), Some("user"));
        let url = parse_redis_url("redis://user@host/0").unwrap();
        assert_eq!(url.password, None);
        let url = parse_redis_url("redis://host/0?x=a@b:c").unwrap();
        assert_eq!(url.password, None);
    }

    #[test]
    fn urls_are_percent_decoded() {
        let url = parse_redis_url("rediss://u%40x:p%3Aw%2F@h.example").unwrap();
        assert_eq!(url.username.as_deref(), Some("u@x"));
        assert_eq!(url.password.as_deref(), Some("p:w/"));
        assert_eq!(url.host.as_deref(), Some("h.example:6379"));
        assert!(url.tls);
    }

    #[test]
    fn url_errors_never_show_the_url() {
        for text in [
            "http://user:hunter2@host/0",
            "redis://user:hunter2@host/x",
            "redis://user:hunter2@host:99999/0",
            "redis://user:hunter2@a,b/0",
        ] {
            let error = parse_redis_url(text).expect_err(text);
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("backend", "backnd"), 1);
        assert_eq!(edit_distance("savemode", "savemode"), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn cookie_names_are_tokens() {
        assert!(is_cookie_token("flamingo"));
        assert!(is_cookie_token("__Host-session"));
        for bad in ["", "a b", "a;b", "a=b", "a,b", "ä"] {
            assert!(!is_cookie_token(bad), "{bad:?}");
        }
    }
}
