//! The memory backend's create when the store has room and when it is full (at
//! `memory.capacity`, where every create must make room first): a flood of new sessions must
//! not get slower once the store fills up.
//!
//! ```text
//! cargo bench -p flamingo-session --bench memory
//! ```
//!
//! `cargo test --all-targets` runs each benchmark once as a smoke test.

use std::{hint::black_box, time::Duration};

use criterion::Criterion;
use flamingo_session::backend::{memory::MemoryBackend, SessionBackend, SessionState};

/// Sessions the benchmarked store holds at most.
const CAPACITY: u64 = 100_000;

fn state() -> SessionState {
    let mut state = SessionState::new();
    state.insert(
        "cart".to_owned(),
        r#"{"t":"bench.Cart","v":{"items":[{"sku":"tea","qty":2}]}}"#.to_owned(),
    );
    state
}

fn create(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let ttl = Duration::from_secs(3600);
    let mut group = c.benchmark_group("memory create");

    let roomy = MemoryBackend::new(u64::MAX, 0);
    group.bench_function("with room", |b| {
        b.iter(|| {
            runtime
                .block_on(roomy.create(black_box(state()), ttl))
                .unwrap()
        })
    });

    let full = MemoryBackend::new(CAPACITY, 0);
    runtime.block_on(async {
        for _ in 0..CAPACITY + CAPACITY / 10 {
            full.create(state(), ttl).await.unwrap();
        }
    });
    group.bench_function(format!("full ({CAPACITY} sessions)"), |b| {
        b.iter(|| {
            runtime
                .block_on(full.create(black_box(state()), ttl))
                .unwrap()
        })
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    create(&mut c);
    c.final_summary();
}
