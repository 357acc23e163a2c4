#!/usr/bin/env bash
# A local ringback cluster on loopback: two ringback nodes (127.0.0.2 and
# 127.0.0.3) behind Kamailio (127.0.0.1), all on one PostgreSQL database.
#
#   deploy/cluster.sh start              # create the database if needed, start all three
#   deploy/cluster.sh status             # what runs, the dispatcher's view of the nodes
#   deploy/cluster.sh add-agent alice s3cret   # an agent password Kamailio checks
#   deploy/cluster.sh drain a|b          # SIGUSR1: the node takes no new calls, exits when idle
#   deploy/cluster.sh upgrade a|b        # drain, wait for the exit, start it again
#   deploy/cluster.sh stop               # stop what `start` started (by PID)
#
# Needs: PostgreSQL reachable at $PG_ADMIN_URL (psql), Debian's kamailio and
# kamailio-postgres-modules, and a built ringback (cargo build --release).
# Callers dial sip:2000@127.0.0.1:$SIP_PORT; agents register there.
#
# Settings (environment):
#   RINGBACK      the ringback binary      (default: target/release/ringback)
#   RUN_DIR       configs, logs, PID files (default: ./cluster-run)
#   PG_ADMIN_URL  where to create the db   (default: postgres://postgres@127.0.0.1:5432/postgres)
#   DB_NAME       the cluster's database   (default: ringback_cluster)
#   SIP_PORT      Kamailio's and the nodes' SIP port (default: 5060)
#   API_PORT      the nodes' HTTP port     (default: 8080)
#   AGENTS        "user:password ..." agents in ringback.toml and Kamailio
#                 (default: "alice:alice-secret bob:bob-secret")
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
RINGBACK="${RINGBACK:-$REPO/target/release/ringback}"
RUN_DIR="${RUN_DIR:-$PWD/cluster-run}"
PG_ADMIN_URL="${PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB_NAME="${DB_NAME:-ringback_cluster}"
SIP_PORT="${SIP_PORT:-5060}"
API_PORT="${API_PORT:-8080}"
AGENTS="${AGENTS:-alice:alice-secret bob:bob-secret}"
PROXY_IP=127.0.0.1
declare -A NODE_IP=([a]=127.0.0.2 [b]=127.0.0.3)
declare -A RTP_MIN=([a]=20000 [b]=22000)

DB_URL="${PG_ADMIN_URL%/*}/$DB_NAME"

die() { echo "cluster.sh: $*" >&2; exit 1; }
pid_of() { cat "$RUN_DIR/$1.pid" 2>/dev/null || true; }
alive() { local p; p="$(pid_of "$1")"; [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

psql_db() { psql -X -q -v ON_ERROR_STOP=1 "$DB_URL" "$@"; }

setup_db() {
    command -v psql >/dev/null || die "psql is needed (apt-get install postgresql-client)"
    if ! psql -X -tA "$PG_ADMIN_URL" -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'" | grep -q 1; then
        echo "==> creating database $DB_NAME"
        psql -X -q "$PG_ADMIN_URL" -c "CREATE DATABASE $DB_NAME"
    fi
    # Kamailio's tables (idempotent); ringback migrates its own at start.
    PGOPTIONS="--client-min-messages=warning" psql_db -f "$REPO/deploy/kamailio/kamailio-tables.sql"
    for a in $AGENTS; do add_agent "${a%%:*}" "${a#*:}"; done
}

add_agent() {
    local user="$1" password="$2"
    psql_db -c "INSERT INTO subscriber (username, domain, password) VALUES ('$user', '', '$password')
                ON CONFLICT (username, domain) DO UPDATE SET password = EXCLUDED.password"
}

node_config() {
    local n="$1" ip="${NODE_IP[$1]}" dir="$RUN_DIR/node-$1"
    mkdir -p "$dir"
    {
        cat <<EOF
operator_queue = "operator"

[sip]
listen = "$ip:$SIP_PORT"

[rtp]
ip = "$ip"
port_min = ${RTP_MIN[$n]}
port_max = $((RTP_MIN[$n] + 1999))

[api]
listen = "$ip:$API_PORT"

[dialplans]
dir = "$REPO/dialplans"
watch = false

[prompts]
dir = "$REPO/prompts"

[database]
url = "$DB_URL"

[callbacks]
node_id = "node-$n"

[cluster]
agent_proxy = "sip:$PROXY_IP:$SIP_PORT"
drain_timeout_secs = 3600
# One queue across nodes: the node holding the ACD lease runs every line.
shared_queues = true
secret = "local-cluster-secret"

[queues.operator]
[queues.billing]
[queues.support]
EOF
        for a in $AGENTS; do
            printf '\n[agents.%s]\nqueues = ["operator", "billing", "support"]\n' "${a%%:*}"
        done
    } >"$dir/ringback.toml"
}

start_node() {
    local n="$1" dir="$RUN_DIR/node-$1"
    alive "node-$n" && { echo "node-$n runs already (PID $(pid_of "node-$n"))"; return; }
    node_config "$n"
    "$RINGBACK" --config "$dir/ringback.toml" serve >"$dir/stdout.log" 2>"$dir/ringback.log" &
    echo $! >"$RUN_DIR/node-$n.pid"
    for _ in $(seq 100); do
        grep -q "ringback ready" "$dir/stdout.log" 2>/dev/null && break
        alive "node-$n" || die "node-$n did not start: see $dir/ringback.log"
        sleep 0.1
    done
    echo "node-$n: $(head -n1 "$dir/stdout.log")"
}

start_kamailio() {
    alive kamailio && { echo "kamailio runs already (PID $(pid_of kamailio))"; return; }
    local k="$RUN_DIR/kamailio"
    mkdir -p "$k"
    : >"$k/nodes.list"
    for n in a b; do echo "1 sip:${NODE_IP[$n]}:$SIP_PORT 8 0 duid=node-$n" >>"$k/nodes.list"; done
    kamailio -DD -E -m 64 -M 8 -f "$REPO/deploy/kamailio/kamailio.cfg" \
        -Y "$k" -P "$k/kamailio.pid" \
        -A "LISTEN=udp:$PROXY_IP:$SIP_PORT" \
        -A "DBURL=\"$DB_URL\"" \
        -A "DSLIST=\"$k/nodes.list\"" \
        -A "CTL_SOCKET=\"unix:$k/ctl.sock\"" \
        -A "DS_PING_INTERVAL=2" -A "CHILDREN=2" \
        >"$k/kamailio.log" 2>&1 &
    echo $! >"$RUN_DIR/kamailio.pid"
    for _ in $(seq 50); do
        [ -S "$k/ctl.sock" ] && break
        alive kamailio || die "kamailio did not start: see $k/kamailio.log"
        sleep 0.1
    done
    echo "kamailio: sip:$PROXY_IP:$SIP_PORT (nodes: $k/nodes.list)"
}

stop_one() {
    local name="$1" p
    p="$(pid_of "$name")"
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
        kill -TERM "$p"
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$p" 2>/dev/null && kill -KILL "$p"
        echo "stopped $name (PID $p)"
    fi
    rm -f "$RUN_DIR/$name.pid"
}

wait_exit() {
    local name="$1" p
    p="$(pid_of "$name")"
    [ -n "$p" ] || return 0
    echo "waiting for $name (PID $p) to finish its calls and exit"
    while kill -0 "$p" 2>/dev/null; do sleep 1; done
    rm -f "$RUN_DIR/$name.pid"
}

check_node() { [[ "${1:-}" =~ ^[ab]$ ]] || die "which node: a or b"; }

cmd="${1:-}"
case "$cmd" in
    start)
        [ -x "$RINGBACK" ] || die "no ringback binary at $RINGBACK (cargo build --release, or set RINGBACK)"
        command -v kamailio >/dev/null || die "kamailio is not installed (apt-get install kamailio kamailio-postgres-modules)"
        mkdir -p "$RUN_DIR"
        setup_db
        start_node a
        start_node b
        start_kamailio
        echo "call sip:2000@$PROXY_IP:$SIP_PORT; agents register at $PROXY_IP:$SIP_PORT"
        ;;
    stop)
        stop_one kamailio
        stop_one node-a
        stop_one node-b
        ;;
    status)
        for p in node-a node-b kamailio; do
            if alive "$p"; then echo "$p: running (PID $(pid_of "$p"))"; else echo "$p: stopped"; fi
        done
        if alive kamailio; then
            kamcmd -s "unix:$RUN_DIR/kamailio/ctl.sock" dispatcher.list | grep -E "URI|FLAGS" || true
        fi
        ;;
    add-agent)
        [ $# -eq 3 ] || die "usage: add-agent USER PASSWORD"
        add_agent "$2" "$3"
        ;;
    drain)
        check_node "${2:-}"
        alive "node-$2" || die "node-$2 is not running"
        kill -USR1 "$(pid_of "node-$2")"
        echo "node-$2 drains: no new calls; it exits when its calls have ended"
        ;;
    upgrade)
        # Zero downtime: the other node takes every new call meanwhile.
        check_node "${2:-}"
        if alive "node-$2"; then
            kill -USR1 "$(pid_of "node-$2")"
            wait_exit "node-$2"
        fi
        start_node "$2"
        ;;
    *)
        sed -n '2,25p' "$0"
        exit 2
        ;;
esac
