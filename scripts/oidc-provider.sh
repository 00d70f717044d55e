#!/usr/bin/env bash
# Runs the test OpenID Provider (oidc-provider from npm) for the demo on http://127.0.0.1:9090
# with the client "demo" that examples/config/oidc.yml uses. Users: alice, bob (any password).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d tests/oidc/node_modules ] || npm ci --prefix tests/oidc --no-audit --no-fund --loglevel=error
APP="${DEMO_URL:-http://127.0.0.1:8080}"
export OP_PORT="${OP_PORT:-9090}"
export OP_CLIENTS="[{\"client_id\":\"demo\",\"client_secret\":\"demo-secret-for-local-use-only\",\"redirect_uris\":[\"$APP/core/auth/callback/oidc\"],\"post_logout_redirect_uris\":[\"$APP/core/auth/logoutCallback\"],\"grant_types\":[\"authorization_code\",\"refresh_token\"],\"response_types\":[\"code\"]}]"
exec node tests/oidc/provider.mjs
