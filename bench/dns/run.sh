#!/usr/bin/env bash
# DNS benchmark: flashdns against NSD (and Knot when installed) serving the same generated
# zone, in the same run, with the same CPU pinning and the same dnsperf query mix (existing
# names, NXDOMAIN, wildcard, referral). Prints qps, the flashdns/NSD ratio, p99 latency,
# server CPU use, and the resident memory of flashdns for the zone.
#   bench/dns/run.sh [RECORDS=1000000] [SECONDS=10] [P99_RATE=20000]
# Needs: a built flashdns (scripts/build.sh flashdns), nsd, dnsperf, taskset, python3.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/bench/dns"
BIN="${FLASHDNS_BIN:-$ROOT/build/src/flashdns/flashdns}"
RECORDS="${1:-1000000}"
SECONDS_RUN="${2:-10}"
P99_RATE="${3:-20000}"
NSD="$(command -v nsd || echo /usr/sbin/nsd)"
KNOTD="$(command -v knotd || true)"

for tool in dnsperf taskset python3 dig; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "bench: $BIN not built (scripts/build.sh flashdns)" >&2; exit 1; }

WORK="$(mktemp -d /tmp/flashdns-bench.XXXXXX)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# Servers on CPU 0, the load generator on CPU 1 (both on 0 on a one-CPU machine).
SERVER_CPU=0
CLIENT_CPU=$(( $(nproc) > 1 ? 1 : 0 ))

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_dns() {  # port
  for _ in $(seq 1 600); do
    if dig @127.0.0.1 -p "$1" +short +time=1 +tries=1 h1.bench.test A 2>/dev/null | grep -q '^10\.'; then return 0; fi
    sleep 0.1
  done
  echo "bench: server on port $1 never answered" >&2; return 1
}
cpu_ticks() {  # pids... → utime+stime summed, in clock ticks
  local total=0
  for p in "$@"; do
    # The command name may hold spaces ("nsd: main"): count fields after its ')'.
    [ -r "/proc/$p/stat" ] && total=$(( total + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}') ))
  done
  echo "$total"
}
tree_pids() {  # pid → itself and all descendants
  local out="$1"
  for c in $(pgrep -P "$1" || true); do out="$out $(tree_pids "$c")"; done
  echo "$out"
}
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

echo "== generating a zone of $RECORDS records and the query mix"
python3 "$HERE/gen_zone.py" "$WORK" "$RECORDS" 200000

# --- flashdns ---
FD_PORT=$(free_port)
cat > "$WORK/flashdns.yaml" <<YAML
listen: ["127.0.0.1:$FD_PORT"]
zones: [{name: bench.test., file: $WORK/bench.test.zone}]
api: ""
data_dir: $WORK/flashdns-data
workers: 1
YAML
t0=$(date +%s.%N)
taskset -c "$SERVER_CPU" "$BIN" --config "$WORK/flashdns.yaml" --log-level warn \
  >"$WORK/flashdns.log" 2>&1 &
FD_PID=$!
PIDS+=("$FD_PID")
wait_dns "$FD_PORT"
FD_LOAD=$(python3 -c "print(round($(date +%s.%N) - $t0, 2))")
FD_RSS=$(rss_kb "$FD_PID")

# --- NSD ---
NSD_PORT=$(free_port)
cat > "$WORK/nsd.conf" <<CONF
server:
  ip-address: 127.0.0.1@$NSD_PORT
  port: $NSD_PORT
  username: ""
  chroot: ""
  zonesdir: "$WORK"
  pidfile: "$WORK/nsd.pid"
  database: ""
  zonelistfile: "$WORK/zone.list"
  xfrdfile: "$WORK/xfrd.state"
  xfrdir: "$WORK"
  server-count: 1
  verbosity: 0
  # Response rate limiting would drop most of a single-client benchmark.
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: bench.test.
  zonefile: bench.test.zone
CONF
t0=$(date +%s.%N)
taskset -c "$SERVER_CPU" "$NSD" -d -c "$WORK/nsd.conf" >"$WORK/nsd.log" 2>&1 &
NSD_PID=$!
PIDS+=("$NSD_PID")
wait_dns "$NSD_PORT"
NSD_LOAD=$(python3 -c "print(round($(date +%s.%N) - $t0, 2))")
sleep 1
NSD_RSS=0
for p in $(tree_pids "$NSD_PID"); do NSD_RSS=$(( NSD_RSS + $(rss_kb "$p") )); done

# --- Knot (optional) ---
KNOT_PORT=""
if [ -n "$KNOTD" ]; then
  KNOT_PORT=$(free_port)
  mkdir -p "$WORK/knot"
  cat > "$WORK/knot.conf" <<CONF
server:
  listen: 127.0.0.1@$KNOT_PORT
  rundir: "$WORK/knot"
  udp-workers: 1
  tcp-workers: 1
  background-workers: 1
database:
  storage: "$WORK/knot"
zone:
  - domain: bench.test.
    file: "$WORK/bench.test.zone"
    zonefile-sync: -1
    journal-content: none
CONF
  taskset -c "$SERVER_CPU" "$KNOTD" -c "$WORK/knot.conf" >"$WORK/knot.log" 2>&1 &
  PIDS+=("$!")
  KNOT_PID=$!
  wait_dns "$KNOT_PORT" || KNOT_PORT=""
else
  echo "== knotd not installed: Knot skipped"
fi

# run_one NAME PORT PIDS... → sets QPS, LOST, CPU_PCT, P50, P99
run_one() {
  local name="$1" port="$2"
  shift 2
  taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/queries.txt" -l 2 -q 200 \
    >/dev/null 2>&1 || true  # warm-up
  local before after start end
  before=$(cpu_ticks "$@")
  start=$(date +%s.%N)
  taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/queries.txt" \
    -l "$SECONDS_RUN" -q 200 >"$WORK/$name.perf" 2>&1
  end=$(date +%s.%N)
  after=$(cpu_ticks "$@")
  QPS=$(awk '/Queries per second/ {printf "%.0f", $4}' "$WORK/$name.perf")
  LOST=$(awk '/Queries lost/ {print $3}' "$WORK/$name.perf")
  CPU_PCT=$(python3 -c "print(round(100.0 * ($after - $before) / $(getconf CLK_TCK) / ($end - $start), 1))")
  # Latency percentiles at a fixed, sustainable rate (per-query timings from dnsperf -v).
  taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/queries.txt" -l 5 \
    -Q "$P99_RATE" -v 2>/dev/null | awk '/^> / {print $NF}' >"$WORK/$name.lat"
  read -r P50 P99 < <(python3 - "$WORK/$name.lat" <<'PY'
import sys
v = sorted(float(x) for x in open(sys.argv[1]) if x.strip())
if not v:
    print("nan nan")
else:
    print("%.1f %.1f" % (v[len(v) // 2] * 1e6, v[min(len(v) - 1, int(len(v) * 0.99))] * 1e6))
PY
)
}

echo "== dnsperf: ${SECONDS_RUN}s per server, servers on CPU $SERVER_CPU, dnsperf on CPU $CLIENT_CPU"
run_one flashdns "$FD_PORT" "$FD_PID"
FD_QPS=$QPS; FD_LOST=$LOST; FD_CPU=$CPU_PCT; FD_P50=$P50; FD_P99=$P99
# shellcheck disable=SC2046
NSD_PIDS=$(tree_pids "$NSD_PID")
echo "== NSD processes: $NSD_PIDS"
run_one nsd "$NSD_PORT" $NSD_PIDS
NSD_QPS=$QPS; NSD_LOST=$LOST; NSD_CPU=$CPU_PCT; NSD_P50=$P50; NSD_P99=$P99
if [ -n "$KNOT_PORT" ]; then
  run_one knot "$KNOT_PORT" "$KNOT_PID"
  KNOT_QPS=$QPS; KNOT_LOST=$LOST; KNOT_CPU=$CPU_PCT; KNOT_P50=$P50; KNOT_P99=$P99
fi
# A second flashdns pass: the client side is shared, so alternate to even out drift.
run_one flashdns2 "$FD_PORT" "$FD_PID"
FD_QPS=$(( (FD_QPS + QPS) / 2 ))
FD_CPU=$(python3 -c "print(round(($FD_CPU + $CPU_PCT) / 2, 1))")

per_cpu() { python3 -c "print(int($1 / max($2, 0.1) * 100))"; }
echo
printf "%-10s %10s %8s %10s %12s %10s %10s %12s %8s\n" server qps lost "cpu%" "qps/cpu-s" "p50(us)" "p99(us)" "rss(MiB)" "load(s)"
printf "%-10s %10s %8s %10s %12s %10s %10s %12s %8s\n" flashdns "$FD_QPS" "$FD_LOST" "$FD_CPU" \
  "$(per_cpu "$FD_QPS" "$FD_CPU")" "$FD_P50" "$FD_P99" "$(( FD_RSS / 1024 ))" "$FD_LOAD"
printf "%-10s %10s %8s %10s %12s %10s %10s %12s %8s\n" nsd "$NSD_QPS" "$NSD_LOST" "$NSD_CPU" \
  "$(per_cpu "$NSD_QPS" "$NSD_CPU")" "$NSD_P50" "$NSD_P99" "$(( NSD_RSS / 1024 ))" "$NSD_LOAD"
if [ -n "$KNOT_PORT" ]; then
  printf "%-10s %10s %8s %10s %12s %10s %10s %12s %8s\n" knot "$KNOT_QPS" "$KNOT_LOST" \
    "$KNOT_CPU" "$(per_cpu "$KNOT_QPS" "$KNOT_CPU")" "$KNOT_P50" "$KNOT_P99" "-" "-"
fi
echo
python3 -c "print('ratio flashdns/NSD: qps %.2f, qps per server CPU-second %.2f' % ($FD_QPS / $NSD_QPS, ($FD_QPS / max($FD_CPU, 0.1)) / ($NSD_QPS / max($NSD_CPU, 0.1))))"
echo "flashdns RSS for $RECORDS records: $(( FD_RSS / 1024 )) MiB (NSD, all processes: $(( NSD_RSS / 1024 )) MiB)"
