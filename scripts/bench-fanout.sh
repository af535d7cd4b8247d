#!/usr/bin/env bash
# Fan-out benchmark (the bar in the README of the team: one author, 1,000 followers online):
# a release server on core 0 with one HTTP worker, the load generator on core 1. Reports
# deliveries/s, latency from the scheduled send, loss/duplicates/order, server CPU per
# delivery and RSS per idle connection. Starts and stops its own server and database.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
cargo build --release --workspace --quiet
FOLLOWERS=${FOLLOWERS:-1000}
RATE=${RATE:-100}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-15}
run=$(date +%s)
db="aisocial_bench_fanout_$run"
AUTH_DEV_LOGIN=true AISOCIAL_BIND=127.0.0.1:18083 AISOCIAL_WORKERS=1 \
  DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" REDIS_PREFIX="aisocial-fan:$run:" \
  RATE_LIMIT_USER_PER_MIN=1000000000 RATE_LIMIT_IP_PER_MIN=1000000000 RATE_LIMIT_OPS_PER_MIN=1000000000 WS_MAX_PER_IP=1000000 RATE_LIMIT_AUTH_PER_MIN=100000000 \
  RUST_LOG=warn taskset -c 0 ./target/release/aisocial serve &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1' EXIT
for _ in $(seq 1 60); do curl -fs http://127.0.0.1:18083/health/ready >/dev/null && break; sleep 0.5; done
taskset -c 1 ./target/release/aisocial-loadtest fanout --url http://127.0.0.1:18083 \
  --followers "$FOLLOWERS" --rate "$RATE" --seconds "$SECONDS_PER_RUN" --server-pid "$server"
