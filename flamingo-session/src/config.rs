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
//! | `redis.idle.connections` | `10` | Multiplexed connections each worker thread opens (Flamingo's pool size); at least 1. |
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

/// Redis settings (`flamingo.session.redis.*`), as configured (see [`RedisConfig::resolve`]).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis.url`, e.g. `redis://user:pw@host:6379/0` or `rediss://...?db=3`. Default: unset.
    pub url: Option<String>,
    /// `redis.host`, `host:port`; a comma-separated list seeds a cluster. Default: `"redis"`.
    pub host: String,
    /// `redis.username`; an empty string is a config error. Default: unset.
    pub username: Option<String>,
    /// `redis.password`. Default: empty.
    pub password: String,
    /// `redis.idle.connections`: the multiplexed connections each worker thread opens (Flamingo's
    /// pool size). Default: `10`.
    pub idle_connections: usize,
    /// `redis.database`; ignored in cluster mode. Default: `0`.
    pub database: i64,
    /// `redis.tls`. Default: `false`.
    pub tls: bool,
    /// `redis.tlsCaFile`: a PEM CA file for a private CA (ours, not Flamingo's). Default: unset
    /// (the system's web PKI roots).
    pub tls_ca_file: Option<PathBuf>,
    /// `redis.clusterMode`. Default: `false`.
    pub cluster_mode: bool,
    /// `redis.timeout`: bounds connecting and every command. Default: `5s`.
    pub timeout: Duration,
    /// `redis.keyPrefix`, trimmed; empty means `session:`. Default: `"session:"`.
    pub key_prefix: String,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.url.as_ref().map(|_| "<redacted>"))
            .field("host", &self.host)
            .field("username", &self.username)
            .field(
                "password",
                &if self.password.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("idle_connections", &self.idle_connections)
            .field("database", &self.database)
            .field("tls", &self.tls)
            .field("tls_ca_file", &self.tls_ca_file)
            .field("cluster_mode", &self.cluster_mode)
            .field("timeout", &self.timeout)
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

/// Connection settings after Flamingo's URL-versus-key precedence is applied.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConnection {
    /// `host:port` entries (one for standalone; the seeds for a cluster).
    pub hosts: Vec<String>,
    /// ACL user name.
    pub username: Option<String>,
    /// Password; empty means none.
    pub password: String,
    /// Database number (0 in cluster mode).
    pub database: i64,
    /// TLS on (`redis.tls`, or a `rediss://` URL).
    pub tls: bool,
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnection")
            .field("hosts", &self.hosts)
            .field("username", &self.username)
            .field(
                "password",
                &if self.password.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("database", &self.database)
            .field("tls", &self.tls)
            .finish()
    }
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

/// The default `redis.keyPrefix`.
const DEFAULT_KEY_PREFIX: &str = "session:";
/// The longest `max.age`: 400 days, what browsers keep a cookie (RFC 6265bis).
const MAX_COOKIE_AGE: Duration = Duration::from_secs(400 * 24 * 60 * 60);
/// The longest `max.lifetime`: 100 years (anything longer overflows clocks and TTLs).
const MAX_LIFETIME: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// The port a Redis host without one gets.
const DEFAULT_REDIS_PORT: u16 = 6379;

impl Default for RedisConfig {
    /// Flamingo's Redis defaults: host `redis`, no URL, user or password, database 0, a pool of
    /// 10, no TLS, no cluster, a 5 s timeout and the key prefix `session:`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use flamingo_session::config::RedisConfig;
    ///
    /// let redis = RedisConfig::default();
    /// assert_eq!(redis.host, "redis");
    /// assert_eq!(redis.timeout, Duration::from_secs(5));
    /// assert_eq!(redis.key_prefix, "session:");
    /// ```
    fn default() -> Self {
        Self {
            url: None,
            host: "redis".to_owned(),
            username: None,
            password: String::new(),
            idle_connections: 10,
            database: 0,
            tls: false,
            tls_ca_file: None,
            cluster_mode: false,
            timeout: Duration::from_secs(5),
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
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

impl RedisConfig {
    /// Applies Flamingo's URL-versus-key precedence and checks the result.
    ///
    /// A host in `url` beats `host`; a non-empty URL user name beats `username`; a password
    /// present in the URL beats `password`, even an empty one; the database comes from the URL
    /// path, else `?db=`, else `database`; `rediss://` turns TLS on; in cluster mode the database
    /// is 0. Hosts without a port get `:6379`.
    ///
    /// # Examples
    ///
    /// ```
    /// use flamingo_session::config::RedisConfig;
    ///
    /// let redis = RedisConfig {
    ///     url: Some("rediss://app:pw@cache.internal:6380/?db=4".to_owned()),
    ///     host: "ignored:6379".to_owned(),
    ///     password: "ignored".to_owned(),
    ///     ..RedisConfig::default()
    /// };
    /// let connection = redis.resolve()?;
    /// assert_eq!(connection.hosts, ["cache.internal:6380"]);
    /// assert_eq!(connection.username.as_deref(), Some("app"));
    /// assert_eq!(connection.password, "pw");
    /// assert_eq!(connection.database, 4);
    /// assert!(connection.tls);
    /// # Ok::<(), flamingo_session::config::ConfigError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the key when the URL does not parse, has a scheme other than
    /// `redis`/`rediss` or a database that is not a number 0 or more; when `username` is empty;
    /// when a host is malformed; when `host` lists several hosts outside cluster mode; or when
    /// `tls_ca_file` is set while TLS is off.
    pub fn resolve(&self) -> Result<RedisConnection, ConfigError> {
        let url = match self.url.as_deref().map(str::trim) {
            Some(text) if !text.is_empty() => {
                Some(parse_redis_url(text).map_err(|e| ConfigError::new(key("redis.url"), e))?)
            }
            _ => None,
        };
        if self.username.as_deref() == Some("") {
            return Err(ConfigError::new(key("redis.username"), EMPTY_USERNAME));
        }
        if self.database < 0 {
            return Err(ConfigError::new(
                key("redis.database"),
                format!(
                    "invalid value {}: expected a number 0 or more",
                    self.database
                ),
            ));
        }

        let url_host = url.as_ref().and_then(|u| u.host.clone());
        let hosts = match &url_host {
            Some(host) => vec![host.clone()],
            None => parse_hosts(&self.host).map_err(|e| ConfigError::new(key("redis.host"), e))?,
        };
        let username = url
            .as_ref()
            .and_then(|u| u.username.clone())
            .or_else(|| self.username.clone());
        let password = url
            .as_ref()
            .and_then(|u| u.password.clone())
            .unwrap_or_else(|| self.password.clone());
        let mut database = url
            .as_ref()
            .and_then(|u| u.database)
            .unwrap_or(self.database);
        let tls = self.tls || url.as_ref().is_some_and(|u| u.tls);

        if self.cluster_mode {
            if database != 0 {
                tracing::warn!(
                    database,
                    "flamingo.session.redis: the database is ignored in cluster mode"
                );
            }
            database = 0;
        } else if hosts.len() > 1 {
            return Err(ConfigError::new(
                key("redis.host"),
                format!(
                    "{:?} lists {} hosts: a list of seed nodes needs \
                     flamingo.session.redis.clusterMode: true",
                    self.host,
                    hosts.len()
                ),
            ));
        }
        if let Some(ca) = &self.tls_ca_file {
            if !tls {
                return Err(ConfigError::new(
                    key("redis.tlsCaFile"),
                    format!(
                        "{:?} is set but TLS is off: set flamingo.session.redis.tls: true or use \
                         a rediss:// URL",
                        ca.display()
                    ),
                ));
            }
        }
        Ok(RedisConnection {
            hosts,
            username,
            password,
            database,
            tls,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Collecting the settings: dotted keys and nested maps, any case, several spellings.

/// The subtree this module reads.
const ROOT: [&str; 2] = ["flamingo", "session"];

/// Where Flamingo's legacy aliases live (all lower case).
const LEGACY_ROOTS: [&[&str]; 3] = [&["session"], &["core", "healthcheck"], &["healthcheck"]];

/// Flamingo's legacy aliases: the old key (as Flamingo spells it) and the `flamingo.session` key.
const LEGACY_ALIASES: &[(&str, &str)] = &[
    ("session.name", "name"),
    ("session.backend", "backend"),
    ("session.secret", "secret"),
    ("session.file", "file"),
    ("session.store.length", "store.length"),
    ("session.max.age", "max.age"),
    ("session.cookie.secure", "cookie.secure"),
    ("session.cookie.path", "cookie.path"),
    ("session.redis.url", "redis.url"),
    ("session.redis.host", "redis.host"),
    ("session.redis.password", "redis.password"),
    ("session.redis.idle.connections", "redis.idle.connections"),
    ("core.healthcheck.checkSession", "healthcheck"),
    ("healthcheck.checkSession", "healthcheck"),
];

fn legacy_alias(path: &[String]) -> Option<(&'static str, &'static str)> {
    let joined = path.join(".");
    LEGACY_ALIASES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(&joined))
        .copied()
}

/// The position of the walk through the configuration tree.
#[derive(Default)]
struct Walk {
    /// Key segments, split at dots and lower-cased.
    path: Vec<String>,
    /// The same segments as written.
    segments: Vec<String>,
    /// The map keys as written, one per level of nesting.
    keys: Vec<String>,
}

/// One value found under a root, with how its key was spelled.
struct Found {
    path: Vec<String>,
    segments: Vec<String>,
    keys: Vec<String>,
    value: ValueKind,
    from_environment: bool,
}

/// A setting after the spellings of its key have been merged.
struct Merged {
    segments: Vec<String>,
    value: ValueKind,
}

fn interesting(path: &[String]) -> bool {
    let roots = std::iter::once(&ROOT[..]).chain(LEGACY_ROOTS);
    roots.into_iter().any(|root| {
        let shared = root.len().min(path.len());
        root[..shared]
            .iter()
            .zip(&path[..shared])
            .all(|(a, b)| *a == b)
    })
}

fn under_a_root(path: &[String]) -> bool {
    let roots = std::iter::once(&ROOT[..]).chain(LEGACY_ROOTS);
    roots
        .into_iter()
        .any(|root| path.len() >= root.len() && root.iter().zip(path).all(|(a, b)| *a == b))
}

/// Collects every non-null leaf under [`ROOT`] and [`LEGACY_ROOTS`], splitting dotted keys.
fn flatten(value: &::config::Value, walk: &mut Walk, found: &mut Vec<Found>) {
    match &value.kind {
        ValueKind::Nil => {}
        ValueKind::Table(table) => {
            for (name, child) in table {
                let parts: Vec<&str> = name.split('.').collect();
                walk.path.extend(parts.iter().map(|p| p.to_lowercase()));
                walk.segments.extend(parts.iter().map(|p| (*p).to_owned()));
                walk.keys.push(name.clone());
                if interesting(&walk.path) {
                    flatten(child, walk, found);
                }
                let depth = walk.path.len() - parts.len();
                walk.path.truncate(depth);
                walk.segments.truncate(depth);
                walk.keys.pop();
            }
        }
        leaf => {
            if under_a_root(&walk.path) {
                found.push(Found {
                    path: walk.path.clone(),
                    segments: walk.segments.clone(),
                    keys: walk.keys.clone(),
                    value: leaf.clone(),
                    from_environment: value.origin() == Some(ENVIRONMENT_ORIGIN),
                });
            }
        }
    }
}

/// The origin the `config` crate gives values read by `config::Environment`.
const ENVIRONMENT_ORIGIN: &str = "the environment";

/// Merges the spellings of each key: the environment wins; otherwise they must agree.
fn merge_spellings(found: Vec<Found>) -> Result<BTreeMap<Vec<String>, Merged>, ConfigError> {
    let mut groups: BTreeMap<Vec<String>, Vec<Found>> = BTreeMap::new();
    for f in found {
        groups.entry(f.path.clone()).or_default().push(f);
    }
    let mut merged = BTreeMap::new();
    for (path, mut spellings) in groups {
        if spellings.iter().any(|f| f.from_environment) {
            spellings.retain(|f| f.from_environment);
        }
        let first = spellings.swap_remove(0);
        if let Some(other) = spellings.iter().find(|f| f.value != first.value) {
            let written =
                |keys: &[String]| keys.iter().map(|k| format!("[{k:?}]")).collect::<String>();
            return Err(ConfigError::new(
                first.segments.join("."),
                format!(
                    "set twice with different values, spelled {} and {}; the config crate does \
                     not record which source came last, so spell this key one way in all files",
                    written(&first.keys),
                    written(&other.keys)
                ),
            ));
        }
        merged.insert(
            path,
            Merged {
                segments: first.segments,
                value: first.value,
            },
        );
    }
    Ok(merged)
}

fn unknown_key(relative: &str, shown: &str) -> ConfigError {
    let is_prefix = |short: &str, long: &str| {
        long.len() > short.len()
            && long[..short.len()].eq_ignore_ascii_case(short)
            && long.as_bytes()[short.len()] == b'.'
    };
    if let Some(value_key) = KEYS.iter().find(|k| is_prefix(k.name, relative)) {
        return ConfigError::new(key(value_key.name), "expected a single value, got a map");
    }
    let group = KEYS.iter().find(|k| is_prefix(relative, k.name));
    if let Some(example) = group {
        return ConfigError::new(
            shown,
            format!(
                "expected a map of settings (such as flamingo.session.{}), got a single value",
                example.name
            ),
        );
    }
    let closest = KEYS
        .iter()
        .map(|k| {
            (
                edit_distance(&k.name.to_ascii_lowercase(), relative),
                k.name,
            )
        })
        .min();
    let message = match closest {
        Some((distance, name)) if distance <= (relative.len() / 3).max(1) => {
            format!("unknown key (did you mean flamingo.session.{name}?)")
        }
        _ => "unknown key (the keys are listed in the flamingo_session::config docs)".to_owned(),
    };
    ConfigError::new(shown, message)
}

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
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

// ---------------------------------------------------------------------------------------------
// Reading typed values.

/// The full name of a `flamingo.session` key.
fn key(name: &str) -> String {
    format!("flamingo.session.{name}")
}

const EMPTY_USERNAME: &str = "must not be empty (Flamingo PR #524): leave the key out when the \
                              server has no ACL user";

/// One value being read, with its full key.
struct Setting<'a> {
    key: &'a str,
    value: &'a ValueKind,
    secret: bool,
}

impl Setting<'_> {
    /// The value as it may appear in an error message.
    fn shown(&self) -> String {
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

    fn fail(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.key, message)
    }

    fn invalid(&self, expected: &str) -> ConfigError {
        self.fail(format!(
            "invalid value {}: expected {expected}",
            self.shown()
        ))
    }

    fn string(&self) -> Result<String, ConfigError> {
        match self.value {
            ValueKind::String(s) => Ok(s.clone()),
            ValueKind::Table(_) | ValueKind::Array(_) | ValueKind::Nil => {
                Err(self.invalid("a string"))
            }
            _ => Ok(self.shown_plain()),
        }
    }

    /// A scalar as plain text (not quoted, not redacted).
    fn shown_plain(&self) -> String {
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

    fn non_empty_string(&self) -> Result<String, ConfigError> {
        let text = self.string()?;
        if text.is_empty() {
            return Err(self.fail("must not be empty"));
        }
        Ok(text)
    }

    fn boolean(&self) -> Result<bool, ConfigError> {
        match self.value {
            ValueKind::Boolean(b) => Ok(*b),
            ValueKind::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok(true),
            ValueKind::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(self.invalid("true or false")),
        }
    }

    /// A whole number; `expected` describes the allowed range for the error message.
    fn integer(&self, expected: &str) -> Result<i128, ConfigError> {
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

    fn bounded<T: TryFrom<i128>>(&self, minimum: i128, expected: &str) -> Result<T, ConfigError> {
        let number = self.integer(expected)?;
        if number < minimum {
            return Err(self.invalid(expected));
        }
        T::try_from(number).map_err(|_| self.invalid(expected))
    }

    /// A Go duration string, or a number of seconds.
    fn duration(&self) -> Result<Duration, ConfigError> {
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
    fn duration_at_least(&self, minimum: Duration, what: &str) -> Result<Duration, ConfigError> {
        let duration = self.duration()?;
        if duration < minimum {
            return Err(self.fail(format!("invalid duration {}: {what}", self.shown())));
        }
        Ok(duration)
    }

    /// One of `choices` (compared without regard to case).
    fn choice<T: Copy>(&self, what: &str, choices: &[(&str, T)]) -> Result<T, ConfigError> {
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

/// How one key is read into a [`SessionConfig`].
struct KeySpec {
    /// Flamingo's spelling, relative to `flamingo.session`.
    name: &'static str,
    /// Never show the value in an error message.
    secret: bool,
    apply: fn(&mut SessionConfig, &Setting<'_>) -> Result<(), ConfigError>,
}

const fn spec(
    name: &'static str,
    apply: fn(&mut SessionConfig, &Setting<'_>) -> Result<(), ConfigError>,
) -> KeySpec {
    KeySpec {
        name,
        secret: false,
        apply,
    }
}

const fn secret(
    name: &'static str,
    apply: fn(&mut SessionConfig, &Setting<'_>) -> Result<(), ConfigError>,
) -> KeySpec {
    KeySpec {
        name,
        secret: true,
        apply,
    }
}

/// Every key under `flamingo.session`.
const KEYS: &[KeySpec] = &[
    spec("name", |c, s| {
        let name = s.non_empty_string()?;
        if !is_cookie_token(&name) {
            return Err(s.invalid(
                "a cookie name: letters, digits and !#$%&'*+-.^_`|~ (no spaces or separators)",
            ));
        }
        c.name = name;
        Ok(())
    }),
    spec("saveMode", |c, s| {
        c.save_mode = s.choice(
            "save mode",
            &[
                ("Always", SaveMode::Always),
                ("OnRead", SaveMode::OnRead),
                ("OnWrite", SaveMode::OnWrite),
            ],
        )?;
        Ok(())
    }),
    spec("backend", |c, s| {
        c.backend = s.choice(
            "backend",
            &[
                ("memory", BackendKind::Memory),
                ("file", BackendKind::File),
                ("redis", BackendKind::Redis),
                ("custom", BackendKind::Custom),
            ],
        )?;
        Ok(())
    }),
    secret("secret", |c, s| {
        c.secret = s.non_empty_string()?;
        Ok(())
    }),
    spec("healthcheck", |c, s| {
        c.healthcheck = s.boolean()?;
        Ok(())
    }),
    spec("file", |c, s| {
        c.file = PathBuf::from(s.non_empty_string()?);
        Ok(())
    }),
    spec("fileCleanupInterval", |c, s| {
        c.file_cleanup_interval =
            s.duration_at_least(Duration::from_nanos(1), "must be above 0")?;
        Ok(())
    }),
    spec("fileSync", |c, s| {
        c.file_sync = s.boolean()?;
        Ok(())
    }),
    spec("store.length", |c, s| {
        c.store_length = s.bounded(0, "a whole number of bytes, 0 or more (0: no limit)")?;
        Ok(())
    }),
    spec("max.age", |c, s| {
        c.max_age = s.duration_at_least(
            Duration::from_secs(1),
            "must be at least 1 second (cookie Max-Age counts whole seconds)",
        )?;
        if c.max_age > MAX_COOKIE_AGE {
            return Err(s.fail(
                "must be at most 400 days (9600h): browsers keep a cookie no longer (RFC 6265bis)",
            ));
        }
        Ok(())
    }),
    spec("max.lifetime", |c, s| {
        c.max_lifetime = s.duration()?;
        if c.max_lifetime > MAX_LIFETIME {
            return Err(s.fail("must be at most 100 years (876000h), or 0 to turn it off"));
        }
        Ok(())
    }),
    spec("memory.capacity", |c, s| {
        c.memory_capacity = s.bounded(1, "a whole number of sessions above 0")?;
        Ok(())
    }),
    spec("cookie.secure", |c, s| {
        c.cookie.secure = s.boolean()?;
        Ok(())
    }),
    spec("cookie.path", |c, s| {
        let path = s.string()?;
        if !path.starts_with('/') || path.contains(';') || path.chars().any(char::is_control) {
            return Err(s.invalid("a path that starts with / and has no ; or control characters"));
        }
        c.cookie.path = path;
        Ok(())
    }),
    spec("cookie.domain", |c, s| {
        let domain = s.string()?;
        let domain = domain.trim();
        if domain.is_empty() {
            c.cookie.domain = None;
            return Ok(());
        }
        if !domain
            .trim_start_matches('.')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(s.invalid("a host name such as example.com (letters, digits, - and .)"));
        }
        c.cookie.domain = Some(domain.to_owned());
        Ok(())
    }),
    spec("cookie.persistent", |c, s| {
        c.cookie.persistent = s.boolean()?;
        Ok(())
    }),
    spec("cookie.sameSite", |c, s| {
        c.cookie.same_site = s.choice(
            "sameSite",
            &[
                ("lax", SameSiteSetting::Lax),
                ("strict", SameSiteSetting::Strict),
                ("none", SameSiteSetting::None),
                ("default", SameSiteSetting::Default),
            ],
        )?;
        Ok(())
    }),
    secret("redis.url", |c, s| {
        let text = s.string()?;
        let text = text.trim();
        if text.is_empty() {
            c.redis.url = None;
            return Ok(());
        }
        parse_redis_url(text).map_err(|e| s.fail(e))?;
        c.redis.url = Some(text.to_owned());
        Ok(())
    }),
    spec("redis.host", |c, s| {
        let text = match s.value {
            ValueKind::Array(items) => {
                let mut hosts = Vec::new();
                for item in items {
                    let item = Setting {
                        value: &item.kind,
                        ..*s
                    };
                    hosts.push(item.string()?);
                }
                hosts.join(",")
            }
            _ => s.string()?,
        };
        parse_hosts(&text).map_err(|e| s.fail(e))?;
        c.redis.host = text.trim().to_owned();
        Ok(())
    }),
    spec("redis.username", |c, s| {
        let name = s.string()?;
        if name.is_empty() {
            return Err(s.fail(EMPTY_USERNAME));
        }
        c.redis.username = Some(name);
        Ok(())
    }),
    secret("redis.password", |c, s| {
        c.redis.password = s.string()?;
        Ok(())
    }),
    spec("redis.idle.connections", |c, s| {
        c.redis.idle_connections = s.bounded(1, "a whole number of connections, 1 or more")?;
        Ok(())
    }),
    spec("redis.database", |c, s| {
        c.redis.database = s.bounded(0, "a database number, 0 or more")?;
        Ok(())
    }),
    spec("redis.tls", |c, s| {
        c.redis.tls = s.boolean()?;
        Ok(())
    }),
    spec("redis.tlsCaFile", |c, s| {
        let path = s.string()?;
        c.redis.tls_ca_file = (!path.trim().is_empty()).then(|| PathBuf::from(path.trim()));
        Ok(())
    }),
    spec("redis.clusterMode", |c, s| {
        c.redis.cluster_mode = s.boolean()?;
        Ok(())
    }),
    spec("redis.timeout", |c, s| {
        c.redis.timeout = s.duration_at_least(Duration::from_nanos(1), "must be above 0")?;
        Ok(())
    }),
    spec("redis.keyPrefix", |c, s| {
        let prefix = s.string()?;
        let prefix = prefix.trim();
        c.redis.key_prefix = if prefix.is_empty() {
            DEFAULT_KEY_PREFIX.to_owned()
        } else {
            prefix.to_owned()
        };
        Ok(())
    }),
];

/// A cookie name is an RFC 6265 token.
fn is_cookie_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

// ---------------------------------------------------------------------------------------------
// Redis URLs and host lists.

/// What a `redis.url` contributes; `None` where the URL says nothing.
#[derive(Debug, PartialEq, Eq)]
struct RedisUrl {
    host: Option<String>,
    username: Option<String>,
    password: Option<String>,
    database: Option<i64>,
    tls: bool,
}

/// Parses a `redis://` or `rediss://` URL. Error messages never contain the URL.
fn parse_redis_url(text: &str) -> Result<RedisUrl, String> {
    let url =
        url::Url::parse(text).map_err(|e| format!("invalid value <redacted>: not a URL ({e})"))?;
    let tls = match url.scheme() {
        "redis" => false,
        "rediss" => true,
        other => {
            return Err(format!(
                "invalid value <redacted>: unsupported scheme {other:?} (expected redis:// or \
                 rediss://)"
            ))
        }
    };
    let host = match url.host_str() {
        Some(host) if !host.is_empty() => {
            if host.contains(',') {
                return Err(
                    "invalid value <redacted>: a URL names one host; list cluster seeds \
                            in flamingo.session.redis.host"
                        .to_owned(),
                );
            }
            let port = url.port().unwrap_or(DEFAULT_REDIS_PORT);
            Some(format!("{host}:{port}"))
        }
        _ => None,
    };
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(part)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| {
                "invalid value <redacted>: the user name or password is not UTF-8".to_owned()
            })
    };
    let username = Some(decode(url.username())?).filter(|u| !u.is_empty());
    // The url crate drops an empty password ("user:@host"); Go keeps it as "set but empty".
    let password = if has_password(text) {
        Some(decode(url.password().unwrap_or(""))?)
    } else {
        None
    };
    let from_path = url.path().trim_matches('/');
    let database = if !from_path.is_empty() {
        Some(parse_database(from_path, "in the URL path")?)
    } else {
        match url.query_pairs().find(|(name, _)| name == "db") {
            Some((_, value)) if !value.is_empty() => Some(parse_database(&value, "in ?db=")?),
            _ => None,
        }
    };
    Ok(RedisUrl {
        host,
        username,
        password,
        database,
        tls,
    })
}

fn parse_database(text: &str, place: &str) -> Result<i64, String> {
    text.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| format!("invalid database {text:?} {place}: expected a number 0 or more"))
}

/// Whether the URL's authority has a password part (`user:@host` has an empty one).
fn has_password(text: &str) -> bool {
    let Some((_, rest)) = text.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    match authority.rsplit_once('@') {
        Some((userinfo, _)) => userinfo.contains(':'),
        None => false,
    }
}

/// Splits `redis.host` into `host:port` entries (port 6379 when left out).
fn parse_hosts(text: &str) -> Result<Vec<String>, String> {
    let mut hosts = Vec::new();
    for entry in text.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err(format!(
                "invalid value {text:?}: expected host:port, or a comma-separated list of them \
                 without empty entries"
            ));
        }
        hosts.push(normalise_host(entry).map_err(|why| format!("invalid host {entry:?}: {why}"))?);
    }
    Ok(hosts)
}

fn normalise_host(entry: &str) -> Result<String, &'static str> {
    if entry
        .chars()
        .any(|c| c.is_whitespace() || "/@?#".contains(c))
    {
        return Err("expected host:port");
    }
    let check_port = |port: &str| match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err("the port must be a number from 1 to 65535"),
    };
    if let Some(rest) = entry.strip_prefix('[') {
        let (address, after) = rest
            .split_once(']')
            .ok_or("missing ] after an IPv6 address")?;
        address
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| "not an IPv6 address between [ and ]")?;
        return match after {
            "" => Ok(format!("[{address}]:{DEFAULT_REDIS_PORT}")),
            _ => {
                let port = after.strip_prefix(':').ok_or("expected :port after ]")?;
                check_port(port)?;
                Ok(entry.to_owned())
            }
        };
    }
    match entry.matches(':').count() {
        0 => Ok(format!("{entry}:{DEFAULT_REDIS_PORT}")),
        1 => {
            let (host, port) = entry.split_once(':').unwrap_or((entry, ""));
            if host.is_empty() {
                return Err("the host name is missing");
            }
            check_port(port)?;
            Ok(entry.to_owned())
        }
        _ => match entry.parse::<std::net::Ipv6Addr>() {
            Ok(_) => Ok(format!("[{entry}]:{DEFAULT_REDIS_PORT}")),
            Err(_) => Err("write an IPv6 address with a port as [address]:port"),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Go durations.

/// Parses a Go duration (`time.ParseDuration`): numbers with units `ns`, `us`/`µs`, `ms`, `s`,
/// `m`, `h`, fractions allowed, as in `"1h30m"` or `"1.5s"`. Ours: a bare number means seconds.
/// Negative durations are rejected.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
