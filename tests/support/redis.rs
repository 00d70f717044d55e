//! Starts real `redis-server` processes for the tests: standalone, with an ACL user, with TLS
//! (a CA and a server certificate generated at test time), and as a 3-master cluster. Each
//! server runs on free loopback ports with persistence off, keeps its files in a temporary
//! folder, and is killed when dropped.

use std::{
    fmt::Write as _,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

const MISSING: &str =
    "redis-server not found: run ./scripts/test.sh or apt-get install redis-server redis-tools";

/// How long a server may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A port on 127.0.0.1 that nothing listens on now; for a cluster node also its bus port
/// (port + 10000).
pub fn free_port(for_cluster: bool) -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        if !for_cluster
            || (port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok())
        {
            return port;
        }
    }
}

fn require_binaries() {
    for binary in ["redis-server", "redis-cli"] {
        let found = Command::new(binary)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(found, "{MISSING} ({binary} is missing)");
    }
}

/// The TLS files of a [`RedisServer::tls`] server.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The PEM CA that issued the server certificate: give it to clients as `tlsCaFile`.
    pub ca: PathBuf,
    /// The server certificate (SAN IP 127.0.0.1 and DNS localhost).
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// Generates a CA and a server certificate it signs into `dir`.
    fn generate(dir: &Path) -> TlsFiles {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().expect("generate the CA key");
        let mut ca_params = CertificateParams::new(Vec::new()).expect("CA parameters");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "flamingo test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).expect("self-sign the CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().expect("generate the server key");
        let mut server_params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("server parameters");
        server_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .expect("sign the server certificate");

        let files = TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("server.pem"),
            key: dir.join("server.key"),
        };
        std::fs::write(&files.ca, ca_cert.pem()).expect("write ca.pem");
        std::fs::write(&files.cert, server_cert.pem()).expect("write server.pem");
        std::fs::write(&files.key, server_key.serialize_pem()).expect("write server.key");
        files
    }
}

/// One `redis-server` process on 127.0.0.1, killed on drop.
pub struct RedisServer {
    port: u16,
    dir: tempfile::TempDir,
    conf: PathBuf,
    child: Option<Child>,
    acl: Option<(String, String)>,
    tls: Option<TlsFiles>,
    cluster: bool,
}

impl RedisServer {
    /// A plain server: no password, no TLS.
    pub fn standalone() -> RedisServer {
        RedisServer::start(None, false, false)
    }

    /// A server whose only usable account is the ACL user `user` with password `pass` (the
    /// `default` user is disabled).
    pub fn with_acl(user: &str, pass: &str) -> RedisServer {
        RedisServer::start(Some((user.to_owned(), pass.to_owned())), false, false)
    }

    /// A TLS-only server (`port 0`, `tls-port P`, no client certificates required) whose
    /// certificate is issued by a CA generated now: see [`RedisServer::tls_files`].
    pub fn tls() -> RedisServer {
        RedisServer::start(None, true, false)
    }

    fn cluster_node() -> RedisServer {
        RedisServer::start(None, false, true)
    }

    fn start(acl: Option<(String, String)>, tls: bool, cluster: bool) -> RedisServer {
        require_binaries();
        let dir = tempfile::Builder::new()
            .prefix("flamingo-redis-")
            .tempdir()
            .expect("create a temporary folder for redis");
        let port = free_port(cluster);
        let tls = tls.then(|| TlsFiles::generate(dir.path()));
        let mut conf = String::new();
        let path = dir.path().display();
        writeln!(conf, "bind 127.0.0.1").unwrap();
        writeln!(conf, "dir {path}").unwrap();
        writeln!(conf, "logfile {path}/redis.log").unwrap();
        writeln!(conf, "save \"\"").unwrap();
        writeln!(conf, "appendonly no").unwrap();
        writeln!(conf, "daemonize no").unwrap();
        match &tls {
            Some(files) => {
                writeln!(conf, "port 0").unwrap();
                writeln!(conf, "tls-port {port}").unwrap();
                writeln!(conf, "tls-cert-file {}", files.cert.display()).unwrap();
                writeln!(conf, "tls-key-file {}", files.key.display()).unwrap();
                writeln!(conf, "tls-ca-cert-file {}", files.ca.display()).unwrap();
                writeln!(conf, "tls-auth-clients no").unwrap();
            }
            None => writeln!(conf, "port {port}").unwrap(),
        }
        if let Some((user, pass)) = &acl {
            writeln!(conf, "user default off").unwrap();
            writeln!(conf, "user {user} on >{pass} ~* &* +@all").unwrap();
        }
        if cluster {
            writeln!(conf, "cluster-enabled yes").unwrap();
            writeln!(conf, "cluster-config-file {path}/nodes.conf").unwrap();
            writeln!(conf, "cluster-announce-ip 127.0.0.1").unwrap();
            writeln!(conf, "cluster-node-timeout 2000").unwrap();
        }
        let conf_path = dir.path().join("redis.conf");
        std::fs::write(&conf_path, conf).expect("write redis.conf");
        let mut server = RedisServer {
            port,
            dir,
            conf: conf_path,
            child: None,
            acl,
            tls,
            cluster,
        };
        server.launch();
        server
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }

    /// What the server logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn launch(&mut self) {
        assert!(self.child.is_none(), "redis-server is already running");
        // Readiness is the log line of this launch: remember how much log there was before.
        let seen = self.log().matches("Ready to accept connections").count();
        let child = Command::new("redis-server")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{MISSING}: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.log().matches("Ready to accept connections").count() > seen {
                return;
            }
            let child = self.child.as_mut().expect("child");
            if let Some(status) = child.try_wait().expect("poll redis-server") {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
                }
                self.child = None;
                panic!(
                    "redis-server on port {} exited with {status} before it was ready:\n{stderr}\n{}",
                    self.port,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} was not ready within {START_TIMEOUT:?}:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Its port on 127.0.0.1 (the TLS port for a [`RedisServer::tls`] server).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`, as `flamingo.session.redis.host` takes it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The CA, certificate and key of a TLS server.
    pub fn tls_files(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// Whether the process runs now.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server (data is lost: persistence is off). The port stays reserved for
    /// [`RedisServer::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Suspends the process (SIGSTOP): connections stay open but nothing answers, the way a
    /// stalled or partitioned server behaves. [`RedisServer::thaw`] resumes it.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// Resumes a [frozen](RedisServer::freeze) server (SIGCONT).
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .expect("redis-server is not running")
            .id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid} failed");
    }

    /// Starts the server again on the same port with the same configuration.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Runs `redis-cli` against this server (with its credentials and TLS settings) and returns
    /// its standard output.
    ///
    /// # Panics
    ///
    /// When redis-cli exits unsuccessfully.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = self.cli_output(args);
        assert!(
            output.status.success(),
            "redis-cli {args:?} against port {} failed: {}{}",
            self.port,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("redis-cli printed UTF-8")
    }

    /// Runs `redis-cli` against this server and returns its whole output, successful or not.
    pub fn cli_output(&self, args: &[&str]) -> Output {
        let mut command = Command::new("redis-cli");
        command
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .arg("--no-auth-warning");
        if let Some((user, pass)) = &self.acl {
            command.args(["--user", user, "--pass", pass]);
        }
        if let Some(files) = &self.tls {
            command.arg("--tls").arg("--cacert").arg(&files.ca);
        }
        command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{MISSING}: {e}"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis Cluster of masters only (no replicas), each node a [`RedisServer`]; killed on drop.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` nodes with `cluster-enabled yes`, joins them with
    /// `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`, and waits until every
    /// node reports `cluster_state:ok`. Takes about 2 seconds (Redis' own delay): start it early.
    pub fn start(masters: usize) -> RedisCluster {
        RedisCluster::start_with_replicas(masters, 0)
    }

    /// Like [`RedisCluster::start`], with `replicas` replicas per master (`masters * (1 +
    /// replicas)` nodes); a master that stops is replaced by its replica after the 2 s
    /// `cluster-node-timeout`.
    pub fn start_with_replicas(masters: usize, replicas: usize) -> RedisCluster {
        assert!(masters >= 3, "Redis Cluster needs at least 3 masters");
        let nodes: Vec<RedisServer> = std::thread::scope(|scope| {
            let starting: Vec<_> = (0..masters * (1 + replicas))
                .map(|_| scope.spawn(RedisServer::cluster_node))
                .collect();
            starting
                .into_iter()
                .map(|h| h.join().expect("start a cluster node"))
                .collect()
        });
        let cluster = RedisCluster { nodes };
        let mut args = vec!["--cluster".to_owned(), "create".to_owned()];
        args.extend(cluster.hosts());
        args.extend([
            "--cluster-replicas".to_owned(),
            replicas.to_string(),
            "--cluster-yes".to_owned(),
        ]);
        let output = Command::new("redis-cli")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{MISSING}: {e}"));
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        cluster.wait_until_ok();
        if replicas > 0 {
            // Replicas report ok before they finished their first sync; wait for the links.
            let deadline = Instant::now() + START_TIMEOUT;
            while !cluster.nodes.iter().all(|n| {
                let role = n.cli(&["role"]);
                role.starts_with("master") || role.contains("connected")
            }) {
                assert!(
                    Instant::now() < deadline,
                    "replicas did not connect to their masters"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    }

    /// The index of a node that is a master now.
    pub fn a_master(&self) -> usize {
        self.nodes
            .iter()
            .position(|n| n.is_running() && n.cli(&["role"]).starts_with("master"))
            .expect("a running master")
    }

    /// Waits until every replica has received everything its master wrote (its offset equals the
    /// master's `master_repl_offset`), so that a failover loses nothing.
    pub fn wait_until_replicas_caught_up(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let field = |info: &str, name: &str| -> Option<u64> {
            info.lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
        };
        while Instant::now() < deadline {
            let caught_up = self
                .nodes
                .iter()
                .filter(|n| n.is_running() && n.cli(&["role"]).starts_with("master"))
                .all(|master| {
                    let info = master.cli(&["info", "replication"]);
                    let Some(offset) = field(&info, "master_repl_offset:") else {
                        return false;
                    };
                    let replicas: Vec<&str> =
                        info.lines().filter(|l| l.starts_with("slave")).collect();
                    !replicas.is_empty()
                        && replicas.iter().all(|line| {
                            line.contains("state=online")
                                && line.split(',').any(|part| {
                                    part.strip_prefix("offset=")
                                        .and_then(|v| v.parse::<u64>().ok())
                                        == Some(offset)
                                })
                        })
                });
            if caught_up {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Waits until every running node reports `cluster_state:ok` (after a failover, say).
    pub fn wait_until_running_nodes_ok(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self
                .nodes
                .iter()
                .filter(|n| n.is_running())
                .all(|n| n.cli(&["cluster", "info"]).contains("cluster_state:ok"))
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn wait_until_ok(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let all_ok = self
                .nodes
                .iter()
                .all(|node| node.cli(&["cluster", "info"]).contains("cluster_state:ok"));
            if all_ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not reach cluster_state:ok within {START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The nodes' `127.0.0.1:<port>` addresses.
    pub fn hosts(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::host).collect()
    }

    /// The nodes, to run `cli` on one of them.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Stops node `index` (its slots become unreachable).
    pub fn stop_node(&mut self, index: usize) {
        self.nodes[index].stop();
    }

    /// Restarts node `index` on its port (it keeps its cluster identity and slots, not its
    /// data) and waits until every node reports `cluster_state:ok` again.
    pub fn restart_node(&mut self, index: usize) {
        self.nodes[index].restart();
        self.wait_until_ok();
    }
}

/// Where the Redis backend keeps a session under the default prefix: `session:{abc}<rest>`
/// for the ID `abc<rest>` (the first three characters are the cluster hash tag).
pub fn session_key(id: &flamingo_session::SessionId) -> String {
    let (tag, rest) = id.expose().split_at(3);
    format!("session:{{{tag}}}{rest}")
}

/// The session ID of a key named as [`session_key`] names it.
pub fn id_of_key(key: &str) -> flamingo_session::SessionId {
    let rest = key.strip_prefix("session:{").expect("a session key");
    let (tag, rest) = rest.split_once('}').expect("a hash tag");
    flamingo_session::SessionId::parse(&format!("{tag}{rest}")).expect("a session ID")
}
