#!/usr/bin/env bash
# DNS benchmark: flashdns against NSD (and Knot when installed) serving the same generated
# zone, in the same run, with the same CPU pinning and the same dnsperf query mix (existing
# names, NXDOMAIN, wildcard, referral). Prints qps, the flashdns/NSD ratio, p99 latency,
# server CPU use, and the resident memory of flashdns for the zone.
#   [ROUNDS=3] bench/dns/run.sh [RECORDS=1000000] [SECONDS=10] [P99_RATE=20000]
# Needs: a built flashdns (scripts/build.sh flashdns), nsd, dnsperf, taskset, python3; and
# for the light-client rounds dns_blast (scripts/build.sh dns_blast).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/bench/dns"
BIN="${FLASHDNS_BIN:-$ROOT/build/src/flashdns/flashdns}"
RECORDS="${1:-1000000}"
SECONDS_RUN="${2:-10}"
P99_RATE="${3:-20000}"
ROUNDS="${ROUNDS:-3}"
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

# throughput NAME PORT PIDS... → QPS, LOST, CPU_PCT (server CPU use during the run)
throughput() {
  local name="$1" port="$2"
  shift 2
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
}

# latency NAME PORT → P50, P99 in µs, at a fixed sustainable rate (dnsperf -v timings)
latency() {
  taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$2" -d "$WORK/queries.txt" -l 5 \
    -Q "$P99_RATE" -v 2>/dev/null | awk '/^> / {print $NF}' >"$WORK/$1.lat"
  read -r P50 P99 < <(python3 - "$WORK/$1.lat" <<'PY'
import sys
v = sorted(float(x) for x in open(sys.argv[1]) if x.strip())
if not v:
    print("nan nan")
else:
    print("%.1f %.1f" % (v[len(v) // 2] * 1e6, v[min(len(v) - 1, int(len(v) * 0.99))] * 1e6))
PY
)
}

median() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }

NSD_PIDS=$(tree_pids "$NSD_PID")
SERVERS="flashdns nsd"
[ -n "$KNOT_PORT" ] && SERVERS="$SERVERS knot"
declare -A PORT_OF=([flashdns]=$FD_PORT [nsd]=$NSD_PORT [knot]=${KNOT_PORT:-0})
declare -A PIDS_OF=([flashdns]=$FD_PID [nsd]="$NSD_PIDS" [knot]=${KNOT_PID:-0})
declare -A QPS_RUNS CPU_RUNS LOST_SUM
echo "== dnsperf: $ROUNDS rounds of ${SECONDS_RUN}s per server, alternating; servers on CPU $SERVER_CPU, dnsperf on CPU $CLIENT_CPU"
for s in $SERVERS; do  # warm-up
  taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "${PORT_OF[$s]}" -d "$WORK/queries.txt" -l 2 \
    -q 200 >/dev/null 2>&1 || true
done
for round in $(seq 1 "$ROUNDS"); do
  for s in $SERVERS; do
    # shellcheck disable=SC2086
    throughput "$s" "${PORT_OF[$s]}" ${PIDS_OF[$s]}
    echo "   round $round $s: $QPS qps, server CPU $CPU_PCT%, lost $LOST"
    QPS_RUNS[$s]="${QPS_RUNS[$s]:-} $QPS"
    CPU_RUNS[$s]="${CPU_RUNS[$s]:-} $CPU_PCT"
    LOST_SUM[$s]=$(( ${LOST_SUM[$s]:-0} + LOST ))
  done
done
# The same rounds with dns_blast, a load generator far lighter than dnsperf: on a small
# machine dnsperf saturates its own CPU first, this shows the servers' own ceilings.
BLAST="${DNS_BLAST:-$ROOT/build/bench/dns/dns_blast}"
declare -A BLAST_RUNS BLAST_CPU_RUNS
if [ -x "$BLAST" ]; then
  echo "== dns_blast: $ROUNDS rounds of ${SECONDS_RUN}s per server, 256 outstanding"
  for round in $(seq 1 "$ROUNDS"); do
    for s in $SERVERS; do
      # shellcheck disable=SC2086
      before=$(cpu_ticks ${PIDS_OF[$s]})
      t0=$(date +%s.%N)
      q=$(taskset -c "$CLIENT_CPU" "$BLAST" "${PORT_OF[$s]}" "$WORK/queries.txt" "$SECONDS_RUN" 256 |
        awk '{print $2}')
      t1=$(date +%s.%N)
      # shellcheck disable=SC2086
      after=$(cpu_ticks ${PIDS_OF[$s]})
      cpu=$(python3 -c "print(round(100.0 * ($after - $before) / $(getconf CLK_TCK) / ($t1 - $t0), 1))")
      echo "   round $round $s: $q qps, server CPU $cpu%"
      BLAST_RUNS[$s]="${BLAST_RUNS[$s]:-} $q"
      BLAST_CPU_RUNS[$s]="${BLAST_CPU_RUNS[$s]:-} $cpu"
    done
  done
else
  echo "== dns_blast not built (scripts/build.sh dns_blast): light-client rounds skipped"
fi

declare -A QPS_MED CPU_MED P50_OF P99_OF
for s in $SERVERS; do
  # shellcheck disable=SC2086
  QPS_MED[$s]=$(median ${QPS_RUNS[$s]} | cut -d. -f1)
  # shellcheck disable=SC2086
  CPU_MED[$s]=$(median ${CPU_RUNS[$s]})
  latency "$s" "${PORT_OF[$s]}"
  P50_OF[$s]=$P50
  P99_OF[$s]=$P99
done
FD_QPS=${QPS_MED[flashdns]}; FD_CPU=${CPU_MED[flashdns]}
NSD_QPS=${QPS_MED[nsd]}; NSD_CPU=${CPU_MED[nsd]}

per_cpu() { python3 -c "print(int($1 / max($2, 0.1) * 100))"; }

echo
printf "%-10s %10s %8s %8s %12s %9s %9s %9s %8s\n" server "qps(med)" lost "cpu%" "qps/cpu-s" "p50(us)" "p99(us)" "rss(MiB)" "load(s)"
for s in $SERVERS; do
  case $s in
    flashdns) rss=$(( FD_RSS / 1024 )); load=$FD_LOAD ;;
    nsd) rss=$(( NSD_RSS / 1024 )); load=$NSD_LOAD ;;
    *) rss="-"; load="-" ;;
  esac
  printf "%-10s %10s %8s %8s %12s %9s %9s %9s %8s\n" "$s" "${QPS_MED[$s]}" "${LOST_SUM[$s]}" \
    "${CPU_MED[$s]}" "$(per_cpu "${QPS_MED[$s]}" "${CPU_MED[$s]}")" "${P50_OF[$s]}" \
    "${P99_OF[$s]}" "$rss" "$load"
done
echo
python3 -c "print('ratio flashdns/NSD: qps %.2f, qps per server CPU-second %.2f' % ($FD_QPS / $NSD_QPS, ($FD_QPS / max($FD_CPU, 0.1)) / ($NSD_QPS / max($NSD_CPU, 0.1))))"
if [ -x "$BLAST" ]; then
  # shellcheck disable=SC2086
  B_FD=$(median ${BLAST_RUNS[flashdns]} | cut -d. -f1)
  # shellcheck disable=SC2086
  B_NSD=$(median ${BLAST_RUNS[nsd]} | cut -d. -f1)
  # shellcheck disable=SC2086
  BC_FD=$(median ${BLAST_CPU_RUNS[flashdns]})
  # shellcheck disable=SC2086
  BC_NSD=$(median ${BLAST_CPU_RUNS[nsd]})
  echo "dns_blast medians: flashdns $B_FD qps (CPU $BC_FD%), NSD $B_NSD qps (CPU $BC_NSD%)"
  python3 -c "print('ratio flashdns/NSD with dns_blast: qps %.2f, qps per server CPU-second %.2f' % ($B_FD / $B_NSD, ($B_FD / max($BC_FD, 0.1)) / ($B_NSD / max($BC_NSD, 0.1))))"
fi
echo "flashdns RSS for $RECORDS records: $(( FD_RSS / 1024 )) MiB (NSD, all processes: $(( NSD_RSS / 1024 )) MiB)"
