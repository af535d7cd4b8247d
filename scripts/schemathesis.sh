#!/usr/bin/env bash
# OpenAPI-driven fuzzing: runs schemathesis (from PyPI) against /api/v1/openapi.json of a
# release server this script starts (dev login on, the fuzzer an admin so the admin routes are
# fuzzed too, limits raised) and stops. Every check on.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
command -v st >/dev/null 2>&1 || python3 -m pip install -q schemathesis
# PROFILE=debug reuses the test build (CI runs it that way with a few examples per operation).
PROFILE=${PROFILE:-release}
target_dir=${CARGO_TARGET_DIR:-target}
if [ "$PROFILE" = release ]; then
  cargo build --release --quiet --bin aisocial
  binary="$target_dir/release/aisocial"
else
  cargo build --quiet --bin aisocial
  binary="$target_dir/debug/aisocial"
fi
run=$(date +%s)
db="aisocial_schemathesis_$run"
AUTH_DEV_LOGIN=true GEMINI_EMULATOR=true ADMIN_HANDLES=fuzzer AISOCIAL_BIND=127.0.0.1:18082 \
  DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" REDIS_PREFIX="aisocial-st:$run:" \
  RATE_LIMIT_USER_PER_MIN=1000000 RATE_LIMIT_IP_PER_MIN=1000000 RATE_LIMIT_OPS_PER_MIN=1000000 RATE_LIMIT_AUTH_PER_MIN=100000 \
  RUST_LOG=warn "$binary" serve &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1' EXIT
for _ in $(seq 1 60); do curl -fs http://127.0.0.1:18082/health/ready >/dev/null && break; sleep 0.5; done
token=$(curl -fs -XPOST http://127.0.0.1:18082/api/v1/auth/dev -H 'content-type: application/json' \
  -d '{"handle":"fuzzer"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
# Logout would revoke the fuzzer's own session. The websocket is not HTTP: a schema-valid
# plain GET of it can only be refused (426 Upgrade Required, documented), which schemathesis
# counts as rejecting valid data; its handshake is tested in tests/api/websocket.rs.
st run http://127.0.0.1:18082/api/v1/openapi.json -H "Authorization: Bearer $token" \
  --checks all --max-examples "${MAX_EXAMPLES:-100}" \
  --exclude-path-regex '/api/v1/auth/logout|/api/v1/ws$'
