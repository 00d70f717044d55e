#!/usr/bin/env bash
# Sets up everything the tests need on a fresh machine and runs every test: unit, integration,
# trybuild, doctests, end-to-end against real Redis and a real OpenID Provider, then the lints.
#
# Installs when missing: redis-server and redis-tools, chromium and chromium-driver (Debian), the
# Node packages of the test OpenID Provider (npm ci in tests/oidc).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }

apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  log "installing $* (apt-get)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi

if [ -f tests/oidc/package-lock.json ]; then
  command -v node >/dev/null 2>&1 || { echo "node is required for the test OpenID Provider: install Node.js >= 20.12" >&2; exit 1; }
  if [ ! -d tests/oidc/node_modules ] || [ tests/oidc/package-lock.json -nt tests/oidc/node_modules ]; then
    log "installing the test OpenID Provider (npm ci in tests/oidc)"
    npm ci --prefix tests/oidc --no-audit --no-fund --loglevel=error
  fi
fi

log "building the demo app (the end-to-end tests run it as a process)"
cargo build --example demo --locked

log "cargo test (unit, integration, trybuild, end-to-end)"
cargo test --workspace --all-targets --locked

log "cargo test --doc"
cargo test --workspace --doc --locked

log "lints: rustfmt, clippy, rustdoc"
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked

log "all tests passed"
