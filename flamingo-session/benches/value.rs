//! Micro benchmarks of value encoding and decoding: flamingo-session's typed envelope
//! (`{"t":"<type name>","v":<json>}`, written by [`Session::store`] and checked by
//! [`Session::load`]) against plain `serde_json` and against actix-session's own
//! `insert`/`get`, which store the bare JSON.
//!
//! ```text
//! cargo bench -p flamingo-session --bench value
//! ```
//!
//! `cargo test --all-targets` runs each benchmark once as a smoke test.

use std::hint::black_box;

use actix_session::SessionExt as _;
use criterion::{BatchSize, Criterion, Throughput};
use flamingo_session::{registry::Registry, Session, SessionValue};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// One line of a cart.
#[derive(Clone, Serialize, Deserialize, SessionValue)]
#[session_value(name = "bench.CartItem")]
struct CartItem {
    sku: String,
    qty: u32,
}

/// A shopping cart, as the demo stores it.
#[derive(Clone, Serialize, Deserialize, SessionValue)]
#[session_value(name = "bench.Cart")]
struct Cart {
    items: Vec<CartItem>,
}

fn cart(lines: usize) -> Cart {
    Cart {
        items: (0..lines)
            .map(|i| CartItem {
                sku: format!("article-{i:05}"),
                qty: (i % 7) as u32 + 1,
            })
            .collect(),
    }
}

/// An actix-session session of its own (no middleware needed: actix-session creates the state
/// on first use).
fn actix_session() -> actix_session::Session {
    let req = actix_web::test::TestRequest::default().to_http_request();
    req.get_session()
}

/// Our session over it.
fn session() -> Session {
    Session::from_actix(actix_session())
}

fn encode_case<T: SessionValue + Clone>(c: &mut Criterion, name: &str, value: &T) {
    let plain = serde_json::to_string(value).expect("serialisable");
    let mut group = c.benchmark_group(format!("encode/{name}"));
    group.throughput(Throughput::Bytes(plain.len() as u64));
    group.bench_function("serde_json::to_string", |b| {
        b.iter(|| serde_json::to_string(black_box(value)))
    });
    // Both stores take the value by value, as applications call them: the clone is made
    // outside the timing, the drop of the consumed value is inside it for both.
    let actix = actix_session();
    group.bench_function("actix_session insert", |b| {
        b.iter_batched(
            || value.clone(),
            |v| actix.insert("key", v),
            BatchSize::SmallInput,
        )
    });
    let ours = session();
    group.bench_function("flamingo store", |b| {
        b.iter_batched(
            || value.clone(),
            |v| ours.store("key", v),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn decode_case<T: SessionValue + Clone + DeserializeOwned>(
    c: &mut Criterion,
    name: &str,
    value: &T,
) {
    let plain = serde_json::to_string(value).expect("serialisable");
    let mut group = c.benchmark_group(format!("decode/{name}"));
    group.throughput(Throughput::Bytes(plain.len() as u64));
    group.bench_function("serde_json::from_str", |b| {
        b.iter(|| serde_json::from_str::<T>(black_box(&plain)).expect("decodes"))
    });
    let actix = actix_session();
    actix.insert("key", value).expect("stores");
    group.bench_function("actix_session get", |b| {
        b.iter(|| actix.get::<T>(black_box("key")).expect("decodes"))
    });
    let ours = session();
    ours.store("key", value.clone()).expect("stores");
    group.bench_function("flamingo load", |b| {
        b.iter(|| ours.load::<T>(black_box("key")).expect("decodes"))
    });
    let stored = ours
        .raw_entries()
        .into_iter()
        .find(|(k, _)| k == "key")
        .map(|(_, text)| text)
        .expect("stored text");
    group.bench_function("registry decode (dynamic)", |b| {
        b.iter(|| {
            Registry::global()
                .decode(black_box(&stored))
                .expect("decodes")
        })
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let counter = 41_u64;
    let small = cart(3);
    let large = cart(100);
    encode_case(&mut c, "u64", &counter);
    encode_case(&mut c, "cart-3-lines", &small);
    encode_case(&mut c, "cart-100-lines", &large);
    decode_case(&mut c, "u64", &counter);
    decode_case(&mut c, "cart-3-lines", &small);
    decode_case(&mut c, "cart-100-lines", &large);
    c.final_summary();
}
