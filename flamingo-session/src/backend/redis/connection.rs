//! The Redis backend's connections: each worker thread's multiplexed connections (standalone or
//! cluster), opened on first use in the thread and used in turn, and how they are configured.

use std::{
    cell::RefCell,
    collections::HashMap,
    path::Path,
    sync::atomic::{AtomicU64, AtomicUsize, Ordering},
    time::Duration,
};

use redis::{
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    cluster::ClusterClientBuilder,
    cluster_async::ClusterConnection,
    Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo as _, Pipeline, ProtocolVersion,
    RedisConnectionInfo, RedisFuture, TlsCertificates, Value,
};

use super::RedisBackendError;
use crate::{backend::BackendError, config::RedisConnection};

/// One connection to use for a command: cheap to clone, multiplexed.
#[derive(Clone)]
pub(super) enum Conn {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Standalone(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Standalone(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Standalone(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

pub(super) async fn read_ca(path: &Path) -> Result<TlsCertificates, BackendError> {
    let pem = tokio::fs::read(path).await.map_err(|source| {
        BackendError::other(RedisBackendError::CaFile {
            path: path.to_owned(),
            source,
        })
    })?;
    Ok(TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    })
}

/// Splits a `host:port` or `[v6]:port` entry (already validated by the config).
fn split_host(entry: &str) -> (String, u16) {
    let (host, port) = entry.rsplit_once(':').unwrap_or((entry, "6379"));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (host.to_owned(), port.parse().unwrap_or(6379))
}

fn connection_info(entry: &str, resolved: &RedisConnection) -> redis::RedisResult<ConnectionInfo> {
    let (host, port) = split_host(entry);
    let addr = if resolved.tls {
        ConnectionAddr::TcpTls {
            host,
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host, port)
    };
    let mut redis = RedisConnectionInfo::default()
        .set_db(resolved.database)
        .set_protocol(ProtocolVersion::RESP2);
    if let Some(username) = &resolved.username {
        redis = redis.set_username(username);
    }
    if !resolved.password.is_empty() {
        redis = redis.set_password(&resolved.password);
    }
    Ok(addr.into_connection_info()?.set_redis_settings(redis))
}

static NEXT_BACKEND_ID: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Each thread's connections, per backend.
    static THREAD_CONNECTIONS: RefCell<HashMap<u64, ThreadSlot>> = RefCell::new(HashMap::new());
}

/// One thread's connections of one backend, made once: the requests that arrive while the
/// first connect runs wait for it instead of each opening connections of their own.
type ThreadSlot = std::sync::Arc<tokio::sync::OnceCell<ThreadConnections>>;

/// One thread's connections of one backend, used in turn.
struct ThreadConnections {
    connections: Vec<Conn>,
    next: AtomicUsize,
}

impl ThreadConnections {
    fn new(connections: Vec<Conn>) -> Self {
        ThreadConnections {
            connections,
            next: AtomicUsize::new(0),
        }
    }

    fn next(&self) -> Conn {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.connections[i % self.connections.len()].clone()
    }
}

/// What it takes to open connections: a client for the configured server or cluster.
pub(super) enum Connector {
    Standalone {
        client: redis::Client,
        config: ConnectionManagerConfig,
    },
    Cluster(redis::cluster::ClusterClient),
}

impl Connector {
    pub(super) fn standalone(
        resolved: &RedisConnection,
        certs: Option<TlsCertificates>,
        timeout: Duration,
    ) -> redis::RedisResult<Connector> {
        let info = connection_info(&resolved.hosts[0], resolved)?;
        let client = match certs {
            Some(certs) => redis::Client::build_with_tls(info, certs)?,
            None => redis::Client::open(info)?,
        };
        // No retry loop inside a connection: a reconnect is one attempt, made when the
        // connection is next used, so requests during an outage fail fast instead of queueing
        // behind back-offs.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(0);
        Ok(Connector::Standalone { client, config })
    }

    pub(super) fn cluster(
        resolved: &RedisConnection,
        certs: Option<TlsCertificates>,
        timeout: Duration,
    ) -> redis::RedisResult<Connector> {
        let seeds: Vec<ConnectionInfo> = resolved
            .hosts
            .iter()
            .map(|host| connection_info(host, resolved))
            .collect::<redis::RedisResult<_>>()?;
        let mut builder = ClusterClientBuilder::new(seeds)
            .connection_timeout(timeout)
            .response_timeout(timeout);
        if let Some(certs) = certs {
            builder = builder.certs(certs);
        }
        Ok(Connector::Cluster(builder.build()?))
    }

    /// Opens `count` multiplexed connections on the current runtime.
    pub(super) async fn connect(&self, count: usize) -> redis::RedisResult<Vec<Conn>> {
        futures_util::future::try_join_all((0..count.max(1)).map(|_| async {
            Ok(match self {
                Connector::Standalone { client, config } => Conn::Standalone(
                    ConnectionManager::new_with_config(client.clone(), config.clone()).await?,
                ),
                Connector::Cluster(client) => Conn::Cluster(client.get_async_connection().await?),
            })
        }))
        .await
    }
}

/// Hands this thread's `connections` to a new backend; returns the backend's ID, which tells its
/// connections apart from other backends' in every thread.
pub(super) fn register(connections: Vec<Conn>) -> u64 {
    let id = NEXT_BACKEND_ID.fetch_add(1, Ordering::Relaxed);
    THREAD_CONNECTIONS.with(|map| {
        let slot = ThreadSlot::default();
        let _ = slot.set(ThreadConnections::new(connections));
        map.borrow_mut().insert(id, slot)
    });
    id
}

/// The next of this thread's connections of backend `id`, opened with `open` on first use in the
/// thread. Connections are per thread so that each actix worker drives its own on its own
/// runtime: a connection made on another thread costs two cross-thread wake-ups per command
/// (BENCHMARKS.md).
pub(super) async fn next<F, Fut>(id: u64, open: F) -> redis::RedisResult<Conn>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = redis::RedisResult<Vec<Conn>>>,
{
    let slot = THREAD_CONNECTIONS.with(|map| {
        map.borrow_mut()
            .entry(id)
            .or_insert_with(ThreadSlot::default)
            .clone()
    });
    let connections = slot
        .get_or_try_init(|| async {
            Ok::<_, redis::RedisError>(ThreadConnections::new(open().await?))
        })
        .await?;
    Ok(connections.next())
}

/// Drops this thread's connections of backend `id`, so that its next command opens new ones.
pub(super) fn forget(id: u64) {
    let _ = THREAD_CONNECTIONS.try_with(|map| map.borrow_mut().remove(&id));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_split_into_name_and_port() {
        assert_eq!(split_host("127.0.0.1:6380"), ("127.0.0.1".to_owned(), 6380));
        assert_eq!(split_host("[::1]:7000"), ("::1".to_owned(), 7000));
        assert_eq!(split_host("redis"), ("redis".to_owned(), 6379));
    }
}
