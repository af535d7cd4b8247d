#!/usr/bin/env bash
# Runs the whole test suite against the real PostgreSQL and Redis on this machine (ensured
# first). Each integration test makes its own database (dropped afterwards) and Redis prefix.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh
scripts/browser-deps.sh
# The Kubernetes manifests are validated offline against Kubernetes' schemas (tests/deploy.rs).
command -v kubernetes-validate >/dev/null 2>&1 || python3 -m pip install -q kubernetes-validate
# The web pages' own logic (token refresh) under Node's test runner.
node --test web/tests/
exec cargo test --workspace --all-targets "$@"
