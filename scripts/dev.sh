#!/usr/bin/env bash
# Starts aisocial locally: PostgreSQL and Redis ensured, migrations applied, the server
# listening on $AISOCIAL_BIND (default 127.0.0.1:8080) with dev login enabled.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
export AUTH_DEV_LOGIN=${AUTH_DEV_LOGIN:-true}
export LOG_FORMAT=${LOG_FORMAT:-text}
exec cargo run --release --bin aisocial -- serve "$@"
