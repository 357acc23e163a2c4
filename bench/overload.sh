#!/usr/bin/env bash
# Overload: SIPp at twice the sustainable call rate while ivr-load holds and
# measures calls that were already in progress. Admission control is ON
# (ringback's default [limits]); what must hold: the calls in progress keep
# their audio, the flood gets fast 503s with Retry-After, nothing hangs.
#
#   bench/overload.sh                        # defaults below
#   HELD=1000 FLOOD_RATE=2000 bench/overload.sh
#
# Environment (defaults):
#   HELD=1000          calls held (and measured) by ivr-load
#   FLOOD_RATE=2×best  SIPp calls/s; default: twice best_clean_rate_cps of
#                      results/callrate.json (1,000 if there is none)
#   FLOOD_SECS=12      seconds of flood (inside the measurement window)
#   WINDOW=20          ivr-load measurement window, s
#   SKIP_BUILD=1       use the existing release binaries
# Writes results/overload.json and regenerates bench/README.md's tables.
# Everything targets 127.0.0.1, every step is bounded by `timeout`, and only
# the PIDs this script started are stopped.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
RINGBACK="$TARGET_DIR/release/ringback"
IVR_LOAD="$TARGET_DIR/release/ivr-load"
REPORT="$TARGET_DIR/release/bench-report"
RESULTS="$HERE/results"
HELD="${HELD:-1000}"
FLOOD_SECS="${FLOOD_SECS:-12}"
WINDOW="${WINDOW:-20}"
best="$(sed -n 's/.*"best_clean_rate_cps": *\([0-9]*\).*/\1/p' "$RESULTS/callrate.json" 2>/dev/null | head -1)"
FLOOD_RATE="${FLOOD_RATE:-$(( ${best:-500} * 2 ))}"

if [[ -z "${SKIP_BUILD:-}" ]]; then
  (cd "$REPO" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -p ringback -p ringback-bench)
fi
command -v sipp >/dev/null || { echo "sipp missing: apt-get install -y sip-tester" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"

WORK="$(mktemp -d /tmp/ringback-overload.XXXXXX)"
SRV=""; LOAD=""; FLOOD=""
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
trap 'stop "$FLOOD"; stop "$LOAD"; stop "$SRV"; rm -rf "$WORK"' EXIT

start_production_server
echo "ringback pid $SRV sip=$SIP; holding $HELD calls, then SIPp at $FLOOD_RATE calls/s for ${FLOOD_SECS}s"

ramp=$(( HELD / 500 + 1 ))
settle=3
timeout $(( ramp * 2 + settle + WINDOW + 60 )) "$IVR_LOAD" --server "$SIP" --pid "$SRV" \
  --calls "$HELD" --rate 500 --window "$WINDOW" --settle "$settle" --number 2000 \
  --sockets per-call --label "overload: held calls during a ${FLOOD_RATE}/s flood" \
  --out "$WORK/held.json" > "$WORK/held.out" 2>&1 &
LOAD=$!
sleep $(( ramp + settle + 2 ))
m=$(( FLOOD_RATE * FLOOD_SECS ))
timeout $(( FLOOD_SECS + 60 )) sipp -sf "$HERE/sipp/uac-2s-or-503.xml" -s 2000 \
  -i 127.0.0.1 -mp 17998 -r "$FLOOD_RATE" -rp 1000 -m "$m" -l $(( FLOOD_RATE * 4 + 100 )) \
  -nostdin -timeout $(( FLOOD_SECS + 45 ))s -timeout_error -recv_timeout 8000 \
  -max_recv_loops 10000 -max_sched_loops 10000 \
  -trace_stat -stf "$WORK/stat.csv" -fd 1 "$SIP" > "$WORK/sipp.out" 2>&1 &
FLOOD=$!
status=0; wait "$FLOOD" || status=$?; FLOOD=""
lstatus=0; wait "$LOAD" || lstatus=$?; LOAD=""
curl -s "http://$API/metrics" > "$WORK/metrics.txt" || true
stop "$SRV"; SRV=""
[[ $lstatus -eq 0 ]] || { echo "ivr-load failed ($lstatus):" >&2; tail -20 "$WORK/held.out" >&2; exit 1; }
read -r ok failed retrans <<<"$(sipp_totals "$WORK/stat.csv")"
refusals="$(sed -n 's/^ringback_refusals_total{reason="\([a-z_]*\)"} \([0-9]*\)$/"\1": \2/p' "$WORK/metrics.txt" | paste -sd, -)"
answered="$(sed -n 's/^ringback_calls_answered_total \([0-9]*\)$/\1/p' "$WORK/metrics.txt")"
tail -3 "$WORK/held.out"
echo "flood: $m INVITEs, $ok completed (answered or refused with 503 + Retry-After), $failed failed, $retrans retransmissions; refusals {$refusals}"
{
  echo "{"
  echo "  \"benchmark\": \"overload\","
  echo "  \"timestamp_unix\": $(date +%s),"
  echo "  \"flood\": {\"rate_cps\": $FLOOD_RATE, \"seconds\": $FLOOD_SECS, \"invites\": $m, \"completed\": ${ok:-0}, \"failed\": ${failed:-0}, \"retransmissions\": ${retrans:-0}, \"sipp_exit\": $status},"
  echo "  \"server\": {\"answered_total\": ${answered:-0}, \"refusals\": {$refusals}},"
  echo "  \"held\": $(cat "$WORK/held.json")"
  echo "}"
} > "$RESULTS/overload.json"
"$REPORT" "$RESULTS" "$HERE/README.md"
