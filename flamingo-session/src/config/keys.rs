//! Every key under `flamingo.session`, how each is read, and the "did you mean" answer for an
//! unknown one.

use super::{
    read,
    redis::{parse_hosts, parse_redis_url, DEFAULT_KEY_PREFIX, EMPTY_USERNAME},
    *,
};

/// The longest `max.age`: 400 days, what browsers keep a cookie (RFC 6265bis).
pub(super) const MAX_COOKIE_AGE: Duration = Duration::from_secs(400 * 24 * 60 * 60);
/// The longest `max.lifetime`: 100 years (anything longer overflows clocks and TTLs).
pub(super) const MAX_LIFETIME: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// How one key is read into a [`SessionConfig`].
pub(super) struct KeySpec {
    /// Flamingo's spelling, relative to `flamingo.session`.
    pub(super) name: &'static str,
    /// Never show the value in an error message.
    pub(super) secret: bool,
    pub(super) apply: fn(&mut SessionConfig, &Setting<'_>) -> Result<(), ConfigError>,
}

pub(super) const fn spec(
    name: &'static str,
    apply: fn(&mut SessionConfig, &Setting<'_>) -> Result<(), ConfigError>,
) -> KeySpec {
    KeySpec {
        name,
        secret: false,
        apply,
    }
}

pub(super) const fn secret(
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
pub(super) const KEYS: &[KeySpec] = &[
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
        if prefix.contains(['{', '}']) {
            return Err(s.fail(
                "must not contain { or }: the first characters of a session ID are its Redis \
                 Cluster hash tag",
            ));
        }
        c.redis.key_prefix = if prefix.is_empty() {
            DEFAULT_KEY_PREFIX.to_owned()
        } else {
            prefix.to_owned()
        };
        Ok(())
    }),
];

/// A cookie name is an RFC 6265 token.
pub(super) fn is_cookie_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
}

pub(super) fn unknown_key(relative: &str, shown: &str) -> ConfigError {
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
    let message = match read::did_you_mean(relative, KEYS.iter().map(|k| k.name)) {
        Some(name) => format!("unknown key (did you mean flamingo.session.{name}?)"),
        None => "unknown key (the keys are listed in the flamingo_session::config docs)".to_owned(),
    };
    ConfigError::new(shown, message)
}
