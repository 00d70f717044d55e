//! Shared pieces of the benchmark harness: the handler data, the list of configurations and
//! workloads, and a small HTTP/1.1 client the driver uses to seed sessions.
//!
//! Every configuration serves the same routes with the same handler logic:
//!
//! | route | what the handler does |
//! |---|---|
//! | `GET /counter` | reads `count` (0 when absent), adds 1, stores it, answers `{"count":N}` |
//! | `GET /cart` | reads the cart and answers it as JSON (never writes) |
//! | `GET /plain` | never touches the session, answers `{"ok":true}` |
//! | `GET /seed` | stores a 3-line cart and `count = 0` (used once to get a cookie) |
//! | `GET /user` | flamingo only: the `User` extractor of flamingo-auth |
//! | `POST /populate?n=N` | flamingo only: stores N more sessions straight through the backend |

#![forbid(unsafe_code)]

use std::{
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use serde::{Deserialize, Serialize};

pub mod http;
pub mod idp;
pub mod redis;

/// One line of the cart.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CartItem {
    /// The article.
    pub sku: String,
    /// How many.
    pub qty: u32,
}

/// The cart the read-only workload reads: the same three lines in every configuration.
#[derive(
    Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, flamingo_session::SessionValue,
)]
#[session_value(name = "bench.Cart")]
pub struct Cart {
    /// The lines.
    pub items: Vec<CartItem>,
}

impl Cart {
    /// The seeded cart.
    pub fn seeded() -> Cart {
        Cart {
            items: vec![
                CartItem {
                    sku: "tea-earl-grey".into(),
                    qty: 2,
                },
                CartItem {
                    sku: "mug-white".into(),
                    qty: 1,
                },
                CartItem {
                    sku: "biscuits-shortbread".into(),
                    qty: 3,
                },
            ],
        }
    }
}

/// A server configuration the harness knows how to start (`bench-server --config NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The `--config` name.
    pub name: &'static str,
    /// What the table calls it.
    pub label: &'static str,
    /// Whether it keeps sessions at all.
    pub sessions: bool,
    /// Whether it is one of ours (flamingo-session).
    pub ours: bool,
    /// Whether it needs the standalone Redis.
    pub redis: bool,
    /// Whether it needs the Redis cluster.
    pub cluster: bool,
}

const fn cfg(name: &'static str, label: &'static str, ours: bool) -> Config {
    Config {
        name,
        label,
        sessions: true,
        ours,
        redis: false,
        cluster: false,
    }
}

/// Every configuration, in table order.
pub const CONFIGS: &[Config] = &[
    Config {
        sessions: false,
        ..cfg("bare", "actix-web, no session (baseline)", false)
    },
    cfg("as-cookie", "actix-session CookieSessionStore", false),
    Config {
        redis: true,
        ..cfg(
            "as-redis-pool",
            "actix-session RedisSessionStore (deadpool, pooled)",
            false,
        )
    },
    Config {
        redis: true,
        ..cfg(
            "as-redis-conn",
            "actix-session RedisSessionStore (one ConnectionManager)",
            false,
        )
    },
    cfg("fl-memory", "flamingo memory", true),
    cfg("fl-file", "flamingo file (disk)", true),
    cfg("fl-file-tmpfs", "flamingo file (tmpfs)", true),
    Config {
        redis: true,
        ..cfg("fl-redis", "flamingo redis", true)
    },
    Config {
        cluster: true,
        ..cfg(
            "fl-redis-cluster",
            "flamingo redis cluster (3 masters)",
            true,
        )
    },
    cfg("ts-memory", "axum + tower-sessions MemoryStore", false),
    Config {
        redis: true,
        ..cfg("ts-redis", "axum + tower-sessions RedisStore (fred)", false)
    },
];

/// Looks a configuration up by its `--config` name.
pub fn config(name: &str) -> Option<&'static Config> {
    CONFIGS.iter().find(|c| c.name == name)
}

/// A load pattern: which route, with or without the seeded session cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// Short name (`--workloads` filter and table column).
    pub name: &'static str,
    /// What the table calls it.
    pub label: &'static str,
    /// The path requested.
    pub path: &'static str,
    /// Whether every request carries the seeded session cookie.
    pub cookie: bool,
    /// The route that seeds the session whose cookie the requests carry.
    pub seed: &'static str,
    /// Whether every request creates a session (each run then starts from empty Redis stores).
    pub creates_sessions: bool,
}

/// Every workload, in table order.
pub const WORKLOADS: &[Workload] = &[
    Workload {
        name: "counter",
        label: "read+write (counter)",
        path: "/counter",
        cookie: true,
        seed: "/seed",
        creates_sessions: false,
    },
    Workload {
        name: "cart",
        label: "read only (cart)",
        path: "/cart",
        cookie: true,
        seed: "/seed",
        creates_sessions: false,
    },
    Workload {
        name: "plain",
        label: "no session use, no cookie",
        path: "/plain",
        cookie: false,
        seed: "/seed",
        creates_sessions: false,
    },
    Workload {
        name: "plain-cookie",
        label: "no session use, with cookie",
        path: "/plain",
        cookie: true,
        seed: "/seed",
        creates_sessions: false,
    },
    Workload {
        name: "new",
        label: "new session per request (no cookie)",
        path: "/counter",
        cookie: false,
        seed: "/seed",
        creates_sessions: true,
    },
    Workload {
        name: "user",
        label: "logged-in User extractor",
        path: "/user",
        cookie: true,
        seed: "/seed-user",
        creates_sessions: false,
    },
];

/// Looks a workload up by name.
pub fn workload(name: &str) -> Option<&'static Workload> {
    WORKLOADS.iter().find(|w| w.name == name)
}

/// Waits until something accepts TCP connections on `addr`.
///
/// # Errors
///
/// When nothing listens within `timeout`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("nothing listens on {addr} after {timeout:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
