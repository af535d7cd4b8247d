#!/usr/bin/env bash
# The storm (issue 17): N distinct users (signed in, and a seeded power-law follow graph made,
# before the storm), then every client connects at once from worker processes on 127.0.0.x
# source addresses, keeps its socket, honours 503/429 Retry-After (jittered) and comes back
# after a close, resuming with `since`, while a few authors post. Reports connected within T,
# time to first hello and connect time p50/p99, refusals by status and retries honoured,
# sessions closed by the server by code, resume missing / duplicated / out of order (each
# client's ids against what PostgreSQL addressed to it), server RSS and CPU.
#
# Starts a release server (core 0, one HTTP worker; the load generator on core 1, as the other
# bench scripts) with a fresh database and Redis prefix, runs the storm, and at exit stops the
# server(s), drops the database and removes the prefix's keys. It stops by itself.
#
#   scripts/bench-storm.sh                 5,000 users against one node
#   USERS=19000 scripts/bench-storm.sh     19,000 (under one server process's 20,000 open files)
#   scripts/bench-storm.sh --kill-node     two nodes on one database and prefix (both on core
#                                          0), clients spread over both; the second is SIGKILLed
#                                          5 s into the hold (--kill-after) and its clients
#                                          resume on the first with `since`
#
# Other arguments go to `aisocial-loadtest storm` (--hold 60, --post-rate 10, --seed 3, ...);
# server settings come from the environment (e.g. WS_OUTBOUND_LIMIT=256). Reports go to
# loadtest/results/storm-<time>.json and .html. Binaries are built into $CARGO_TARGET_DIR
# (default target/) and copied to a temporary folder first, so that another build sharing that
# folder cannot swap them during the run (the storm starts its worker processes from its own
# binary, minutes after the build).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
cargo build --release -p aisocial -p aisocial-loadtest --quiet
bin=$(mktemp -d)
USERS=${USERS:-5000}
run=$(date +%s)
db="aisocial_bench_storm_$run"
prefix="aisocial-storm:$run:"
database_url="postgres://postgres@127.0.0.1:5432/$db"
# One key for every node of the run: a token issued by one is accepted by the other.
JWT_SIGNING_KEY=${JWT_SIGNING_KEY:-$(head -c 48 /dev/urandom | base64 | tr -d '\n')}
export JWT_SIGNING_KEY
kill_node=false
for arg in "$@"; do [ "$arg" = --kill-node ] && kill_node=true; done
mkdir -p loadtest/results
servers=()
cleanup() {
  for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${servers[@]}"; do wait "$pid" 2>/dev/null || true; done
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli --scan --pattern "$prefix*" 2>/dev/null | xargs -r -n 500 redis-cli del >/dev/null 2>&1 || true
  rm -rf "$bin"
}
trap cleanup EXIT
cp "${CARGO_TARGET_DIR:-target}/release/aisocial" "${CARGO_TARGET_DIR:-target}/release/aisocial-loadtest" "$bin/"
# serve PORT NODE: a release node on core 0 (the first one creates and migrates the database).
# The rate limits and the per-IP socket cap are lifted: the clients share four loopback source
# addresses, where real ones would come from thousands (a server without WS_MAX_PER_IP ignores
# it); the node's own admission (WS_MAX_SESSIONS, WS_MAX_STARTING, where it has them) stays.
serve() {
  AUTH_DEV_LOGIN=true AISOCIAL_BIND="127.0.0.1:$1" AISOCIAL_WORKERS=${AISOCIAL_WORKERS:-1} \
    NODE_ID="$2" DATABASE_URL="$database_url" REDIS_PREFIX="$prefix" \
    RATE_LIMIT_USER_PER_MIN=1000000000 RATE_LIMIT_IP_PER_MIN=1000000000 RATE_LIMIT_OPS_PER_MIN=1000000000 WS_MAX_PER_IP=1000000 \
    RATE_LIMIT_AUTH_PER_MIN=100000000 \
    RUST_LOG=${RUST_LOG:-warn} taskset -c 0 "$bin/aisocial" serve &
  servers+=($!)
  for _ in $(seq 1 120); do
    curl -fs "http://127.0.0.1:$1/health/ready" >/dev/null && return 0
    sleep 0.5
  done
  echo "bench-storm: the node on port $1 did not become ready" >&2
  exit 1
}
nodes=()
serve 18097 storm-a
nodes+=(--url http://127.0.0.1:18097 --server-pid "${servers[0]}")
if $kill_node; then
  serve 18098 storm-b
  nodes+=(--url http://127.0.0.1:18098 --server-pid "${servers[1]}")
fi
echo "== storm: $USERS users against ${#servers[@]} node(s)$($kill_node && echo ', the second SIGKILLed under load')"
taskset -c 1 "$bin/aisocial-loadtest" storm "${nodes[@]}" --users "$USERS" \
  --database-url "$database_url" \
  --json "loadtest/results/storm-$run.json" --html "loadtest/results/storm-$run.html" "$@"
