#!/usr/bin/env bash
# Write benchmarks (issue 4): acknowledged posts/s through the HTTP API with 200 concurrent
# clients, then the DbWriter against one transaction per request (`cargo bench -p
# aisocial-actors --bench db_writer`, which makes and drops a database of its own). Starts its
# own release server on 127.0.0.1:18081 with its own database and raised rate limits; stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
cargo build --release --workspace --quiet
CLIENTS=${CLIENTS:-200}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-15}
run=$(date +%s)
http_db="aisocial_bench_http_$run"
AUTH_DEV_LOGIN=true AISOCIAL_BIND=127.0.0.1:18081 \
  DATABASE_URL="postgres://postgres@127.0.0.1:5432/$http_db" REDIS_PREFIX="aisocial-bench:$run:" \
  RATE_LIMIT_USER_PER_MIN=1000000000 RATE_LIMIT_IP_PER_MIN=1000000000 RATE_LIMIT_OPS_PER_MIN=1000000000 WS_MAX_PER_IP=1000000 RATE_LIMIT_AUTH_PER_MIN=1000000 \
  RUST_LOG=warn ./target/release/aisocial serve &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $http_db WITH (FORCE)" >/dev/null 2>&1' EXIT
for _ in $(seq 1 60); do curl -fs http://127.0.0.1:18081/health/ready >/dev/null && break; sleep 0.5; done
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
before=$(ticks $server)
./target/release/aisocial-loadtest writes --url http://127.0.0.1:18081 --clients "$CLIENTS" --seconds "$SECONDS_PER_RUN"
after=$(ticks $server)
echo "server CPU during writes: $(( (after - before) ))0 ms"
cargo bench -p aisocial-actors --bench db_writer --quiet -- \
  --database-url postgres://postgres@127.0.0.1:5432/postgres --clients "$CLIENTS" --seconds 10
