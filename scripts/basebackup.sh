#!/usr/bin/env bash
# Physical backup for point-in-time recovery: a base backup (`pg_basebackup`, compressed tar,
# with the WAL it needs) of the cluster at PG_URL into BACKUP_DIR/base-<UTC time>/. Together
# with the WAL that the server archives continuously (configure the server with
#   archive_mode = on
#   archive_command = 'test ! -f /archive/%f && cp %p /archive/%f'
# and a replication-capable role), any moment since the oldest kept base backup can be restored
# with scripts/pitr-restore.sh. Retention: base backups beyond the newest BACKUP_KEEP are removed,
# then archived WAL older than the oldest kept base backup (pg_archivecleanup), when
# WAL_ARCHIVE is given.
#   PG_URL=postgres://postgres@db:5432/postgres BACKUP_DIR=/backups WAL_ARCHIVE=/archive scripts/basebackup.sh
set -euo pipefail
: "${PG_URL:?set PG_URL to the cluster (any database; a role with REPLICATION)}"
BACKUP_DIR=${BACKUP_DIR:-./backups}
BACKUP_KEEP=${BACKUP_KEEP:-3}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
target="$BACKUP_DIR/base-$stamp"
mkdir -p "$BACKUP_DIR"
pg_basebackup --dbname="$PG_URL" --pgdata="$target.partial" --format=tar --gzip \
  --wal-method=fetch --checkpoint=fast --label="aisocial-$stamp" --no-password
mv "$target.partial" "$target"
echo "basebackup: $target ($(du -sh "$target" | cut -f1))"
mapfile -t bases < <(ls -1dt "$BACKUP_DIR"/base-* 2>/dev/null | grep -v '\.partial$')
for old in "${bases[@]:$BACKUP_KEEP}"; do
  rm -rf -- "$old"
  echo "basebackup: removed $old"
done
if [ -n "${WAL_ARCHIVE:-}" ] && [ "${#bases[@]}" -gt 0 ]; then
  oldest=${bases[$(( ${#bases[@]} < BACKUP_KEEP ? ${#bases[@]} - 1 : BACKUP_KEEP - 1 ))]}
  # The first WAL segment the oldest kept backup needs, from its backup label.
  first=$(tar -xzOf "$oldest/base.tar.gz" backup_label | sed -n 's/^START WAL LOCATION: .* (file \(.*\))$/\1/p')
  if [ -n "$first" ]; then
    pg_archivecleanup "$WAL_ARCHIVE" "$first"
    echo "basebackup: archived WAL before $first removed"
  fi
fi
