#!/usr/bin/env bash
# fiberlb L7 benchmark: wrk (keep-alive, a 3-byte response) against two nginx members
#   1. direct to one nginx,
#   2. through a plain HAProxy 2.6 with a hand-written configuration (roundrobin, HTTP checks,
#      X-Forwarded-For, httplog to a file: what an operator would write),
#   3. through fiberlb (the same HAProxy, configured and supervised by fiberlb).
# Prints req/s and p99 latency of each, the median of ROUNDS rounds in which the three take
# turns, and the ratio fiberlb / plain HAProxy (target ≥ 0.95: fiberlb adds nothing to the
# data path), and each round's own ratio (the two run back to back). Proxies and members share
# CPU 0, wrk runs on CPU 1.
#   [ROUNDS=3] bench/lb/l7_run.sh [SECONDS=10] [CONNECTIONS=64]
# Needs: a built fiberlb (scripts/build.sh fiberlb), haproxy, nginx, wrk, taskset, curl.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BIN="${FIBERLB_BIN:-$ROOT/build/src/fiberlb/fiberlb}"
SECONDS_RUN="${1:-10}"
CONNS="${2:-64}"
ROUNDS="${ROUNDS:-3}"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
HAPROXY="$(command -v haproxy || echo /usr/sbin/haproxy)"
for tool in wrk taskset curl python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done
for bin in "$NGINX" "$HAPROXY" "$BIN"; do
  [ -x "$bin" ] || { echo "bench: $bin is missing (scripts/install-deps.sh, scripts/build.sh fiberlb)" >&2; exit 1; }
done

WORK="$(mktemp -d /tmp/fiberlb-bench.XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
SERVER_CPU=0
CLIENT_CPU=$(( $(nproc) > 1 ? 1 : 0 ))
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() {  # url
  for _ in $(seq 1 300); do
    if curl -sf -o /dev/null --max-time 1 "$1"; then return 0; fi
    sleep 0.05
  done
  echo "bench: $1 never answered" >&2; return 1
}

start_nginx() {  # name port
  local dir="$WORK/$1"
  mkdir -p "$dir"
  cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir; proxy_temp_path $dir; fastcgi_temp_path $dir;
  uwsgi_temp_path $dir; scgi_temp_path $dir;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$2; location / { return 200 "ok\n"; } }
}
CONF
  taskset -c "$SERVER_CPU" "$NGINX" -c "$dir/nginx.conf" -p "$dir" >/dev/null 2>&1 &
  PIDS+=($!)
}

M1=$(free_port); M2=$(free_port); HAP_PORT=$(free_port); LB_PORT=$(free_port); API_PORT=$(free_port)
start_nginx m1 "$M1"
start_nginx m2 "$M2"

# Plain HAProxy: the hand-written configuration.
mkdir -p "$WORK/haproxy"
cat >"$WORK/haproxy/haproxy.cfg" <<CONF
global
  log stdout format raw local0 info
defaults
  log global
  timeout connect 3s
  timeout client 60s
  timeout server 60s
frontend web
  bind 127.0.0.1:$HAP_PORT
  mode http
  option httplog
  option forwardfor
  default_backend web
backend web
  mode http
  balance roundrobin
  option httpchk GET /
  http-check expect status 200
  server m1 127.0.0.1:$M1 check inter 2000 rise 2 fall 3
  server m2 127.0.0.1:$M2 check inter 2000 rise 2 fall 3
CONF
taskset -c "$SERVER_CPU" "$HAPROXY" -W -f "$WORK/haproxy/haproxy.cfg" >"$WORK/haproxy/access.log" 2>&1 &
PIDS+=($!)

cat >"$WORK/fiberlb.yaml" <<CONF
api: 127.0.0.1:$API_PORT
data_dir: $WORK/fiberlb
listeners:
  - {name: web, protocol: http, address: "127.0.0.1:$LB_PORT", pool: web}
pools:
  - name: web
    health_check: {type: http, path: /, interval_ms: 2000, rise: 2, fall: 3}
    members:
      - {address: "127.0.0.1:$M1"}
      - {address: "127.0.0.1:$M2"}
CONF
# fiberlb's HAProxy inherits the CPU pinning.
taskset -c "$SERVER_CPU" "$BIN" --config "$WORK/fiberlb.yaml" --log-level warn >"$WORK/fiberlb.log" 2>&1 &
PIDS+=($!)

wait_http "http://127.0.0.1:$M1/"
wait_http "http://127.0.0.1:$M2/"
wait_http "http://127.0.0.1:$HAP_PORT/"
wait_http "http://127.0.0.1:$LB_PORT/"

# wrk's report → "req/s p99_ms errors"
run_wrk() {  # url
  taskset -c "$CLIENT_CPU" wrk -t2 -c"$CONNS" -d"${SECONDS_RUN}s" --latency "$1" | python3 -c '
import re, sys
t = sys.stdin.read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
v, unit = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", t).groups()
p99 = float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
bad = 0
m = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
if m: bad += int(m.group(1))
m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", t)
if m: bad += sum(int(x) for x in m.groups())
print("%.0f %.3f %d" % (rps, p99, bad))'
}

declare -A RPS P99
RATIO=""
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  for target in direct haproxy fiberlb; do
    case $target in
      direct) url="http://127.0.0.1:$M1/" ;;
      haproxy) url="http://127.0.0.1:$HAP_PORT/" ;;
      fiberlb) url="http://127.0.0.1:$LB_PORT/" ;;
    esac
    read -r rps p99 bad < <(run_wrk "$url")
    printf '  %-8s %9s req/s  p99 %8s ms  errors %s\n' "$target" "$rps" "$p99" "$bad"
    RPS[$target]+="$rps "
    P99[$target]+="$p99 "
    case $target in haproxy) h_round=$rps ;; fiberlb) f_round=$rps ;; esac
  done
  # The ratio of this round: both ran back to back under the same load.
  ratio=$(python3 -c "print('%.3f' % ($f_round / $h_round))")
  echo "  fiberlb / plain HAProxy in this round: $ratio"
  RATIO+="$ratio "
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "median of $ROUNDS rounds, wrk -t2 -c$CONNS -d${SECONDS_RUN}s, 2 nginx members:"
for target in direct haproxy fiberlb; do
  printf '  %-8s %9s req/s  p99 %8s ms\n' "$target" "$(echo "${RPS[$target]}" | median)" \
    "$(echo "${P99[$target]}" | median)"
done
H=$(echo "${RPS[haproxy]}" | median)
F=$(echo "${RPS[fiberlb]}" | median)
RM=$(echo "$RATIO" | median)
python3 -c "print('fiberlb / plain HAProxy req/s: %.3f of the medians, $RM the median of the rounds\' own ratios (target >= 0.95)' % ($F / $H))"
