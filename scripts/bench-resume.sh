#!/usr/bin/env bash
# Resume cost (issue 16): a user who receives few events resumes on a log of millions. A release
# server (core 0) on a fresh database; EVENTS events of 1,000 other authors are put in the log
# directly (ids from the counter, as the DbWriter takes them), around RECEIVED posts of the one
# author the reader follows; then the reader resumes from before all of them RUNS times, and
# the time from opening the socket to the last replayed frame is reported (p50, p99), with the
# server's own resume queries timed by EXPLAIN ANALYZE. Needs python3 with `websockets`
# (installed with pip when missing). Starts and stops its own server and database.
#
#   EVENTS=2000000 RECEIVED=20 RUNS=50 scripts/bench-resume.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
cargo build --release --quiet -p aisocial
python3 -c "import websockets" 2>/dev/null || python3 -m pip install -q websockets
EVENTS=${EVENTS:-2000000}
RECEIVED=${RECEIVED:-20}
RUNS=${RUNS:-50}
run=$(date +%s)
db="aisocial_bench_resume_$run"
port=18085
psql_db() { psql -q -X -h 127.0.0.1 -U postgres -d "$db" -v ON_ERROR_STOP=1 "$@"; }
AUTH_DEV_LOGIN=true AISOCIAL_BIND=127.0.0.1:$port AISOCIAL_WORKERS=1 \
  DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" REDIS_PREFIX="aisocial-resume:$run:" \
  RATE_LIMIT_USER_PER_MIN=1000000000 RATE_LIMIT_IP_PER_MIN=1000000000 RATE_LIMIT_OPS_PER_MIN=1000000000 RATE_LIMIT_AUTH_PER_MIN=100000000 \
  RUST_LOG=warn taskset -c 0 ./target/release/aisocial serve &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; redis-cli -h 127.0.0.1 --scan --pattern "aisocial-resume:$run:*" | xargs -r redis-cli -h 127.0.0.1 del >/dev/null; psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1' EXIT
for _ in $(seq 1 60); do curl -fs http://127.0.0.1:$port/health/ready >/dev/null && break; sleep 0.5; done
token() {
  curl -fs -XPOST http://127.0.0.1:$port/api/v1/auth/dev -H 'content-type: application/json' \
    -d "{\"handle\":\"$1\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
reader=$(token reader)
author=$(token author)
curl -fs -XPUT http://127.0.0.1:$port/api/v1/users/author/follow -H "authorization: Bearer $reader"
since=$(psql_db -At -c "SELECT last_id FROM event_counter")
half=$((RECEIVED / 2))
post() { curl -fs -o /dev/null -XPOST http://127.0.0.1:$port/api/v1/posts -H "authorization: Bearer $author" \
  -H 'content-type: application/json' -d "{\"body\":\"post $1\"}"; }
for n in $(seq 1 $half); do post "$n"; done
echo "bench-resume: filling the log with $EVENTS events of 1,000 other authors"
psql_db <<SQL
INSERT INTO users (handle) SELECT 'crowd_' || n FROM generate_series(1, 1000) n;
BEGIN;
WITH c AS (UPDATE event_counter SET last_id = last_id + $EVENTS RETURNING last_id)
INSERT INTO events (id, kind, author_id, payload)
SELECT c.last_id - $EVENTS + g, 'post.created', u.id, jsonb_build_object('id', g, 'body', 'crowd')
FROM c, generate_series(1, $EVENTS) g JOIN users u ON u.handle = 'crowd_' || (1 + g % 1000);
COMMIT;
VACUUM ANALYZE events;
SQL
for n in $(seq $((half + 1)) $RECEIVED); do post "$n"; done
echo "bench-resume: $(psql_db -At -c "SELECT count(*) FROM events") events in the log; the reader receives $RECEIVED"
python3 - "$port" "$reader" "$since" "$RECEIVED" "$RUNS" <<'PY'
import asyncio, json, statistics, sys, time
import websockets
port, token, since, expected, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
async def once():
    started = time.perf_counter()
    async with websockets.connect(f"ws://127.0.0.1:{port}/api/v1/ws?since={since}",
                                  additional_headers={"authorization": f"Bearer {token}"}) as ws:
        hello = json.loads(await ws.recv())
        replayed = hello["data"]["resume"]["replayed"]
        assert replayed == expected, hello
        got = 0
        while got < replayed:
            frame = json.loads(await ws.recv())
            if "id" in frame:
                got += 1
        return (time.perf_counter() - started) * 1000
async def main():
    await once()
    times = sorted([await once() for _ in range(runs)])
    p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    print(f"bench-resume: {runs} resumes of {expected} events: p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms, max {times[-1]:.2f} ms")
asyncio.run(main())
PY
