#!/usr/bin/env bash
# TLS handshake rate of ringback's SIP-over-TLS listener, per server core.
#
#   bench/tls.sh            # TLS 1.3 and TLS 1.2, 10 s each
#   SECS=20 bench/tls.sh
#
# A lab CA and an ECDSA P-256 certificate are made with openssl in a scratch
# directory; a release ringback listens for TLS on a free port of
# 127.0.0.1; `openssl s_time -new` opens a new connection (full handshake,
# no resumption) after another for SECS seconds. The server's CPU time comes
# from /proc/PID/stat, so the figure is handshakes per second of server CPU,
# whatever the client (on the same machine) costs. Writes
# bench/results/tls-handshakes.txt. Only the server this script started is
# stopped.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
SECS="${SECS:-10}"
TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
RINGBACK="$TARGET_DIR/release/ringback"
[[ -n "${SKIP_BUILD:-}" ]] || (cd "$REPO" && cargo build --release -p ringback)

WORK="$(mktemp -d /tmp/ringback-tls.XXXXXX)"
SRV_PID=""
cleanup() {
  if [[ -n "$SRV_PID" ]]; then kill -TERM "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

cd "$WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=bench CA" -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj "/CN=localhost" -keyout key.pem -out cert.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.ext
openssl x509 -req -in cert.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
  -extfile san.ext -out cert.pem 2>/dev/null
sed -e "s#^dir = \"dialplans\"#dir = \"$HERE/dialplans\"#" \
    -e "s#^dir = \"../prompts\"#dir = \"$REPO/prompts\"#" \
    "$HERE/ringback-bench.toml" > ringback.toml
# The TLS listener goes into [sip]; the API is opened (no token needed here).
python3 - <<'PY'
import re
p = "ringback.toml"
s = open(p).read()
s = s.replace("[sip]\n", "[sip]\ntls_listen = \"127.0.0.1:0\"\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n", 1)
s = s.replace("[api]\n", "[api]\nopen = true\n", 1)
open(p, "w").write(s)
PY
mkdir -p data
"$RINGBACK" --config ringback.toml serve > ready.txt 2> server.log &
SRV_PID=$!
for _ in $(seq 100); do grep -q "ringback ready" ready.txt 2>/dev/null && break; sleep 0.1; done
TLS="$(grep -o 'tls=[0-9.:]*' ready.txt | cut -d= -f2)"
[[ -n "$TLS" ]] || { echo "no TLS listener:"; cat server.log; exit 1; }

ticks() { awk '{ sub(/.*\) /, ""); print $12 + $13 }' "/proc/$SRV_PID/stat"; }
hz="$(getconf CLK_TCK)"
out="$HERE/results/tls-handshakes.txt"
{
  echo "# ringback TLS handshakes, $(date -u +%F), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "# ECDSA P-256 certificate, full handshakes (openssl s_time -new), ${SECS} s each"
  for v in tls1_3 tls1_2; do
    t0="$(ticks)"
    n="$(openssl s_time -connect "$TLS" -new -time "$SECS" "-$v" 2>/dev/null \
         | awk '/real seconds/ { print $1; exit }')"
    t1="$(ticks)"
    cpu="$(awk -v a="$t0" -v b="$t1" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')"
    rate="$(awk -v n="$n" -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", n / c; else print "n/a" }')"
    echo "$v: $n handshakes in ${SECS} s; server CPU ${cpu} s; ${rate} handshakes per server-core-second"
  done
} | tee "$out"
