# Shared by bench/overload.sh and bench/soak.sh (sourced, not run).
# Expects HERE (bench/), REPO, RINGBACK and WORK (the run's scratch dir).

# Stop a process this script started, by PID, and reap it.
stop() { [[ -n "$1" ]] && { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }; }

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
