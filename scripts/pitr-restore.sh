#!/usr/bin/env bash
# Point-in-time recovery: prepares DATA_DIR (new or empty) from a base backup made by
# scripts/basebackup.sh and the WAL archive, to recover up to RECOVERY_TARGET_TIME (any
# timestamp PostgreSQL parses, e.g. '2026-11-25 19:30:00+00'; empty: all the WAL there is) and
# then promote. Start PostgreSQL on DATA_DIR (as its owner): it replays the WAL, promotes, and
# takes writes once `SELECT pg_is_in_recovery()` says false; start aisocial after that.
#   DATA_DIR=/var/lib/postgresql/15/restored WAL_ARCHIVE=/archive \
#     RECOVERY_TARGET_TIME='2026-11-25 19:30:00+00' scripts/pitr-restore.sh /backups/base-…
set -euo pipefail
base=${1:?usage: DATA_DIR=… WAL_ARCHIVE=… [RECOVERY_TARGET_TIME=…] scripts/pitr-restore.sh BASE_BACKUP_DIR}
: "${DATA_DIR:?set DATA_DIR to the new data directory}"
: "${WAL_ARCHIVE:?set WAL_ARCHIVE to the WAL archive}"
[ -f "$base/base.tar.gz" ] || { echo "pitr-restore: no base.tar.gz in $base" >&2; exit 1; }
if [ -d "$DATA_DIR" ] && [ -n "$(ls -A "$DATA_DIR")" ]; then
  echo "pitr-restore: $DATA_DIR is not empty" >&2
  exit 1
fi
mkdir -p "$DATA_DIR"
chmod 700 "$DATA_DIR"
tar -xzf "$base/base.tar.gz" -C "$DATA_DIR"
mkdir -p "$DATA_DIR/pg_wal"
[ -f "$base/pg_wal.tar.gz" ] && tar -xzf "$base/pg_wal.tar.gz" -C "$DATA_DIR/pg_wal"
{
  echo "restore_command = 'cp $WAL_ARCHIVE/%f %p'"
  if [ -n "${RECOVERY_TARGET_TIME:-}" ]; then
    echo "recovery_target_time = '$RECOVERY_TARGET_TIME'"
    echo "recovery_target_inclusive = false"
  fi
  echo "recovery_target_action = 'promote'"
  # The restored server must not archive into the original's archive.
  echo "archive_mode = off"
} >> "$DATA_DIR/postgresql.auto.conf"
touch "$DATA_DIR/recovery.signal"
echo "pitr-restore: $DATA_DIR prepared from $base${RECOVERY_TARGET_TIME:+ up to $RECOVERY_TARGET_TIME}; start PostgreSQL on it"
