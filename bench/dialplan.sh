#!/usr/bin/env bash
# Dialplan operations (issue 7): `ringback check` and hot reload of 100
# dialplan files, and start-up time, with the shipped prompts.
#
#   bench/dialplan.sh
#
# Environment (defaults):
#   FILES=100     dialplan files (the 3 shipped ones plus generated variants)
#   CHECKS=20     timed `ringback check` runs (of the FILES files, and of the
#                 3 shipped files for comparison)
#   RELOADS=30    reloads through POST /api/v1/dialplans/reload
#   SIGHUPS=20    reloads through SIGHUP
#   STARTS=10     start-ups with a fresh data directory, and as many with an
#                 existing one
#   SKIP_BUILD=1  use the existing release binaries
#   KEEP_WORK=1   keep the scratch directory (dialplans, configs, logs)
#   CARGO_TARGET_DIR   where the release binaries are (default: <repo>/target)
#
# Everything is on 127.0.0.1 and runs under `timeout`; the servers are
# started and stopped (by PID) by `dialplan-ops` itself. Result:
# bench/results/dialplan-ops.json; bench/README.md's tables are regenerated.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
RINGBACK="$TARGET_DIR/release/ringback"
OPS="$TARGET_DIR/release/dialplan-ops"
REPORT="$TARGET_DIR/release/bench-report"
RESULTS="$HERE/results"
mkdir -p "$RESULTS"
# shellcheck source=bench/lock.sh
source "$HERE/lock.sh"

wait_for_other_lock
if [[ -z "${SKIP_BUILD:-}" ]]; then
  (cd "$REPO" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -p ringback -p ringback-bench)
fi
for b in "$RINGBACK" "$OPS" "$REPORT"; do
  [[ -x "$b" ]] || { echo "missing $b (build first)" >&2; exit 1; }
done

WORK="$(mktemp -d /tmp/ringback-dialplan-bench.XXXXXX)"
HAVE_LOCK=""
cleanup() {
  [[ -n "$HAVE_LOCK" ]] && rm -f "$LOCK_MINE"
  if [[ -n "${KEEP_WORK:-}" ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for_other_lock
touch "$LOCK_MINE"; HAVE_LOCK=1
timeout --signal=TERM 900 "$OPS" --ringback "$RINGBACK" --shipped "$REPO/dialplans" \
  --prompts "$REPO/prompts" --work "$WORK" --files "${FILES:-100}" --checks "${CHECKS:-20}" \
  --reloads "${RELOADS:-30}" --sighups "${SIGHUPS:-20}" --starts "${STARTS:-10}" \
  --label "ringback $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)" \
  --out "$RESULTS/dialplan-ops.json"
rm -f "$LOCK_MINE"; HAVE_LOCK=""

"$REPORT" "$RESULTS" "$HERE/README.md"
