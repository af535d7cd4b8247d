#!/usr/bin/env bash
# Connections benchmark over TLS: scripts/bench-connect.sh's run (N idle authenticated
# websockets held by one release server process, opened by two client processes from
# 127.0.0.x source addresses), once over plain ws and once over wss against the same build,
# so the two KiB-per-idle-connection figures read side by side. The certificates are made by
# `aisocial-loadtest tls-cert` (no openssl CLI). Starts and stops everything itself.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
cargo build --release --workspace --quiet
CONNECTIONS=${CONNECTIONS:-19000}
RATE=${RATE:-1000}
run=$(date +%s)
certs=$(mktemp -d)
./target/release/aisocial-loadtest tls-cert --out "$certs"
servers=()
dbs=()
cleanup() {
  for pid in "${servers[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${servers[@]}"; do wait "$pid" 2>/dev/null || true; done
  for db in "${dbs[@]}"; do
    psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$certs"
}
trap cleanup EXIT
# serve PORT NAME [TLS_CERT_PATH TLS_KEY_PATH]: a release server like bench-connect.sh's.
serve() {
  local port=$1 name=$2 db="aisocial_bench_connect_${2}_$run"
  dbs+=("$db")
  AUTH_DEV_LOGIN=true AISOCIAL_BIND=127.0.0.1:$port AISOCIAL_WORKERS=1 DATABASE_POOL_SIZE=4 \
    DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" REDIS_PREFIX="aisocial-conn-$name:$run:" \
    RATE_LIMIT_USER_PER_MIN=1000000000 RATE_LIMIT_IP_PER_MIN=1000000000 RATE_LIMIT_OPS_PER_MIN=1000000000 WS_MAX_PER_IP=1000000 RATE_LIMIT_AUTH_PER_MIN=100000000 \
    TLS_CERT_PATH=${3:-} TLS_KEY_PATH=${4:-} \
    RUST_LOG=warn ./target/release/aisocial serve &
  servers+=($!)
}
serve 18085 ws
ws_server=${servers[-1]}
serve 18086 wss "$certs/cert.pem" "$certs/key.pem"
wss_server=${servers[-1]}
for _ in $(seq 1 60); do curl -fs http://127.0.0.1:18085/health/ready >/dev/null && break; sleep 0.5; done
for _ in $(seq 1 60); do
  curl -fs --cacert "$certs/ca.pem" https://127.0.0.1:18086/health/ready >/dev/null && break
  sleep 0.5
done
echo "== ws: $CONNECTIONS authenticated sessions over plain TCP"
./target/release/aisocial-loadtest connect --url http://127.0.0.1:18085 \
  --connections "$CONNECTIONS" --rate "$RATE" --processes 2 --hold 10 --server-pid "$ws_server"
echo "== wss: $CONNECTIONS authenticated sessions over TLS"
./target/release/aisocial-loadtest connect --url https://127.0.0.1:18086 --ca "$certs/ca.pem" \
  --connections "$CONNECTIONS" --rate "$RATE" --processes 2 --hold 10 --server-pid "$wss_server"
