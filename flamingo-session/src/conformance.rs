//! A conformance suite for [`SessionBackend`] implementations: ours, and yours.
//!
//! [`run`] checks the contract documented in [`backend`](crate::backend) against a live backend:
//! round trip, values stored verbatim, unknown keys, fresh distinct keys, replace and merge,
//! re-creating an expired session on save, TTL expiry, TTL refresh, delete, sizes up to and over
//! `store.length` (with the old state intact), and concurrent creates and merges. It panics with
//! a message naming the broken rule on the first violation, like an assertion.
//!
//! It takes a few seconds (it waits for TTLs to run out) and writes a few dozen sessions; point
//! it at a store that holds nothing of value.
//!
//! # Examples
//!
//! ```
//! use flamingo_session::{conformance, MemoryBackend};
//!
//! # actix_web::rt::System::new().block_on(async {
//! let backend = MemoryBackend::new(10_000, 4096);
//! conformance::run(&backend, 4096).await;
//! # });
//! ```

use std::time::Duration;

use crate::backend::{BackendError, SessionBackend, SessionChange, SessionState};

fn state(pairs: &[(&str, &str)]) -> SessionState {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn must_load(backend: &dyn SessionBackend, key: &str, rule: &str) -> SessionState {
    match backend.load(key).await {
        Ok(Some(state)) => state,
        Ok(None) => panic!("[{}] {rule}: the session is missing", backend.name()),
        Err(err) => panic!("[{}] {rule}: load failed: {err}", backend.name()),
    }
}

async fn must_create(
    backend: &dyn SessionBackend,
    s: SessionState,
    ttl: Duration,
    rule: &str,
) -> String {
    backend
        .create(s, ttl)
        .await
        .unwrap_or_else(|err| panic!("[{}] {rule}: create failed: {err}", backend.name()))
}

async fn must_save(
    backend: &dyn SessionBackend,
    key: &str,
    change: SessionChange,
    ttl: Duration,
    rule: &str,
) {
    backend
        .save(key, change, ttl)
        .await
        .unwrap_or_else(|err| panic!("[{}] {rule}: save failed: {err}", backend.name()));
}

async fn is_gone(backend: &dyn SessionBackend, key: &str, rule: &str) -> bool {
    match backend.load(key).await {
        Ok(found) => found.is_none(),
        Err(err) => panic!("[{}] {rule}: load failed: {err}", backend.name()),
    }
}

/// Runs every check against `backend`, whose `store.length` is `store_length` bytes (at least
/// 1024; 0 = no limit, which skips the size checks).
///
/// # Panics
///
/// On the first violation of the [backend contract](crate::backend), with a message naming it.
pub async fn run(backend: &dyn SessionBackend, store_length: usize) {
    assert!(
        store_length == 0 || store_length >= 1024,
        "conformance::run needs store_length >= 1024 (or 0)"
    );
    let long = Duration::from_secs(600);
    let name = backend.name().to_owned();

    // Unknown keys.
    let unknown = crate::backend::generate_session_key();
    assert!(
        is_gone(backend, &unknown, "unknown key").await,
        "[{name}] an unknown key must load as None"
    );

    // Round trip, values verbatim (no re-encoding, unicode, escapes, nested JSON).
    let original = state(&[
        ("count", r#"{"t":"u64","v":3}"#),
        (
            "text",
            r#"{"t":"String","v":"h\u00e9llo \"w\u00f6rld\" \\ / 🦩"}"#,
        ),
        ("nested", r#"{"t":"x","v":{"a":[1,2,{"b":null}],"c":"d"}}"#),
        ("unicode key ✓", r#"{"t":"bool","v":true}"#),
    ]);
    let key = must_create(backend, original.clone(), long, "round trip").await;
    assert!(
        crate::backend::is_valid_session_key(&key) || key.len() >= 22,
        "[{name}] create must return a key with at least 128 random bits"
    );
    assert_eq!(
        must_load(backend, &key, "round trip").await,
        original,
        "[{name}] round trip must return the stored state verbatim"
    );

    // An empty session exists once created.
    let empty = must_create(backend, SessionState::new(), long, "empty session").await;
    assert_eq!(
        must_load(backend, &empty, "empty session").await,
        SessionState::new(),
        "[{name}] an empty created session must load as empty"
    );

    // Fresh, distinct keys; creating never overwrites.
    let mut keys = std::collections::HashSet::new();
    for i in 0..20 {
        let v = format!("{i}");
        let k = must_create(backend, state(&[("i", v.as_str())]), long, "distinct keys").await;
        assert!(keys.insert(k), "[{name}] create returned a key twice");
    }
    for k in &keys {
        assert_eq!(
            must_load(backend, k, "distinct keys").await.len(),
            1,
            "[{name}] a created session was overwritten"
        );
    }
    assert_eq!(
        must_load(backend, &key, "no overwrite").await,
        original,
        "[{name}] creating sessions changed another session"
    );

    // Replace.
    let replaced = state(&[("only", "1")]);
    must_save(
        backend,
        &key,
        SessionChange::Replace(replaced.clone()),
        long,
        "replace",
    )
    .await;
    assert_eq!(
        must_load(backend, &key, "replace").await,
        replaced,
        "[{name}] Replace must replace the whole state"
    );

    // Merge: set and remove, other keys kept.
    must_save(
        backend,
        &key,
        SessionChange::Merge {
            set: state(&[("a", "1"), ("b", "2")]),
            remove: vec![],
        },
        long,
        "merge",
    )
    .await;
    must_save(
        backend,
        &key,
        SessionChange::Merge {
            set: state(&[("b", "3")]),
            remove: vec!["only".into(), "never-there".into()],
        },
        long,
        "merge",
    )
    .await;
    assert_eq!(
        must_load(backend, &key, "merge").await,
        state(&[("a", "1"), ("b", "3")]),
        "[{name}] Merge must set and remove only the given keys"
    );

    // Delete, and deleting twice.
    backend
        .delete(&key)
        .await
        .unwrap_or_else(|e| panic!("[{name}] delete failed: {e}"));
    assert!(
        is_gone(backend, &key, "delete").await,
        "[{name}] a deleted session must load as None"
    );
    backend
        .delete(&key)
        .await
        .unwrap_or_else(|e| panic!("[{name}] deleting a missing session must succeed: {e}"));

    // Saving a missing (expired) session creates it again under the same key.
    must_save(
        backend,
        &key,
        SessionChange::Merge {
            set: state(&[("back", "1")]),
            remove: vec![],
        },
        long,
        "save recreates",
    )
    .await;
    assert_eq!(
        must_load(backend, &key, "save recreates").await,
        state(&[("back", "1")]),
        "[{name}] saving a missing session must create it again"
    );

    // Touch keeps data; touching a missing session keeps it missing.
    backend
        .touch(&key, long)
        .await
        .unwrap_or_else(|e| panic!("[{name}] touch failed: {e}"));
    assert_eq!(
        must_load(backend, &key, "touch").await,
        state(&[("back", "1")]),
        "[{name}] touch must not change the data"
    );
    let missing = crate::backend::generate_session_key();
    backend
        .touch(&missing, long)
        .await
        .unwrap_or_else(|e| panic!("[{name}] touching a missing session must succeed: {e}"));
    assert!(
        is_gone(backend, &missing, "touch missing").await,
        "[{name}] touch must not create a session"
    );

    // Renew, as the middleware does it: create the new one, delete the old one.
    let data = must_load(backend, &key, "renew").await;
    let renewed = must_create(backend, data.clone(), long, "renew").await;
    backend
        .delete(&key)
        .await
        .unwrap_or_else(|e| panic!("[{name}] delete failed: {e}"));
    assert_ne!(renewed, key, "[{name}] renew must give a new key");
    assert_eq!(
        must_load(backend, &renewed, "renew").await,
        data,
        "[{name}] renew must keep the data"
    );
    assert!(
        is_gone(backend, &key, "renew").await,
        "[{name}] the old key must stop working after renew"
    );

    // Sizes.
    if store_length > 0 {
        let at_limit = "x".repeat(store_length - "big".len());
        let k = must_create(
            backend,
            state(&[("big", at_limit.as_str())]),
            long,
            "size at limit",
        )
        .await;
        assert_eq!(
            must_load(backend, &k, "size at limit").await["big"].len(),
            at_limit.len()
        );
        let over = "x".repeat(store_length + 1);
        match backend.create(state(&[("big", over.as_str())]), long).await {
            Err(BackendError::TooLarge { .. }) => {}
            other => panic!("[{name}] create over store.length must be TooLarge, got {other:?}"),
        }
        let small = state(&[("keep", "1")]);
        let k = must_create(backend, small.clone(), long, "size over limit").await;
        match backend
            .save(
                &k,
                SessionChange::Replace(state(&[("big", over.as_str())])),
                long,
            )
            .await
        {
            Err(BackendError::TooLarge { .. }) => {}
            other => panic!("[{name}] Replace over store.length must be TooLarge, got {other:?}"),
        }
        let half = "y".repeat(store_length / 2 + 1);
        must_save(
            backend,
            &k,
            SessionChange::Merge {
                set: state(&[("h1", half.as_str())]),
                remove: vec![],
            },
            long,
            "merge near limit",
        )
        .await;
        match backend.save(&k, SessionChange::Merge { set: state(&[("h2", half.as_str())]), remove: vec![] }, long).await {
            Err(BackendError::TooLarge { .. }) => {}
            other => panic!("[{name}] a Merge whose result exceeds store.length must be TooLarge, got {other:?}"),
        }
        let after = must_load(backend, &k, "size over limit").await;
        assert_eq!(
            after.get("keep").map(String::as_str),
            Some("1"),
            "[{name}] a refused save must leave the old state intact"
        );
        assert!(
            !after.contains_key("h2"),
            "[{name}] a refused Merge must write nothing"
        );
    }

    // Concurrent creates and merges into one session.
    let target = must_create(backend, SessionState::new(), long, "concurrency").await;
    let merges = (0..50).map(|i| {
        let target = target.clone();
        async move {
            let k = format!("k{i}");
            backend
                .save(
                    &target,
                    SessionChange::Merge {
                        set: state(&[(k.as_str(), "1")]),
                        remove: vec![],
                    },
                    long,
                )
                .await
        }
    });
    let creates = (0..20).map(|_| backend.create(state(&[("c", "1")]), long));
    let (merged, created) = futures_util::future::join(
        futures_util::future::join_all(merges),
        futures_util::future::join_all(creates),
    )
    .await;
    for result in merged {
        result.unwrap_or_else(|e| panic!("[{name}] concurrent merge failed: {e}"));
    }
    let created: std::collections::HashSet<String> = created
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("[{name}] concurrent create failed: {e}")))
        .collect();
    assert_eq!(
        created.len(),
        20,
        "[{name}] concurrent creates must return distinct keys"
    );
    let merged_state = must_load(backend, &target, "concurrency").await;
    assert_eq!(
        merged_state.len(),
        50,
        "[{name}] concurrent merges of different keys must all be kept, got {} of 50",
        merged_state.len()
    );

    // TTL: expiry, and touch/save refreshing it.
    let short = Duration::from_millis(1500);
    let expiring = must_create(backend, state(&[("e", "1")]), short, "ttl").await;
    let touched = must_create(backend, state(&[("t", "1")]), short, "ttl refresh").await;
    let saved = must_create(backend, state(&[("s", "1")]), short, "ttl refresh by save").await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    backend
        .touch(&touched, Duration::from_secs(3))
        .await
        .unwrap_or_else(|e| panic!("[{name}] touch failed: {e}"));
    must_save(
        backend,
        &saved,
        SessionChange::Merge {
            set: state(&[("s", "2")]),
            remove: vec![],
        },
        Duration::from_secs(3),
        "ttl refresh by save",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert!(
        is_gone(backend, &expiring, "ttl expiry").await,
        "[{name}] a session must be gone after its TTL"
    );
    assert_eq!(
        must_load(backend, &touched, "ttl refresh").await,
        state(&[("t", "1")]),
        "[{name}] touch must extend the TTL"
    );
    assert_eq!(
        must_load(backend, &saved, "ttl refresh by save").await,
        state(&[("s", "2")]),
        "[{name}] save must set the TTL"
    );
}
