//! A conformance suite for [`SessionBackend`] implementations: ours, and yours.
//!
//! [`run`] checks the contract documented in [`backend`](crate::backend) against a live backend,
//! one public function per rule (call them one by one to get a test per rule): unknown IDs,
//! round trip with values stored verbatim, fresh distinct IDs, replace and merge, delete, a dead
//! session staying dead, touch, renew, sizes up to and over `store.length` (with the old state
//! intact), concurrent creates and merges, and TTL expiry and refresh. Each panics with a message
//! naming the broken rule, like an assertion.
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

use crate::backend::{
    BackendError, SaveOutcome, SessionBackend, SessionChange, SessionId, SessionState,
};

const LONG: Duration = Duration::from_secs(600);

fn state(pairs: &[(&str, &str)]) -> SessionState {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn must_load(backend: &dyn SessionBackend, id: &SessionId, rule: &str) -> SessionState {
    match backend.load(id).await {
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
) -> SessionId {
    backend
        .create(s, ttl)
        .await
        .unwrap_or_else(|err| panic!("[{}] {rule}: create failed: {err}", backend.name()))
}

async fn must_save(
    backend: &dyn SessionBackend,
    id: &SessionId,
    change: SessionChange,
    ttl: Duration,
    rule: &str,
) {
    let outcome = backend
        .save(id, change, ttl)
        .await
        .unwrap_or_else(|err| panic!("[{}] {rule}: save failed: {err}", backend.name()));
    assert_eq!(
        outcome,
        SaveOutcome::Saved,
        "[{}] {rule}: saving a live session must answer Saved",
        backend.name()
    );
}

async fn is_gone(backend: &dyn SessionBackend, id: &SessionId, rule: &str) -> bool {
    match backend.load(id).await {
        Ok(found) => found.is_none(),
        Err(err) => panic!("[{}] {rule}: load failed: {err}", backend.name()),
    }
}

/// Runs every rule against `backend`, whose `store.length` is `store_length` bytes (at least
/// 1024; 0 = no limit, which skips the size rules). Takes a few seconds (the TTL rules wait).
///
/// # Panics
///
/// On the first violation of the [backend contract](crate::backend), with a message naming it.
pub async fn run(backend: &dyn SessionBackend, store_length: usize) {
    assert!(
        store_length == 0 || store_length >= 1024,
        "conformance::run needs store_length >= 1024 (or 0)"
    );
    unknown_ids_load_as_none(backend).await;
    round_trip_is_verbatim(backend).await;
    creates_never_overwrite(backend).await;
    replace_and_merge(backend).await;
    delete_is_idempotent(backend).await;
    a_dead_session_stays_dead(backend).await;
    touch_keeps_data(backend).await;
    renew_moves_the_data(backend).await;
    if store_length > 0 {
        sizes_are_bounded(backend, store_length).await;
    }
    concurrent_writes_lose_nothing(backend).await;
    ttl_expires_and_refreshes(backend).await;
}

/// An ID that was never created loads as `None`.
pub async fn unknown_ids_load_as_none(backend: &dyn SessionBackend) {
    assert!(
        is_gone(backend, &SessionId::generate(), "unknown ID").await,
        "[{}] an unknown ID must load as None",
        backend.name()
    );
}

/// A created session loads back exactly as stored (unicode, escapes, nested JSON), and an
/// empty session exists once created.
pub async fn round_trip_is_verbatim(backend: &dyn SessionBackend) {
    let name = backend.name();
    let original = state(&[
        ("count", r#"{"t":"u64","v":3}"#),
        (
            "text",
            r#"{"t":"String","v":"h\u00e9llo \"w\u00f6rld\" \\ / 🦩"}"#,
        ),
        ("nested", r#"{"t":"x","v":{"a":[1,2,{"b":null}],"c":"d"}}"#),
        ("unicode key ✓", r#"{"t":"bool","v":true}"#),
    ]);
    let id = must_create(backend, original.clone(), LONG, "round trip").await;
    assert_eq!(
        must_load(backend, &id, "round trip").await,
        original,
        "[{name}] round trip must return the stored state verbatim"
    );
    let empty = must_create(backend, SessionState::new(), LONG, "empty session").await;
    assert_eq!(
        must_load(backend, &empty, "empty session").await,
        SessionState::new(),
        "[{name}] an empty created session must load as empty"
    );
}

/// Creates return fresh, distinct IDs and never change another session.
pub async fn creates_never_overwrite(backend: &dyn SessionBackend) {
    let name = backend.name();
    let first = must_create(backend, state(&[("first", "1")]), LONG, "no overwrite").await;
    let mut ids = std::collections::HashSet::new();
    for i in 0..20 {
        let v = format!("{i}");
        let id = must_create(backend, state(&[("i", v.as_str())]), LONG, "distinct IDs").await;
        assert!(ids.insert(id), "[{name}] create returned an ID twice");
    }
    for id in &ids {
        assert_eq!(
            must_load(backend, id, "distinct IDs").await.len(),
            1,
            "[{name}] a created session was overwritten"
        );
    }
    assert_eq!(
        must_load(backend, &first, "no overwrite").await,
        state(&[("first", "1")]),
        "[{name}] creating sessions changed another session"
    );
}

/// `Replace` replaces the whole state; `Merge` sets and removes only the given keys.
pub async fn replace_and_merge(backend: &dyn SessionBackend) {
    let name = backend.name();
    let id = must_create(backend, state(&[("old", "1")]), LONG, "replace").await;
    let replaced = state(&[("only", "1")]);
    must_save(
        backend,
        &id,
        SessionChange::Replace(replaced.clone()),
        LONG,
        "replace",
    )
    .await;
    assert_eq!(
        must_load(backend, &id, "replace").await,
        replaced,
        "[{name}] Replace must replace the whole state"
    );
    must_save(
        backend,
        &id,
        merge(&[("a", "1"), ("b", "2")], &[]),
        LONG,
        "merge",
    )
    .await;
    must_save(
        backend,
        &id,
        merge(&[("b", "3")], &["only", "never-there"]),
        LONG,
        "merge",
    )
    .await;
    assert_eq!(
        must_load(backend, &id, "merge").await,
        state(&[("a", "1"), ("b", "3")]),
        "[{name}] Merge must set and remove only the given keys"
    );
}

/// A deleted session loads as `None`; deleting it again is no error.
pub async fn delete_is_idempotent(backend: &dyn SessionBackend) {
    let name = backend.name();
    let id = must_create(backend, state(&[("a", "1")]), LONG, "delete").await;
    backend
        .delete(&id)
        .await
        .unwrap_or_else(|e| panic!("[{name}] delete failed: {e}"));
    assert!(
        is_gone(backend, &id, "delete").await,
        "[{name}] a deleted session must load as None"
    );
    backend
        .delete(&id)
        .await
        .unwrap_or_else(|e| panic!("[{name}] deleting a missing session must succeed: {e}"));
}

/// A save or touch of a deleted or expired session writes nothing and answers `Gone`: a request
/// that loaded the session before a logout cannot bring it back.
pub async fn a_dead_session_stays_dead(backend: &dyn SessionBackend) {
    let name = backend.name();
    let deleted = must_create(backend, state(&[("user", "1")]), LONG, "dead stays dead").await;
    backend
        .delete(&deleted)
        .await
        .unwrap_or_else(|e| panic!("[{name}] delete failed: {e}"));
    let expired = must_create(
        backend,
        state(&[("user", "1")]),
        Duration::from_millis(300),
        "dead stays dead",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let never = SessionId::generate();
    for (id, how) in [
        (&deleted, "deleted"),
        (&expired, "expired"),
        (&never, "never created"),
    ] {
        for change in [
            SessionChange::Replace(state(&[("late", "1")])),
            merge(&[("late", "1")], &[]),
            merge(&[], &["user"]),
        ] {
            let outcome = backend
                .save(id, change.clone(), LONG)
                .await
                .unwrap_or_else(|e| panic!("[{name}] save of a {how} session failed: {e}"));
            assert_eq!(
                outcome,
                SaveOutcome::Gone,
                "[{name}] saving a {how} session must answer Gone ({change:?})"
            );
            assert!(
                is_gone(backend, id, "dead stays dead").await,
                "[{name}] saving a {how} session must not create it again ({change:?})"
            );
        }
        let outcome = backend
            .touch(id, LONG)
            .await
            .unwrap_or_else(|e| panic!("[{name}] touch of a {how} session failed: {e}"));
        assert_eq!(
            outcome,
            SaveOutcome::Gone,
            "[{name}] touching a {how} session must answer Gone"
        );
        assert!(
            is_gone(backend, id, "dead stays dead").await,
            "[{name}] touching a {how} session must not create it"
        );
    }
}

/// Touch keeps the data and answers `Saved` for a live session.
pub async fn touch_keeps_data(backend: &dyn SessionBackend) {
    let name = backend.name();
    let id = must_create(backend, state(&[("t", "1")]), LONG, "touch").await;
    let outcome = backend
        .touch(&id, LONG)
        .await
        .unwrap_or_else(|e| panic!("[{name}] touch failed: {e}"));
    assert_eq!(
        outcome,
        SaveOutcome::Saved,
        "[{name}] touching a live session must answer Saved"
    );
    assert_eq!(
        must_load(backend, &id, "touch").await,
        state(&[("t", "1")]),
        "[{name}] touch must not change the data"
    );
}

/// Renew as the middleware does it (create the new session, delete the old one): the data
/// moves, the old ID stops working.
pub async fn renew_moves_the_data(backend: &dyn SessionBackend) {
    let name = backend.name();
    let id = must_create(backend, state(&[("r", "1")]), LONG, "renew").await;
    let data = must_load(backend, &id, "renew").await;
    let renewed = must_create(backend, data.clone(), LONG, "renew").await;
    backend
        .delete(&id)
        .await
        .unwrap_or_else(|e| panic!("[{name}] delete failed: {e}"));
    assert_ne!(renewed, id, "[{name}] renew must give a new ID");
    assert_eq!(
        must_load(backend, &renewed, "renew").await,
        data,
        "[{name}] renew must keep the data"
    );
    assert!(
        is_gone(backend, &id, "renew").await,
        "[{name}] the old ID must stop working after renew"
    );
}

/// Sessions up to `store_length` bytes are stored; a create, replace or merge past it is
/// `TooLarge` and leaves the stored state intact.
pub async fn sizes_are_bounded(backend: &dyn SessionBackend, store_length: usize) {
    let name = backend.name();
    let at_limit = "x".repeat(store_length - "big".len());
    let id = must_create(
        backend,
        state(&[("big", at_limit.as_str())]),
        LONG,
        "size at limit",
    )
    .await;
    assert_eq!(
        must_load(backend, &id, "size at limit").await["big"].len(),
        at_limit.len()
    );
    let over = "x".repeat(store_length + 1);
    match backend.create(state(&[("big", over.as_str())]), LONG).await {
        Err(BackendError::TooLarge { .. }) => {}
        other => panic!("[{name}] create over store.length must be TooLarge, got {other:?}"),
    }
    let id = must_create(backend, state(&[("keep", "1")]), LONG, "size over limit").await;
    match backend
        .save(
            &id,
            SessionChange::Replace(state(&[("big", over.as_str())])),
            LONG,
        )
        .await
    {
        Err(BackendError::TooLarge { .. }) => {}
        other => panic!("[{name}] Replace over store.length must be TooLarge, got {other:?}"),
    }
    let half = "y".repeat(store_length / 2 + 1);
    must_save(
        backend,
        &id,
        merge(&[("h1", half.as_str())], &[]),
        LONG,
        "merge near limit",
    )
    .await;
    match backend
        .save(&id, merge(&[("h2", half.as_str())], &[]), LONG)
        .await
    {
        Err(BackendError::TooLarge { .. }) => {}
        other => panic!(
            "[{name}] a Merge whose result exceeds store.length must be TooLarge, got {other:?}"
        ),
    }
    // Replacing a value by a smaller one frees its room.
    must_save(
        backend,
        &id,
        merge(&[("h1", "small")], &[]),
        LONG,
        "merge frees room",
    )
    .await;
    must_save(
        backend,
        &id,
        merge(&[("h2", half.as_str())], &[]),
        LONG,
        "merge frees room",
    )
    .await;
    let after = must_load(backend, &id, "size over limit").await;
    assert_eq!(
        after.get("keep").map(String::as_str),
        Some("1"),
        "[{name}] a refused save must leave the old state intact"
    );
    assert_eq!(after.get("h1").map(String::as_str), Some("small"));
}

/// Concurrent creates give distinct IDs; concurrent merges of different keys into one session
/// are all kept.
pub async fn concurrent_writes_lose_nothing(backend: &dyn SessionBackend) {
    let name = backend.name();
    let target = must_create(backend, SessionState::new(), LONG, "concurrency").await;
    let merges = (0..50).map(|i| {
        let target = target.clone();
        async move {
            let k = format!("k{i}");
            backend
                .save(&target, merge(&[(k.as_str(), "1")], &[]), LONG)
                .await
        }
    });
    let creates = (0..20).map(|_| backend.create(state(&[("c", "1")]), LONG));
    let (merged, created) = futures_util::future::join(
        futures_util::future::join_all(merges),
        futures_util::future::join_all(creates),
    )
    .await;
    for result in merged {
        let outcome = result.unwrap_or_else(|e| panic!("[{name}] concurrent merge failed: {e}"));
        assert_eq!(outcome, SaveOutcome::Saved);
    }
    let created: std::collections::HashSet<SessionId> = created
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("[{name}] concurrent create failed: {e}")))
        .collect();
    assert_eq!(
        created.len(),
        20,
        "[{name}] concurrent creates must return distinct IDs"
    );
    let merged_state = must_load(backend, &target, "concurrency").await;
    assert_eq!(
        merged_state.len(),
        50,
        "[{name}] concurrent merges of different keys must all be kept, got {} of 50",
        merged_state.len()
    );
}

/// A session is gone after its TTL; touch and save set a new TTL.
pub async fn ttl_expires_and_refreshes(backend: &dyn SessionBackend) {
    let name = backend.name();
    let short = Duration::from_millis(1500);
    let expiring = must_create(backend, state(&[("e", "1")]), short, "ttl").await;
    let touched = must_create(backend, state(&[("t", "1")]), short, "ttl refresh").await;
    let saved = must_create(backend, state(&[("s", "1")]), short, "ttl refresh by save").await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    let _ = backend
        .touch(&touched, Duration::from_secs(3))
        .await
        .unwrap_or_else(|e| panic!("[{name}] touch failed: {e}"));
    must_save(
        backend,
        &saved,
        merge(&[("s", "2")], &[]),
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

fn merge(set: &[(&str, &str)], remove: &[&str]) -> SessionChange {
    SessionChange::Merge {
        set: state(set),
        remove: remove.iter().map(|k| (*k).to_owned()).collect(),
    }
}
