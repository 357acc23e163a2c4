#!/usr/bin/env bash
# Signalling cost: calls answered and released at once (SIPp, bench/sipp/uac-0s.xml:
# INVITE, 100, 200, ACK, BYE, 200), so nearly all of the server's CPU is SIP.
#
#   bench/signalling.sh                 # RATE=1000 calls/s for SECS=10 s
#   RATE=2000 SECS=10 PERF=1 bench/signalling.sh
#
# Prints and writes bench/results/signalling.json: calls, failures, SIP messages
# the server received and sent (its own counters), server CPU seconds, and
# the figure issue 16 asks for: server CPU µs per SIP message (target <= 25).
# PERF=1 also records a profile into bench/results/profile-signalling.txt
# (PERF_DATA=FILE keeps the raw perf.data for `perf report -i FILE`;
# PERF_CALLGRAPH="--call-graph dwarf,16384" gives whole stacks, since the
# release build has no frame pointers). It also prints the server threads'
# context switches per call, by thread name (each is a thread going to
# sleep and being woken); TOKIO_WORKER_THREADS=N is passed to the server.
# Only 127.0.0.1; bounded in time; stops only the PIDs it started.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
RATE="${RATE:-1000}"
SECS="${SECS:-10}"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
RINGBACK="$TARGET_DIR/release/ringback"
[[ -x "$RINGBACK" ]] || { echo "missing $RINGBACK (cargo build --release -p ringback)" >&2; exit 1; }
command -v sipp >/dev/null || { echo "sipp missing: apt-get install -y sip-tester" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"
WORK="$(mktemp -d /tmp/ringback-signalling.XXXXXX)"
SRV=""
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
trap 'stop "$SRV"; rm -rf "$WORK"' EXIT
start_production_server

# The server's CPU time (utime + stime, in clock ticks) and SIP counters.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SRV/stat"; }
sip_messages() {
  curl -s "http://$API/metrics" |
    awk '/^ringback_sip_(requests|responses)_(in|out)_total / { s += $2 } END { print s + 0 }'
}
# Context switches of the server's threads, summed by thread name: each
# voluntary one is a thread going to sleep and being woken again, the cost
# the profile shows as finish_task_switch.
switches() {
  local t
  for t in /proc/"$SRV"/task/*; do
    printf '%s\t%s\n' "$(cat "$t/comm" 2>/dev/null)" \
      "$(awk '/^voluntary_ctxt_switches|^nonvoluntary_ctxt_switches/ { s += $2 } END { print s + 0 }' "$t/status" 2>/dev/null)"
  done | awk -F'\t' '{ s[$1] += $2 } END { for (k in s) print k "\t" s[k] }' | sort
}
hz=$(getconf CLK_TCK)
switches > "$WORK/switches.0"
m0=$(sip_messages); c0=$(cpu_ticks)
n=$(( RATE * SECS ))
PERF_PID=""
if [[ -n "${PERF:-}" ]]; then
  perf record -F 999 ${PERF_CALLGRAPH:--g} -p "$SRV" -o "$WORK/perf.data" -- sleep "$SECS" 2> /dev/null &
  PERF_PID=$!
fi
status=0
timeout --signal=TERM $(( SECS + 60 )) sipp -sf "$HERE/sipp/uac-0s.xml" -s 2000 \
  -r "$RATE" -m "$n" -l $(( RATE * 4 )) -max_socket 1 -t u1 -bind_local \
  -trace_stat -stf "$WORK/stat.csv" -fd 1 \
  -nostdin -timeout $(( SECS + 45 ))s -timeout_error -recv_timeout 8000 \
  "$SIP" > "$WORK/sipp.out" 2>&1 || status=$?
sleep 1
m1=$(sip_messages); c1=$(cpu_ticks)
switches > "$WORK/switches.1"
# Per call, by thread name (threads that came and went are counted from 0).
per_call_switches=$(join -t$'\t' -a2 -e0 -o '2.1,1.2,2.2' "$WORK/switches.0" "$WORK/switches.1" |
  awk -F'\t' -v n="$n" '{ d = $3 - $2; if (d > 0) printf "%s\"%s\": %.2f", (k++ ? ", " : ""), $1, d / n }')
total_switches=$(join -t$'\t' -a2 -e0 -o '2.1,1.2,2.2' "$WORK/switches.0" "$WORK/switches.1" |
  awk -F'\t' -v n="$n" '{ s += $3 - $2 } END { printf "%.2f", s / n }')
[[ -n "$PERF_PID" ]] && wait "$PERF_PID" 2>/dev/null || true
read -r ok failed retrans < <(sipp_totals "$WORK/stat.csv")
messages=$(( m1 - m0 ))
cpu_s=$(echo "scale=3; ($c1 - $c0) / $hz" | bc)
us_per_msg=$(echo "scale=2; if ($messages > 0) ($c1 - $c0) * 1000000 / $hz / $messages else 0" | bc)
echo "signalling: $RATE calls/s x ${SECS}s: ${ok:-0} ok, ${failed:-0} failed, $retrans retransmissions;" \
     "$messages SIP messages, server CPU ${cpu_s}s = ${us_per_msg} µs per message (target <= 25);" \
     "$total_switches thread switches per call"
echo "  switches per call by thread: $per_call_switches"
cat > "$HERE/results/signalling.json" <<JSON
{
  "scenario": "bench/sipp/uac-0s.xml (INVITE, 200, ACK, BYE at once)",
  "rate_cps": $RATE,
  "seconds": $SECS,
  "calls": $n,
  "successful": ${ok:-0},
  "failed": ${failed:-0},
  "retransmissions": ${retrans:-0},
  "sip_messages": $messages,
  "server_cpu_s": $cpu_s,
  "cpu_us_per_message": $us_per_msg,
  "target_us_per_message": 25,
  "thread_switches_per_call": $total_switches,
  "thread_switches_per_call_by_thread": { $per_call_switches },
  "tokio_worker_threads": "${TOKIO_WORKER_THREADS:-default}",
  "sipp_exit": $status,
  "cores": $(nproc),
  "cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)",
  "date": "$(date -u +%FT%TZ)"
}
JSON
if [[ -n "${PERF:-}" ]]; then
  {
    echo "# perf profile of ringback at $RATE calls/s released at once ($(date -u +%FT%TZ), $(nproc) cores)"
    perf report -i "$WORK/perf.data" --no-children --percent-limit 0.7 --stdio -g none 2> /dev/null | grep -v '^$'
  } > "$HERE/results/profile-signalling.txt"
  echo "profile: bench/results/profile-signalling.txt"
  [[ -n "${PERF_DATA:-}" ]] && cp "$WORK/perf.data" "$PERF_DATA"
fi
