#!/usr/bin/env bash
# Connections benchmark: N idle authenticated websockets held by one release server process
# (default 19,000, under the 20,000 open files a process may have here), opened by two client
# processes from 127.0.0.x source addresses; then the same client against a bare
# actix-web-actors echo server (`calibrate-server`), the floor of this connection path.
# Reports handshake latency, failures and server RSS per idle connection. Starts and stops
# everything itself.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
cargo build --release --workspace --quiet
CONNECTIONS=${CONNECTIONS:-19000}
RATE=${RATE:-1000}
run=$(date +%s)
db="aisocial_bench_connect_$run"
AUTH_DEV_LOGIN=true AISOCIAL_BIND=127.0.0.1:18085 AISOCIAL_WORKERS=1 DATABASE_POOL_SIZE=4 \
  DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" REDIS_PREFIX="aisocial-conn:$run:" \
  RATE_LIMIT_USER_PER_MIN=1000000000 RATE_LIMIT_IP_PER_MIN=1000000000 RATE_LIMIT_OPS_PER_MIN=1000000000 WS_MAX_PER_IP=1000000 RATE_LIMIT_AUTH_PER_MIN=100000000 \
  RUST_LOG=warn ./target/release/aisocial serve &
server=$!
./target/release/aisocial-loadtest calibrate-server --bind 127.0.0.1:18095 --lifetime 900 &
echo_server=$!
trap 'kill -TERM $server $echo_server 2>/dev/null; wait $server $echo_server 2>/dev/null; psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1' EXIT
for _ in $(seq 1 60); do curl -fs http://127.0.0.1:18085/health/ready >/dev/null && break; sleep 0.5; done
echo "== aisocial: $CONNECTIONS authenticated sessions"
./target/release/aisocial-loadtest connect --url http://127.0.0.1:18085 \
  --connections "$CONNECTIONS" --rate "$RATE" --processes 2 --hold 10 --server-pid "$server"
echo "== calibrate: the same client against a bare actix-web-actors echo server"
./target/release/aisocial-loadtest connect --url http://127.0.0.1:18095 --no-auth \
  --connections "$CONNECTIONS" --rate "$RATE" --processes 2 --hold 10 --server-pid "$echo_server"
