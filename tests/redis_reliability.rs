//! End-to-end reliability of the demo on Redis and Redis Cluster: concurrent merges, outages,
//! a stalled server, corrupted values, a restart of the app.

mod support;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::StatusCode;
use support::{
    demo::{browser, count, hundred_concurrent_keys, Demo},
    redis::{RedisCluster, RedisServer},
};

fn redis_yaml(host: &str, extra: &str) -> String {
    format!(
        "flamingo.session.backend: redis\nflamingo.session.redis.host: {host}\n\
         flamingo.session.redis.timeout: 1s\n{extra}"
    )
}

fn cluster_yaml(cluster: &RedisCluster, extra: &str) -> String {
    format!(
        "flamingo.session.backend: redis\nflamingo.session.redis.clusterMode: true\n\
         flamingo.session.redis.host: {}\nflamingo.session.redis.timeout: 1s\n{extra}",
        cluster.hosts().join(",")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_write_keeps_all_100_concurrent_keys_redis() {
    let redis = RedisServer::standalone();
    let demo = Demo::start(&redis_yaml(
        &redis.host(),
        "flamingo.session.saveMode: OnWrite\n",
    ));
    let kept = hundred_concurrent_keys(&demo).await;
    println!("redis OnWrite: {kept} of 100 keys kept");
    assert_eq!(kept, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_write_keeps_all_100_concurrent_keys_redis_cluster() {
    let cluster = RedisCluster::start(3);
    let demo = Demo::start(&cluster_yaml(
        &cluster,
        "flamingo.session.saveMode: OnWrite\n",
    ));
    let kept = hundred_concurrent_keys(&demo).await;
    println!("redis cluster OnWrite: {kept} of 100 keys kept");
    assert_eq!(kept, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sessions_survive_an_app_restart_with_prefix_and_ttl() {
    let redis = RedisServer::standalone();
    let mut demo = Demo::start(&redis_yaml(
        &redis.host(),
        "flamingo.session.max.age: 3600\n",
    ));
    let client = browser();
    assert_eq!(count(&client, &demo).await, 1);
    assert_eq!(count(&client, &demo).await, 2);
    demo.restart();
    assert_eq!(
        count(&client, &demo).await,
        3,
        "the counter keeps counting across a restart"
    );
    let keys = redis.cli(&["--scan", "--pattern", "session:*"]);
    let keys: Vec<&str> = keys.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(keys.len(), 1, "one key per session: {keys:?}");
    let ttl: i64 = redis.cli(&["ttl", keys[0]]).trim().parse().unwrap();
    assert!(
        (3590..=3600).contains(&ttl),
        "the key's TTL is max.age: {ttl}"
    );
}

/// Requests from several browsers for `duration`; returns (status, elapsed) of each.
async fn load(
    demo: &Demo,
    clients: &[reqwest::Client],
    duration: Duration,
) -> Vec<(StatusCode, Duration)> {
    let until = Instant::now() + duration;
    let tasks = clients.iter().map(|client| {
        let client = client.clone();
        let url = demo.url("/counter");
        async move {
            let mut seen = Vec::new();
            while Instant::now() < until {
                let started = Instant::now();
                let status = client
                    .get(&url)
                    .send()
                    .await
                    .map(|r| r.status())
                    .expect("the demo answers");
                seen.push((status, started.elapsed()));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            seen
        }
    });
    join_all(tasks).await.into_iter().flatten().collect()
}

fn summary(phase: &str, seen: &[(StatusCode, Duration)]) -> (usize, usize, Duration) {
    let failed = seen.iter().filter(|(s, _)| *s != StatusCode::OK).count();
    let slowest = seen.iter().map(|(_, d)| *d).max().unwrap_or_default();
    println!(
        "{phase}: {} requests, {failed} failed, slowest {slowest:?}",
        seen.len()
    );
    for (status, _) in seen {
        assert!(
            *status == StatusCode::OK || *status == StatusCode::SERVICE_UNAVAILABLE,
            "{phase}: only 200 or 503, got {status}"
        );
    }
    (seen.len(), failed, slowest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_fast_with_503_and_recovers_without_losing_sessions() {
    let mut redis = RedisServer::standalone();
    let demo = Demo::start(&redis_yaml(&redis.host(), ""));
    let clients: Vec<reqwest::Client> = (0..4).map(|_| browser()).collect();
    for client in &clients {
        assert_eq!(count(client, &demo).await, 1);
    }
    let before = load(&demo, &clients, Duration::from_millis(500)).await;
    summary("before", &before);

    // A stopped server: connection refused. Persist what Redis holds so the restart keeps it.
    redis.cli(&["SAVE"]);
    let counts_before: Vec<u64> = {
        let mut v = Vec::new();
        for client in &clients {
            v.push(count(client, &demo).await);
        }
        v
    };
    redis.cli(&["SAVE"]);
    redis.stop();
    let outage = load(&demo, &clients, Duration::from_secs(3)).await;
    let (_, failed, slowest) = summary("redis stopped", &outage);
    assert!(failed > 0, "requests fail while Redis is down");
    assert!(
        slowest < Duration::from_millis(2500),
        "no request waits past the 1 s timeout (+ slack): {slowest:?}"
    );
    redis.restart();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = load(&demo, &clients, Duration::from_secs(1)).await;
    let (total, failed_after, _) = summary("after restart", &after);
    assert!(total > 0);
    // Reconnecting may take the first request or two.
    let tail_failures = after
        .iter()
        .skip(8)
        .filter(|(s, _)| *s != StatusCode::OK)
        .count();
    assert_eq!(
        tail_failures, 0,
        "everything works again after the restart ({failed_after} early failures)"
    );
    for (client, before) in clients.iter().zip(counts_before) {
        let now = count(client, &demo).await;
        assert!(
            now > before,
            "the session Redis kept is not lost: {before} then {now}"
        );
    }
    assert!(
        demo.log().contains("unavailable"),
        "the cause is logged:\n{}",
        demo.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_is_a_503_within_the_timeout_not_a_hang() {
    let redis = RedisServer::standalone();
    let demo = Demo::start(&redis_yaml(&redis.host(), ""));
    let clients: Vec<reqwest::Client> = (0..2).map(|_| browser()).collect();
    for client in &clients {
        count(client, &demo).await;
    }
    redis.freeze();
    let stalled = load(&demo, &clients, Duration::from_secs(3)).await;
    redis.thaw();
    let (_, failed, slowest) = summary("redis stalled (SIGSTOP)", &stalled);
    assert!(failed > 0);
    assert!(
        slowest < Duration::from_millis(2500),
        "a stalled Redis answers within the timeout: {slowest:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = load(&demo, &clients, Duration::from_secs(1)).await;
    let tail_failures = after
        .iter()
        .skip(4)
        .filter(|(s, _)| *s != StatusCode::OK)
        .count();
    assert_eq!(tail_failures, 0, "it recovers after the stall");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_redis_starts_that_session_fresh_and_leaves_others_alone() {
    let redis = RedisServer::standalone();
    let demo = Demo::start(&redis_yaml(&redis.host(), ""));
    let (victim, bystander) = (browser(), browser());
    count(&victim, &demo).await;
    count(&victim, &demo).await;
    let victim_key = redis
        .cli(&["--scan", "--pattern", "session:*"])
        .lines()
        .next()
        .unwrap()
        .to_owned();
    count(&bystander, &demo).await;
    count(&bystander, &demo).await;
    // Garbage in a value, then in the stored object, then a key of the wrong type.
    redis.cli(&["SET", &victim_key, "{\"count\":\"garbage{\"}"]);
    assert_eq!(
        count(&victim, &demo).await,
        1,
        "a corrupt value reads as missing"
    );
    assert_eq!(count(&victim, &demo).await, 2);
    redis.cli(&["SET", &victim_key, "{\"count\":\u{1}garbage{"]);
    assert_eq!(
        count(&victim, &demo).await,
        1,
        "a stored object that is not JSON starts the session fresh"
    );
    assert_eq!(
        count(&bystander, &demo).await,
        3,
        "other sessions are untouched"
    );
    let keys = redis.cli(&["--scan", "--pattern", "session:*"]);
    for key in keys.lines().filter(|k| !k.is_empty()) {
        redis.cli(&["DEL", key]);
        redis.cli(&["HSET", key, "count", "1"]);
    }
    let fresh = browser();
    assert_eq!(count(&fresh, &demo).await, 1);
    assert_eq!(
        count(&bystander, &demo).await,
        1,
        "a key of the wrong type starts fresh"
    );
    assert!(
        demo.log().contains("corrupt"),
        "a warning is logged:\n{}",
        demo.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_cluster_master_fails_over_to_its_replica_and_the_app_recovers_by_itself() {
    let mut cluster = tokio::task::spawn_blocking(|| RedisCluster::start_with_replicas(3, 1))
        .await
        .unwrap();
    let demo = Demo::start(&cluster_yaml(&cluster, ""));
    let clients: Vec<reqwest::Client> = (0..24).map(|_| browser()).collect();
    for client in &clients {
        count(client, &demo).await;
        count(client, &demo).await;
    }
    // Let the replicas catch up (a replica's first sync can take seconds), then kill one master.
    assert!(
        cluster.wait_until_replicas_caught_up(Duration::from_secs(20)),
        "the replicas did not catch up with their masters"
    );
    let master = cluster.a_master();
    cluster.stop_node(master);
    let killed = Instant::now();
    let mut failed = 0;
    let mut recovered_after = None;
    while killed.elapsed() < Duration::from_secs(30) {
        let mut round_failed = 0;
        for client in &clients {
            let res = client
                .get(demo.url("/counter"))
                .send()
                .await
                .expect("the demo answers");
            assert!(
                res.status() == StatusCode::OK || res.status() == StatusCode::SERVICE_UNAVAILABLE,
                "only 200 or 503 during a failover, got {}",
                res.status()
            );
            if res.status() != StatusCode::OK {
                round_failed += 1;
            }
        }
        failed += round_failed;
        if round_failed == 0 {
            recovered_after = Some(killed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let recovered_after = recovered_after
        .unwrap_or_else(|| panic!("the app did not recover within 30 s:\n{}", demo.log()));
    println!("cluster failover: {failed} requests failed, every session served again {recovered_after:?} after the master was killed");
    for client in &clients {
        let n = count(client, &demo).await;
        assert!(
            n > 3,
            "sessions on the failed master were kept by its replica (count {n}):\n{}",
            demo.log()
        );
    }
}
