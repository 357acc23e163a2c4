#!/usr/bin/env bash
# Profile ringback while ivr-load holds N prompt-playing calls:
#   bench/profile.sh [N=1000]      → bench/results/profile-N.txt
# Needs `perf` (works as root here). Bounded: ~N/500 + 40 s. Only the PIDs it
# started are stopped. Build first (bench/run.sh, or cargo build --release).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
N="${1:-1000}"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
RINGBACK="$TARGET_DIR/release/ringback"
IVR_LOAD="$TARGET_DIR/release/ivr-load"
OUT="$HERE/results/profile-$N.txt"
command -v perf >/dev/null || { echo "perf is not installed" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"

WORK="$(mktemp -d /tmp/ringback-profile.XXXXXX)"
SRV=""; LOAD=""
stop() { [[ -n "$1" ]] && { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }; }
trap 'stop "$LOAD"; stop "$SRV"; rm -rf "$WORK"' EXIT

sed -e "s#^dir = \"dialplans\"#dir = \"$HERE/dialplans\"#" \
    -e "s#^dir = \"../prompts\"#dir = \"$REPO/prompts\"#" \
    -e "s#^url = \"sqlite://data/bench.db\"#url = \"sqlite://$WORK/data/bench.db\"#" \
    "$HERE/ringback-bench.toml" > "$WORK/ringback.toml"
RINGBACK_LOG=warn "$RINGBACK" --config "$WORK/ringback.toml" serve > "$WORK/stdout" 2> "$WORK/stderr" &
SRV=$!
for _ in $(seq 100); do [[ -s "$WORK/stdout" ]] && break; sleep 0.1; done
SIP="$(sed -n 's/.*sip=\([0-9.:]*\).*/\1/p' "$WORK/stdout")"
[[ -n "$SIP" ]] || { cat "$WORK/stderr" >&2; exit 1; }

ramp=$(( N / 500 + 4 ))
timeout $(( ramp * 2 + 60 )) "$IVR_LOAD" --server "$SIP" --pid "$SRV" --calls "$N" \
  --window 15 --settle "$ramp" --out "$WORK/load.json" > "$WORK/load.out" 2>&1 &
LOAD=$!
sleep $(( ramp + 2 ))
perf record -F 999 -g -p "$SRV" -o "$WORK/perf.data" -- sleep 10 2> /dev/null
{
  echo "# perf profile of ringback holding $N calls ($(date -u +%FT%TZ), $(nproc) cores)"
  echo "## by thread"
  perf report -i "$WORK/perf.data" --no-children --sort comm -g none -q 2>/dev/null | head -10
  echo "## by symbol (self time)"
  perf report -i "$WORK/perf.data" --no-children --sort dso,sym -g none -q 2>/dev/null | head -40
  echo "## load during the profile"
  wait "$LOAD" || true; LOAD=""
  cat "$WORK/load.out" | grep -v '^  ramp:'
} > "$OUT"
echo "wrote $OUT"
