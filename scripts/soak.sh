#!/usr/bin/env bash
# Soak: a release server (core 0, one HTTP worker) under the `mixed` load-test scenario for
# SOAK_SECONDS (default 3600): reads ≈ 10× writes, likes, follows, reconnects with resume,
# thread subscriptions. Reports per-window server memory, open files, CPU and p99, and their
# drift from the first window to the last, with loss/duplicate/order checks as thresholds.
# JSON and HTML reports go to loadtest/results/. Extra flags go to `mixed`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/bench.sh mixed --no-progress \
  --users "${USERS:-200}" --rate "${RATE:-200}" --seconds "${SOAK_SECONDS:-3600}" \
  --sample-secs "${SAMPLE_SECS:-60}" \
  --threshold missing==0 --threshold duplicated==0 --threshold out_of_order==0 \
  --threshold resume_gaps==0 --threshold errors==0 "$@"
