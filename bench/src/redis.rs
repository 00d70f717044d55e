//! Starts the Redis servers the benchmark needs (standalone, and a 3-master cluster) on free
//! loopback ports, like the test harness does, and stops them when dropped.

use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use crate::wait_for_port;

/// A port nobody listens on now (and, for a cluster node, its bus port + 10000 neither).
pub fn free_port(for_cluster: bool) -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("bind 127.0.0.1:0");
        if !for_cluster {
            return port;
        }
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// One redis-server child process.
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
}

impl RedisServer {
    /// Starts `redis-server` on a free port with persistence off, pinned to `cpus` when given.
    ///
    /// # Errors
    ///
    /// When redis-server is missing or does not come up.
    pub fn start(dir: &Path, cluster: bool, cpus: Option<&str>) -> Result<RedisServer, String> {
        let port = free_port(cluster);
        let node_dir = dir.join(format!("redis-{port}"));
        std::fs::create_dir_all(&node_dir).map_err(|e| format!("{}: {e}", node_dir.display()))?;
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &node_dir.display().to_string(),
            "--logfile",
            "redis.log",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if cluster {
            args.extend(
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-announce-ip",
                    "127.0.0.1",
                ]
                .map(String::from),
            );
        }
        let child = pinned(cpus, "redis-server")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("cannot start redis-server ({e}): apt-get install redis-server redis-tools")
            })?;
        let server = RedisServer { port, child };
        wait_for_port(
            SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_secs(10),
        )?;
        Ok(server)
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The process ID (for its resident memory).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `redis-cli -p PORT ARGS...` and answers its output.
    ///
    /// # Errors
    ///
    /// When redis-cli fails.
    pub fn cli(&self, args: &[&str]) -> Result<String, String> {
        cli(self.port, args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `redis-cli -p PORT ARGS...`.
///
/// # Errors
///
/// When redis-cli is missing or exits with an error.
pub fn cli(port: u16, args: &[&str]) -> Result<String, String> {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .map_err(|e| format!("redis-cli: {e} (apt-get install redis-tools)"))?;
    if !out.status.success() {
        return Err(format!(
            "redis-cli {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A command, prefixed with `taskset -c CPUS` when `cpus` is given.
pub fn pinned(cpus: Option<&str>, program: &str) -> Command {
    match cpus {
        Some(cpus) => {
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", cpus, program]);
            cmd
        }
        None => Command::new(program),
    }
}

/// Three cluster masters with all 16384 slots assigned.
pub struct RedisCluster {
    /// The nodes.
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts three nodes and joins them with `redis-cli --cluster create`.
    ///
    /// # Errors
    ///
    /// When a node does not start or the cluster is not ready in 30 seconds.
    pub fn start(dir: &Path, cpus: Option<&str>) -> Result<RedisCluster, String> {
        let nodes = (0..3)
            .map(|_| RedisServer::start(dir, true, cpus))
            .collect::<Result<Vec<_>, _>>()?;
        let mut args = vec!["--cluster".to_owned(), "create".to_owned()];
        args.extend(nodes.iter().map(RedisServer::host));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"].map(String::from));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(nodes[0].port, &refs)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let ok = nodes.iter().all(|n| {
                n.cli(&["cluster", "info"])
                    .map(|info| info.contains("cluster_state:ok"))
                    .unwrap_or(false)
            });
            if ok {
                return Ok(RedisCluster { nodes });
            }
            if std::time::Instant::now() > deadline {
                return Err("the Redis cluster did not reach cluster_state:ok in 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `h:p,h:p,h:p`.
    pub fn hosts(&self) -> String {
        self.nodes
            .iter()
            .map(RedisServer::host)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// FLUSHALL on every node.
    ///
    /// # Errors
    ///
    /// When a node does not answer.
    pub fn flush(&self) -> Result<(), String> {
        for node in &self.nodes {
            node.cli(&["flushall"])?;
        }
        Ok(())
    }
}

/// A scratch folder removed when dropped.
pub struct Scratch(pub PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
