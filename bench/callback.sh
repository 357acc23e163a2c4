#!/usr/bin/env bash
# Callback dispatch latency (issue 7): 10,000 pending callbacks in the store;
# time from an agent becoming available to the INVITE arriving at that
# agent's phone, on SQLite and on PostgreSQL.
#
#   bench/callback.sh                     # both stores, defaults below
#   STORES=sqlite bench/callback.sh       # one store
#
# Environment (defaults):
#   STORES="sqlite postgres"
#   CALLBACKS=10000     pending callbacks in the queue
#   SAMPLES=300         measured samples (after WARMUP=10 unmeasured ones)
#   GAP_MS=50           pause between samples: GAP_MS..2*GAP_MS
#   PG_URL=postgres://postgres@127.0.0.1:5432   server (trust auth); a fresh
#                       database ringback_bench_<pid> is created via the
#                       `test` database and dropped at the end
#   RINGBACK_LOG=info   the server's log level (info is the default level)
#   SKIP_BUILD=1        use the existing release binaries
#   KEEP_WORK=1         keep the scratch directory (configs, server logs)
#   CARGO_TARGET_DIR    where the release binaries are (default: <repo>/target)
#   EXTRA_TOML          appended to the server's config (e.g. a [callbacks] table)
#
# Every address is 127.0.0.1; every step runs under `timeout`; only the
# processes this script started are stopped (by PID). Results:
# bench/results/callback-<store>.json; bench/README.md's tables are
# regenerated.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
STORES="${STORES:-sqlite postgres}"
CALLBACKS="${CALLBACKS:-10000}"
SAMPLES="${SAMPLES:-300}"
WARMUP="${WARMUP:-10}"
GAP_MS="${GAP_MS:-50}"
PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432}"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
RINGBACK="$TARGET_DIR/release/ringback"
DISPATCH="$TARGET_DIR/release/callback-dispatch"
REPORT="$TARGET_DIR/release/bench-report"
RESULTS="$HERE/results"
mkdir -p "$RESULTS"
# shellcheck source=bench/lock.sh
source "$HERE/lock.sh"
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"

wait_for_other_lock
if [[ -z "${SKIP_BUILD:-}" ]]; then
  (cd "$REPO" && CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release -p ringback -p ringback-bench)
fi
for b in "$RINGBACK" "$DISPATCH" "$REPORT"; do
  [[ -x "$b" ]] || { echo "missing $b (build first)" >&2; exit 1; }
done

WORK="$(mktemp -d /tmp/ringback-callback-bench.XXXXXX)"
SRV_PID=""
PG_DB=""
HAVE_LOCK=""

psql_admin() { psql "$PG_URL/test" -v ON_ERROR_STOP=1 -qAt "$@"; }

drop_pg() {
  [[ -n "$PG_DB" ]] || return 0
  psql_admin -c "DROP DATABASE IF EXISTS $PG_DB" || true
  PG_DB=""
}

cleanup() {
  stop_pid "$SRV_PID"
  drop_pg
  [[ -n "$HAVE_LOCK" ]] && rm -f "$LOCK_MINE"
  if [[ -n "${KEEP_WORK:-}" ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { # a UDP+TCP port nobody uses on 127.0.0.1
  python3 - <<'PY'
import socket
for _ in range(100):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
    p = u.getsockname()[1]
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        t.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
PY
}

ADMIN_TOKEN="bench-admin-$RANDOM$RANDOM"
AGENT_TOKEN="bench-agent-alice-$RANDOM$RANDOM"
AGENT_PASSWORD="bench-secret-$RANDOM"

# write_config DIR DB_URL SIP API TRUNK
write_config() {
  cat > "$1/ringback.toml" <<EOF
# callback dispatch benchmark (written by bench/callback.sh)
operator_queue = "operator"

[sip]
listen = "127.0.0.1:$3"

[rtp]
ip = "127.0.0.1"
port_min = 12000
port_max = 13999

[api]
listen = "127.0.0.1:$4"

[[api.tokens]]
token = "$ADMIN_TOKEN"
role = "admin"

[[api.tokens]]
token = "$AGENT_TOKEN"
role = "agent"
agent = "alice"

[dialplans]
dir = "$REPO/dialplans"

[prompts]
dir = "$REPO/prompts"

[database]
url = "$2"

[trunk]
address = "127.0.0.1:$5"
caller_id = "+15550100"

[agents.alice]
password = "$AGENT_PASSWORD"
display_name = "Alice (benchmark)"
queues = ["operator"]

[queues.operator]
display_name = "Operator"

# Raised so that 10,000 web requests are accepted; everything else is the
# default policy.
[queues.operator.callback]
max_pending = 20000
max_per_hour = 20000

[queues.billing]
display_name = "Billing"

[queues.support]
display_name = "Technical support"
EOF
  [[ -z "${EXTRA_TOML:-}" ]] || printf '%s\n' "$EXTRA_TOML" >> "$1/ringback.toml"
}

for store in $STORES; do
  echo "=== callback dispatch: $store, $CALLBACKS pending callbacks, $SAMPLES samples ==="
  dir="$WORK/$store"
  mkdir -p "$dir/data"
  case "$store" in
    sqlite) url="sqlite://$dir/data/ringback.db" ;;
    postgres)
      command -v psql >/dev/null || { echo "psql missing: apt-get install -y postgresql-client" >&2; exit 1; }
      PG_DB="ringback_bench_$$"
      psql_admin -c "DROP DATABASE IF EXISTS $PG_DB" -c "CREATE DATABASE $PG_DB"
      url="$PG_URL/$PG_DB"
      ;;
    *) echo "unknown store $store" >&2; exit 2 ;;
  esac
  sip=$(free_port); api=$(free_port); trunk=$(free_port)
  write_config "$dir" "$url" "$sip" "$api" "$trunk"

  wait_for_other_lock
  touch "$LOCK_MINE"; HAVE_LOCK=1
  RINGBACK_LOG="${RINGBACK_LOG:-info}" "$RINGBACK" --config "$dir/ringback.toml" serve \
    > "$dir/stdout" 2> "$dir/server.log" &
  SRV_PID=$!
  for _ in $(seq 300); do
    [[ -s "$dir/stdout" ]] && break
    kill -0 "$SRV_PID" 2>/dev/null || break
    sleep 0.1
  done
  if ! grep -q "ringback ready" "$dir/stdout"; then
    echo "ringback did not start:" >&2; tail -20 "$dir/server.log" >&2; exit 1
  fi
  echo "ringback pid $SRV_PID sip=127.0.0.1:$sip api=127.0.0.1:$api ($store)"
  status=0
  timeout --signal=TERM 1800 "$DISPATCH" --sip "127.0.0.1:$sip" --api "127.0.0.1:$api" \
    --admin-token "$ADMIN_TOKEN" --agent alice --password "$AGENT_PASSWORD" \
    --agent-token "$AGENT_TOKEN" --queue operator --callbacks "$CALLBACKS" \
    --samples "$SAMPLES" --warmup "$WARMUP" --gap-ms "$GAP_MS" --trunk-port "$trunk" \
    --pid "$SRV_PID" --store "$store" \
    --label "ringback $(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)" \
    --out "$RESULTS/callback-$store.json" || status=$?
  stop_pid "$SRV_PID"; SRV_PID=""
  rm -f "$LOCK_MINE"; HAVE_LOCK=""
  if [[ "$store" == postgres ]]; then drop_pg; fi
  if [[ $status -ne 0 ]]; then
    echo "callback-dispatch failed on $store (exit $status); server log tail:" >&2
    tail -20 "$dir/server.log" >&2
    exit 1
  fi
done

"$REPORT" "$RESULTS" "$HERE/README.md"
