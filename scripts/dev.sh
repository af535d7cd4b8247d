#!/usr/bin/env bash
# Starts aisocial locally: PostgreSQL and Redis ensured, migrations applied, the server
# listening on $AISOCIAL_BIND (default 127.0.0.1:8080) with dev login enabled; the try-it page
# is at http://127.0.0.1:8080/ and the dashboard (sign in as `admin`) at /admin/dashboard.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
export AUTH_DEV_LOGIN=${AUTH_DEV_LOGIN:-true}
# The try-it page at / opens its websocket from this server's own origin, which must be allowed;
# `admin` may sign in (dev login) to see the dashboard at /admin/dashboard.
bind=${AISOCIAL_BIND:-127.0.0.1:8080}
port=${bind##*:}
export WS_ALLOWED_ORIGINS=${WS_ALLOWED_ORIGINS:-http://127.0.0.1:$port,http://localhost:$port}
export ADMIN_HANDLES=${ADMIN_HANDLES:-admin}
export LOG_FORMAT=${LOG_FORMAT:-text}
exec cargo run --release --bin aisocial -- serve "$@"
