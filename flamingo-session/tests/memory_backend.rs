//! The memory backend against the public conformance suite, plus its own bounds.

use std::time::Duration;

use flamingo_session::{conformance, MemoryBackend, SessionBackend, SessionState};

#[actix_web::test]
async fn memory_backend_passes_the_conformance_suite() {
    let backend = MemoryBackend::new(100_000, 4096);
    conformance::run(&backend, 4096).await;
}

#[actix_web::test]
async fn memory_backend_without_size_limit_passes_too() {
    conformance::run(&MemoryBackend::new(100_000, 0), 0).await;
}

#[actix_web::test]
async fn capacity_bounds_the_number_of_sessions() {
    let backend = MemoryBackend::new(100, 0);
    for _ in 0..1000 {
        backend
            .create(SessionState::new(), Duration::from_secs(600))
            .await
            .unwrap();
    }
    let held = backend.len();
    assert!(
        held <= 100,
        "capacity 100 must hold at most 100 sessions, holds {held}"
    );
}

#[actix_web::test]
async fn expired_sessions_are_evicted_not_just_hidden() {
    let backend = MemoryBackend::new(1000, 0);
    for _ in 0..50 {
        backend
            .create(SessionState::new(), Duration::from_millis(200))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(backend.len(), 0, "expired sessions must be evicted");
}
