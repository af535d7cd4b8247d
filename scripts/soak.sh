#!/usr/bin/env bash
# Soak: a release server (core 0, one HTTP worker) under the `mixed` load-test scenario for
# SOAK_SECONDS (default 3600): reads ≈ 10× writes, likes, follows, reconnects with resume,
# thread subscriptions. Reports per-window server memory, open files, CPU and p99, and their
# drift from the first window to the last, with loss/duplicate/order checks. Writes JSON and
# HTML reports to loadtest/results/. Starts and stops its own server and database.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
cargo build --release --workspace --quiet
SOAK_SECONDS=${SOAK_SECONDS:-3600}
USERS=${USERS:-200}
RATE=${RATE:-200}
SAMPLE_SECS=${SAMPLE_SECS:-60}
run=$(date +%s)
db="aisocial_soak_$run"
mkdir -p loadtest/results
AUTH_DEV_LOGIN=true AISOCIAL_BIND=127.0.0.1:18087 AISOCIAL_WORKERS=1 \
  DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" REDIS_PREFIX="aisocial-soak:$run:" \
  RATE_LIMIT_USER_PER_MIN=1000000000 RATE_LIMIT_IP_PER_MIN=1000000000 RATE_LIMIT_AUTH_PER_MIN=100000000 \
  RUST_LOG=warn taskset -c 0 ./target/release/aisocial serve &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1' EXIT
for _ in $(seq 1 60); do curl -fs http://127.0.0.1:18087/health/ready >/dev/null && break; sleep 0.5; done
taskset -c 1 ./target/release/aisocial-loadtest mixed --url http://127.0.0.1:18087 --no-progress \
  --users "$USERS" --rate "$RATE" --seconds "$SOAK_SECONDS" --sample-secs "$SAMPLE_SECS" \
  --json "loadtest/results/soak-$run.json" --html "loadtest/results/soak-$run.html" \
  --threshold missing==0 --threshold duplicated==0 --threshold out_of_order==0 \
  --threshold resume_gaps==0 --threshold errors==0 "$@"
