#!/usr/bin/env bash
# Soak: SOAK_SECONDS (default 60) of mixed load on the demo for each backend (memory, file,
# redis, redis cluster). Reports requests, errors (non-2xx/3xx and socket errors; target 0) and
# the demo's resident memory at start and end. Not a test: a command that prints a table.
#
#   ./scripts/soak.sh                 # all backends, 60 s each
#   SOAK_SECONDS=10 ./scripts/soak.sh memory file
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH="${SOAK_SECONDS:-60}"
BACKENDS=("$@"); [ "${#BACKENDS[@]}" -gt 0 ] || BACKENDS=(memory file redis cluster)

need() { command -v "$1" >/dev/null 2>&1 || { echo "$1 not found: apt-get install $2" >&2; exit 1; }; }
need wrk wrk; need redis-server redis-server; need redis-cli redis-tools

cargo build --release --example demo --quiet
DEMO=target/release/examples/demo
WORK="$(mktemp -d)"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

start_redis() { # port [extra args...]
  local port=$1; shift
  mkdir -p "$WORK/redis-$port"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK/redis-$port" "$@" >/dev/null &
  PIDS+=($!)
  for _ in $(seq 400); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.05; done
  echo "redis-server on $port did not start" >&2; exit 1
}

config_for() {
  case "$1" in
    memory) printf 'flamingo.session.backend: memory\nflamingo.session.memory.capacity: 10000\n' ;;
    file) printf 'flamingo.session.backend: file\nflamingo.session.file: %s/sessions\nflamingo.session.fileCleanupInterval: 10s\nflamingo.session.max.age: 30\n' "$WORK" ;;
    redis)
      local p; p=$(free_port); start_redis "$p"
      printf 'flamingo.session.backend: redis\nflamingo.session.redis.host: 127.0.0.1:%s\nflamingo.session.redis.timeout: 2s\nflamingo.session.max.age: 300\n' "$p" ;;
    cluster)
      local ports=() p
      for _ in 1 2 3; do p=$(free_port); ports+=("$p"); start_redis "$p" --cluster-enabled yes --cluster-config-file "$WORK/nodes-$p.conf" --cluster-announce-ip 127.0.0.1; done
      redis-cli --cluster create "127.0.0.1:${ports[0]}" "127.0.0.1:${ports[1]}" "127.0.0.1:${ports[2]}" --cluster-replicas 0 --cluster-yes >/dev/null
      for _ in $(seq 100); do redis-cli -p "${ports[0]}" cluster info | grep -q cluster_state:ok && break; sleep 0.1; done
      printf 'flamingo.session.backend: redis\nflamingo.session.redis.clusterMode: true\nflamingo.session.redis.host: 127.0.0.1:%s,127.0.0.1:%s,127.0.0.1:%s\nflamingo.session.redis.timeout: 2s\nflamingo.session.max.age: 300\n' "${ports[@]}" ;;
    *) echo "unknown backend $1" >&2; exit 1 ;;
  esac
}

printf '| backend | seconds | requests | req/s | errors | RSS start | RSS end |\n|---|---|---|---|---|---|---|\n' > "$WORK/table.md"
for backend in "${BACKENDS[@]}"; do
  config_for "$backend" > "$WORK/$backend.yml"
  port=$(free_port)
  RUST_LOG=error DEMO_WORKERS=1 "$DEMO" --addr "127.0.0.1:$port" --config "$WORK/$backend.yml" 2>"$WORK/$backend.log" &
  demo=$!; PIDS+=("$demo")
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$port/status/healthcheck" >/dev/null && break; sleep 0.05; done
  start=$(rss_kb "$demo")
  wrk -t1 -c16 -d"${SECONDS_EACH}s" -s scripts/soak.lua "http://127.0.0.1:$port" > "$WORK/$backend.wrk"
  end=$(rss_kb "$demo")
  total=$(awk '/requests in/ {print $1}' "$WORK/$backend.wrk")
  rps=$(awk '/Requests\/sec/ {printf "%d", $2}' "$WORK/$backend.wrk")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$WORK/$backend.wrk"); non2xx=${non2xx:-0}
  sock=$(awk -F'[ ,]+' '/Socket errors/ {print $4+$6+$8+$10}' "$WORK/$backend.wrk"); sock=${sock:-0}
  printf '| %s | %s | %s | %s | %s | %s MiB | %s MiB |\n' "$backend" "$SECONDS_EACH" "$total" "$rps" "$((non2xx + sock))" \
    "$((start / 1024))" "$((end / 1024))" >> "$WORK/table.md"
  kill "$demo"; wait "$demo" 2>/dev/null || true
done
echo; cat "$WORK/table.md"
mkdir -p bench-results && cp "$WORK/table.md" bench-results/soak.md
