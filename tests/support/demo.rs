//! Runs the demo app (`examples/demo.rs`) as a real process on a free loopback port.

use std::{
    io::Write as _,
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .unwrap()
        .port()
}

/// The demo binary cargo built next to this test binary.
pub fn demo_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target profile dir");
    let bin = dir.join("examples").join("demo");
    assert!(
        bin.exists(),
        "the demo binary is missing at {}: run `cargo build --example demo` first \
         (./scripts/test.sh builds it with `cargo test --all-targets`)",
        bin.display()
    );
    bin
}

/// A running demo process, killed on drop.
pub struct Demo {
    child: Option<Child>,
    pub addr: String,
    config: tempfile::NamedTempFile,
    log: PathBuf,
}

impl Demo {
    /// Starts the demo with `yaml` as its `--config` file and waits until it answers.
    pub fn start(yaml: &str) -> Demo {
        Demo::start_at(free_port(), yaml)
    }

    /// Like [`Demo::start`], on a port chosen beforehand (for an OpenID Provider that must know
    /// the app's callback URL first).
    pub fn start_at(port: u16, yaml: &str) -> Demo {
        let mut config = tempfile::Builder::new()
            .suffix(".yml")
            .tempfile()
            .expect("config file");
        config.write_all(yaml.as_bytes()).unwrap();
        let log = std::env::temp_dir().join(format!("flamingo-demo-{}.log", free_port()));
        let mut demo = Demo {
            child: None,
            addr: String::new(),
            config,
            log,
        };
        demo.spawn(port);
        demo
    }

    fn spawn(&mut self, port: u16) {
        self.addr = format!("127.0.0.1:{port}");
        let log = std::fs::File::create(&self.log).expect("demo log file");
        let child = Command::new(demo_binary())
            .args(["--addr", &self.addr, "--config"])
            .arg(self.config.path())
            .env("RUST_LOG", "warn")
            .env("DEMO_WORKERS", "2")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the demo");
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect(&self.addr).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "the demo exited with {status} before it listened:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the demo did not listen within 20 s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The demo's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Kills the process (SIGKILL) and starts it again on the same port and config.
    pub fn restart(&mut self) {
        self.stop();
        let port: u16 = self.addr.rsplit(':').next().unwrap().parse().unwrap();
        self.spawn(port);
    }

    /// Kills the process.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A reqwest client with its own cookie jar: one browser.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// `GET /counter` with this browser's cookie; asserts a 200 and returns the count.
pub async fn count(client: &reqwest::Client, demo: &Demo) -> u64 {
    let res = client
        .get(demo.url("/counter"))
        .send()
        .await
        .expect("GET /counter");
    assert_eq!(res.status(), reqwest::StatusCode::OK, "{}", demo.log());
    res.json::<serde_json::Value>().await.unwrap()["count"]
        .as_u64()
        .unwrap()
}

/// 100 concurrent `PUT /kv/k{i}` on one session, each storing its own key; returns how many
/// keys `GET /kv` shows afterwards (each checked to hold its own value).
pub async fn hundred_concurrent_keys(demo: &Demo) -> usize {
    let client = browser();
    assert_eq!(count(&client, demo).await, 1);
    let puts = (0..100).map(|i| {
        let client = client.clone();
        let url = demo.url(&format!("/kv/k{i}"));
        async move {
            client
                .put(url)
                .json(&serde_json::json!(i))
                .send()
                .await
                .map(|r| r.status())
        }
    });
    for status in futures_util::future::join_all(puts).await {
        assert_eq!(
            status.expect("PUT /kv"),
            reqwest::StatusCode::NO_CONTENT,
            "{}",
            demo.log()
        );
    }
    let all: serde_json::Map<String, serde_json::Value> = client
        .get(demo.url("/kv"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (key, value) in &all {
        assert_eq!(
            key[1..].parse::<u64>().ok(),
            value.as_u64(),
            "a kept key holds its own value"
        );
    }
    all.len()
}
