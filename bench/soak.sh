#!/usr/bin/env bash
# Soak: a long run at half of the measured capacity, sampling the server's
# memory, descriptors and threads, to show they stay flat (no leak per call).
#
#   bench/soak.sh                      # 30 minutes, defaults below
#   SOAK_SECS=600 bench/soak.sh        # shorter
#
# Load, both at once for SOAK_SECS:
#   HELD=1250       prompt-playing calls held (and measured) by ivr-load
#                   (half of the 2,500 calls that stay clean)
#   CHURN_RATE=500  SIPp calls/s of 2-s calls (half of the clean call rate):
#                   ~1,000 calls set up and torn down at any moment, so a leak
#                   per call would show within minutes
#   SAMPLE_SECS=30  sampling interval
# Writes results/soak.json (samples + first/last-5-minute comparison).
# Everything targets 127.0.0.1, is bounded by `timeout`, and only the PIDs
# this script started are stopped.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
RINGBACK="$TARGET_DIR/release/ringback"
IVR_LOAD="$TARGET_DIR/release/ivr-load"
RESULTS="$HERE/results"
SOAK_SECS="${SOAK_SECS:-1800}"
HELD="${HELD:-1250}"
CHURN_RATE="${CHURN_RATE:-500}"
SAMPLE_SECS="${SAMPLE_SECS:-30}"

if [[ -z "${SKIP_BUILD:-}" ]]; then
  (cd "$REPO" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -p ringback -p ringback-bench)
fi
command -v sipp >/dev/null || { echo "sipp missing: apt-get install -y sip-tester" >&2; exit 1; }
ulimit -n "$(ulimit -Hn)"

WORK="$(mktemp -d /tmp/ringback-soak.XXXXXX)"
SRV=""; LOAD=""; CHURN=""
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
trap 'stop "$CHURN"; stop "$LOAD"; stop "$SRV"; rm -rf "$WORK"' EXIT

start_production_server
echo "soak: ringback pid $SRV, $HELD held calls + $CHURN_RATE calls/s churn for ${SOAK_SECS}s"

sample() { # t rss_kib fds threads cpu_ticks active_calls db_bytes
  local t=$1 rss fds thr cpu act db
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$SRV/status" 2>/dev/null || echo 0)
  fds=$(ls "/proc/$SRV/fd" 2>/dev/null | wc -l)
  thr=$(awk '/^Threads/ {print $2}' "/proc/$SRV/status" 2>/dev/null || echo 0)
  cpu=$(awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$SRV/stat" 2>/dev/null || echo 0)
  act=$(curl -s "http://$API/metrics" | sed -n 's/^ringback_calls_active \([0-9]*\)$/\1/p')
  db=$(du -cb "$WORK/data" 2>/dev/null | tail -1 | cut -f1)
  echo "$t $rss $fds $thr $cpu ${act:-0} ${db:-0}"
}
sample 0 > "$WORK/samples.txt"

ramp=$(( HELD / 500 + 1 ))
timeout $(( SOAK_SECS + ramp * 2 + 120 )) "$IVR_LOAD" --server "$SIP" --pid "$SRV" \
  --calls "$HELD" --rate 500 --window "$SOAK_SECS" --settle 3 --number 2000 \
  --sockets per-call --label "soak: held calls" --out "$WORK/held.json" > "$WORK/held.out" 2>&1 &
LOAD=$!
sleep $(( ramp + 3 ))
m=$(( CHURN_RATE * (SOAK_SECS - 10) ))
timeout $(( SOAK_SECS + 120 )) sipp -sf "$HERE/sipp/uac-2s-or-503.xml" -s 2000 \
  -i 127.0.0.1 -mp 17996 -r "$CHURN_RATE" -rp 1000 -m "$m" -l $(( CHURN_RATE * 4 + 100 )) \
  -nostdin -timeout $(( SOAK_SECS + 60 ))s -timeout_error -recv_timeout 8000 \
  -max_recv_loops 10000 -max_sched_loops 10000 \
  -trace_stat -stf "$WORK/churn.csv" -fd 10 "$SIP" > "$WORK/churn.out" 2>&1 &
CHURN=$!
start=$(date +%s)
while kill -0 "$LOAD" 2>/dev/null; do
  sleep "$SAMPLE_SECS"
  s="$(sample $(( $(date +%s) - start )))"
  echo "$s" >> "$WORK/samples.txt"
  echo "  t=${s%% *}s rss/fds/threads/cpu/active/db: ${s#* }"
done
wait "$LOAD" || true; LOAD=""
wait "$CHURN" || true; CHURN=""
sleep 5
sample end >> "$WORK/samples.txt"
read -r ok failed retrans <<<"$(sipp_totals "$WORK/churn.csv")"
stop "$SRV"; SRV=""
tail -3 "$WORK/held.out"
python3 - "$WORK/samples.txt" "$WORK/held.json" "$RESULTS/soak.json" "$SOAK_SECS" "$HELD" "$CHURN_RATE" \
    "${ok:-0}" "${failed:-0}" "${retrans:-0}" <<'PY'
import json, sys
samples_path, held_path, out, secs, held, rate, ok, failed, retrans = sys.argv[1:]
rows = []
for line in open(samples_path):
    t, rss, fds, thr, cpu, act, db = line.split()
    rows.append({"t": t, "rss_kib": int(rss), "fds": int(fds), "threads": int(thr),
                 "cpu_ticks": int(cpu), "active_calls": int(act), "db_bytes": int(db)})
# Samples under full load: after the first, before ivr-load's hang-up phase.
loaded = [r for r in rows if r["t"] not in ("0", "end") and int(r["t"]) <= int(secs) - 5]
def avg(rs, k): return sum(r[k] for r in rs) / max(len(rs), 1)
n = max(1, min(10, len(loaded) // 3))
first, last = loaded[:n], loaded[-n:]
summary = {k: {"first": avg(first, k), "last": avg(last, k)} for k in ("rss_kib", "fds", "threads", "active_calls")}
for k, v in summary.items():
    v["change_pct"] = 100.0 * (v["last"] - v["first"]) / v["first"] if v["first"] else 0.0
res = {"benchmark": "soak", "seconds": int(secs), "held_calls": int(held), "churn_rate_cps": int(rate),
       "churn": {"completed": int(ok), "failed": int(failed), "retransmissions": int(retrans)},
       "first_vs_last": summary, "idle_before": rows[0], "idle_after": rows[-1],
       "samples": rows, "held": json.load(open(held_path))}
json.dump(res, open(out, "w"), indent=2)
for k, v in summary.items():
    print(f"{k}: first {v['first']:.0f} -> last {v['last']:.0f} ({v['change_pct']:+.1f} %)")
print(f"churn: {ok} calls completed, {failed} failed, {retrans} retransmissions")
PY
