#!/bin/bash
# What one agent connection's TLS handshake costs on photon-server's mutual-TLS listener.
#
#   bench/auth/tls_handshake.sh [BUILD_DIR] [SECONDS]
#
# Starts photon-server with the built-in CA (--tls on, loopback, a temporary data dir), joins
# an agent the way photon-agent does (a P-256 key made here, a CSR posted to /v1/join with the
# join token) and then times, with openssl s_time (one connection after another, each a GET of
# /healthz):
#   full        new handshakes with the agent's client certificate (what every agent request
#               costs: photon-agent opens a connection per call)
#   resumed     the same asking to resume the session (-reuse); the server turns resumption
#               off on this listener so that every connection shows its certificate anew, so
#               this is a full handshake too (the figure shows it)
#   no-cert     new handshakes without a client certificate (a CLI or user with a token)
# Prints connections/s and ms per connection (wall clock) for each, and the load average.
set -euo pipefail
BUILD=${1:-build}
SECS=${2:-10}
SERVER="$BUILD/src/server/photon-server"
[ -x "$SERVER" ] || { echo "no $SERVER (build photon-server)" >&2; exit 1; }
WORK=$(mktemp -d /tmp/photon-tlsbench-XXXXXX)
PID=""
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
"$SERVER" --data-dir "$WORK/server" --listen "127.0.0.1:$PORT" \
  --grpc-listen "127.0.0.1:$(free_port)" --tls on >"$WORK/server.log" 2>&1 &
PID=$!
CA="$WORK/server/tls/ca.crt"
for _ in $(seq 1 200); do
  curl -sf --cacert "$CA" "https://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=node:bench \
  -keyout "$WORK/node.key" -out "$WORK/node.csr" 2>/dev/null
chmod 600 "$WORK/node.key"
python3 - "$WORK" "$PORT" "$CA" <<'EOF'
import json, ssl, sys, urllib.request
work, port, ca = sys.argv[1:]
token = open(work + "/server/join.token").read().strip()
body = json.dumps({"node": "bench", "csr": open(work + "/node.csr").read()}).encode()
req = urllib.request.Request(f"https://127.0.0.1:{port}/v1/join", data=body, method="POST",
                             headers={"Authorization": "Bearer " + token,
                                      "Content-Type": "application/json"})
answer = json.load(urllib.request.urlopen(req, context=ssl.create_default_context(cafile=ca)))
open(work + "/node.crt", "w").write(answer["certificate"])
EOF

run() {  # label, s_time flags...
  local label=$1
  shift
  local out n real
  out=$(openssl s_time -connect "127.0.0.1:$PORT" -CAfile "$CA" -www /healthz -time "$SECS" "$@" 2>&1)
  n=$(echo "$out" | awk '/connections in .* real seconds/ {print $1}' | tail -1)
  real=$(echo "$out" | awk '/connections in .* real seconds/ {print $4}' | tail -1)
  if [ -z "$n" ] || [ -z "$real" ]; then
    echo "$label: openssl s_time gave no figure:"
    echo "$out" | tail -5
    return 1
  fi
  python3 -c "n,r=$n,$real; print(f'$label: {n} connections in {r} s: {n/r:.0f}/s, {1000*r/n:.2f} ms each')"
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
run "full (agent certificate)" -new -cert "$WORK/node.crt" -key "$WORK/node.key"
run "resumed asked (agent certificate)" -reuse -cert "$WORK/node.crt" -key "$WORK/node.key"
run "full (no certificate)" -new
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
