#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis answer on 127.0.0.1: reuses running ones, else starts the
# installed binaries, else installs them from Debian's packages (when run as root with apt),
# else says exactly what to install. Idempotent; safe to run any number of times.
set -euo pipefail

PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
REDIS_PORT=${REDIS_PORT:-6379}

say() { printf 'services: %s\n' "$*" >&2; }

pg_up() {
  if command -v pg_isready >/dev/null 2>&1; then
    pg_isready -q -h "$PG_HOST" -p "$PG_PORT"
  else
    (exec 3<>"/dev/tcp/$PG_HOST/$PG_PORT") 2>/dev/null
  fi
}

redis_up() {
  if command -v redis-cli >/dev/null 2>&1; then
    [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null
  fi
}

wait_for() { # name check
  for _ in $(seq 1 60); do
    if "$2"; then return 0; fi
    sleep 0.5
  done
  say "$1 did not come up within 30 s"
  return 1
}

can_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

apt_install() {
  say "installing $* from Debian's packages"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

start_postgres() {
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    if can_install; then
      apt_install postgresql
    else
      say "PostgreSQL is not installed. Install PostgreSQL 15+ (Debian: apt-get install postgresql) and start it on $PG_HOST:$PG_PORT with trust auth for user postgres, or set DATABASE_URL."
      return 1
    fi
  fi
  local version
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$version" ]; then
    say "no PostgreSQL cluster found under /etc/postgresql; create one with pg_createcluster"
    return 1
  fi
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  # Local development and CI use trust auth on loopback, as the README documents.
  if [ -w "$hba" ] && ! grep -q '^host *all *all *127.0.0.1/32 *trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$hba"
  fi
  say "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null \
    || pg_ctlcluster "$version" main start
}

start_redis() {
  if ! command -v redis-server >/dev/null 2>&1; then
    if can_install; then
      apt_install redis-server
    else
      say "Redis is not installed. Install Redis 7 (Debian: apt-get install redis-server) and start it on 127.0.0.1:$REDIS_PORT, or set REDIS_URL."
      return 1
    fi
  fi
  say "starting Redis"
  local dir=/var/lib/redis log=/var/log/redis/ci.log
  if ! { mkdir -p "$dir" /var/log/redis && touch "$log"; } 2>/dev/null; then
    dir=${TMPDIR:-/tmp}/aisocial-redis; mkdir -p "$dir"; log="$dir/redis.log"
  fi
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" \
    --appendonly no --dir "$dir" --logfile "$log"
}

if pg_up; then say "PostgreSQL is up on $PG_HOST:$PG_PORT"; else start_postgres && wait_for PostgreSQL pg_up; fi
if redis_up; then say "Redis is up on 127.0.0.1:$REDIS_PORT"; else start_redis && wait_for Redis redis_up; fi
