//! The Redis backend against real redis-server processes: standalone, an ACL user with
//! database 3, TLS with a private CA, and a 3-master cluster. Each runs the public conformance
//! suite, then the Redis-specific behaviour: key prefix and data layout, TTL = max.age, keys
//! spread over the cluster, sessions surviving a backend restart, clear errors for wrong
//! credentials and dead servers, recovery after an outage, and concurrent merges.

mod support;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use flamingo_session::{
    backend::{SaveOutcome, SessionBackend, SessionChange, SessionId, SessionOwner, SessionState},
    config::BackendKind,
    conformance, BackendError, RedisBackend, SessionConfig,
};
use support::redis::{id_of_key, session_key, RedisCluster, RedisServer};

const STORE_LENGTH: usize = 4096;
const TIMEOUT: Duration = Duration::from_secs(2);

fn config(host: &str) -> SessionConfig {
    let mut config = SessionConfig {
        backend: BackendKind::Redis,
        store_length: STORE_LENGTH,
        max_age: Duration::from_secs(3600),
        ..SessionConfig::default()
    };
    config.redis.host = host.to_owned();
    config.redis.timeout = TIMEOUT;
    config.redis.idle_connections = 4;
    config
}

fn state(pairs: &[(&str, &str)]) -> SessionState {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn open(config: &SessionConfig) -> RedisBackend {
    RedisBackend::connect(&config.redis, config.store_length)
        .await
        .unwrap_or_else(|e| panic!("connect to Redis with {:?}: {e}", config.redis))
}

/// Keys under `pattern` that `redis-cli --scan` lists on `server` (in database `db`).
fn scan(server: &RedisServer, db: u32, pattern: &str) -> Vec<String> {
    server
        .cli(&["-n", &db.to_string(), "--scan", "--pattern", pattern])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Checks the layout of one stored session: one string at `session:<key>` holding a JSON object
/// whose members are the session's keys with their JSON texts as strings, and a TTL of max.age;
/// an owned session also carries its owner fields, which a replace keeps.
async fn check_layout(
    backend: &RedisBackend,
    server: &RedisServer,
    db: u32,
    config: &SessionConfig,
) {
    let value = r#"{"t":"String","v":"h\u00e9llo \"quoted\""}"#;
    let key = backend
        .create(state(&[("greeting", value)]), config.max_age)
        .await
        .expect("create");
    let redis_key = session_key(&key);
    assert!(
        scan(server, db, "session:*").contains(&redis_key),
        "the session must be stored at session:{{<tag>}}<rest of the key> in database {db}"
    );
    let n = db.to_string();
    assert_eq!(server.cli(&["-n", &n, "type", &redis_key]).trim(), "string");
    let stored = stored_object(server, &["-n", &n], &redis_key);
    assert_eq!(
        stored,
        serde_json::json!({ "greeting": value }),
        "the stored object must hold the JSON text itself as a string, nothing else"
    );
    let pttl: i64 = server
        .cli(&["-n", &n, "pttl", &redis_key])
        .trim()
        .parse()
        .expect("PTTL is a number");
    let max_age = i64::try_from(config.max_age.as_millis()).unwrap();
    assert!(
        (max_age - 1000..=max_age).contains(&pttl),
        "the key's TTL must be max.age ({max_age} ms), got {pttl} ms"
    );

    // An owner's session: its owner fields survive a replace, and the replace is not an owner's.
    let owner = SessionOwner::new("layout\u{1f}ada").unwrap();
    let index = backend.index().expect("the Redis backend indexes owners");
    let owned = index
        .create_owned(&owner, state(&[("a", "1")]), config.max_age)
        .await
        .expect("create owned");
    assert!(owned.is_owned_form() && !key.is_owned_form());
    assert_eq!(
        backend
            .save(
                &owned,
                SessionChange::Replace(state(&[("b", "2")])),
                config.max_age
            )
            .await
            .unwrap(),
        SaveOutcome::Saved
    );
    let stored = stored_object(server, &["-n", &n], &session_key(&owned));
    assert_eq!(stored["b"], "2");
    assert!(stored.get("a").is_none(), "a replace drops the old keys");
    assert!(
        stored["__flamingo.owner"]
            .as_str()
            .is_some_and(|index| index.contains(":owner:")),
        "the owner field is kept: {stored}"
    );
    assert!(stored["__flamingo.created"].is_string(), "{stored}");
    assert_eq!(
        backend.load(&owned).await.unwrap(),
        Some(state(&[("b", "2")])),
        "owner fields never reach the session"
    );
    let listed = index.list(&owner).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, owned);
    assert_eq!(index.end_all(&owner).await.unwrap(), 1);
}

/// The JSON object stored at `redis_key` (`redis-cli GET`, with `args` first).
fn stored_object(server: &RedisServer, args: &[&str], redis_key: &str) -> serde_json::Value {
    let mut command = args.to_vec();
    command.extend(["get", redis_key]);
    let text = server.cli(&command);
    serde_json::from_str(text.trim_end_matches('\n'))
        .unwrap_or_else(|e| panic!("the stored session is a JSON object ({e}): {text}"))
}

/// 100 tasks each merge their own key into one session at the same time: all 100 are kept.
async fn check_concurrent_merges(backend: Arc<RedisBackend>) {
    let target = backend
        .create(SessionState::new(), Duration::from_secs(600))
        .await
        .expect("create");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let backend = Arc::clone(&backend);
        let target = target.clone();
        tasks.spawn(async move {
            let field = format!("task{i}");
            backend
                .save(
                    &target,
                    SessionChange::Merge {
                        set: state(&[(field.as_str(), "1")]),
                        remove: vec![],
                    },
                    Duration::from_secs(600),
                )
                .await
        });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(
            result.expect("task").expect("concurrent merge"),
            SaveOutcome::Saved
        );
    }
    let merged = backend.load(&target).await.expect("load").expect("session");
    assert_eq!(merged.len(), 100, "all 100 concurrent merges must be kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standalone_conforms_and_stores_one_string_per_session() {
    let server = RedisServer::standalone();
    let config = config(&server.host());
    let backend = Arc::new(open(&config).await);

    conformance::run(backend.as_ref(), STORE_LENGTH).await;
    check_layout(&backend, &server, 0, &config).await;
    check_concurrent_merges(Arc::clone(&backend)).await;
    assert!(backend.health().await.alive);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_empty_session_exists_and_the_owner_fields_are_reserved() {
    let server = RedisServer::standalone();
    let backend = open(&config(&server.host())).await;
    let key = backend
        .create(SessionState::new(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(server.cli(&["exists", &session_key(&key)]).trim(), "1");
    assert_eq!(backend.load(&key).await.unwrap(), Some(SessionState::new()));

    // Removing every key leaves an empty session, not a missing one.
    assert_eq!(
        backend
            .save(
                &key,
                SessionChange::Merge {
                    set: state(&[("a", "1")]),
                    remove: vec![],
                },
                Duration::from_secs(60),
            )
            .await
            .unwrap(),
        SaveOutcome::Saved
    );
    assert_eq!(
        backend
            .save(
                &key,
                SessionChange::Merge {
                    set: SessionState::new(),
                    remove: vec!["a".into()],
                },
                Duration::from_secs(60),
            )
            .await
            .unwrap(),
        SaveOutcome::Saved
    );
    assert_eq!(backend.load(&key).await.unwrap(), Some(SessionState::new()));

    // The owner fields' names are reserved.
    let err = backend
        .create(
            state(&[("__flamingo.owner", "\"x\"")]),
            Duration::from_secs(60),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("reserved"), "{err}");

    // A key that is not one of ours cannot even be named.
    assert!("../etc/passwd".parse::<SessionId>().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_merge_is_checked_inside_redis_and_leaves_the_session_intact() {
    let server = RedisServer::standalone();
    // Two instances of the app: neither sees what the other wrote, only Redis does.
    let one = open(&config(&server.host())).await;
    let two = open(&config(&server.host())).await;
    let ttl = Duration::from_secs(60);
    let key = one.create(state(&[("keep", "1")]), ttl).await.unwrap();
    let big = "x".repeat(STORE_LENGTH - 30);
    let merge = |field: &str, value: &str, remove: &[&str]| SessionChange::Merge {
        set: state(&[(field, value)]),
        remove: remove.iter().map(|r| (*r).to_owned()).collect(),
    };
    assert_eq!(
        one.save(&key, merge("outside", &big, &[]), ttl)
            .await
            .unwrap(),
        SaveOutcome::Saved
    );
    let err = two
        .save(&key, merge("more", "0123456789abcdefghij", &[]), ttl)
        .await
        .unwrap_err();
    match err {
        BackendError::TooLarge { size, limit } => {
            assert_eq!(limit, STORE_LENGTH);
            assert_eq!(
                size,
                "keep".len() + 1 + "outside".len() + big.len() + "more".len() + 20
            );
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let stored = one.load(&key).await.unwrap().unwrap();
    assert_eq!(stored.len(), 2, "nothing may be written by a refused merge");
    assert!(!stored.contains_key("more"));
    // Removing the big value in the same merge makes it fit; the stored size follows.
    assert_eq!(
        two.save(&key, merge("more", "0123456789", &["outside"]), ttl)
            .await
            .unwrap(),
        SaveOutcome::Saved
    );
    assert_eq!(
        one.load(&key).await.unwrap().unwrap(),
        state(&[("keep", "1"), ("more", "0123456789")])
    );
    assert_eq!(
        stored_object(&server, &[], &session_key(&key)),
        serde_json::json!({ "keep": "1", "more": "0123456789" })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_survive_a_backend_restart() {
    let server = RedisServer::standalone();
    let config = config(&server.host());
    let backend = open(&config).await;
    let data = state(&[("user", r#"{"t":"String","v":"ada"}"#)]);
    let key = backend.create(data.clone(), config.max_age).await.unwrap();
    drop(backend);

    let backend = open(&config).await;
    assert_eq!(backend.load(&key).await.unwrap(), Some(data));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acl_user_with_password_and_database_3() {
    let server = RedisServer::with_acl("sessions", "s3cret-pw");
    let mut config = config(&server.host());
    config.redis.username = Some("sessions".to_owned());
    config.redis.password = "s3cret-pw".to_owned();
    config.redis.database = 3;
    let backend = Arc::new(open(&config).await);

    conformance::run(backend.as_ref(), STORE_LENGTH).await;
    check_layout(&backend, &server, 3, &config).await;
    check_concurrent_merges(Arc::clone(&backend)).await;
    assert!(
        scan(&server, 0, "*").is_empty(),
        "nothing may be written to database 0 when database 3 is configured"
    );

    // The same through a URL, whose credentials and database beat the keys.
    let mut by_url = config.clone();
    by_url.redis.url = Some(format!("redis://sessions:s3cret-pw@{}/3", server.host()));
    by_url.redis.username = None;
    by_url.redis.password = "wrong".to_owned();
    by_url.redis.database = 0;
    let via_url = open(&by_url).await;
    let key = via_url
        .create(state(&[("u", "1")]), config.max_age)
        .await
        .unwrap();
    assert!(scan(&server, 3, "session:*").contains(&session_key(&key)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_credentials_are_a_clear_error_without_the_password() {
    let server = RedisServer::with_acl("sessions", "right-pw");
    let mut config = config(&server.host());
    config.redis.username = Some("sessions".to_owned());
    config.redis.password = "wrong-pw-1234".to_owned();
    let err = RedisBackend::connect(&config.redis, config.store_length)
        .await
        .unwrap_err();
    let message = format!("{err} / {err:?}");
    assert!(matches!(err, BackendError::Unavailable(_)), "{message}");
    assert!(
        message.contains(&server.host()),
        "the error must name the host: {message}"
    );
    assert!(
        message.to_lowercase().contains("password"),
        "the error must say the credentials were refused: {message}"
    );
    assert!(
        !message.contains("wrong-pw-1234"),
        "the password leaked: {message}"
    );

    // No credentials at all against a server whose default user is off.
    let anonymous = self::config(&server.host());
    let err = RedisBackend::connect(&anonymous.redis, anonymous.store_length)
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Unavailable(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_with_a_private_ca() {
    let server = RedisServer::tls();
    let ca = server.tls_files().expect("TLS files").ca.clone();
    let mut config = config(&server.host());
    config.redis.tls = true;
    config.redis.tls_ca_file = Some(ca.clone());
    let backend = Arc::new(open(&config).await);

    conformance::run(backend.as_ref(), STORE_LENGTH).await;
    check_layout(&backend, &server, 0, &config).await;
    assert!(backend.health().await.alive);

    // A rediss:// URL turns TLS on just as well.
    let mut by_url = self::config("ignored:1");
    by_url.redis.url = Some(format!("rediss://{}", server.host()));
    by_url.redis.tls_ca_file = Some(ca);
    open(&by_url).await;

    // Without the private CA the certificate is not trusted: verification is on.
    let mut untrusted = config.clone();
    untrusted.redis.tls_ca_file = None;
    let err = RedisBackend::connect(&untrusted.redis, untrusted.store_length)
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains(&server.host()), "{err}");

    // Plain text to a TLS port does not work either.
    let mut plain = config.clone();
    plain.redis.tls = false;
    plain.redis.tls_ca_file = None;
    assert!(RedisBackend::connect(&plain.redis, plain.store_length)
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_server_is_an_error_within_the_timeout() {
    // Nothing listens on this port.
    let port = support::redis::free_port(false);
    let started = Instant::now();
    let err = RedisBackend::connect(&config(&format!("127.0.0.1:{port}")).redis, STORE_LENGTH)
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Unavailable(_)), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(
        started.elapsed() < TIMEOUT * 3,
        "took {:?}",
        started.elapsed()
    );

    // Something accepts the connection but never answers: the timeout ends the wait.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let err = RedisBackend::connect(&config(&host).redis, STORE_LENGTH)
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Unavailable(_)), "{err}");
    assert!(err.to_string().contains("timeout"), "{err}");
    assert!(
        started.elapsed() < TIMEOUT * 3,
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_is_an_error_within_the_timeout_and_the_backend_recovers() {
    let mut server = RedisServer::standalone();
    let config = config(&server.host());
    let backend = open(&config).await;
    let ttl = Duration::from_secs(60);
    backend.create(state(&[("a", "1")]), ttl).await.unwrap();

    // A stalled server: connections stay open, nothing answers.
    server.freeze();
    let started = Instant::now();
    let err = backend
        .load(&flamingo_session::SessionId::generate())
        .await
        .unwrap_err();
    assert!(matches!(err, BackendError::Unavailable(_)), "{err}");
    assert!(
        started.elapsed() < TIMEOUT * 3,
        "took {:?}",
        started.elapsed()
    );
    let health = backend.health().await;
    assert!(!health.alive);
    assert!(
        health.details.contains(&server.host()),
        "{}",
        health.details
    );
    server.thaw();
    assert!(
        backend.health().await.alive,
        "a thawed server must answer again"
    );

    // A stopped server: every operation fails, health is down.
    server.stop();
    let started = Instant::now();
    for result in [
        backend.create(state(&[("a", "1")]), ttl).await.map(|_| ()),
        backend
            .load(&flamingo_session::SessionId::generate())
            .await
            .map(|_| ()),
    ] {
        assert!(
            matches!(result, Err(BackendError::Unavailable(_))),
            "{result:?}"
        );
    }
    assert!(
        started.elapsed() < TIMEOUT * 3,
        "took {:?}",
        started.elapsed()
    );
    assert!(!backend.health().await.alive);

    // Back again (empty: persistence is off): the same backend works without a restart, on
    // every one of its connections.
    server.restart();
    for _ in 0..config.redis.idle_connections * 2 {
        let key = backend
            .create(state(&[("back", "1")]), ttl)
            .await
            .expect("the backend must reconnect by itself");
        assert!(SessionId::parse(key.expose()).is_ok());
        assert_eq!(
            backend.load(&key).await.unwrap(),
            Some(state(&[("back", "1")]))
        );
    }
    assert!(backend.health().await.alive);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_of_three_masters() {
    let mut cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3))
        .await
        .expect("start the cluster");
    let mut config = config(&cluster.hosts().join(","));
    config.redis.cluster_mode = true;
    let backend = Arc::new(open(&config).await);

    conformance::run(backend.as_ref(), STORE_LENGTH).await;
    check_concurrent_merges(Arc::clone(&backend)).await;
    assert!(backend.health().await.alive);

    // An owner's index and sessions share one hash slot, so one node holds them all (each
    // index operation is one script on that node).
    let owner = SessionOwner::new("cluster\u{1f}ada").unwrap();
    let index = backend.index().expect("Redis has an index");
    let mut owned = Vec::new();
    for _ in 0..5 {
        owned.push(
            index
                .create_owned(&owner, SessionState::new(), config.max_age)
                .await
                .unwrap(),
        );
    }
    let holding: Vec<usize> = cluster
        .nodes()
        .iter()
        .enumerate()
        .filter(|(_, node)| {
            let keys = scan(node, 0, "session:*");
            owned.iter().any(|id| keys.contains(&session_key(id)))
                || keys.iter().any(|k| k.ends_with(owner.key()))
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        holding.len(),
        1,
        "an owner's index and its sessions must live on one node, found on {holding:?}"
    );
    assert_eq!(index.list(&owner).await.unwrap().len(), 5);
    assert_eq!(index.end_all(&owner).await.unwrap(), 5);
    for id in &owned {
        assert_eq!(backend.load(id).await.unwrap(), None);
    }

    // Keys carry the prefix and spread over the nodes.
    let mut created = Vec::new();
    for i in 0..50 {
        let value = i.to_string();
        created.push(
            backend
                .create(state(&[("i", value.as_str())]), config.max_age)
                .await
                .unwrap(),
        );
    }
    let per_node: Vec<Vec<String>> = cluster
        .nodes()
        .iter()
        .map(|node| scan(node, 0, "session:*"))
        .collect();
    for key in &created {
        let redis_key = session_key(key);
        let holders = per_node
            .iter()
            .filter(|keys| keys.contains(&redis_key))
            .count();
        assert_eq!(holders, 1, "each session lives on exactly one node");
    }
    let nodes_with_keys = per_node.iter().filter(|keys| !keys.is_empty()).count();
    assert!(
        nodes_with_keys > 1,
        "sessions must spread over the cluster's nodes, found keys on {nodes_with_keys} of 3"
    );

    // TTL and layout on the node that holds a key.
    let redis_key = session_key(&created[0]);
    let node = cluster
        .nodes()
        .iter()
        .zip(&per_node)
        .find(|(_, keys)| keys.contains(&redis_key))
        .map(|(node, _)| node)
        .unwrap();
    assert_eq!(stored_object(node, &[], &redis_key)["i"], "0");
    let pttl: i64 = node.cli(&["pttl", &redis_key]).trim().parse().unwrap();
    assert!((3_599_000..=3_600_000).contains(&pttl), "TTL {pttl} ms");

    // A new backend, seeded from one node only, finds the sessions.
    drop(backend);
    let mut one_seed = config.clone();
    one_seed.redis.host = cluster.hosts()[2].clone();
    let backend = open(&one_seed).await;
    for (i, key) in created.iter().enumerate() {
        let value = i.to_string();
        assert_eq!(
            backend.load(key).await.unwrap(),
            Some(state(&[("i", value.as_str())]))
        );
    }

    // A node goes away: its sessions are an error within the timeout; once it is back (empty:
    // persistence is off) the same backend serves its slots again.
    let (node, on_node) = per_node
        .iter()
        .enumerate()
        .find_map(|(i, keys)| {
            keys.iter()
                .find(|k| !k.contains(":owner:") && !k.contains("lease:"))
                .map(|k| (i, id_of_key(k)))
        })
        .unwrap();
    cluster.stop_node(node);
    let started = Instant::now();
    let err = backend.load(&on_node).await.unwrap_err();
    assert!(matches!(err, BackendError::Unavailable(_)), "{err}");
    assert!(
        started.elapsed() < TIMEOUT * 3,
        "took {:?}",
        started.elapsed()
    );
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.restart_node(node);
        cluster
    })
    .await
    .unwrap();
    let mut recovered = None;
    for _ in 0..20 {
        match backend.load(&on_node).await {
            Ok(found) => {
                recovered = Some(found);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    assert_eq!(
        recovered,
        Some(None),
        "the backend must reach the restarted node again (its data is gone)"
    );
    let key = backend
        .create(state(&[("after", "1")]), config.max_age)
        .await
        .unwrap();
    assert!(backend.load(&key).await.unwrap().is_some());
    drop(cluster);
}
