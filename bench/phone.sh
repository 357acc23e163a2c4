#!/usr/bin/env bash
# Talking callers (issue 16): the machine's floor, then `phone-load` at each
# level against a fresh release ringback — callers that send G.711 all call
# long, press keys by RFC 4733, zero out to agent stand-ins, hang up early.
#
#   bench/phone.sh                              # floor + 1,000 and 2,500 callers (≈ 4 min)
#   TALKING="100" PHONE_WINDOW=10 bench/phone.sh   # a smoke run
#
# Environment (defaults):
#   TALKING="1000 2500"   callers per level (a fresh server per level)
#   MIX="browse:50,listen:20,agent:20,early:10"   share of each behaviour, %
#   PHONE_RAMP=250        new calls per second (ramp and teardown)
#   PHONE_SETTLE=8        seconds after the ramp before measuring
#   PHONE_WINDOW=20       measurement window, s
#   THINK=2,5 TALK=20,40 EARLY=1,4 REDIAL=0.5,1.5   seconds, MIN,MAX (see phone-load)
#   KEY_MS=100            how long a key is held
#   SOCKETS=shared:16     the generator's RTP sockets (shared by all phones)
#   RX_THREADS=2          the generator's receiver threads
#   TX_RT_PRIORITY=0      >0: the generator's sender runs SCHED_FIFO at this
#                         priority (below the server's media clocks, 10)
#   FLOOR_SECS=5          udp-floor seconds per mode; SKIP_FLOOR=1 reuses
#                         results/phone-floor.json
#   SERVER_COUNTERS=1     the server logs each call's RTP counters (JSON log,
#                         `ringback::call` at info) for what it received; 0: off
#   RESULTS=bench/results where the JSON goes (phone-floor.json, phone-N.json)
#   SKIP_BUILD=1          use the existing release binaries
#   QUIET_PCT=25 QUIET_WAIT=120   wait (bounded) for the machine to be quiet
#   CARGO_TARGET_DIR      where the release binaries are (default: <repo>/target)
#
# Everything runs on 127.0.0.1 under `timeout`; only the processes this
# script started are stopped, by PID. Like the other timed benchmarks it
# waits while /tmp/ringback-bench.lock exists and holds
# /tmp/ringback-bench-b.lock while it measures. bench-report then regenerates
# bench/README.md's tables.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
TALKING="${TALKING:-1000 2500}"
MIX="${MIX:-browse:50,listen:20,agent:20,early:10}"
PHONE_RAMP="${PHONE_RAMP:-250}"
PHONE_SETTLE="${PHONE_SETTLE:-8}"
PHONE_WINDOW="${PHONE_WINDOW:-20}"
FLOOR_SECS="${FLOOR_SECS:-5}"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
RINGBACK="$TARGET_DIR/release/ringback"
PHONE_LOAD="$TARGET_DIR/release/phone-load"
UDP_FLOOR="$TARGET_DIR/release/udp_floor"
REPORT="$TARGET_DIR/release/bench-report"
RESULTS="${RESULTS:-$HERE/results}"
mkdir -p "$RESULTS"
# shellcheck source=bench/lock.sh
source "$HERE/lock.sh"
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

# udp-floor sends from 10,000 sockets; the server holds one per call leg.
bench_setup phone "$RINGBACK" "$PHONE_LOAD" "$UDP_FLOOR" "$REPORT"

LABEL="ringback $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
PASSWORD="bench-agent-$RANDOM$RANDOM"

# ---------------------------------------------------------------- the floor
if [[ -z "${SKIP_FLOOR:-}" || ! -s "$RESULTS/phone-floor.json" ]]; then
  echo "=== machine floor: udp-floor (sendto from 10,000 sockets, sendmmsg, per-call receive, 1 ms timer) ==="
  take_lock
  timeout --signal=TERM $(( FLOOR_SECS * 4 + 60 )) "$UDP_FLOOR" --mode all --secs "$FLOOR_SECS" \
    --out "$RESULTS/phone-floor.json"
  drop_lock
fi

# ---------------------------------------------------------------- talking callers
for n in $TALKING; do
  agents="$("$PHONE_LOAD" --callers "$n" --mix "$MIX" --print-agents)"
  echo "=== talking callers: $n ($MIX; $agents agent stand-ins; window ${PHONE_WINDOW}s) ==="
  extra=""
  for ((i = 0; i < agents; i++)); do
    extra+="[agents.pa$i]
password = \"$PASSWORD\"
queues = [\"operator\"]
"
  done
  take_lock
  serve_args="" log_level="warn" log_arg=()
  if [[ "${SERVER_COUNTERS:-1}" != 0 ]]; then
    serve_args="--log-format json" log_level="warn,ringback::call=info"
  fi
  EXTRA_TOML="$extra" SERVE_ARGS="$serve_args" RINGBACK_LOG="$log_level" start_bench_server "phone-$n"
  if [[ "${SERVER_COUNTERS:-1}" != 0 ]]; then log_arg=(--server-log "$SRV_DIR/stderr"); fi
  sleep 1
  limit=$(( n / PHONE_RAMP * 2 + PHONE_SETTLE + PHONE_WINDOW + agents / 100 + 120 ))
  status=0
  timeout --signal=TERM "$limit" "$PHONE_LOAD" --server "$SIP" --api "$API" --pid "$SRV_PID" \
    --callers "$n" --mix "$MIX" --agents "$agents" --agent-password "$PASSWORD" \
    --rate "$PHONE_RAMP" --settle "$PHONE_SETTLE" --window "$PHONE_WINDOW" \
    --think "${THINK:-2,5}" --talk "${TALK:-20,40}" --early "${EARLY:-1,4}" \
    --redial "${REDIAL:-0.5,1.5}" --key-ms "${KEY_MS:-100}" \
    --sockets "${SOCKETS:-shared:16}" --rx-threads "${RX_THREADS:-2}" \
    --tx-rt-priority "${TX_RT_PRIORITY:-0}" \
    --prompts "$REPO/prompts" --floor "$RESULTS/phone-floor.json" "${log_arg[@]}" \
    --label "$LABEL" --out "$RESULTS/phone-$n.json" || status=$?
  stop_pid "$SRV_PID"; SRV_PID=""
  drop_lock
  if [[ $status -ne 0 ]]; then
    echo "phone-load failed for $n callers (exit $status); server log tail:" >&2
    grep -v '"call ended"\|"answered"\|"digit"\|"ringing agent"' "$SRV_DIR/stderr" | tail -20 >&2 || true
    break
  fi
done

if [[ "$RESULTS" -ef "$HERE/results" ]]; then
  "$REPORT" "$RESULTS" "$HERE/README.md"
else
  echo "results in $RESULTS (bench/README.md is regenerated from bench/results only)"
fi
