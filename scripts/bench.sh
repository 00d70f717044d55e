#!/usr/bin/env bash
# The benchmark of issue 5, in one command:
#
#   ./scripts/bench.sh                 # everything: about 15 minutes on 2 cores
#   ./scripts/bench.sh --duration 2 --runs 1 --no-scale --configs bare,fl-memory   # a quick look
#
# It installs wrk, redis-server and redis-tools when missing (Debian), builds the benchmark
# servers in release mode (bench/, a cargo workspace of its own), runs the criterion micro
# benchmarks of flamingo-session, then starts Redis (standalone and a 3-master cluster), a fake
# OpenID Provider and every server configuration, loads them with wrk (one thread, one server
# worker, pinned to separate cores) in rounds that alternate between the configurations, and
# prints the Markdown tables. They are written to
# bench-results/results.md (and .json), and into BENCHMARKS.md between its GENERATED markers.
#
# Arguments go to the driver (bench/src/bin/bench.rs): --duration S, --runs N, --connections C,
# --configs a,b, --workloads a,b, --no-scale, --scale-sessions N, --no-pin.
# Set BENCH_MICRO=0 to skip the criterion benchmarks, BENCH_UPDATE=0 to leave BENCHMARKS.md alone.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*" >&2; }

apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  log "installing $* (apt-get)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi

mkdir -p bench-results
log "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
if awk '{ exit !($1 > 0.5) }' /proc/loadavg; then
  echo "note: the machine is busy; throughput figures will be noisy (CPU time per request much less so)" >&2
fi

log "building the benchmark servers (release)"
# Not --locked: bench/ depends on this repository's crates by path, whose dependencies move.
cargo build --release --manifest-path bench/Cargo.toml

extra=()
if [ "${BENCH_MICRO:-1}" != 0 ]; then
  log "criterion: value encoding and decoding (flamingo-session/benches/value.rs)"
  cargo bench -p flamingo-session --bench value --locked -- --warm-up-time 1 --measurement-time 2 \
    2>&1 | tee bench-results/micro.txt | grep -E 'time:' >&2 || true
  extra+=(--micro bench-results/micro.txt)
fi
if [ "${BENCH_UPDATE:-1}" != 0 ]; then
  extra+=(--update BENCHMARKS.md)
fi

log "HTTP benchmarks (wrk)"
bench/target/release/bench --out bench-results "${extra[@]}" "$@"
