#!/usr/bin/env bash
# Starts aisocial locally: PostgreSQL and Redis ensured, migrations applied, the server
# listening on $AISOCIAL_BIND (default 127.0.0.1:8080, loopback: dev login is refused on any
# other address) with dev login enabled and the bundled Gemini emulator answering AI requests
# (unless GEMINI_API_KEY is set); the try-it page is at http://127.0.0.1:8080/ and the dashboard
# (sign in as `admin`) at /admin/dashboard.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
export AUTH_DEV_LOGIN=${AUTH_DEV_LOGIN:-true}
bind=${AISOCIAL_BIND:-127.0.0.1:8080}
export AISOCIAL_BIND=$bind
port=${bind##*:}
# A key of this run: tokens end with the process (sign in again after a restart). Set
# JWT_SIGNING_KEY to keep them across restarts.
if [ -z "${JWT_SIGNING_KEY:-}" ]; then
  JWT_SIGNING_KEY=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
  export JWT_SIGNING_KEY
fi
# Without a Gemini key, canned answers from the bundled emulator.
export GEMINI_EMULATOR=${GEMINI_EMULATOR:-true}
# The try-it page at / opens its websocket from this server's own origin, which must be allowed;
# `admin` may sign in (dev login) to see the dashboard at /admin/dashboard.
export WS_ALLOWED_ORIGINS=${WS_ALLOWED_ORIGINS:-http://127.0.0.1:$port,http://localhost:$port}
export ADMIN_HANDLES=${ADMIN_HANDLES:-admin}
export LOG_FORMAT=${LOG_FORMAT:-text}
exec cargo run --release --bin aisocial -- serve "$@"
