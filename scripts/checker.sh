#!/usr/bin/env bash
# The delivery checker (tests/checker) for a long while: consecutive runs, each a fresh
# deployment (a private PostgreSQL, a private Redis, three real nodes) with a new random seed and
# CHECKER_SECONDS of workload and faults (default 240), until --minutes have passed (default 30).
#
# Why many runs of a few minutes rather than one long one: every run draws a new seed, so an
# hour explores a dozen fault schedules instead of one; a failing seed reproduces in minutes
# (`CHECKER_SEED=<seed> CHECKER_SECONDS=<s> cargo test --release --test checker -- --nocapture`);
# the access tokens of a run (900 s at most) outlive it; and a run's oracle holds only its own
# log. What only hours of one process would show (growth, drift) is scripts/soak.sh's job.
#
#   scripts/checker.sh [--minutes N] [--run-seconds S] [--seed SEED] [--debug]
#
# --seed runs that one seed once (to reproduce a failure); --debug builds the test profile
# instead of release (quicker to build, slower server). CHECKER_FAULTS and CHECKER_FOLLOWS pass
# through to every run (see tests/checker/main.rs). Needs PostgreSQL's binaries
# (/usr/lib/postgresql/*/bin) and redis-server; scripts/services.sh installs both.
#
# Writes target/checker/<time>/: run-<n>-seed-<seed>.json (each run's report), .log (its
# output), summary.txt (one line per run) and summary.json (one object per run). Exits 1 if any
# run failed, after printing the failing seeds.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=30
run_seconds=${CHECKER_SECONDS:-240}
fixed_seed=""
profile=(--release)
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --run-seconds) run_seconds=$2; shift 2 ;;
    --seed) fixed_seed=$2; shift 2 ;;
    --debug) profile=(); shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "checker.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

command -v redis-server >/dev/null || { echo "checker.sh: no redis-server (scripts/services.sh installs it)" >&2; exit 1; }
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo "checker.sh: no initdb under /usr/lib/postgresql (scripts/services.sh installs it)" >&2; exit 1; }

cargo test "${profile[@]}" --test checker --no-run --quiet

out="target/checker/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
summary="$out/summary.txt"
json="$out/summary.json"
echo "[" > "$json"
end=$(( $(date +%s) + minutes * 60 ))
run=0
failed=()
echo "checker.sh: runs of ${run_seconds}s for ${minutes} min; reports in $out"
while :; do
  run=$(( run + 1 ))
  if [ -n "$fixed_seed" ]; then
    seed=$fixed_seed
  else
    seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
  fi
  name="$out/run-$run-seed-$seed"
  started=$(date +%s)
  status=0
  CHECKER_SEED=$seed CHECKER_SECONDS=$run_seconds CHECKER_REPORT="$name.json" RUST_BACKTRACE=0 \
    cargo test "${profile[@]}" --quiet --test checker every_reader -- --nocapture \
    > "$name.log" 2>&1 || status=$?
  took=$(( $(date +%s) - started ))
  table=$(grep -m1 '^checker seed=' "$name.log" || echo "checker seed=$seed: no report (see $name.log)")
  counts=$(grep -m1 '^  lost ' "$name.log" | sed 's/^ *//' || true)
  if [ "$status" = 0 ]; then verdict=pass; else verdict=FAIL; failed+=("$seed"); fi
  line="run $run seed=$seed ${took}s $verdict: ${counts:-$table}"
  echo "$line" | tee -a "$summary"
  [ "$run" -gt 1 ] && echo "," >> "$json"
  printf '{"run": %d, "seed": %s, "seconds": %d, "wall_seconds": %d, "passed": %s, "report": "%s", "log": "%s"}\n' \
    "$run" "$seed" "$run_seconds" "$took" "$([ "$status" = 0 ] && echo true || echo false)" \
    "$(basename "$name").json" "$(basename "$name").log" >> "$json"
  if [ -n "$fixed_seed" ] || [ $(( $(date +%s) + run_seconds + 30 )) -gt "$end" ]; then
    break
  fi
done
echo "]" >> "$json"

echo "checker.sh: $run runs, ${#failed[@]} failed; $summary" | tee -a "$summary"
if [ "${#failed[@]}" -gt 0 ]; then
  for seed in "${failed[@]}"; do
    echo "checker.sh: FAILED seed=$seed (CHECKER_SEED=$seed CHECKER_SECONDS=$run_seconds cargo test${profile[*]:+ ${profile[*]}} --test checker -- --nocapture)" | tee -a "$summary"
  done
  exit 1
fi
