#!/usr/bin/env bash
# Runs one load-test scenario against a release server this script starts and stops: the server
# on core 0 with one HTTP worker and a fresh database, rate limits raised, dev login on; the
# load generator on core 1. `--url` is filled in, and `--server-pid` for the scenarios that read
# the server's CPU time (fanout, connect). Reports go to loadtest/results/<scenario>-<time>.*.
#   scripts/bench.sh fanout --followers 1000 --authors 10:10,100:2,1000:1 --rate 20
#   scripts/bench.sh slow --followers 200
#   scripts/bench.sh mixed --seconds 60
#   scripts/bench.sh calibrate   (the suite's own echo server instead of aisocial)
# Server settings come from the environment (e.g. WS_OUTBOUND_LIMIT=256 scripts/bench.sh slow).
set -euo pipefail
cd "$(dirname "$0")/.."
scenario=${1:?usage: scripts/bench.sh SCENARIO [loadtest flags]}
shift
cargo build --release --workspace --quiet
run=$(date +%s)
mkdir -p loadtest/results
if [ "$scenario" = calibrate ]; then
  # The echo server is the suite's own (started by the scenario); no aisocial server.
  exec taskset -c 1 ./target/release/aisocial-loadtest calibrate --server-workers 1 \
    --json "loadtest/results/calibrate-$run.json" --html "loadtest/results/calibrate-$run.html" "$@"
fi
scripts/services.sh
PORT=${PORT:-18089}
# PG_HOST/PG_PORT: another PostgreSQL (scripts/soak.sh starts one with production settings).
PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
db="aisocial_bench_${scenario}_$run"
mkdir -p loadtest/results
AUTH_DEV_LOGIN=true AISOCIAL_BIND="127.0.0.1:$PORT" AISOCIAL_WORKERS=${AISOCIAL_WORKERS:-1} \
  DATABASE_URL="postgres://postgres@$PG_HOST:$PG_PORT/$db" REDIS_PREFIX="aisocial-bench:$run:" \
  RATE_LIMIT_USER_PER_MIN=1000000000 RATE_LIMIT_IP_PER_MIN=1000000000 RATE_LIMIT_OPS_PER_MIN=1000000000 WS_MAX_PER_IP=1000000 RATE_LIMIT_AUTH_PER_MIN=100000000 \
  RUST_LOG=warn taskset -c 0 ./target/release/aisocial serve &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; psql -q -h $PG_HOST -p $PG_PORT -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1; redis-cli --scan --pattern "aisocial-bench:$run:*" 2>/dev/null | xargs -r -n 500 redis-cli del >/dev/null 2>&1' EXIT
for _ in $(seq 1 60); do curl -fs "http://127.0.0.1:$PORT/health/ready" >/dev/null && break; sleep 0.5; done
extra=()
case "$scenario" in
  fanout | connect) extra+=(--server-pid "$server") ;;
esac
taskset -c 1 ./target/release/aisocial-loadtest "$scenario" --url "http://127.0.0.1:$PORT" \
  "${extra[@]}" --json "loadtest/results/$scenario-$run.json" \
  --html "loadtest/results/$scenario-$run.html" "$@"
