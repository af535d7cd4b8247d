#!/usr/bin/env bash
# Soak: a release server (core 0, one HTTP worker) under the `mixed` load-test scenario for
# SOAK_SECONDS (default 3600): reads ≈ 10× writes, likes, follows, reconnects with resume,
# thread subscriptions. Reports per-window server memory, open files, CPU and p99 (per kind of
# operation, and the server's own mean per route), and their drift from the first window to the
# last, with loss/duplicate/order checks as thresholds. JSON and HTML reports go to
# loadtest/results/. Extra flags go to `mixed`.
#
# The database is a private PostgreSQL cluster started here with production settings
# (autovacuum on, fsync on), because an hour of writes on a server without autovacuum measures
# the missing vacuum, not aisocial (the CI machine's shared cluster runs with autovacuum off).
# SOAK_SHARED_PG=1 uses the shared cluster on 127.0.0.1:5432 instead. Run as root, the soak's
# processes get priority over other work on the machine (SOAK_NICE, default -5).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --quiet
scripts/services.sh

if [ "${SOAK_SHARED_PG:-0}" != 1 ]; then
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -x "$bin/initdb" ] || { echo "soak: no initdb under /usr/lib/postgresql (set SOAK_SHARED_PG=1)" >&2; exit 1; }
  dir=$(mktemp -d /tmp/aisocial-soak-pg.XXXXXX)
  as_postgres=()
  if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$dir"
    as_postgres=(runuser -u postgres --)
  fi
  port=${SOAK_PG_PORT:-55432}
  "${as_postgres[@]}" "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
  "${as_postgres[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w start -o \
    "-p $port -k $dir -c listen_addresses=127.0.0.1 -c autovacuum=on -c fsync=on -c shared_buffers=256MB -c max_connections=200" >/dev/null
  trap '"${as_postgres[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1; rm -rf "$dir"' EXIT
  export PG_HOST=127.0.0.1 PG_PORT=$port
  echo "soak: a private PostgreSQL on port $port (autovacuum on), data in $dir"
fi

priority=()
if [ "$(id -u)" = 0 ]; then
  priority=(nice -n "${SOAK_NICE:--5}")
fi
"${priority[@]}" scripts/bench.sh mixed --no-progress \
  --users "${USERS:-200}" --rate "${RATE:-200}" --seconds "${SOAK_SECONDS:-3600}" \
  --sample-secs "${SAMPLE_SECS:-60}" \
  --threshold missing==0 --threshold duplicated==0 --threshold out_of_order==0 \
  --threshold resume_gaps==0 --threshold errors==0 "$@"
