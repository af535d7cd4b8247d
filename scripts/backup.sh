#!/usr/bin/env bash
# Logical backup: `pg_dump` in the custom format (compressed, restorable table by table, in
# parallel) of DATABASE_URL into BACKUP_DIR, named by UTC time, then retention: dumps older
# than BACKUP_KEEP_DAYS are removed, but the newest BACKUP_KEEP_MIN are always kept.
# Schedule it (cron, a Kubernetes CronJob); restore with scripts/restore.sh.
#   DATABASE_URL=postgres://... BACKUP_DIR=/backups scripts/backup.sh
set -euo pipefail
: "${DATABASE_URL:?set DATABASE_URL to the database to back up}"
BACKUP_DIR=${BACKUP_DIR:-./backups}
BACKUP_KEEP_DAYS=${BACKUP_KEEP_DAYS:-14}
BACKUP_KEEP_MIN=${BACKUP_KEEP_MIN:-3}
mkdir -p "$BACKUP_DIR"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
target="$BACKUP_DIR/aisocial-$stamp.dump"
# Written under a temporary name and renamed when complete: a half-written dump is never
# mistaken for a backup.
pg_dump --format=custom --compress=6 --no-owner --file="$target.partial" "$DATABASE_URL"
mv "$target.partial" "$target"
echo "backup: $target ($(du -h "$target" | cut -f1))"
# Retention: the newest BACKUP_KEEP_MIN stay whatever their age.
mapfile -t dumps < <(ls -1t "$BACKUP_DIR"/aisocial-*.dump 2>/dev/null)
for old in "${dumps[@]:$BACKUP_KEEP_MIN}"; do
  if [ -n "$(find "$old" -mtime +"$BACKUP_KEEP_DAYS" -print)" ]; then
    rm -f -- "$old"
    echo "backup: removed $old (older than $BACKUP_KEEP_DAYS days)"
  fi
done
