#!/usr/bin/env bash
# Browser legs per server core: `webrtc-load` plays N fake browsers against
# the public /call flow (token, WebSocket, offer/answer, ICE check, DTLS
# handshake, SRTP both ways, one RFC 4733 key) of a release ringback.
#
#   bench/webrtc.sh                      # 100 and 400 legs, ≈ 40 s each
#   LEGS="100 200 400" WINDOW=30 bench/webrtc.sh
#   COMPARE=1 bench/webrtc.sh            # also `ivr-load --srtp` at each size
#
# Environment (defaults):
#   LEGS="100 400"     browser legs per step (a fresh server per step)
#   RATE=50            set-ups started per second
#   SETUP_THREADS=8    webrtc-load set-up threads
#   WINDOW=20 SETTLE=3 measurement window and wait after the ramp, s
#   COMPARE=""         1: after each step, `ivr-load --srtp --calls N` on a
#                      fresh server (SIP + SDES-SRTP callers that only receive)
#   SKIP_BUILD=1       use the existing release binaries
#   QUIET_PCT=25 QUIET_WAIT=120   wait (bounded) for the machine to be quiet
#   CARGO_TARGET_DIR   where the release binaries are (default: <repo>/target)
#
# The server is bench/ringback-bench.toml (127.0.0.1, free ports, hold-music
# number 2000) plus `[webrtc] public_numbers = ["2000"]` and a per-address
# rate limit no benchmark reaches. Everything runs on 127.0.0.1 under
# `timeout`, and only the processes this script started are stopped, by PID.
# Like callback.sh and dialplan.sh it waits while /tmp/ringback-bench.lock
# exists (another timed benchmark) and holds /tmp/ringback-bench-b.lock
# while it measures.
# Results: bench/results/webrtc-N.json (and srtp-ivr-N-cmp.json with COMPARE);
# bench-report then regenerates the tables of bench/README.md.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
LEGS="${LEGS:-100 400}"
RATE="${RATE:-50}"
SETUP_THREADS="${SETUP_THREADS:-8}"
WINDOW="${WINDOW:-20}"
SETTLE="${SETTLE:-3}"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
RINGBACK="$TARGET_DIR/release/ringback"
LOAD="$TARGET_DIR/release/webrtc-load"
IVR_LOAD="$TARGET_DIR/release/ivr-load"
REPORT="$TARGET_DIR/release/bench-report"
RESULTS="$HERE/results"
mkdir -p "$RESULTS"
# shellcheck source=bench/lock.sh
source "$HERE/lock.sh"
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

bench_setup webrtc "$RINGBACK" "$LOAD" "$IVR_LOAD" "$REPORT"

# The public /call page needs a public number and a rate limit no step reaches.
WEBRTC_TOML='[webrtc]
public_numbers = ["2000"]
calls_per_minute_per_ip = 1000000'

for n in $LEGS; do
  echo "== $n browser legs"
  take_lock
  EXTRA_TOML="$WEBRTC_TOML" start_bench_server "webrtc-$n"
  sleep 1
  limit=$(( n / RATE + WINDOW + SETTLE + 60 ))
  timeout "$limit" "$LOAD" --api "$API" --pid "$SRV_PID" --legs "$n" --rate "$RATE" \
    --setup-threads "$SETUP_THREADS" --window "$WINDOW" --settle "$SETTLE" \
    --label "$(cd "$REPO" && git describe --always --dirty 2>/dev/null || echo unknown)" \
    --out "$RESULTS/webrtc-$n.json" || echo "  webrtc-load exited with $?"
  stop_pid "$SRV_PID"; SRV_PID=""
  if [[ -n "${COMPARE:-}" ]]; then
    echo "== $n SIP callers with SDES-SRTP (ivr-load --srtp), for comparison"
    drop_lock
    take_lock
    start_bench_server "srtp-$n"
    sleep 1
    timeout $(( n / 500 + WINDOW + SETTLE + 60 )) "$IVR_LOAD" --server "$SIP" --pid "$SRV_PID" \
      --calls "$n" --window "$WINDOW" --settle "$SETTLE" --srtp \
      --out "$RESULTS/srtp-ivr-$n-cmp.json" || echo "  ivr-load exited with $?"
    stop_pid "$SRV_PID"; SRV_PID=""
  fi
  drop_lock
done
"$REPORT" "$RESULTS" "$HERE/README.md"
