//! The benchmark driver: starts Redis and each server configuration, loads them with wrk and
//! prints (and writes) the Markdown tables. `scripts/bench.sh` builds and runs it.
//!
//! ```text
//! bench [--duration 4] [--runs 3] [--connections 50] [--configs a,b] [--workloads a,b]
//!       [--no-scale] [--scale-sessions 100000] [--out bench-results] [--update BENCHMARKS.md]
//!       [--no-pin] [--micro criterion-output.txt]
//! ```

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use flamingo_bench::{
    http,
    idp::FakeIdp,
    redis::{free_port, pinned, RedisCluster, RedisServer, Scratch},
    wait_for_port, Config, Workload, CONFIGS, WORKLOADS,
};
use serde::Serialize;

struct Args {
    duration: u32,
    runs: usize,
    connections: u32,
    configs: Vec<&'static Config>,
    workloads: Vec<&'static Workload>,
    scale: bool,
    scale_sessions: usize,
    out: PathBuf,
    update: Option<PathBuf>,
    micro: Option<PathBuf>,
    pin: bool,
    server: PathBuf,
}

fn parse_list<T: 'static>(
    text: &str,
    find: impl Fn(&str) -> Option<&'static T>,
    what: &str,
) -> Result<Vec<&'static T>, String> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(|name| find(name).ok_or_else(|| format!("unknown {what} {name:?}")))
        .collect()
}

fn parse_args() -> Result<Args, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut args = Args {
        duration: 4,
        runs: 3,
        connections: 50,
        configs: CONFIGS.iter().collect(),
        workloads: WORKLOADS.iter().collect(),
        scale: true,
        scale_sessions: 100_000,
        out: PathBuf::from("bench-results"),
        update: None,
        micro: None,
        pin: std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2,
        server: exe.with_file_name("bench-server"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let number = |name: &str, text: String| {
            text.parse::<usize>()
                .map_err(|e| format!("{name} {text:?}: {e}"))
        };
        match arg.as_str() {
            "--duration" => args.duration = number(&arg, value(&arg)?)? as u32,
            "--runs" => args.runs = number(&arg, value(&arg)?)?.max(1),
            "--connections" => args.connections = number(&arg, value(&arg)?)? as u32,
            "--configs" => {
                args.configs = parse_list(&value(&arg)?, flamingo_bench::config, "config")?
            }
            "--workloads" => {
                args.workloads = parse_list(&value(&arg)?, flamingo_bench::workload, "workload")?
            }
            "--no-scale" => args.scale = false,
            "--scale-sessions" => args.scale_sessions = number(&arg, value(&arg)?)?,
            "--out" => args.out = PathBuf::from(value(&arg)?),
            "--update" => args.update = Some(PathBuf::from(value(&arg)?)),
            "--no-pin" => args.pin = false,
            "--micro" => args.micro = Some(PathBuf::from(value(&arg)?)),
            "--server" => args.server = PathBuf::from(value(&arg)?),
            "-h" | "--help" => {
                println!(
                    "{}",
                    include_str!("bench.rs")
                        .lines()
                        .take(8)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}; try --help")),
        }
    }
    Ok(args)
}

/// One wrk run.
#[derive(Debug, Clone, Copy, Serialize)]
struct Run {
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    /// Non-2xx answers plus socket errors.
    errors: u64,
    /// Requests completed.
    requests: u64,
    /// On-CPU time of the server process (all its threads) per request, in microseconds.
    server_cpu_us: f64,
    /// On-CPU time of redis-server (all nodes) per request, in microseconds.
    redis_cpu_us: f64,
}

/// The median of the runs of one configuration and workload.
#[derive(Debug, Clone, Serialize)]
struct Measured {
    config: &'static str,
    workload: &'static str,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    min_rps: f64,
    max_rps: f64,
    errors: u64,
    server_cpu_us: f64,
    redis_cpu_us: f64,
    /// Requests the fake OpenID Provider got during the runs (logged-in workload only).
    idp_calls: Option<u64>,
    /// Requests completed in all runs.
    requests: u64,
    runs: Vec<Run>,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn summarise(config: &'static str, workload: &'static str, runs: Vec<Run>) -> Measured {
    let pick = |f: fn(&Run) -> f64| median(&mut runs.iter().map(f).collect::<Vec<_>>());
    Measured {
        config,
        workload,
        rps: pick(|r| r.rps),
        p50_us: pick(|r| r.p50_us),
        p99_us: pick(|r| r.p99_us),
        min_rps: runs.iter().map(|r| r.rps).fold(f64::INFINITY, f64::min),
        max_rps: runs.iter().map(|r| r.rps).fold(0.0, f64::max),
        errors: runs.iter().map(|r| r.errors).sum(),
        server_cpu_us: pick(|r| r.server_cpu_us),
        redis_cpu_us: pick(|r| r.redis_cpu_us),
        idp_calls: None,
        requests: runs.iter().map(|r| r.requests).sum(),
        runs,
    }
}

/// `603.00us`, `1.23ms`, `2.00s` in microseconds.
fn parse_duration_us(text: &str) -> Option<f64> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1_000.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1_000_000.0)
    } else {
        return None;
    };
    number.trim().parse::<f64>().ok().map(|n| n * scale)
}

fn parse_wrk(out: &str) -> Result<Run, String> {
    let mut run = Run {
        rps: f64::NAN,
        p50_us: f64::NAN,
        p99_us: f64::NAN,
        errors: 0,
        requests: 0,
        server_cpu_us: f64::NAN,
        redis_cpu_us: 0.0,
    };
    for line in out.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", n] => run.rps = n.parse().map_err(|_| format!("bad rps {n}"))?,
            ["50%", d] => run.p50_us = parse_duration_us(d).unwrap_or(f64::NAN),
            ["99%", d] => run.p99_us = parse_duration_us(d).unwrap_or(f64::NAN),
            [n, "requests", "in", ..] => run.requests = n.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", n] => {
                run.errors += n.parse::<u64>().unwrap_or(0)
            }
            ["Socket", "errors:", rest @ ..] => {
                run.errors += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>()
            }
            _ => {}
        }
    }
    if run.rps.is_nan() {
        return Err(format!("wrk printed no Requests/sec:\n{out}"));
    }
    Ok(run)
}

struct Cpus {
    server: Option<&'static str>,
    load: Option<&'static str>,
    redis: Option<&'static str>,
}

fn wrk(
    cpus: &Cpus,
    addr: SocketAddr,
    workload: &Workload,
    cookie: Option<&str>,
    seconds: u32,
    connections: u32,
) -> Result<Run, String> {
    let mut cmd = pinned(cpus.load, "wrk");
    cmd.args([
        "-t1",
        &format!("-c{connections}"),
        &format!("-d{seconds}s"),
        "--latency",
    ]);
    if let Some(cookie) = cookie {
        cmd.args(["-H", &format!("Cookie: {cookie}")]);
    }
    cmd.arg(format!("http://{addr}{}", workload.path));
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run wrk ({e}): apt-get install wrk"))?;
    if !out.status.success() {
        return Err(format!(
            "wrk failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// A running bench-server, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
    /// Whether a warm-up run went to it already.
    warm: std::cell::Cell<bool>,
}

impl Server {
    fn rss_kib(&self) -> u64 {
        rss_kib(self.child.id())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// On-CPU nanoseconds of every thread of `pid` so far (`/proc/PID/task/*/schedstat`).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| {
            s.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        })
        .sum()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

struct Env {
    args: Args,
    cpus: Cpus,
    scratch: Scratch,
    redis: Option<RedisServer>,
    cluster: Option<RedisCluster>,
    idp: FakeIdp,
}

impl Env {
    /// Starts `config`'s server, with `extra` arguments for bench-server.
    fn start_server(&self, config: &Config, tag: &str, extra: &[&str]) -> Result<Server, String> {
        let port = free_port(false);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = pinned(self.cpus.server, &self.args.server.display().to_string());
        cmd.args(["--config", config.name, "--addr", &addr.to_string()]);
        cmd.args(extra);
        if let Some(redis) = &self.redis {
            cmd.args(["--redis", &redis.host()]);
        }
        if let Some(cluster) = &self.cluster {
            cmd.args(["--cluster", &cluster.hosts()]);
        }
        if config.ours {
            cmd.args(["--idp", &self.idp.url()]);
        }
        if config.name.starts_with("fl-file") {
            let base = if config.name == "fl-file-tmpfs" {
                PathBuf::from("/dev/shm")
            } else {
                self.scratch.0.clone()
            };
            let dir = base.join(format!("flamingo-bench-sessions-{port}"));
            let _ = std::fs::remove_dir_all(&dir);
            cmd.args(["--dir", &dir.display().to_string()]);
        }
        let log_dir = self.args.out.join("logs");
        std::fs::create_dir_all(&log_dir).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(log_dir.join(format!("{}-{tag}.log", config.name)))
            .map_err(|e| e.to_string())?;
        let child = cmd
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.args.server.display()))?;
        let server = Server {
            child,
            addr,
            warm: std::cell::Cell::new(false),
        };
        wait_for_port(addr, Duration::from_secs(30)).map_err(|e| {
            format!(
                "{} did not start ({e}); see its log in {}",
                config.name,
                log_dir.display()
            )
        })?;
        Ok(server)
    }

    fn flush_stores(&self) -> Result<(), String> {
        if let Some(redis) = &self.redis {
            redis.cli(&["flushall"])?;
        }
        if let Some(cluster) = &self.cluster {
            cluster.flush()?;
        }
        Ok(())
    }

    /// One wrk run of `workload` against `server` (after a warm-up run if it is the server's
    /// first), with the server's and Redis's CPU time per request.
    fn measure_run(
        &self,
        server: &Server,
        config: &'static Config,
        workload: &'static Workload,
        cookie: Option<&str>,
    ) -> Result<Run, String> {
        let cookie = if workload.cookie { cookie } else { None };
        let a = &self.args;
        if !server.warm.replace(true) {
            wrk(&self.cpus, server.addr, workload, cookie, 1, a.connections)?; // warm-up
        }
        let redis_pids: Vec<u32> = match (config.redis, config.cluster) {
            (true, _) => self.redis.iter().map(RedisServer::pid).collect(),
            (_, true) => self
                .cluster
                .iter()
                .flat_map(|c| c.nodes.iter().map(RedisServer::pid))
                .collect(),
            _ => Vec::new(),
        };
        let redis_ns = || redis_pids.iter().map(|p| cpu_ns(*p)).sum::<u64>();
        let server_pid = server.child.id();
        let (server_before, redis_before) = (cpu_ns(server_pid), redis_ns());
        let mut run = wrk(
            &self.cpus,
            server.addr,
            workload,
            cookie,
            a.duration,
            a.connections,
        )?;
        let requests = run.requests.max(1) as f64;
        run.server_cpu_us = (cpu_ns(server_pid) - server_before) as f64 / 1000.0 / requests;
        run.redis_cpu_us = (redis_ns() - redis_before) as f64 / 1000.0 / requests;
        Ok(run)
    }
}

/// Prints one summarised measurement as the run goes.
fn report(m: &Measured) {
    eprintln!(
        "  {:<18} {:<13} {:>9.0} req/s  p50 {:>7.0} us  p99 {:>7.0} us  cpu {:>5.1} us/req (+redis {:>4.1}){}",
        m.config,
        m.workload,
        m.rps,
        m.p50_us,
        m.p99_us,
        m.server_cpu_us,
        m.redis_cpu_us,
        if m.errors > 0 { format!("  ({} errors)", m.errors) } else { String::new() }
    );
}

/// Seeds a session (cart + count, and a login for `/seed-user`) and answers its cookie; checks
/// the routes answer as expected with it.
fn seed(server: &Server, config: &Config, path: &str) -> Result<Option<String>, String> {
    let res = http::request(server.addr, "GET", path, &[])?;
    if res.status != 200 {
        return Err(format!(
            "{}: GET {path} answered {}: {}",
            config.name, res.status, res.body
        ));
    }
    let Some(cookie) = res.cookie() else {
        if config.sessions {
            return Err(format!("{}: GET {path} set no cookie", config.name));
        }
        return Ok(None);
    };
    if path == "/seed-user" {
        let user = http::request(server.addr, "GET", "/user", &[("Cookie", &cookie)])?;
        if user.status != 200 || !user.body.contains("\"loggedIn\":true") {
            return Err(format!(
                "{}: GET /user with the seeded login answered {}: {}",
                config.name, user.status, user.body
            ));
        }
    }
    let cart = http::request(server.addr, "GET", "/cart", &[("Cookie", &cookie)])?;
    if cart.status != 200 || !cart.body.contains("biscuits-shortbread") {
        return Err(format!(
            "{}: GET /cart with the seeded cookie answered {}: {}",
            config.name, cart.status, cart.body
        ));
    }
    let counter = http::request(server.addr, "GET", "/counter", &[("Cookie", &cookie)])?;
    if counter.status != 200 || !counter.body.contains("\"count\":1") {
        return Err(format!(
            "{}: GET /counter with the seeded cookie answered {}: {}",
            config.name, counter.status, counter.body
        ));
    }
    Ok(Some(cookie))
}

/// Seeds a session for every workload of the run that applies to `config`: seed path → cookie.
fn seed_all(
    env: &Env,
    server: &Server,
    config: &Config,
) -> Result<BTreeMap<&'static str, Option<String>>, String> {
    let mut cookies = BTreeMap::new();
    for workload in &env.args.workloads {
        if applies(config, workload) && !cookies.contains_key(workload.seed) {
            cookies.insert(workload.seed, seed(server, config, workload.seed)?);
        }
    }
    Ok(cookies)
}

/// The workloads in the order given, with `plain-cookie` joined to `plain`: the target compares
/// the two, so their runs alternate in the same rounds instead of falling in different stretches
/// of the host's noise.
fn workload_groups(workloads: &[&'static Workload]) -> Vec<Vec<&'static Workload>> {
    let mut groups: Vec<Vec<&'static Workload>> = Vec::new();
    for &workload in workloads {
        match groups
            .iter_mut()
            .find(|group| workload.name == "plain-cookie" && group[0].name == "plain")
        {
            Some(group) => group.push(workload),
            None => groups.push(vec![workload]),
        }
    }
    groups
}

/// Whether `workload` means something for `config`.
fn applies(config: &Config, workload: &Workload) -> bool {
    match workload.name {
        "plain-cookie" | "new" => config.sessions,
        "user" => config.ours,
        _ => true,
    }
}

/// The bare actix-web workload each workload is compared with.
fn baseline_of(workload: &str) -> &'static str {
    match workload {
        "counter" | "new" => "counter",
        "cart" => "cart",
        _ => "plain",
    }
}

#[derive(Debug, Clone, Serialize)]
struct Scale {
    config: &'static str,
    sessions: usize,
    workload: &'static str,
    rps: f64,
    p50_us: f64,
    p99_us: f64,
    server_cpu_us: f64,
    server_rss_kib: u64,
    redis_used_kib: Option<u64>,
    populate_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
struct Floor {
    get_rps: f64,
    set_rps: f64,
    /// One GET plus one SET per request: 1 / (1/get + 1/set).
    floor_rps: f64,
}

#[derive(Debug, Default, Serialize)]
struct Results {
    machine: BTreeMap<String, String>,
    measured: Vec<Measured>,
    rss_kib: BTreeMap<String, u64>,
    floor: Option<Floor>,
    scale: Vec<Scale>,
}

fn redis_floor(env: &Env) -> Result<Option<Floor>, String> {
    let Some(redis) = &env.redis else {
        return Ok(None);
    };
    let out = pinned(env.cpus.server, "redis-benchmark")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &redis.port.to_string(),
            "-t",
            "get,set",
            "-n",
            "300000",
            "-c",
            &env.args.connections.to_string(),
            "--csv",
        ])
        .output()
        .map_err(|e| format!("redis-benchmark: {e} (apt-get install redis-tools)"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = |test: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("\"{test}\"")))
            .and_then(|l| l.split(',').nth(1))
            .and_then(|n| n.trim_matches('"').parse::<f64>().ok())
    };
    let (Some(get_rps), Some(set_rps)) = (rps("GET"), rps("SET")) else {
        return Err(format!("cannot read redis-benchmark's output:\n{text}"));
    };
    redis.cli(&["flushall"])?;
    Ok(Some(Floor {
        get_rps,
        set_rps,
        floor_rps: 1.0 / (1.0 / get_rps + 1.0 / set_rps),
    }))
}

fn redis_used_kib(redis: &RedisServer) -> Option<u64> {
    let info = redis.cli(&["info", "memory"]).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|n| n.trim().parse::<u64>().ok())
        .map(|b| b / 1024)
}

fn populate(server: &Server, n: usize) -> Result<f64, String> {
    if n == 0 {
        return Ok(0.0);
    }
    let started = Instant::now();
    let res = http::request(server.addr, "POST", &format!("/populate?n={n}"), &[])?;
    if res.status != 200 {
        return Err(format!(
            "POST /populate?n={n} answered {}: {}",
            res.status, res.body
        ));
    }
    Ok(started.elapsed().as_secs_f64())
}

fn run_scale(env: &Env, results: &mut Results) -> Result<(), String> {
    let scale_configs = ["fl-memory", "fl-file", "fl-redis"];
    let workloads = [
        flamingo_bench::workload("counter").expect("known"),
        flamingo_bench::workload("cart").expect("known"),
    ];
    for name in scale_configs {
        let Some(config) = env.args.configs.iter().find(|c| c.name == name) else {
            continue;
        };
        // Both sizes run side by side and their runs alternate, as the main runs do. On Redis
        // the large dataset is in database 1 of the same server, so that the small one's
        // database holds only its own sessions.
        env.flush_stores()?;
        let mut sides = Vec::new();
        for (sessions, extra) in [
            (100, &[][..]),
            (
                env.args.scale_sessions,
                &["--set", "flamingo.session.redis.database=1"][..],
            ),
        ] {
            let server = env.start_server(config, &format!("scale-{sessions}"), extra)?;
            let populate_seconds = populate(&server, sessions - 1)?;
            let cookie = seed(&server, config, "/seed")?;
            eprintln!("scale {name}: {sessions} sessions stored in {populate_seconds:.1} s");
            let redis_used_kib = if config.redis {
                env.redis.as_ref().and_then(redis_used_kib)
            } else {
                None
            };
            sides.push((sessions, server, cookie, populate_seconds, redis_used_kib));
        }
        for workload in workloads {
            let mut runs: Vec<Vec<Run>> = sides.iter().map(|_| Vec::new()).collect();
            for _ in 0..env.args.runs {
                for (i, (_, server, cookie, ..)) in sides.iter().enumerate() {
                    runs[i].push(env.measure_run(server, config, workload, cookie.as_deref())?);
                }
            }
            for ((sessions, server, _, populate_seconds, redis_used_kib), runs) in
                sides.iter().zip(runs)
            {
                let m = summarise(config.name, workload.name, runs);
                report(&m);
                results.scale.push(Scale {
                    config: config.name,
                    sessions: *sessions,
                    workload: workload.name,
                    rps: m.rps,
                    p50_us: m.p50_us,
                    p99_us: m.p99_us,
                    server_cpu_us: m.server_cpu_us,
                    server_rss_kib: server.rss_kib(),
                    redis_used_kib: *redis_used_kib,
                    populate_seconds: *populate_seconds,
                });
            }
        }
    }
    env.flush_stores()
}

fn command_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()
        })
        .unwrap_or_else(|| "not found".into())
}

fn lock_versions(lock: &Path, names: &[&str]) -> String {
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let mut found = Vec::new();
    let mut current: Option<&str> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("name = ") {
            current = Some(name.trim_matches('"'));
        } else if let (Some(name), Some(version)) = (current, line.strip_prefix("version = ")) {
            if names.contains(&name) {
                found.push(format!("{name} {}", version.trim_matches('"')));
            }
            current = None;
        }
    }
    found.join(", ")
}

fn machine_info(args: &Args, load_before: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    m.insert("cpu".into(), format!("{cpu}, {cores} cores (nproc)"));
    m.insert(
        "memory".into(),
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .next()
                    .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_owned())
            })
            .and_then(|kib| kib.parse::<u64>().ok())
            .map(|kib| format!("{} GiB", kib / 1024 / 1024))
            .unwrap_or_default(),
    );
    m.insert(
        "kernel".into(),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned(),
    );
    m.insert("rustc".into(), command_line("rustc", &["--version"]));
    m.insert(
        "wrk".into(),
        command_line("wrk", &["--version"])
            .split(" Copyright")
            .next()
            .unwrap_or("")
            .to_owned(),
    );
    m.insert(
        "redis-server".into(),
        command_line("redis-server", &["--version"]),
    );
    let commit = command_line("git", &["rev-parse", "--short", "HEAD"]);
    m.insert("flamingo commit".into(), commit);
    m.insert(
        "crates".into(),
        lock_versions(
            &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"),
            &[
                "actix-web",
                "actix-session",
                "axum",
                "tower-sessions",
                "tower-sessions-redis-store",
                "fred",
                "deadpool-redis",
                "redis",
                "tokio",
                "flamingo-session",
            ],
        ),
    );
    m.insert("load average before".into(), load_before.to_owned());
    m.insert(
        "settings".into(),
        format!(
            "wrk -t1 -c{} -d{}s, {} runs each (median), 1 s warm-up per server; one server worker thread{}",
            args.connections,
            args.duration,
            args.runs,
            if args.pin {
                "; server pinned to CPU 0, wrk and redis-server to CPU 1 (taskset)"
            } else {
                "; no CPU pinning"
            }
        ),
    );
    m
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn label(name: &str) -> &'static str {
    flamingo_bench::config(name).map_or("?", |c| c.label)
}

fn find<'a>(results: &'a Results, config: &str, workload: &str) -> Option<&'a Measured> {
    results
        .measured
        .iter()
        .find(|m| m.config == config && m.workload == workload)
}

fn ms(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.1} ms", us / 1000.0)
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

fn ratio(value: Option<f64>, base: Option<f64>) -> Option<f64> {
    match (value, base) {
        (Some(v), Some(b)) if b > 0.0 => Some(v / b),
        _ => None,
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or("–".into(), |r| format!("{r:.2}x"))
}

struct Target {
    what: String,
    goal: f64,
    /// The throughput ratio (req/s over req/s).
    measured: Option<f64>,
    /// The same ratio from on-CPU time per request of the server processes (base CPU over
    /// this CPU): what the ratio would be if each server had its core to itself.
    cpu: Option<f64>,
}

fn targets(results: &Results) -> Vec<Target> {
    let m = |c: &str, w: &str| find(results, c, w);
    let rps = |c: &str, w: &str| m(c, w).map(|m| m.rps);
    let cpu = |c: &str, w: &str| m(c, w).map(|m| m.server_cpu_us);
    let mut t = Vec::new();
    let mut push = |what: String, goal: f64, measured: Option<f64>, cpu: Option<f64>| {
        if measured.is_some() {
            t.push(Target {
                what,
                goal,
                measured,
                cpu,
            });
        }
    };
    push(
        "memory: counter / bare counter".into(),
        0.8,
        ratio(rps("fl-memory", "counter"), rps("bare", "counter")),
        ratio(cpu("bare", "counter"), cpu("fl-memory", "counter")),
    );
    push(
        "memory: read-only cart / bare cart".into(),
        0.9,
        ratio(rps("fl-memory", "cart"), rps("bare", "cart")),
        ratio(cpu("bare", "cart"), cpu("fl-memory", "cart")),
    );
    for w in ["counter", "cart"] {
        push(
            format!("redis: {w} / tower-sessions RedisStore {w}"),
            1.0,
            ratio(rps("fl-redis", w), rps("ts-redis", w)),
            ratio(cpu("ts-redis", w), cpu("fl-redis", w)),
        );
        push(
            format!("redis: {w} / redis-benchmark floor (1 GET + 1 SET)"),
            0.8,
            ratio(
                rps("fl-redis", w),
                results.floor.as_ref().map(|f| f.floor_rps),
            ),
            None,
        );
    }
    for w in ["counter", "cart"] {
        for (c, name) in [("fl-file", "disk"), ("fl-file-tmpfs", "tmpfs")] {
            push(
                format!("file ({name}): {w} / memory {w}"),
                0.5,
                ratio(rps(c, w), rps("fl-memory", w)),
                ratio(cpu("fl-memory", w), cpu(c, w)),
            );
        }
    }
    let big = results.scale.iter().map(|s| s.sessions).max().unwrap_or(0);
    for c in ["fl-memory", "fl-file", "fl-redis"] {
        for w in ["counter", "cart"] {
            let get = |n: usize| {
                results
                    .scale
                    .iter()
                    .find(|s| s.config == c && s.workload == w && s.sessions == n)
            };
            // cost = 1/rps; cost(big)/cost(100) <= 1.1  <=>  rps(big)/rps(100) >= 1/1.1
            push(
                format!("{c}: {w} with {big} sessions / with 100 (cost within 1.1x)"),
                1.0 / 1.1,
                ratio(get(big).map(|s| s.rps), get(100).map(|s| s.rps)),
                ratio(
                    get(100).map(|s| s.server_cpu_us),
                    get(big).map(|s| s.server_cpu_us),
                ),
            );
        }
    }
    t
}

fn render(results: &Results, args: &Args) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "### Machine and versions\n");
    for (k, v) in &results.machine {
        let _ = writeln!(md, "- {k}: {v}");
    }
    if let Some(f) = &results.floor {
        let _ = writeln!(
            md,
            "- redis-benchmark (`-t get,set -c {}`, pinned like the server): GET {:.0}/s, SET {:.0}/s \
             → floor for one GET + one SET per request: **{:.0} req/s**",
            args.connections, f.get_rps, f.set_rps, f.floor_rps
        );
    }

    let _ = writeln!(
        md,
        "\n### Summary: requests per second (median of {} runs) and ratio to bare actix-web\n",
        args.runs
    );
    let workloads: Vec<&Workload> = WORKLOADS
        .iter()
        .filter(|w| results.measured.iter().any(|m| m.workload == w.name))
        .collect();
    let _ = write!(md, "| configuration |");
    for w in &workloads {
        let _ = write!(md, " {} |", w.label);
    }
    let _ = write!(md, "\n|---|");
    for _ in &workloads {
        let _ = write!(md, "---:|");
    }
    let _ = writeln!(md);
    for c in CONFIGS {
        if !results.measured.iter().any(|m| m.config == c.name) {
            continue;
        }
        let _ = write!(md, "| {} |", c.label);
        for w in &workloads {
            let cell = find(results, c.name, w.name).map_or("–".to_owned(), |m| {
                let base = find(results, "bare", baseline_of(w.name)).map(|b| b.rps);
                format!("{:.0} ({})", m.rps, fmt_ratio(ratio(Some(m.rps), base)))
            });
            let _ = write!(md, " {cell} |");
        }
        let _ = writeln!(md);
    }

    for w in &workloads {
        let _ = writeln!(
            md,
            "\n#### {} (`GET {}`{})\n",
            w.label,
            w.path,
            if w.cookie {
                " with the seeded cookie"
            } else {
                ", no cookie"
            }
        );
        let _ = writeln!(md, "| configuration | req/s (median) | runs min–max | p50 | p99 | × bare | server CPU/req | Redis CPU/req | errors | server RSS |");
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let base = find(results, "bare", baseline_of(w.name)).map(|b| b.rps);
        for c in CONFIGS {
            let Some(m) = find(results, c.name, w.name) else {
                continue;
            };
            let _ = writeln!(
                md,
                "| {} | {:.0} | {:.0}–{:.0} | {} | {} | {} | {:.1} µs | {} | {} | {} |",
                c.label,
                m.rps,
                m.min_rps,
                m.max_rps,
                ms(m.p50_us),
                ms(m.p99_us),
                fmt_ratio(ratio(Some(m.rps), base)),
                m.server_cpu_us,
                if c.redis || c.cluster {
                    format!("{:.1} µs", m.redis_cpu_us)
                } else {
                    "–".into()
                },
                m.errors,
                results
                    .rss_kib
                    .get(c.name)
                    .map_or("–".into(), |k| format!("{:.1} MiB", *k as f64 / 1024.0)),
            );
        }
    }

    let idp: Vec<&Measured> = results
        .measured
        .iter()
        .filter(|m| m.idp_calls.is_some())
        .collect();
    if !idp.is_empty() {
        let _ = writeln!(
            md,
            "\nCalls to the (counting, fake) OpenID Provider during the logged-in runs:\n"
        );
        let _ = writeln!(
            md,
            "| configuration | requests | provider calls | per request |"
        );
        let _ = writeln!(md, "|---|---:|---:|---:|");
        for m in idp {
            let calls = m.idp_calls.unwrap_or(0);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} |",
                label(m.config),
                m.requests,
                calls,
                calls as f64 / m.requests.max(1) as f64
            );
        }
    }

    if !results.scale.is_empty() {
        let _ = writeln!(
            md,
            "\n### Scale: 100 vs {} stored sessions\n",
            args.scale_sessions
        );
        let _ = writeln!(md, "| backend | workload | sessions | req/s | cost per request (1/rps) | server CPU/req | p50 | p99 | server RSS | Redis used_memory | cost ratio |");
        let _ = writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for s in &results.scale {
            let small = results
                .scale
                .iter()
                .find(|x| x.config == s.config && x.workload == s.workload && x.sessions == 100)
                .map(|x| x.rps);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.0} | {:.1} µs | {:.1} µs | {} | {} | {:.1} MiB | {} | {} |",
                label(s.config),
                s.workload,
                s.sessions,
                s.rps,
                1e6 / s.rps,
                s.server_cpu_us,
                ms(s.p50_us),
                ms(s.p99_us),
                s.server_rss_kib as f64 / 1024.0,
                s.redis_used_kib
                    .map_or("–".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
                fmt_ratio(ratio(small, Some(s.rps))),
            );
        }
    }

    let t = targets(results);
    if !t.is_empty() {
        let _ = writeln!(md, "\n### Targets (ratios within this run)\n");
        let _ = writeln!(md, "| target | goal | req/s ratio | | CPU-time ratio | |");
        let _ = writeln!(md, "|---|---:|---:|---|---:|---|");
        let verdict = |r: Option<f64>, goal: f64| match r {
            None => "",
            Some(r) if r >= goal => "met",
            Some(_) => "**missed**",
        };
        for t in t {
            let _ = writeln!(
                md,
                "| {} | ≥ {:.2}x | {} | {} | {} | {} |",
                t.what,
                t.goal,
                fmt_ratio(t.measured),
                verdict(t.measured, t.goal),
                fmt_ratio(t.cpu),
                verdict(t.cpu, t.goal),
            );
        }
        let _ = writeln!(
            md,
            "\nThe CPU-time ratio compares on-CPU time per request of the server processes \
             (base over this), which other load on the machine barely moves; for Redis \
             configurations it leaves out redis-server's own CPU (shown per workload above)."
        );
    }
    md
}

/// Criterion's console output as (benchmark id, median estimate in ns).
fn parse_criterion(text: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    let mut name = String::new();
    for line in text.lines() {
        let (head, time) = match line.split_once("time:") {
            Some((head, time)) => (head.trim(), Some(time)),
            None => (line.trim(), None),
        };
        if !line.starts_with(char::is_whitespace) && !head.is_empty() {
            name = head.to_owned();
        }
        let Some(time) = time else { continue };
        let words: Vec<&str> = time
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split_whitespace()
            .collect();
        if let [_, _, mid, unit, ..] = words.as_slice() {
            let scale = match *unit {
                "ps" => 0.001,
                "ns" => 1.0,
                "µs" | "us" => 1_000.0,
                "ms" => 1_000_000.0,
                _ => continue,
            };
            if let Ok(v) = mid.parse::<f64>() {
                out.push((name.clone(), v * scale));
            }
        }
    }
    out
}

fn render_micro(text: &str) -> String {
    let rows = parse_criterion(text);
    if rows.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "\n### Micro: value encoding and decoding (criterion, `cargo bench -p flamingo-session --bench value`)\n\n\
         | operation | value | implementation | time | × plain serde_json |\n|---|---|---|---:|---:|\n",
    );
    for (id, ns) in &rows {
        let mut parts = id.splitn(3, '/');
        let (op, value, imp) = (
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let base = rows
            .iter()
            .find(|(other, _)| other.starts_with(&format!("{op}/{value}/serde_json")))
            .map(|(_, b)| *b);
        let time = if *ns >= 1000.0 {
            format!("{:.2} µs", ns / 1000.0)
        } else {
            format!("{ns:.0} ns")
        };
        let _ = writeln!(
            md,
            "| {op} | {value} | {imp} | {time} | {} |",
            fmt_ratio(ratio(Some(*ns), base))
        );
    }
    md
}

const BEGIN: &str = "<!-- BEGIN GENERATED: scripts/bench.sh writes this part -->";
const END: &str = "<!-- END GENERATED -->";

fn update_file(path: &Path, generated: &str) -> Result<(), String> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let block = format!("{BEGIN}\n\n{generated}\n{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(b), Some(e)) if e > b => format!("{}{block}{}", &old[..b], &old[e + END.len()..]),
        _ => format!("{old}\n{block}\n"),
    };
    std::fs::write(path, new).map_err(|e| format!("{}: {e}", path.display()))
}

fn main() {
    if let Err(err) = run() {
        eprintln!("bench: {err}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    if !args.server.exists() {
        return Err(format!(
            "{} not found: build it with `cargo build --release` in bench/",
            args.server.display()
        ));
    }
    let load_before = loadavg();
    let started = Instant::now();
    std::fs::create_dir_all(&args.out).map_err(|e| e.to_string())?;
    let scratch_dir = std::env::temp_dir().join(format!("flamingo-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch_dir).map_err(|e| e.to_string())?;
    let scratch = Scratch(scratch_dir);
    let cpus = if args.pin {
        Cpus {
            server: Some("0"),
            load: Some("1"),
            redis: Some("1"),
        }
    } else {
        Cpus {
            server: None,
            load: None,
            redis: None,
        }
    };
    let need_redis = args.configs.iter().any(|c| c.redis);
    let need_cluster = args.configs.iter().any(|c| c.cluster);
    let redis = need_redis
        .then(|| RedisServer::start(&scratch.0, false, cpus.redis))
        .transpose()?;
    let cluster = need_cluster
        .then(|| RedisCluster::start(&scratch.0, cpus.redis))
        .transpose()?;
    let idp = FakeIdp::start().map_err(|e| format!("fake OpenID Provider: {e}"))?;
    let env = Env {
        args,
        cpus,
        scratch,
        redis,
        cluster,
        idp,
    };
    let mut results = Results {
        machine: machine_info(&env.args, &load_before),
        ..Results::default()
    };
    results.floor = redis_floor(&env)?;
    if let Some(f) = &results.floor {
        eprintln!(
            "redis-benchmark: GET {:.0}/s SET {:.0}/s floor {:.0} req/s",
            f.get_rps, f.set_rps, f.floor_rps
        );
    }

    // Every configuration's server runs from the start, and the runs alternate between them
    // (round after round of each workload over all configurations): a stretch of noise on the
    // host then falls on one run of every configuration, which the median drops, instead of on
    // all runs of one configuration.
    env.flush_stores()?;
    let mut servers = Vec::new();
    for config in &env.args.configs {
        let server = env.start_server(config, "main", &[])?;
        let cookies = seed_all(&env, &server, config)?;
        servers.push((*config, server, cookies));
    }
    for group in workload_groups(&env.args.workloads) {
        // One entry per (configuration, workload) measured: every round runs each entry once,
        // a configuration's workloads of the group back to back.
        let measured: Vec<_> = servers
            .iter()
            .flat_map(|entry| group.iter().map(move |workload| (entry, *workload)))
            .filter(|((config, ..), workload)| applies(config, workload))
            .collect();
        let mut runs: Vec<Vec<Run>> = measured.iter().map(|_| Vec::new()).collect();
        // Calls to the fake provider during each entry's runs.
        let mut idp_calls = vec![0; measured.len()];
        for _ in 0..env.args.runs {
            for (i, ((config, server, cookies), workload)) in measured.iter().enumerate() {
                // A run that creates sessions starts from empty Redis stores: otherwise the
                // millions of keys earlier runs left (and Redis rehashing its key table as they
                // grow) fall on whichever configuration runs next.
                if workload.creates_sessions {
                    env.flush_stores()?;
                }
                let cookie = cookies[workload.seed].as_deref();
                let before = env.idp.calls();
                runs[i].push(env.measure_run(server, config, workload, cookie)?);
                idp_calls[i] += env.idp.calls() - before;
            }
        }
        // Reported workload by workload, as the tables list them.
        let mut summaries: Vec<_> = measured.iter().zip(runs).zip(idp_calls).collect();
        summaries.sort_by_key(|(((_, workload), _), _)| {
            group.iter().position(|w| w.name == workload.name)
        });
        for ((((config, ..), workload), runs), idp_calls) in summaries {
            let mut m = summarise(config.name, workload.name, runs);
            if workload.name == "user" {
                m.idp_calls = Some(idp_calls);
            }
            report(&m);
            results.measured.push(m);
        }
        if group.iter().any(|workload| workload.creates_sessions) {
            // The flushes took the seeded sessions of the Redis configurations with them.
            env.flush_stores()?;
            for (config, server, cookies) in &mut servers {
                *cookies = seed_all(&env, server, config)?;
            }
        }
    }
    for (config, server, _) in &servers {
        results
            .rss_kib
            .insert(config.name.to_owned(), server.rss_kib());
    }
    drop(servers);
    env.flush_stores()?;
    if env.args.scale {
        run_scale(&env, &mut results)?;
    }
    results
        .machine
        .insert("load average after".into(), loadavg());
    results.machine.insert(
        "run time".into(),
        format!("{:.0} s", started.elapsed().as_secs_f64()),
    );

    let mut md = render(&results, &env.args);
    if let Some(path) = &env.args.micro {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        md.push_str(&render_micro(&text));
    }
    println!("{md}");
    let out = &env.args.out;
    std::fs::write(out.join("results.md"), &md).map_err(|e| e.to_string())?;
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    if let Some(path) = &env.args.update {
        update_file(path, &md)?;
        eprintln!("updated {}", path.display());
    }
    eprintln!("wrote {}/results.md and results.json", out.display());
    Ok(())
}
