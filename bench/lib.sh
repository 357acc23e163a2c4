# Shared by the benchmark scripts (sourced, not run). Expects HERE (bench/),
# REPO, RINGBACK and WORK (the run's scratch dir).

# Stop a process this script started, by PID, and reap it.
stop() { [[ -n "$1" ]] && { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }; }

# stop_pid PID: TERM, wait up to 10 s, then KILL. Only PIDs we started.
stop_pid() {
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

# bench_setup NAME BINARY...: build the release binaries (unless SKIP_BUILD),
# check that BINARY... exist, raise the open-files limit, make WORK
# (/tmp/ringback-NAME.XXXXXX) and clean up on exit: stop SRV_PID, drop our
# lock, remove WORK (KEEP_WORK=1 keeps it).
bench_setup() {
  local name="$1" b
  shift
  if [[ -z "${SKIP_BUILD:-}" ]]; then
    (cd "$REPO" && CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}" cargo build --release -p ringback -p ringback-bench)
  fi
  for b in "$@"; do
    [[ -x "$b" ]] || { echo "missing $b (build first)" >&2; exit 1; }
  done
  ulimit -n "$(ulimit -Hn)"
  WORK="$(mktemp -d "/tmp/ringback-$name.XXXXXX")"
  SRV_PID=""
  HAVE_LOCK=""
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

bench_cleanup() {
  stop_pid "$SRV_PID"
  [[ -z "${HAVE_LOCK:-}" ]] || rm -f "$LOCK_MINE"
  if [[ -n "${KEEP_WORK:-}" ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}

# Whole-machine busy CPU % over 2 s (100 = one core).
busy_pct() {
  local a b
  a=($(head -1 /proc/stat)); sleep 2; b=($(head -1 /proc/stat))
  awk -v u1="${a[1]}" -v n1="${a[2]}" -v s1="${a[3]}" -v q1="${a[6]}" -v o1="${a[7]}" \
      -v u2="${b[1]}" -v n2="${b[2]}" -v s2="${b[3]}" -v q2="${b[6]}" -v o2="${b[7]}" \
      -v hz="$(getconf CLK_TCK)" \
      'BEGIN { printf "%d", 100 * ((u2+n2+s2+q2+o2) - (u1+n1+s1+q1+o1)) / hz / 2 }'
}

# Other work on this machine skews every number: wait (at most QUIET_WAIT s)
# until the machine uses less than QUIET_PCT % CPU.
wait_quiet() {
  local busy
  for _ in $(seq $(( ${QUIET_WAIT:-120} / 2 ))); do
    busy="$(busy_pct)"
    (( busy < ${QUIET_PCT:-25} )) && return 0
    echo "  machine busy (${busy}% CPU by other processes), waiting..."
  done
  echo "  machine still busy; measuring anyway (see the other processes' CPU in the results)"
}

# start_bench_server NAME: a fresh `ringback serve` in $WORK/NAME on the
# benchmark config (free SIP and API ports, its own SQLite data directory),
# with $EXTRA_TOML appended to the config and $SERVE_ARGS after `serve`;
# waits for the ready line. Sets SRV_PID, SIP, API and SRV_DIR (stderr is
# $SRV_DIR/stderr).
start_bench_server() {
  SRV_DIR="$WORK/$1"
  mkdir -p "$SRV_DIR/data"
  sed -e "s#^dir = \"dialplans\"#dir = \"$HERE/dialplans\"#" \
      -e "s#^dir = \"../prompts\"#dir = \"$REPO/prompts\"#" \
      -e "s#^url = \"sqlite://data/bench.db\"#url = \"sqlite://$SRV_DIR/data/bench.db\"#" \
      "$HERE/ringback-bench.toml" > "$SRV_DIR/ringback.toml"
  [[ -z "${EXTRA_TOML:-}" ]] || printf '\n%s\n' "$EXTRA_TOML" >> "$SRV_DIR/ringback.toml"
  # shellcheck disable=SC2086  # SERVE_ARGS is a list of words
  RINGBACK_LOG="${RINGBACK_LOG:-warn}" "$RINGBACK" --config "$SRV_DIR/ringback.toml" serve ${SERVE_ARGS:-} \
    > "$SRV_DIR/stdout" 2> "$SRV_DIR/stderr" &
  SRV_PID=$!
  for _ in $(seq 200); do
    [[ -s "$SRV_DIR/stdout" ]] && break
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.1
  done
  local ready
  ready="$(head -n1 "$SRV_DIR/stdout" || true)"
  SIP="$(sed -n 's/.*sip=\([0-9.:]*\).*/\1/p' <<<"$ready")"
  API="$(sed -n 's/.*api=\([0-9.:]*\).*/\1/p' <<<"$ready")"
  if [[ -z "$SIP" || -z "$API" ]]; then
    echo "ringback did not start:" >&2
    tail -20 "$SRV_DIR/stderr" >&2
    exit 1
  fi
  echo "ringback pid $SRV_PID sip=$SIP api=$API ($(sed -n 's/.*startup_ms=\([0-9.]*\).*/\1/p' <<<"$ready") ms start-up)"
}

# Start `ringback serve` on the benchmark config with ringback's default
# admission control (the production settings, not the capacity steps'),
# and wait for its ready line. Sets SRV (PID), SIP and API (addresses).
start_production_server() {
  sed -e "s#^dir = \"dialplans\"#dir = \"$HERE/dialplans\"#" \
      -e "s#^dir = \"../prompts\"#dir = \"$REPO/prompts\"#" \
      -e "s#^url = \"sqlite://data/bench.db\"#url = \"sqlite://$WORK/data/bench.db\"#" \
      -e '/^max_media_lag_ms = 0$/d' -e '/^max_media_load_pct = 0$/d' -e '/^max_sip_delay_ms = 0$/d' \
      "$HERE/ringback-bench.toml" > "$WORK/ringback.toml"
  RINGBACK_LOG=warn "$RINGBACK" --config "$WORK/ringback.toml" serve > "$WORK/stdout" 2> "$WORK/stderr" &
  SRV=$!
  for _ in $(seq 100); do [[ -s "$WORK/stdout" ]] && break; sleep 0.1; done
  SIP="$(sed -n 's/.*sip=\([0-9.:]*\).*/\1/p' "$WORK/stdout")"
  API="$(sed -n 's/.*api=\([0-9.:]*\).*/\1/p' "$WORK/stdout")"
  [[ -n "$SIP" ]] || { cat "$WORK/stderr" >&2; exit 1; }
}

# SIPp's last cumulative "successful failed retransmissions" from a -trace_stat CSV.
sipp_totals() {
  awk -F';' '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    { last = $0 }
    END { split(last, v, ";");
          print v[col["SuccessfulCall(C)"]], v[col["FailedCall(C)"]], v[col["Retransmissions(C)"]] }' "$1"
}
