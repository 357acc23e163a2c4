#!/usr/bin/env bash
# ringback benchmarks: concurrent IVR calls (ivr-load), call rate (SIPp),
# and talking callers with the machine floor (bench/phone.sh, phone-load).
#
#   bench/run.sh                       # everything, defaults below
#   CALLS="100 1000" bench/run.sh      # fewer IVR steps
#   SKIP_RATE=1 bench/run.sh           # IVR only;  SKIP_IVR=1: call rate only
#   SKIP_IVR=1 SKIP_RATE=1 bench/run.sh   # the floor and talking callers only
#   SKIP_PHONE=1 bench/run.sh          # without talking callers
#
# Environment (defaults):
#   CALLS="100 1000 2500 5000 10000"  concurrent calls per IVR step
#   RAMP=500            IVR ramp-up (and hang-up) rate, calls/s
#   WINDOW=20           IVR measurement window, s
#   SETTLE=3            wait after the ramp before measuring, s
#   RX_THREADS=2        ivr-load receiver threads
#   SUFFIX=""           appended to the IVR result file names (ivr-N$SUFFIX.json)
#   SRTP=1              IVR callers offer SRTP (SDES, AES_CM_128_HMAC_SHA1_80):
#                       the server seals every packet; compare with plain runs
#   SOCKETS=auto        ivr-load RTP sockets: per-call | shared:K | auto
#                       (auto: one per call up to 2500 calls, shared:16 above,
#                       where per-call receiving would cost the generator
#                       ~3.5 µs/packet, i.e. most of a core at 250k packets/s)
#   RATES="250 500 750 1000 1500 2000 2500 3000"   SIPp call-rate steps, calls/s
#   RATE_SECS=5         seconds of new calls per call-rate step (2 s calls)
#   TALKING="1000 2500" talking-caller levels for bench/phone.sh (its other
#                       knobs — MIX, PHONE_WINDOW, … — are listed there)
#   SKIP_BUILD=1        use the existing release binaries
#   QUIET_PCT=25 QUIET_WAIT=120   before each step wait up to QUIET_WAIT s for
#                       other processes to use less than QUIET_PCT % CPU
#   CARGO_TARGET_DIR    where the release binaries are (default: <repo>/target)
#
# Everything runs on 127.0.0.1, every step has a time limit, and only the
# processes this script started are stopped (by PID). Results go to
# bench/results/*.json, and bench/README.md's table is regenerated.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
CALLS="${CALLS:-100 1000 2500 5000 10000}"
RAMP="${RAMP:-500}"
WINDOW="${WINDOW:-20}"
SETTLE="${SETTLE:-3}"
RX_THREADS="${RX_THREADS:-2}"
SOCKETS="${SOCKETS:-auto}"
RATES="${RATES:-250 500 750 1000 1500 2000 2500 3000}"
RATE_SECS="${RATE_SECS:-5}"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
RINGBACK="$TARGET_DIR/release/ringback"
IVR_LOAD="$TARGET_DIR/release/ivr-load"
REPORT="$TARGET_DIR/release/bench-report"
RESULTS="$HERE/results"
mkdir -p "$RESULTS"

if [[ -z "${SKIP_BUILD:-}" ]]; then
  (cd "$REPO" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -p ringback -p ringback-bench)
fi
for b in "$RINGBACK" "$IVR_LOAD" "$REPORT"; do
  [[ -x "$b" ]] || { echo "missing $b (build first)" >&2; exit 1; }
done

# 10,000 calls need ~10,000 descriptors in the server and in ivr-load.
ulimit -n "$(ulimit -Hn)"

WORK="$(mktemp -d /tmp/ringback-bench.XXXXXX)"
SRV_PID=""
OTHER_PIDS=()
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

cleanup() {
  stop_pid "$SRV_PID"
  for p in "${OTHER_PIDS[@]}"; do stop_pid "$p"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { # an even UDP port nobody uses (for SIPp's media socket)
  python3 - <<'PY' 2>/dev/null || echo $((40000 + (RANDOM % 10000) * 2 % 10000))
import socket
for _ in range(100):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    if p % 2 == 0:
        print(p); break
PY
}

cpu_ticks() { # utime+stime of a PID, in clock ticks
  awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# ---------------------------------------------------------------- IVR calls
if [[ -z "${SKIP_IVR:-}" ]]; then
  for n in $CALLS; do
    echo "=== IVR: $n concurrent calls (ramp $RAMP/s, window ${WINDOW}s) ==="
    wait_quiet
    start_bench_server "ivr-$n"
    limit=$(( n / RAMP * 2 + WINDOW + SETTLE + 90 ))
    sockets="$SOCKETS"
    if [[ "$sockets" == auto ]]; then
      if (( n <= 2500 )); then sockets=per-call; else sockets=shared:16; fi
    fi
    status=0
    timeout --signal=TERM "$limit" "$IVR_LOAD" --server "$SIP" --pid "$SRV_PID" \
      --calls "$n" --rate "$RAMP" --window "$WINDOW" --settle "$SETTLE" \
      --rx-threads "$RX_THREADS" --sockets "$sockets" --number 2000 ${SRTP:+--srtp} \
      --label "ringback $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
      --out "$RESULTS/ivr-$n${SUFFIX:-}.json" || status=$?
    stop_pid "$SRV_PID"; SRV_PID=""
    if [[ $status -ne 0 ]]; then
      echo "ivr-load failed for $n calls (exit $status); stopping the IVR series" >&2
      break
    fi
  done
fi

# ---------------------------------------------------------------- call rate
if [[ -z "${SKIP_RATE:-}" ]]; then
  command -v sipp >/dev/null || { echo "sipp missing: apt-get install -y sip-tester" >&2; exit 1; }
  steps=()
  best=0
  for r in $RATES; do
    echo "=== call rate: $r calls/s for ${RATE_SECS}s (2 s calls) ==="
    wait_quiet
    start_bench_server "rate-$r"
    d="$WORK/rate-$r"
    m=$(( r * RATE_SECS ))
    t0=$(cpu_ticks "$SRV_PID"); s0=$(date +%s.%N)
    status=0
    timeout --signal=TERM $(( RATE_SECS + 60 )) sipp -sf "$HERE/sipp/uac-2s.xml" -s 2000 \
      -i 127.0.0.1 -mp "$(free_port)" -r "$r" -rp 1000 -m "$m" -l $(( r * 4 + 100 )) \
      -nostdin -timeout $(( RATE_SECS + 45 ))s -timeout_error -recv_timeout 8000 \
      -max_recv_loops 10000 -max_sched_loops 10000 \
      -trace_stat -stf "$d/stat.csv" -fd 1 -trace_err -error_file "$d/errors.log" \
      "$SIP" > "$d/sipp.out" 2>&1 || status=$?
    s1=$(date +%s.%N); t1=$(cpu_ticks "$SRV_PID")
    stop_pid "$SRV_PID"; SRV_PID=""
    if [[ ! -s "$d/stat.csv" ]]; then
      echo "SIPp wrote no statistics (exit $status):" >&2; tail -20 "$d/sipp.out" >&2; break
    fi
    read -r ok failed retrans <<<"$(awk -F';' '
      NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
      { last = $0 }
      END { split(last, v, ";");
            print v[col["SuccessfulCall(C)"]], v[col["FailedCall(C)"]],
                  v[col["Retransmissions(C)"]] }' "$d/stat.csv")"
    hz=$(getconf CLK_TCK)
    cpu=$(awk -v a="$t0" -v b="$t1" -v x="$s0" -v y="$s1" -v hz="$hz" \
      'BEGIN { printf "%.1f", 100 * (b - a) / hz / (y - x) }')
    echo "rate $r: $ok ok, $failed failed, $retrans retransmissions, server CPU $cpu% (sipp exit $status)"
    steps+=("{\"rate_cps\": $r, \"calls\": $m, \"successful\": ${ok:-0}, \"failed\": ${failed:-0}, \"retransmissions\": ${retrans:-0}, \"server_cpu_pct\": $cpu, \"sipp_exit\": $status}")
    if [[ "${failed:-1}" != "0" || "${retrans:-1}" != "0" || "${ok:-0}" != "$m" ]]; then
      break
    fi
    best=$r
  done
  {
    echo "{"
    echo "  \"benchmark\": \"call-rate\","
    echo "  \"scenario\": \"bench/sipp/uac-2s.xml (INVITE, 200, ACK, 2 s of hold music, BYE)\","
    echo "  \"seconds_per_step\": $RATE_SECS,"
    echo "  \"timestamp_unix\": $(date +%s),"
    echo "  \"best_clean_rate_cps\": $best,"
    echo "  \"steps\": ["
    for i in "${!steps[@]}"; do
      sep=","; [[ $i -eq $(( ${#steps[@]} - 1 )) ]] && sep=""
      echo "    ${steps[$i]}$sep"
    done
    echo "  ]"
    echo "}"
  } > "$RESULTS/callrate.json"
  echo "highest rate with 0 failures and 0 retransmissions: $best calls/s"
fi

# ---------------------------------------------------------------- talking callers
if [[ -z "${SKIP_PHONE:-}" ]]; then
  echo "=== talking callers and the machine floor (bench/phone.sh) ==="
  SKIP_BUILD=1 "$HERE/phone.sh" || echo "bench/phone.sh failed (exit $?)" >&2
fi

"$REPORT" "$RESULTS" "$HERE/README.md"
