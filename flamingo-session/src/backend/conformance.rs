//! A conformance suite for [`SessionBackend`] implementations: ours, and yours.
//!
//! [`run`] checks the contract documented in [`backend`](crate::backend) against a live backend,
//! one public function per rule (call them one by one to get a test per rule): unknown IDs,
//! round trip with values stored verbatim, fresh distinct IDs, replace and merge, delete, a dead
//! session staying dead, touch, shared loads being snapshots, renew, sizes up to and over `store.length` (with the old state
//! intact), concurrent creates and merges, and TTL expiry and refresh; for a backend with a
//! [per-owner index](crate::backend::index), listing, ending one and all, following writes and
//! expiry, and an `end_all` racing creates; for one with leases, exclusion and expiry. Each
//! panics with a message naming the broken rule, like an assertion.
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
    unix_now, BackendError, IndexedSession, Leases, SaveOutcome, SessionBackend, SessionChange,
    SessionId, SessionIndex, SessionOwner, SessionState,
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

/// Whether `id` loads as `None`, through both `load` and `load_shared` (which must agree).
async fn is_gone(backend: &dyn SessionBackend, id: &SessionId, rule: &str) -> bool {
    let name = backend.name();
    let gone = match backend.load(id).await {
        Ok(found) => found.is_none(),
        Err(err) => panic!("[{name}] {rule}: load failed: {err}"),
    };
    let shared_gone = match backend.load_shared(id).await {
        Ok(found) => found.is_none(),
        Err(err) => panic!("[{name}] {rule}: load_shared failed: {err}"),
    };
    assert_eq!(
        gone, shared_gone,
        "[{name}] {rule}: load and load_shared must agree on whether the session exists"
    );
    gone
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
    shared_loads_are_snapshots(backend).await;
    renew_moves_the_data(backend).await;
    if store_length > 0 {
        sizes_are_bounded(backend, store_length).await;
    }
    concurrent_writes_lose_nothing(backend).await;
    ttl_expires_and_refreshes(backend).await;
    if backend.index().is_some() {
        index_lists_live_sessions_per_owner(backend).await;
        index_ends_one_or_all(backend).await;
        index_follows_writes_and_expiry(backend).await;
        index_end_all_never_misses_a_concurrent_create(backend).await;
    }
    if backend.leases().is_some() {
        leases_are_exclusive_and_expire(backend).await;
    }
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

/// `load_shared` answers what `load` does, and what it answered stays as it was when a later
/// write changes the session: a request's copy is a snapshot, never changed under it.
pub async fn shared_loads_are_snapshots(backend: &dyn SessionBackend) {
    let name = backend.name();
    let rule = "shared loads";
    let before = state(&[("a", "1"), ("b", "2")]);
    let id = must_create(backend, before.clone(), LONG, rule).await;
    let shared = |found: Result<Option<std::sync::Arc<SessionState>>, BackendError>| match found {
        Ok(Some(state)) => state,
        Ok(None) => panic!("[{name}] {rule}: load_shared missed a live session"),
        Err(err) => panic!("[{name}] {rule}: load_shared failed: {err}"),
    };
    let held = shared(backend.load_shared(&id).await);
    assert_eq!(
        *held, before,
        "[{name}] load_shared must answer the stored state"
    );
    must_save(backend, &id, merge(&[("a", "3")], &["b"]), LONG, rule).await;
    let after = state(&[("a", "3")]);
    assert_eq!(
        *held, before,
        "[{name}] a write must not change a state load_shared answered before it"
    );
    assert_eq!(
        *shared(backend.load_shared(&id).await),
        after,
        "[{name}] load_shared must answer the state after a write"
    );
    assert_eq!(must_load(backend, &id, rule).await, after);
    must_save(
        backend,
        &id,
        SessionChange::Replace(state(&[("c", "4")])),
        LONG,
        rule,
    )
    .await;
    assert_eq!(
        *shared(backend.load_shared(&id).await),
        state(&[("c", "4")]),
        "[{name}] load_shared must answer the state after a replace"
    );
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

fn index_of<'a>(backend: &'a dyn SessionBackend, rule: &str) -> &'a dyn SessionIndex {
    backend
        .index()
        .unwrap_or_else(|| panic!("[{}] {rule}: the backend has no index", backend.name()))
}

fn leases_of<'a>(backend: &'a dyn SessionBackend, rule: &str) -> &'a dyn Leases {
    backend
        .leases()
        .unwrap_or_else(|| panic!("[{}] {rule}: the backend has no leases", backend.name()))
}

/// A fresh owner, so that rules never see each other's (or an earlier run's) sessions.
fn fresh_owner(label: &str) -> SessionOwner {
    SessionOwner::new(format!(
        "conformance\u{1f}{label}\u{1f}{}",
        SessionId::generate().hash()
    ))
    .expect("a valid owner")
}

async fn must_create_owned(
    backend: &dyn SessionBackend,
    owner: &SessionOwner,
    s: SessionState,
    ttl: Duration,
    rule: &str,
) -> SessionId {
    index_of(backend, rule)
        .create_owned(owner, s, ttl)
        .await
        .unwrap_or_else(|err| panic!("[{}] {rule}: create_owned failed: {err}", backend.name()))
}

async fn must_list(
    backend: &dyn SessionBackend,
    owner: &SessionOwner,
    rule: &str,
) -> Vec<IndexedSession> {
    index_of(backend, rule)
        .list(owner)
        .await
        .unwrap_or_else(|err| panic!("[{}] {rule}: list failed: {err}", backend.name()))
}

fn ids(listed: &[IndexedSession]) -> std::collections::HashSet<SessionId> {
    listed.iter().map(|s| s.id.clone()).collect()
}

/// An owner's index lists exactly its live sessions, with creation and last-use times; IDs
/// carry the owner's tag; a session without an owner and another owner's are not listed; a
/// deleted session drops out.
pub async fn index_lists_live_sessions_per_owner(backend: &dyn SessionBackend) {
    let name = backend.name();
    let rule = "index lists";
    let (alice, bob) = (fresh_owner("alice"), fresh_owner("bob"));
    let before = unix_now();
    let a1 = must_create_owned(backend, &alice, state(&[("k", "\"1\"")]), LONG, rule).await;
    let a2 = must_create_owned(backend, &alice, SessionState::new(), LONG, rule).await;
    let b1 = must_create_owned(backend, &bob, SessionState::new(), LONG, rule).await;
    let unowned = must_create(backend, SessionState::new(), LONG, rule).await;
    assert!(
        a1.expose().starts_with(alice.tag()),
        "[{name}] {rule}: an owned session's ID must start with its owner's tag"
    );
    assert_eq!(
        must_load(backend, &a1, rule).await,
        state(&[("k", "\"1\"")]),
        "[{name}] {rule}: an owned session loads like any other, with nothing added"
    );
    let listed = must_list(backend, &alice, rule).await;
    assert_eq!(
        ids(&listed),
        [a1.clone(), a2.clone()].into(),
        "[{name}] {rule}: the owner's index must list exactly its sessions"
    );
    for session in &listed {
        assert!(
            session.created >= before && session.created <= unix_now() + 1,
            "[{name}] {rule}: created must be the creation time"
        );
        assert!(
            session.last_seen + 1 >= session.created,
            "[{name}] {rule}: last_seen must not be before created"
        );
    }
    assert_eq!(ids(&must_list(backend, &bob, rule).await), [b1].into());
    assert!(!ids(&listed).contains(&unowned));
    backend
        .delete(&a2)
        .await
        .unwrap_or_else(|err| panic!("[{name}] {rule}: delete failed: {err}"));
    assert_eq!(
        ids(&must_list(backend, &alice, rule).await),
        [a1].into(),
        "[{name}] {rule}: a deleted session must not be listed"
    );
    assert!(must_list(backend, &fresh_owner("nobody"), rule)
        .await
        .is_empty());
}

/// `end` ends one session of the owner (never another owner's), `end_all` all of them; an
/// ended session stays dead: save and touch answer `Gone`.
pub async fn index_ends_one_or_all(backend: &dyn SessionBackend) {
    let name = backend.name();
    let rule = "index ends";
    let index = index_of(backend, rule);
    let (alice, bob) = (fresh_owner("alice"), fresh_owner("bob"));
    let a1 = must_create_owned(backend, &alice, SessionState::new(), LONG, rule).await;
    let a2 = must_create_owned(backend, &alice, SessionState::new(), LONG, rule).await;
    let a3 = must_create_owned(backend, &alice, SessionState::new(), LONG, rule).await;
    let b1 = must_create_owned(backend, &bob, SessionState::new(), LONG, rule).await;
    let end = |owner: &SessionOwner, id: &SessionId| {
        let (owner, id) = (owner.clone(), id.clone());
        async move {
            index
                .end(&owner, &id)
                .await
                .unwrap_or_else(|err| panic!("[{name}] {rule}: end failed: {err}"))
        }
    };
    assert!(
        !end(&alice, &b1).await,
        "[{name}] {rule}: ending another owner's session must answer false"
    );
    must_load(backend, &b1, "index ends: another owner's session survives").await;
    assert!(
        end(&alice, &a1).await,
        "[{name}] {rule}: end must answer true"
    );
    assert!(
        is_gone(backend, &a1, rule).await,
        "[{name}] {rule}: an ended session is gone"
    );
    assert!(
        !end(&alice, &a1).await,
        "[{name}] {rule}: ending twice answers false"
    );
    let ended = index
        .end_all(&alice)
        .await
        .unwrap_or_else(|err| panic!("[{name}] {rule}: end_all failed: {err}"));
    assert_eq!(
        ended, 2,
        "[{name}] {rule}: end_all must answer how many were live"
    );
    for id in [&a1, &a2, &a3] {
        assert!(is_gone(backend, id, rule).await);
        let saved = backend
            .save(id, merge(&[("back", "1")], &[]), LONG)
            .await
            .unwrap_or_else(|err| panic!("[{name}] {rule}: save failed: {err}"));
        assert_eq!(
            saved,
            SaveOutcome::Gone,
            "[{name}] {rule}: a save to an ended session must answer Gone"
        );
        let touched = backend
            .touch(id, LONG)
            .await
            .unwrap_or_else(|err| panic!("[{name}] {rule}: touch failed: {err}"));
        assert_eq!(touched, SaveOutcome::Gone);
        assert!(
            is_gone(backend, id, rule).await,
            "[{name}] {rule}: it stays dead"
        );
    }
    assert!(must_list(backend, &alice, rule).await.is_empty());
    assert_eq!(index.end_all(&alice).await.ok(), Some(0));
    assert_eq!(ids(&must_list(backend, &bob, rule).await), [b1].into());
}

/// An owned session stays listed while writes and touches keep it alive past its first TTL,
/// keeps its owner through a `Replace`, and drops out of the list once it expires.
pub async fn index_follows_writes_and_expiry(backend: &dyn SessionBackend) {
    let name = backend.name();
    let rule = "index follows";
    let owner = fresh_owner("sliding");
    let short = Duration::from_millis(1500);
    let expiring = must_create_owned(backend, &owner, SessionState::new(), short, rule).await;
    let saved = must_create_owned(backend, &owner, SessionState::new(), short, rule).await;
    let touched = must_create_owned(backend, &owner, SessionState::new(), short, rule).await;
    let replaced = must_create_owned(backend, &owner, SessionState::new(), short, rule).await;
    let created = must_list(backend, &owner, rule).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let longer = Duration::from_secs(4);
    must_save(backend, &saved, merge(&[("s", "1")], &[]), longer, rule).await;
    must_save(
        backend,
        &replaced,
        SessionChange::Replace(state(&[("r", "1")])),
        longer,
        rule,
    )
    .await;
    assert_eq!(
        backend.touch(&touched, longer).await.ok(),
        Some(SaveOutcome::Saved)
    );
    tokio::time::sleep(Duration::from_millis(900)).await;
    let listed = must_list(backend, &owner, rule).await;
    assert_eq!(
        ids(&listed),
        [saved.clone(), touched.clone(), replaced.clone()].into(),
        "[{name}] {rule}: sessions kept alive stay listed, the expired one drops out"
    );
    let seen = |id: &SessionId, list: &[IndexedSession]| {
        list.iter().find(|s| &s.id == id).map(|s| s.last_seen)
    };
    assert!(
        seen(&saved, &listed) > seen(&saved, &created),
        "[{name}] {rule}: a save must move last_seen"
    );
    assert!(
        is_gone(backend, &expiring, rule).await,
        "[{name}] {rule}: the unrefreshed session expired"
    );
    let ended = index_of(backend, rule)
        .end_all(&owner)
        .await
        .unwrap_or_else(|err| panic!("[{name}] {rule}: end_all failed: {err}"));
    assert_eq!(
        ended, 3,
        "[{name}] {rule}: end_all must still find the saved, touched and replaced sessions"
    );
    assert!(is_gone(backend, &replaced, rule).await);
}

/// An `end_all` that runs while sessions of the owner are being created leaves none of them
/// both alive and unlisted: each is either ended or still in the index.
pub async fn index_end_all_never_misses_a_concurrent_create(backend: &dyn SessionBackend) {
    let name = backend.name();
    let rule = "index race";
    let index = index_of(backend, rule);
    let owner = fresh_owner("race");
    let creates = (0..20).map(|_| index.create_owned(&owner, SessionState::new(), LONG));
    let ends = (0..3).map(|_| index.end_all(&owner));
    let (created, ended) = futures_util::future::join(
        futures_util::future::join_all(creates),
        futures_util::future::join_all(ends),
    )
    .await;
    for result in ended {
        result.unwrap_or_else(|err| panic!("[{name}] {rule}: end_all failed: {err}"));
    }
    let listed = ids(&must_list(backend, &owner, rule).await);
    for id in created {
        let id = id.unwrap_or_else(|err| panic!("[{name}] {rule}: create_owned failed: {err}"));
        if !is_gone(backend, &id, rule).await {
            assert!(
                listed.contains(&id),
                "[{name}] {rule}: a live session must be in its owner's index"
            );
        }
    }
    index
        .end_all(&owner)
        .await
        .unwrap_or_else(|err| panic!("[{name}] {rule}: end_all failed: {err}"));
    assert!(must_list(backend, &owner, rule).await.is_empty());
}

/// One holder at a time; only the holder renews or releases; a lease frees itself after its
/// TTL; of many concurrent takers exactly one wins.
pub async fn leases_are_exclusive_and_expire(backend: &dyn SessionBackend) {
    let name = backend.name();
    let rule = "leases";
    let leases = leases_of(backend, rule);
    let lease = format!("conformance lease {}", SessionId::generate().hash());
    let check = |result: Result<bool, BackendError>| {
        result.unwrap_or_else(|err| panic!("[{name}] {rule}: lease operation failed: {err}"))
    };
    assert!(
        check(leases.acquire(&lease, "h1", LONG).await),
        "[{name}] a free lease is taken"
    );
    assert!(
        !check(leases.acquire(&lease, "h2", LONG).await),
        "[{name}] {rule}: a held lease is refused to another holder"
    );
    assert!(
        check(leases.acquire(&lease, "h1", LONG).await),
        "[{name}] the holder re-takes it"
    );
    assert_eq!(
        leases.holder(&lease).await.ok().flatten().as_deref(),
        Some("h1")
    );
    assert!(
        !check(leases.renew(&lease, "h2", LONG).await),
        "[{name}] only the holder renews"
    );
    assert!(check(leases.renew(&lease, "h1", LONG).await));
    leases.release(&lease, "h2").await.ok();
    assert_eq!(
        leases.holder(&lease).await.ok().flatten().as_deref(),
        Some("h1"),
        "[{name}] {rule}: another holder's release leaves the lease alone"
    );
    leases.release(&lease, "h1").await.ok();
    assert_eq!(
        leases.holder(&lease).await.ok().flatten(),
        None,
        "[{name}] released"
    );
    assert!(check(
        leases
            .acquire(&lease, "h2", Duration::from_millis(400))
            .await
    ));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        leases.holder(&lease).await.ok().flatten(),
        None,
        "[{name}] {rule}: a lease frees itself after its TTL"
    );
    assert!(
        !check(leases.renew(&lease, "h2", LONG).await),
        "[{name}] an expired lease is not renewed"
    );
    let contended = format!("{lease} contended");
    let holders: Vec<String> = (0..10).map(|i| format!("holder{i}")).collect();
    let takes = holders.iter().map(|h| leases.acquire(&contended, h, LONG));
    let won = futures_util::future::join_all(takes)
        .await
        .into_iter()
        .map(check)
        .filter(|won| *won)
        .count();
    assert_eq!(
        won, 1,
        "[{name}] {rule}: of concurrent takers exactly one wins"
    );
}
