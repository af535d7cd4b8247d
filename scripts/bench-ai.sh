#!/usr/bin/env bash
# AI benchmark: the Gemini emulator (stamping each chunk with its send time, quota = the
# budget), a release server calling it, and `aisocial-loadtest ai`: the pool's overhead per
# request, the latency each streamed delta adds from the emulator to a websocket, and the
# upstream rate under 10x overload against the configured limit. Starts and stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
cargo build --release --workspace --quiet
RPM=${RPM:-60}
SECONDS_OF_OVERLOAD=${SECONDS_OF_OVERLOAD:-70}
run=$(date +%s)
db="aisocial_bench_ai_$run"
key="bench-$run"
./target/release/gemini-emulator --bind 127.0.0.1:18090 --api-key "$key" --rpm "$RPM" \
  --tpm 1000000 --rpd 100000 --stamp-chunks --log-capacity 100000 &
emulator=$!
AUTH_DEV_LOGIN=true AISOCIAL_BIND=127.0.0.1:18084 AISOCIAL_WORKERS=1 \
  DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" REDIS_PREFIX="aisocial-ai:$run:" \
  GEMINI_API_KEY="$key" GEMINI_BASE_URL=http://127.0.0.1:18090 \
  AI_RPM="$RPM" AI_TPM=1000000 AI_RPD=100000 AI_USER_PER_MIN=100000 AI_USER_QUEUE=64 \
  RATE_LIMIT_USER_PER_MIN=1000000000 RATE_LIMIT_IP_PER_MIN=1000000000 RATE_LIMIT_OPS_PER_MIN=1000000000 WS_MAX_PER_IP=1000000 RATE_LIMIT_AUTH_PER_MIN=100000000 \
  RUST_LOG=warn ./target/release/aisocial serve &
server=$!
trap 'kill -TERM $server $emulator 2>/dev/null; wait $server $emulator 2>/dev/null; psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1' EXIT
for _ in $(seq 1 60); do curl -fs http://127.0.0.1:18084/health/ready >/dev/null && break; sleep 0.5; done
./target/release/aisocial-loadtest ai --url http://127.0.0.1:18084 \
  --emulator-url http://127.0.0.1:18090 --rpm "$RPM" --seconds "$SECONDS_OF_OVERLOAD"
