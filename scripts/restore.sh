#!/usr/bin/env bash
# Restores a dump made by scripts/backup.sh into TARGET_URL's database, creating it when it
# does not exist (an existing database must be empty: restoring over live data is refused).
# Then `aisocial serve` (or `aisocial migrate`) brings the schema up to the binary's version.
#   TARGET_URL=postgres://postgres@host:5432/aisocial scripts/restore.sh backups/aisocial-….dump
set -euo pipefail
dump=${1:?usage: TARGET_URL=postgres://…/db scripts/restore.sh DUMP}
: "${TARGET_URL:?set TARGET_URL to the database to restore into}"
[ -f "$dump" ] || { echo "restore: no such dump: $dump" >&2; exit 1; }
database=${TARGET_URL##*/}
database=${database%%\?*}
server=${TARGET_URL%/*}
if [ "$(psql -Atq "$server/postgres" -c "SELECT 1 FROM pg_database WHERE datname = '$database'")" != 1 ]; then
  psql -q "$server/postgres" -c "CREATE DATABASE \"$database\""
elif [ "$(psql -Atq "$TARGET_URL" -c "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")" != 0 ]; then
  echo "restore: $database is not empty; restore into a new database" >&2
  exit 1
fi
started=$(date +%s%N)
pg_restore --exit-on-error --no-owner --jobs="${RESTORE_JOBS:-2}" --dbname="$TARGET_URL" "$dump"
psql -q "$TARGET_URL" -c "ANALYZE"
echo "restore: $dump into $database in $(( ($(date +%s%N) - started) / 1000000 )) ms"
