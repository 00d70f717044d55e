//! Flamingo's `flamingo.session.*` configuration, read through the `config` crate.
//!
//! TYPES ONLY FOR NOW: parsing is being written (see `SessionConfig::from_config`).

use std::{fmt, path::PathBuf, time::Duration};

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
    /// `redis.idle.connections`: the pool size. Default: `10`.
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
            .field("password", &if self.password.is_empty() { "" } else { "<redacted>" })
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
            .field("password", &if self.password.is_empty() { "" } else { "<redacted>" })
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
    /// `store.length`: the largest encoded session in bytes; 0 = no limit. Default: `1048576`.
    pub store_length: usize,
    /// `max.age`: session lifetime, cookie Max-Age and store TTL. Default: 30 days.
    pub max_age: Duration,
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
