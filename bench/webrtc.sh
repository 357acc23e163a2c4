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

if [[ -z "${SKIP_BUILD:-}" ]]; then
  (cd "$REPO" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -p ringback -p ringback-bench)
fi
for b in "$RINGBACK" "$LOAD" "$IVR_LOAD" "$REPORT"; do
  [[ -x "$b" ]] || { echo "missing $b (build first)" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)"

WORK="$(mktemp -d /tmp/ringback-webrtc.XXXXXX)"
SRV_PID=""
HAVE_LOCK=""
stop_pid() { # PID: TERM, wait up to 10 s, then KILL. Only PIDs we started.
  local pid="$1"
  [[ -n "$pid" ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  stop_pid "$SRV_PID"
  [[ -n "$HAVE_LOCK" ]] && rm -f "$LOCK_MINE"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

busy_pct() { # whole-machine busy CPU % over 2 s (100 = one core)
  local a b
  a=($(head -1 /proc/stat)); sleep 2; b=($(head -1 /proc/stat))
  awk -v u1="${a[1]}" -v n1="${a[2]}" -v s1="${a[3]}" -v q1="${a[6]}" -v o1="${a[7]}" \
      -v u2="${b[1]}" -v n2="${b[2]}" -v s2="${b[3]}" -v q2="${b[6]}" -v o2="${b[7]}" \
      -v hz="$(getconf CLK_TCK)" \
      'BEGIN { printf "%d", 100 * ((u2+n2+s2+q2+o2) - (u1+n1+s1+q1+o1)) / hz / 2 }'
}
wait_quiet() {
  local busy
  for _ in $(seq $(( ${QUIET_WAIT:-120} / 2 ))); do
    busy="$(busy_pct)"
    (( busy < ${QUIET_PCT:-25} )) && return 0
    echo "  machine busy (${busy}% CPU by other processes), waiting..."
  done
  echo "  machine still busy; measuring anyway (see other_procs_cpu_pct in the results)"
}

# start_server NAME: a fresh ringback in $WORK/NAME; sets SRV_PID, SIP, API.
start_server() {
  local dir="$WORK/$1"
  mkdir -p "$dir/data"
  sed -e "s#^dir = \"dialplans\"#dir = \"$HERE/dialplans\"#" \
      -e "s#^dir = \"../prompts\"#dir = \"$REPO/prompts\"#" \
      -e "s#^url = \"sqlite://data/bench.db\"#url = \"sqlite://$dir/data/bench.db\"#" \
      "$HERE/ringback-bench.toml" > "$dir/ringback.toml"
  cat >> "$dir/ringback.toml" <<'EOF'

[webrtc]
public_numbers = ["2000"]
calls_per_minute_per_ip = 1000000
EOF
  RINGBACK_LOG="${RINGBACK_LOG:-warn}" "$RINGBACK" --config "$dir/ringback.toml" serve \
    > "$dir/stdout" 2> "$dir/stderr" &
  SRV_PID=$!
  for _ in $(seq 200); do
    [[ -s "$dir/stdout" ]] && break
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.1
  done
  local ready
  ready="$(head -n1 "$dir/stdout" || true)"
  SIP="$(sed -n 's/.*sip=\([0-9.:]*\).*/\1/p' <<<"$ready")"
  API="$(sed -n 's/.*api=\([0-9.:]*\).*/\1/p' <<<"$ready")"
  if [[ -z "$API" ]]; then
    echo "ringback did not start:" >&2
    cat "$dir/stderr" >&2
    exit 1
  fi
  echo "ringback pid $SRV_PID sip=$SIP api=$API"
}

for n in $LEGS; do
  echo "== $n browser legs"
  wait_for_other_lock
  wait_quiet
  touch "$LOCK_MINE"; HAVE_LOCK=1
  start_server "webrtc-$n"
  sleep 1
  limit=$(( n / RATE + WINDOW + SETTLE + 60 ))
  timeout "$limit" "$LOAD" --api "$API" --pid "$SRV_PID" --legs "$n" --rate "$RATE" \
    --setup-threads "$SETUP_THREADS" --window "$WINDOW" --settle "$SETTLE" \
    --label "$(cd "$REPO" && git describe --always --dirty 2>/dev/null || echo unknown)" \
    --out "$RESULTS/webrtc-$n.json" || echo "  webrtc-load exited with $?"
  stop_pid "$SRV_PID"; SRV_PID=""
  if [[ -n "${COMPARE:-}" ]]; then
    echo "== $n SIP callers with SDES-SRTP (ivr-load --srtp), for comparison"
    rm -f "$LOCK_MINE"; HAVE_LOCK=""
    wait_for_other_lock
    wait_quiet
    touch "$LOCK_MINE"; HAVE_LOCK=1
    start_server "srtp-$n"
    sleep 1
    timeout $(( n / 500 + WINDOW + SETTLE + 60 )) "$IVR_LOAD" --server "$SIP" --pid "$SRV_PID" \
      --calls "$n" --window "$WINDOW" --settle "$SETTLE" --srtp \
      --out "$RESULTS/srtp-ivr-$n-cmp.json" || echo "  ivr-load exited with $?"
    stop_pid "$SRV_PID"; SRV_PID=""
  fi
  rm -f "$LOCK_MINE"; HAVE_LOCK=""
done
"$REPORT" "$RESULTS" "$HERE/README.md"
