//! `flamingo.session.redis.*`: the settings as configured, Flamingo's URL-versus-key precedence
//! and the parsing of Redis URLs and host lists.

use super::*;

pub(super) const EMPTY_USERNAME: &str =
    "must not be empty (Flamingo PR #524): leave the key out when the \
                              server has no ACL user";

/// The default `redis.keyPrefix`.
pub(super) const DEFAULT_KEY_PREFIX: &str = "session:";
/// The port a Redis host without one gets.
pub(super) const DEFAULT_REDIS_PORT: u16 = 6379;

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
    /// `redis.idle.connections`: the multiplexed connections each worker thread opens. Default:
    /// `1` (Flamingo's default of 10 sizes a pool of one-command-at-a-time connections; one
    /// multiplexed connection carries all of a thread's commands and lets Redis read them in
    /// batches: it measured half of Redis's CPU per request of ten, BENCHMARKS.md).
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
            idle_connections: 1,
            database: 0,
            tls: false,
            tls_ca_file: None,
            cluster_mode: false,
            timeout: Duration::from_secs(5),
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
        }
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
// Redis URLs and host lists.

/// What a `redis.url` contributes; `None` where the URL says nothing.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct RedisUrl {
    pub(super) host: Option<String>,
    pub(super) username: Option<String>,
    pub(super) password: Option<String>,
    pub(super) database: Option<i64>,
    pub(super) tls: bool,
}

/// Parses a `redis://` or `rediss://` URL. Error messages never contain the URL.
pub(super) fn parse_redis_url(text: &str) -> Result<RedisUrl, String> {
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

pub(super) fn parse_database(text: &str, place: &str) -> Result<i64, String> {
    text.parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| format!("invalid database {text:?} {place}: expected a number 0 or more"))
}

/// Whether the URL's authority has a password part (`user:@host` has an empty one).
pub(super) fn has_password(text: &str) -> bool {
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
pub(super) fn parse_hosts(text: &str) -> Result<Vec<String>, String> {
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

pub(super) fn normalise_host(entry: &str) -> Result<String, &'static str> {
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
