//! The Redis backend (`flamingo.session.backend: redis`): standalone Redis or Redis Cluster,
//! and any Redis-compatible server such as Valkey.
//!
//! # Data model
//!
//! One Redis string per session, at `<keyPrefix>{<first 3 characters of the ID>}<the rest>`
//! (`keyPrefix` defaults to `session:`). The braces make the ID's first three characters the
//! Redis Cluster hash tag: a session of an owner ([`SessionIndex`]) has an ID that starts with
//! the owner's [tag](SessionOwner::tag), so it lives in the same hash slot as the owner's index.
//! The string is a JSON object whose members are the session's keys, each with its stored JSON
//! text as a JSON string, so `redis-cli GET 'session:{abc}...'` shows readable values, such as
//! `{"count":"{\"t\":\"u64\",\"v\":3}"}` for a session holding the number 3 under `count`.
//!
//! A session created for an owner also carries `__flamingo.owner` (its index's Redis key) and
//! `__flamingo.created` (Unix seconds). [`load`] strips them, and the prefix `__flamingo.` is
//! reserved: storing a value under it is refused. Only such a session has an ID of
//! [`SessionId::OWNED_ID_LEN`] characters ([`SessionId::is_owned_form`]), and the owner of an ID
//! never changes, so a write knows from the ID alone whether there is an index to keep.
//!
//! An owner's index is a sorted set at `<keyPrefix>{<tag>}:owner:<owner key>`: each member a
//! session ID, scored with the Unix second it was last written or its expiry last slid. Its
//! TTL is kept at least as long as its longest-lived session's. Listing drops the members whose
//! session is gone; ending them deletes the sessions. Leases are plain strings at
//! `<keyPrefix>lease:<hash of the name>`.
//!
//! # Commands
//!
//! A session without an owner is read and written with one plain command each, with the time to
//! live set in the same command as the data:
//!
//! - load: `GET`;
//! - create: `SET key value NX PX ttl`: nothing happens if the key exists (a new ID is drawn, up
//!   to [`CREATE_ATTEMPTS`] times);
//! - save, [`Replace`](SessionChange::Replace): `SET key value XX PX ttl`, which writes only
//!   over a session that is still stored;
//! - touch: `PEXPIRE` (a missing session stays missing); delete: `DEL`.
//!
//! A save that finds the session no longer stored (deleted or expired) writes nothing and answers
//! [`SaveOutcome::Gone`]: a dead session stays dead.
//!
//! The other writes are one Lua script each (`EVALSHA`), atomic in Redis:
//!
//! - save, [`Merge`](SessionChange::Merge): reads the stored object, sets and removes the changed
//!   keys, and writes it back with its TTL, or writes nothing when the merged state exceeds
//!   `store.length` ([`BackendError::TooLarge`]), so concurrent requests that change different
//!   keys of one session both keep their change;
//! - a session with an owner: create, replace (which keeps the owner fields) and touch also set
//!   the session's score in its owner's index and keep the index alive.
//!
//! Each script touches one session key, and for an owned session its owner's index, which
//! shares its hash slot: all of it works on a cluster.
//!
//! Why strings, not one hash per session: on Redis 7.0 a hash cannot be written together with its
//! TTL, nor only if it exists, in one command, so every write was a script of three or four
//! calls, and each call inside a script costs about as much as a command of its own
//! (BENCHMARKS.md). Sessions stored as hashes by an earlier version are found of the wrong type
//! ([`BackendError::Corrupt`]) and start fresh.
//!
//! # Connections
//!
//! Standalone, each thread that uses the backend (each actix worker) opens
//! `redis.idle.connections` (default 1) multiplexed connections
//! ([`ConnectionManager`](redis::aio::ConnectionManager)) of its own on first use and spreads its
//! commands over them round-robin; each connection carries any number of concurrent commands, and
//! Redis reads the commands pipelined on one connection in batches. Connections live on the
//! thread whose runtime drives them, since a connection driven from another thread costs two
//! cross-thread wake-ups per command. A pool that checks a connection out per command (and PINGs
//! it on every checkout, as deadpool-redis does) doubles the round trips and measured 3–5 times
//! slower here. In cluster mode it holds as many
//! [`ClusterConnection`](redis::cluster_async::ClusterConnection)s, seeded from `redis.host`,
//! which follow the cluster's slot map.
//!
//! `redis.timeout` bounds connecting and every command: an unreachable or stalled server gives
//! [`BackendError::Unavailable`] within it, never a hang. After an outage each connection
//! reconnects on its next use; a command that finds its connection dropped (Redis restarted) is
//! sent once more on the fresh connection, so a restart costs no failed requests.
//!
//! TLS (`redis.tls`, or a `rediss://` URL) verifies the server certificate against the web PKI
//! roots, or against the PEM CA in `redis.tlsCaFile`.
//!
//! [`load`]: SessionBackend::load

use std::{fmt, future::Future, path::PathBuf, time::Duration};

use async_trait::async_trait;
use redis::{Cmd, ErrorKind, ServerErrorKind};
use tracing::Instrument as _;

use connection::{read_ca, Conn, Connector};
use scripts::Scripts;
use stored::{decode, encode, META_PREFIX};

mod connection;
mod scripts;
mod stored;

use crate::{
    backend::{
        check_length, index::lease_key, unix_now, BackendError, HealthStatus, IndexedSession,
        Leases, SaveOutcome, SessionBackend, SessionChange, SessionId, SessionIndex, SessionOwner,
        SessionState,
    },
    config::{ConfigError, RedisConfig},
};

/// How many fresh IDs [`RedisBackend`]'s `create` tries before giving up (a collision of 256-bit
/// random IDs does not happen in practice; the bound only guards against a broken generator).
pub const CREATE_ATTEMPTS: usize = 8;

/// Why the Redis backend failed; the source of [`BackendError::Unavailable`] and
/// [`BackendError::Other`] from this backend. Messages name the host(s), never a password or a
/// session key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisBackendError {
    /// The `flamingo.session.redis.*` settings are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The PEM CA file named by `flamingo.session.redis.tlsCaFile` could not be read.
    #[error("flamingo.session.redis.tlsCaFile: cannot read {}: {source}", path.display())]
    CaFile {
        /// The configured path.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// Connecting (and the start-up PING) failed.
    #[error("cannot connect to Redis at {hosts} (flamingo.session.redis): {source}")]
    Connect {
        /// The configured host(s).
        hosts: String,
        /// What Redis or the network said.
        source: redis::RedisError,
    },
    /// A command failed.
    #[error("Redis at {hosts}: {operation} failed: {source}")]
    Command {
        /// The configured host(s).
        hosts: String,
        /// The backend operation, such as `load` or `save`.
        operation: &'static str,
        /// What Redis or the network said.
        source: redis::RedisError,
    },
    /// Nothing answered within `flamingo.session.redis.timeout`.
    #[error(
        "Redis at {hosts}: {operation} got no answer within flamingo.session.redis.timeout \
         ({timeout:?})"
    )]
    Timeout {
        /// The configured host(s).
        hosts: String,
        /// The backend operation, such as `load` or `connect`.
        operation: &'static str,
        /// The configured timeout.
        timeout: Duration,
    },
    /// A session value was to be stored under a field name starting with `__flamingo.`.
    #[error(
        "session keys starting with \"__flamingo.\" are reserved by the Redis session backend"
    )]
    ReservedKey,
    /// A script answered something this backend never returns (another program wrote there).
    #[error("Redis at {hosts}: unexpected answer to {operation}")]
    UnexpectedReply {
        /// The configured host(s).
        hosts: String,
        /// The backend operation.
        operation: &'static str,
    },
}

/// The Redis session backend: standalone or cluster, ACL user and password, database, TLS.
///
/// Build it from config with [`RedisBackend::connect`] (or let
/// [`Sessions`](crate::Sessions) do it for `flamingo.session.backend: redis`). The
/// [module documentation](self) describes how sessions are stored.
///
/// # Examples
///
/// ```no_run
/// use flamingo_session::{RedisBackend, SessionBackend, SessionConfig};
///
/// # async fn example() -> Result<(), flamingo_session::BackendError> {
/// let mut config = SessionConfig::default();
/// config.redis.host = "127.0.0.1:6379".to_owned();
/// let backend = RedisBackend::connect(&config.redis, config.store_length).await?;
/// assert!(backend.health().await.alive);
/// # Ok(())
/// # }
/// ```
pub struct RedisBackend {
    /// Tells this backend's connections apart in each thread's ([`connection::register`]).
    id: u64,
    connector: Connector,
    /// Connections per thread (`redis.idle.connections`).
    count: usize,
    scripts: Scripts,
    key_prefix: String,
    store_length: usize,
    timeout: Duration,
    hosts: String,
    cluster: bool,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("hosts", &self.hosts)
            .field("cluster", &self.cluster)
            .field("connections_per_thread", &self.count)
            .field("key_prefix", &self.key_prefix)
            .field("store_length", &self.store_length)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl RedisBackend {
    /// Connects to the Redis (or Redis Cluster) that `redis` (`flamingo.session.redis.*`)
    /// describes, after Flamingo's URL-versus-key precedence
    /// ([`RedisConfig::resolve`](crate::config::RedisConfig::resolve)), and PINGs it. Opens
    /// `redis.idle.connections` multiplexed connections per worker thread; sessions are limited
    /// to `store_length` bytes (`flamingo.session.store.length`).
    ///
    /// # Errors
    ///
    /// [`BackendError::Other`] for invalid settings or an unreadable `redis.tlsCaFile`;
    /// [`BackendError::Unavailable`] when Redis cannot be reached, refuses the credentials or the
    /// TLS handshake, or does not answer within `redis.timeout`. The message names the host(s),
    /// never the password.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use flamingo_session::{RedisBackend, SessionConfig};
    ///
    /// # async fn example() -> Result<(), flamingo_session::BackendError> {
    /// let mut config = SessionConfig::default();
    /// config.redis.url = Some("redis://app:secret@127.0.0.1:6379/3".to_owned());
    /// config.redis.timeout = std::time::Duration::from_secs(2);
    /// let backend = RedisBackend::connect(&config.redis, config.store_length).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(redis: &RedisConfig, store_length: usize) -> Result<Self, BackendError> {
        let resolved = redis
            .resolve()
            .map_err(|e| BackendError::other(RedisBackendError::Config(e)))?;
        let hosts = resolved.hosts.join(",");
        let certs = match &redis.tls_ca_file {
            Some(path) => Some(read_ca(path).await?),
            None => None,
        };
        let timeout = redis.timeout;
        let count = redis.idle_connections.max(1);
        let span = tracing::info_span!(
            "flamingo_session.redis.connect",
            hosts = %hosts,
            cluster = redis.cluster_mode,
            connections = count
        );
        let connect = async {
            let connector = if redis.cluster_mode {
                Connector::cluster(&resolved, certs, timeout)?
            } else {
                Connector::standalone(&resolved, certs, timeout)?
            };
            let connections = connector.connect(count).await?;
            let mut first = connections[0].clone();
            redis::cmd("PING").query_async::<()>(&mut first).await?;
            Ok::<_, redis::RedisError>((connector, connections))
        };
        let (connector, connections) = match tokio::time::timeout(timeout, connect)
            .instrument(span)
            .await
        {
            Ok(Ok(connected)) => connected,
            Ok(Err(source)) if !source.is_timeout() => {
                return Err(BackendError::unavailable(RedisBackendError::Connect {
                    hosts,
                    source,
                }))
            }
            // The client's own connection or response timeout (the same duration) fired first.
            Ok(Err(_)) | Err(_) => {
                return Err(BackendError::unavailable(RedisBackendError::Timeout {
                    hosts,
                    operation: "connect",
                    timeout,
                }))
            }
        };
        let key_prefix = match redis.key_prefix.trim() {
            "" => "session:".to_owned(),
            prefix => prefix.to_owned(),
        };
        if key_prefix.contains(['{', '}']) {
            return Err(BackendError::other(RedisBackendError::Config(
                ConfigError {
                    key: "flamingo.session.redis.keyPrefix".to_owned(),
                    message: "must not contain { or }: the first characters of a session ID are \
                          its Redis Cluster hash tag"
                        .to_owned(),
                },
            )));
        }
        tracing::info!(
            hosts = %hosts,
            cluster = redis.cluster_mode,
            connections_per_thread = count,
            key_prefix = %key_prefix,
            "connected to Redis for sessions"
        );
        // The connections made here serve this thread; every other thread opens its own.
        let id = connection::register(connections);
        Ok(RedisBackend {
            id,
            connector,
            count,
            scripts: Scripts::new(),
            key_prefix,
            store_length,
            timeout,
            hosts,
            cluster: redis.cluster_mode,
        })
    }

    /// The prefix of every session's Redis key (`redis.keyPrefix`, default `session:`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example(backend: flamingo_session::RedisBackend) {
    /// assert_eq!(backend.key_prefix(), "session:");
    /// # }
    /// ```
    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// `<prefix>{abc}<rest>` for the ID `abc<rest>`: the first three characters are the hash
    /// tag (an ID has at least 22).
    fn redis_key(&self, id: &SessionId) -> String {
        let (tag, rest) = id.expose().split_at(3);
        let mut key = String::with_capacity(self.key_prefix.len() + id.expose().len() + 2);
        key.push_str(&self.key_prefix);
        key.push('{');
        key.push_str(tag);
        key.push('}');
        key.push_str(rest);
        key
    }

    /// `<prefix>{<tag>}:owner:<owner key>`: in the hash slot of the owner's sessions, and never
    /// a session's key (an ID holds no `:`).
    fn index_key(&self, owner: &SessionOwner) -> String {
        format!(
            "{}{{{}}}:owner:{}",
            self.key_prefix,
            owner.tag(),
            owner.key()
        )
    }

    fn lease_key(&self, name: &str) -> String {
        format!("{}lease:{}", self.key_prefix, lease_key(name))
    }

    /// The next of this thread's connections, opened on first use in the thread. Connections
    /// are per thread so that each actix worker drives its own on its own runtime: a connection
    /// made on another thread costs two cross-thread wake-ups per command (BENCHMARKS.md).
    async fn connection(&self) -> redis::RedisResult<Conn> {
        connection::next(self.id, || self.connector.connect(self.count)).await
    }

    /// Drops this thread's connections, so that the next command opens new ones.
    fn forget_thread_connections(&self) {
        connection::forget(self.id);
    }

    /// Runs `command` on the next connection within the timeout. A command that fails because
    /// its connection dropped (Redis restarted, or the runtime that drove the connection ended)
    /// is sent once more on a fresh connection; every operation here is safe to repeat.
    async fn run<T, F, Fut>(&self, operation: &'static str, command: F) -> Result<T, BackendError>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let attempts = async {
            let conn = self.connection().await?;
            match command(conn).await {
                Err(err) if err.is_io_error() => {
                    tracing::debug!(error = %err, "Redis connection lost; retrying once on a new one");
                    self.forget_thread_connections();
                    command(self.connection().await?).await
                }
                other => other,
            }
        };
        match tokio::time::timeout(self.timeout, attempts).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) if !source.is_timeout() => Err(self.command_error(operation, source)),
            Ok(Err(_)) | Err(_) => Err(BackendError::unavailable(RedisBackendError::Timeout {
                hosts: self.hosts.clone(),
                operation,
                timeout: self.timeout,
            })),
        }
    }

    /// Stores `state` under a fresh ID, never over an existing session (a collision draws
    /// another ID, up to [`CREATE_ATTEMPTS`] times); with an `owner`, the ID carries the owner's
    /// tag and the session goes into the owner's index in the same script.
    async fn create_fresh(
        &self,
        state: SessionState,
        ttl: Duration,
        owner: Option<&SessionOwner>,
    ) -> Result<SessionId, BackendError> {
        check_reserved(state.keys())?;
        check_length(&state, self.store_length)?;
        let now = unix_now();
        let index_key = owner.map(|owner| self.index_key(owner));
        let value = encode(&state, index_key.as_deref().map(|index| (index, now)))?;
        let ttl = ttl_millis(ttl);
        let span = tracing::debug_span!(
            "flamingo_session.redis.create",
            owned = owner.is_some(),
            session = tracing::field::Empty
        );
        let record = span.clone();
        async {
            for _ in 0..CREATE_ATTEMPTS {
                let id = owner.map_or_else(SessionId::generate, SessionId::generate_for);
                record.record("session", tracing::field::display(&id));
                let redis_key = self.redis_key(&id);
                let written = match &index_key {
                    Some(index_key) => {
                        let reply = self
                            .run("create", |mut conn| {
                                let mut invocation = self.scripts.create_owned.key(&redis_key);
                                invocation
                                    .key(index_key)
                                    .arg(ttl)
                                    .arg(now)
                                    .arg(id.expose())
                                    .arg(&value);
                                async move { invocation.invoke_async::<i64>(&mut conn).await }
                            })
                            .await?;
                        self.written(reply, "create")?
                    }
                    None => self.set_if("create", &redis_key, &value, "NX", ttl).await?,
                };
                if written {
                    return Ok(id);
                }
                tracing::debug!("session ID collision; trying another ID");
            }
            Err(BackendError::other(format!(
                "no free session ID found in {CREATE_ATTEMPTS} attempts in Redis at {}",
                self.hosts
            )))
        }
        .instrument(span)
        .await
    }

    /// Sorts a failed command by what it means for the session: data of another type at the
    /// key (`WRONGTYPE`) is corrupt, a refusal that says the request or the data is wrong is
    /// [`BackendError::Other`], and everything that says the store cannot serve now (network,
    /// failover, cluster reconfiguring, loading, credentials) is unavailable.
    fn command_error(&self, operation: &'static str, source: redis::RedisError) -> BackendError {
        let wrong_type = source.code() == Some("WRONGTYPE");
        let wrong_data = match source.kind() {
            ErrorKind::Server(kind) => matches!(
                kind,
                ServerErrorKind::ResponseError
                    | ServerErrorKind::ExecAbort
                    | ServerErrorKind::NoScript
                    | ServerErrorKind::CrossSlot
            ),
            ErrorKind::Parse | ErrorKind::UnexpectedReturnType | ErrorKind::InvalidClientConfig => {
                true
            }
            ErrorKind::Extension => !matches!(source.code(), Some("NOAUTH" | "WRONGPASS")),
            _ => false,
        };
        let err = RedisBackendError::Command {
            hosts: self.hosts.clone(),
            operation,
            source,
        };
        if wrong_type {
            BackendError::Corrupt(err.to_string())
        } else if wrong_data {
            BackendError::other(err)
        } else {
            BackendError::unavailable(err)
        }
    }

    /// `SET key value NX|XX PX ttl`: whether it was written, which is only if the key is new
    /// (`NX`) or still there (`XX`).
    async fn set_if(
        &self,
        operation: &'static str,
        key: &str,
        value: &[u8],
        condition: &str,
        ttl_millis: u64,
    ) -> Result<bool, BackendError> {
        let reply = self
            .run(operation, |mut conn| {
                let mut command = redis::cmd("SET");
                command
                    .arg(key)
                    .arg(value)
                    .arg(condition)
                    .arg("PX")
                    .arg(ttl_millis);
                async move { command.query_async::<Option<()>>(&mut conn).await }
            })
            .await?;
        Ok(reply.is_some())
    }

    /// A write script's answer: 1 written, 0 not (the key exists, or is gone); anything else
    /// means another program wrote there.
    fn written(&self, reply: i64, operation: &'static str) -> Result<bool, BackendError> {
        match reply {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(self.unexpected(operation)),
        }
    }

    fn unexpected(&self, operation: &'static str) -> BackendError {
        BackendError::other(RedisBackendError::UnexpectedReply {
            hosts: self.hosts.clone(),
            operation,
        })
    }
}

#[async_trait]
impl SessionBackend for RedisBackend {
    fn name(&self) -> &str {
        "redis"
    }

    async fn load(&self, id: &SessionId) -> Result<Option<SessionState>, BackendError> {
        let span = tracing::debug_span!("flamingo_session.redis.load", session = %id);
        let redis_key = self.redis_key(id);
        let value = self
            .run("load", |mut conn| {
                let redis_key = &redis_key;
                async move {
                    redis::cmd("GET")
                        .arg(redis_key)
                        .query_async::<Option<Vec<u8>>>(&mut conn)
                        .await
                }
            })
            .instrument(span)
            .await;
        match value {
            Ok(Some(value)) => decode(&value).map(Some),
            Ok(None) => Ok(None),
            // Corrupt (WRONGTYPE): something else (a hash of an earlier version, an old Flamingo
            // gob string) sits at the key. Any other refusal is an outage, never a reason to
            // start the session afresh: that would lose it.
            Err(BackendError::Other(source)) => Err(BackendError::Unavailable(source)),
            Err(err) => Err(err),
        }
    }

    async fn create(&self, state: SessionState, ttl: Duration) -> Result<SessionId, BackendError> {
        self.create_fresh(state, ttl, None).await
    }

    async fn save(
        &self,
        id: &SessionId,
        change: SessionChange,
        ttl: Duration,
    ) -> Result<SaveOutcome, BackendError> {
        let span = tracing::debug_span!("flamingo_session.redis.save", session = %id);
        let redis_key = self.redis_key(id);
        let ttl = ttl_millis(ttl);
        match change {
            SessionChange::Replace(state) => {
                check_reserved(state.keys())?;
                check_length(&state, self.store_length)?;
                let value = encode(&state, None)?;
                let written = if id.is_owned_form() {
                    let reply = self
                        .run("save", |mut conn| {
                            let mut invocation = self.scripts.replace_owned.key(&redis_key);
                            invocation
                                .arg(ttl)
                                .arg(unix_now())
                                .arg(id.expose())
                                .arg(&value);
                            async move { invocation.invoke_async::<i64>(&mut conn).await }
                        })
                        .instrument(span)
                        .await?;
                    self.written(reply, "save")?
                } else {
                    self.set_if("save", &redis_key, &value, "XX", ttl)
                        .instrument(span)
                        .await?
                };
                Ok(if written {
                    SaveOutcome::Saved
                } else {
                    SaveOutcome::Gone
                })
            }
            SessionChange::Merge { set, remove } => {
                check_reserved(set.keys())?;
                // The merged state holds every set key, so this much is over the limit anyway.
                check_length(&set, self.store_length)?;
                let remove: Vec<String> = remove
                    .into_iter()
                    .filter(|field| !field.starts_with(META_PREFIX) && !set.contains_key(field))
                    .collect();
                let (written, size) = self
                    .run("save", |mut conn| {
                        let mut invocation = self.scripts.merge.key(&redis_key);
                        invocation
                            .arg(ttl)
                            .arg(self.store_length)
                            .arg(unix_now())
                            .arg(id.expose())
                            .arg(remove.len())
                            .arg(&remove);
                        for (field, value) in &set {
                            invocation.arg(field).arg(value);
                        }
                        async move { invocation.invoke_async::<(i64, i64)>(&mut conn).await }
                    })
                    .instrument(span)
                    .await?;
                match written {
                    1 => Ok(SaveOutcome::Saved),
                    -1 => Ok(SaveOutcome::Gone),
                    0 => Err(BackendError::TooLarge {
                        size: usize::try_from(size).unwrap_or(usize::MAX),
                        limit: self.store_length,
                    }),
                    _ => Err(self.unexpected("save")),
                }
            }
        }
    }

    async fn touch(&self, id: &SessionId, ttl: Duration) -> Result<SaveOutcome, BackendError> {
        let span = tracing::debug_span!("flamingo_session.redis.touch", session = %id);
        let redis_key = self.redis_key(id);
        let ttl = ttl_millis(ttl);
        let touched = self
            .run("touch", |mut conn| {
                let command = if id.is_owned_form() {
                    let mut invocation = self.scripts.touch_owned.key(&redis_key);
                    invocation.arg(ttl).arg(unix_now()).arg(id.expose());
                    Touch::Owned(invocation)
                } else {
                    let mut command = redis::cmd("PEXPIRE");
                    command.arg(&redis_key).arg(ttl);
                    Touch::Plain(command)
                };
                async move {
                    match command {
                        Touch::Owned(invocation) => invocation.invoke_async::<i64>(&mut conn).await,
                        Touch::Plain(command) => command.query_async::<i64>(&mut conn).await,
                    }
                }
            })
            .instrument(span)
            .await?;
        Ok(if touched == 1 {
            SaveOutcome::Saved
        } else {
            SaveOutcome::Gone
        })
    }

    async fn delete(&self, id: &SessionId) -> Result<(), BackendError> {
        let span = tracing::debug_span!("flamingo_session.redis.delete", session = %id);
        let redis_key = self.redis_key(id);
        self.run("delete", |mut conn| {
            let redis_key = &redis_key;
            async move {
                redis::cmd("DEL")
                    .arg(redis_key)
                    .query_async::<i64>(&mut conn)
                    .await
            }
        })
        .instrument(span)
        .await?;
        Ok(())
    }

    async fn health(&self) -> HealthStatus {
        let span = tracing::debug_span!("flamingo_session.redis.health");
        let ping = self
            .run("PING", |mut conn| async move {
                redis::cmd("PING").query_async::<()>(&mut conn).await
            })
            .instrument(span)
            .await;
        match ping {
            Ok(()) => HealthStatus::up(),
            Err(err) => HealthStatus::down(err.to_string()),
        }
    }

    fn index(&self) -> Option<&dyn SessionIndex> {
        Some(self)
    }

    fn leases(&self) -> Option<&dyn Leases> {
        Some(self)
    }
}

#[async_trait]
impl SessionIndex for RedisBackend {
    async fn create_owned(
        &self,
        owner: &SessionOwner,
        state: SessionState,
        ttl: Duration,
    ) -> Result<SessionId, BackendError> {
        self.create_fresh(state, ttl, Some(owner)).await
    }

    async fn list(&self, owner: &SessionOwner) -> Result<Vec<IndexedSession>, BackendError> {
        let index_key = self.index_key(owner);
        let reply = self
            .run("list sessions", |mut conn| {
                let mut invocation = self.scripts.list.key(&index_key);
                invocation.arg(&self.key_prefix);
                async move { invocation.invoke_async::<Vec<String>>(&mut conn).await }
            })
            .await?;
        let mut sessions = Vec::with_capacity(reply.len() / 3);
        for entry in reply.chunks_exact(3) {
            let (Ok(id), Ok(created), Ok(last_seen)) = (
                SessionId::parse(&entry[0]),
                entry[1].parse::<u64>(),
                entry[2].parse::<f64>(),
            ) else {
                return Err(BackendError::Corrupt(
                    "an owner's session index holds an entry that is not a session".to_owned(),
                ));
            };
            sessions.push(IndexedSession {
                id,
                created,
                // A score is a double holding a whole Unix second.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                last_seen: last_seen as u64,
            });
        }
        sessions.sort_by_key(|session| session.created);
        Ok(sessions)
    }

    async fn end(&self, owner: &SessionOwner, id: &SessionId) -> Result<bool, BackendError> {
        let index_key = self.index_key(owner);
        let ended = self
            .run("end session", |mut conn| {
                let mut invocation = self.scripts.end.key(&index_key);
                invocation.arg(&self.key_prefix).arg(id.expose());
                async move { invocation.invoke_async::<i64>(&mut conn).await }
            })
            .await?;
        Ok(ended == 1)
    }

    async fn end_all(&self, owner: &SessionOwner) -> Result<usize, BackendError> {
        let index_key = self.index_key(owner);
        let ended = self
            .run("end sessions", |mut conn| {
                let mut invocation = self.scripts.end_all.key(&index_key);
                invocation.arg(&self.key_prefix);
                async move { invocation.invoke_async::<i64>(&mut conn).await }
            })
            .await?;
        Ok(usize::try_from(ended).unwrap_or(0))
    }
}

#[async_trait]
impl Leases for RedisBackend {
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, BackendError> {
        let key = self.lease_key(name);
        let taken = self
            .run("acquire lease", |mut conn| {
                let mut invocation = self.scripts.acquire.key(&key);
                invocation.arg(holder).arg(ttl_millis(ttl));
                async move { invocation.invoke_async::<i64>(&mut conn).await }
            })
            .await?;
        Ok(taken == 1)
    }

    async fn renew(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, BackendError> {
        let key = self.lease_key(name);
        let renewed = self
            .run("renew lease", |mut conn| {
                let mut invocation = self.scripts.renew.key(&key);
                invocation.arg(holder).arg(ttl_millis(ttl));
                async move { invocation.invoke_async::<i64>(&mut conn).await }
            })
            .await?;
        Ok(renewed == 1)
    }

    async fn holder(&self, name: &str) -> Result<Option<String>, BackendError> {
        let key = self.lease_key(name);
        self.run("read lease", |mut conn| {
            let key = &key;
            async move {
                redis::cmd("GET")
                    .arg(key)
                    .query_async::<Option<String>>(&mut conn)
                    .await
            }
        })
        .await
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), BackendError> {
        let key = self.lease_key(name);
        self.run("release lease", |mut conn| {
            let mut invocation = self.scripts.release.key(&key);
            invocation.arg(holder);
            async move { invocation.invoke_async::<i64>(&mut conn).await }
        })
        .await?;
        Ok(())
    }
}

/// Refuses the reserved prefix `__flamingo.` as a session key.
fn check_reserved<'a>(mut keys: impl Iterator<Item = &'a String>) -> Result<(), BackendError> {
    if keys.any(|k| k.starts_with(META_PREFIX)) {
        return Err(BackendError::other(RedisBackendError::ReservedKey));
    }
    Ok(())
}

/// A touch: a plain `PEXPIRE`, or the script that also keeps an owner's index.
enum Touch<'a> {
    Plain(Cmd),
    Owned(redis::ScriptInvocation<'a>),
}

/// A TTL in whole milliseconds, at least 1 (`PEXPIRE 0` would delete the session at once).
fn ttl_millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Drop for RedisBackend {
    /// Closes this thread's connections; other threads' close when those threads end.
    fn drop(&mut self) {
        connection::forget(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_is_never_zero() {
        assert_eq!(ttl_millis(Duration::ZERO), 1);
        assert_eq!(ttl_millis(Duration::from_secs(2)), 2000);
    }
}
