#!/usr/bin/env bash
# DNS benchmark: flashdns against NSD (and Knot when installed) serving the same generated
# zone, in the same run, with the same CPU pinning and the same dnsperf query mix (existing
# names, NXDOMAIN, wildcard, referral). Prints qps, p50/p99 latency at a fixed rate and at
# saturation, server CPU use and resident memory for the zone of each server, and the
# flashdns/NSD and flashdns/Knot ratios. Every figure is the median of ROUNDS rounds in which
# the servers take turns, and each round prints the load average: the p99 at a fixed rate is
# mostly scheduling delay on a shared machine, so a single run says little.
#   [ROUNDS=3] bench/dns/run.sh [RECORDS=1000000] [SECONDS=10] [P99_RATE=20000]
# Needs: a built flashdns (scripts/build.sh flashdns), nsd, dnsperf, taskset, python3; and
# for the light-client rounds dns_blast (scripts/build.sh dns_blast); knotd (package knot) for
# the Knot column.
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
KNOT_RSS=0
KNOT_LOAD=-
if [ -n "$KNOTD" ]; then
  KNOT_PORT=$(free_port)
  t0=$(date +%s.%N)
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
  KNOT_PID=$!
  PIDS+=("$KNOT_PID")
  if wait_dns "$KNOT_PORT"; then
    KNOT_LOAD=$(python3 -c "print(round($(date +%s.%N) - $t0, 2))")
    KNOT_RSS=$(rss_kb "$KNOT_PID")
  else
    echo "== Knot did not answer (see its log below): Knot skipped" >&2
    tail -5 "$WORK/knot.log" >&2
    KNOT_PORT=""
  fi
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

# latency NAME PORT → P50, P99 in µs and LAT_LOST, at a fixed sustainable rate (dnsperf -v
# timings). A query without an answer within 1 s counts as slower than every answer: a server
# that drops queries while it is descheduled (a small socket buffer) must not look faster than
# one that queues and answers them.
latency() {
  taskset -c "$CLIENT_CPU" dnsperf -s 127.0.0.1 -p "$2" -d "$WORK/queries.txt" -l 5 -t 1 \
    -Q "$P99_RATE" -v >"$WORK/$1.lat" 2>/dev/null || true
  read -r P50 P99 LAT_LOST < <(python3 - "$WORK/$1.lat" <<'PY'
import math, sys
v, sent = [], 0
for line in open(sys.argv[1]):
    f = line.split()
    if line.startswith("> ") and len(f) >= 3 and f[1] != "T":
        try:
            v.append(float(f[-1]))
        except ValueError:
            pass
    elif line.strip().startswith("Queries sent:"):
        sent = int(f[2])
sent = max(sent, len(v))
v.sort()
v += [math.inf] * (sent - len(v))
pct = lambda p: v[min(len(v) - 1, int(len(v) * p))] * 1e6 if v else math.nan
print("%.1f %.1f %d" % (pct(0.5), pct(0.99), sent - len([x for x in v if x != math.inf])))
PY
)
}

median() { python3 -c "import statistics,sys; print(round(statistics.median(float(x) for x in sys.argv[1:]), 1))" "$@"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

NSD_PIDS=$(tree_pids "$NSD_PID")
SERVERS="flashdns nsd"
[ -n "$KNOT_PORT" ] && SERVERS="$SERVERS knot"
declare -A PORT_OF=([flashdns]=$FD_PORT [nsd]=$NSD_PORT [knot]=${KNOT_PORT:-0})
declare -A PIDS_OF=([flashdns]=$FD_PID [nsd]="$NSD_PIDS" [knot]=${KNOT_PID:-0})
declare -A QPS_RUNS CPU_RUNS LOST_SUM P50_RUNS P99_RUNS
echo "== dnsperf: $ROUNDS rounds of ${SECONDS_RUN}s per server, alternating, then 5s each at $P99_RATE qps for latency; servers on CPU $SERVER_CPU, dnsperf on CPU $CLIENT_CPU; load average $(loadavg)"
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
  for s in $SERVERS; do
    latency "$s" "${PORT_OF[$s]}"
    echo "   round $round $s at $P99_RATE qps: p50 ${P50}us p99 ${P99}us, unanswered $LAT_LOST"
    P50_RUNS[$s]="${P50_RUNS[$s]:-} $P50"
    P99_RUNS[$s]="${P99_RUNS[$s]:-} $P99"
  done
  echo "   round $round load average: $(loadavg)"
done
# The same rounds with dns_blast, a load generator far lighter than dnsperf: on a small
# machine dnsperf saturates its own CPU first, this shows the servers' own ceilings.
BLAST="${DNS_BLAST:-$ROOT/build/bench/dns/dns_blast}"
declare -A BLAST_RUNS BLAST_CPU_RUNS BLAST_P99_RUNS
if [ -x "$BLAST" ]; then
  echo "== dns_blast: $ROUNDS rounds of ${SECONDS_RUN}s per server, 256 outstanding; load average $(loadavg)"
  for round in $(seq 1 "$ROUNDS"); do
    for s in $SERVERS; do
      # shellcheck disable=SC2086
      before=$(cpu_ticks ${PIDS_OF[$s]})
      t0=$(date +%s.%N)
      read -r q sat_p99 < <(taskset -c "$CLIENT_CPU" "$BLAST" "${PORT_OF[$s]}" "$WORK/queries.txt" \
        "$SECONDS_RUN" 256 | awk '{print $2, $10}' || true)
      t1=$(date +%s.%N)
      # shellcheck disable=SC2086
      after=$(cpu_ticks ${PIDS_OF[$s]})
      cpu=$(python3 -c "print(round(100.0 * ($after - $before) / $(getconf CLK_TCK) / ($t1 - $t0), 1))")
      echo "   round $round $s: $q qps, server CPU $cpu%, p99 at saturation ${sat_p99}us"
      BLAST_RUNS[$s]="${BLAST_RUNS[$s]:-} $q"
      BLAST_P99_RUNS[$s]="${BLAST_P99_RUNS[$s]:-} $sat_p99"
      BLAST_CPU_RUNS[$s]="${BLAST_CPU_RUNS[$s]:-} $cpu"
    done
    echo "   round $round load average: $(loadavg)"
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
  # shellcheck disable=SC2086
  P50_OF[$s]=$(median ${P50_RUNS[$s]})
  # shellcheck disable=SC2086
  P99_OF[$s]=$(median ${P99_RUNS[$s]})
done

per_cpu() { python3 -c "print(int($1 / max($2, 0.1) * 100))"; }

echo
printf "%-10s %10s %8s %8s %12s %9s %9s %9s %8s\n" server "qps(med)" lost "cpu%" "qps/cpu-s" "p50(us)" "p99(us)" "rss(MiB)" "load(s)"
for s in $SERVERS; do
  case $s in
    flashdns) rss=$(( FD_RSS / 1024 )); load=$FD_LOAD ;;
    nsd) rss=$(( NSD_RSS / 1024 )); load=$NSD_LOAD ;;
    knot) rss=$(( KNOT_RSS / 1024 )); load=$KNOT_LOAD ;;
    *) rss="-"; load="-" ;;
  esac
  printf "%-10s %10s %8s %8s %12s %9s %9s %9s %8s\n" "$s" "${QPS_MED[$s]}" "${LOST_SUM[$s]}" \
    "${CPU_MED[$s]}" "$(per_cpu "${QPS_MED[$s]}" "${CPU_MED[$s]}")" "${P50_OF[$s]}" \
    "${P99_OF[$s]}" "$rss" "$load"
done
echo
# ratio PEER → flashdns/PEER for qps, qps per server CPU-second, and p99 (below 1 is better
# for p99).
ratio() {
  local peer="$1" label="$2"
  python3 - "${QPS_MED[flashdns]}" "${CPU_MED[flashdns]}" "${P99_OF[flashdns]}" \
    "${QPS_MED[$peer]}" "${CPU_MED[$peer]}" "${P99_OF[$peer]}" "$label" <<'PY'
import sys
fq, fc, fp, pq, pc, pp = (float(x) for x in sys.argv[1:7])
print("ratio flashdns/%s: qps %.2f, qps per server CPU-second %.2f, p99 at fixed rate %.2f"
      % (sys.argv[7], fq / pq, (fq / max(fc, 0.1)) / (pq / max(pc, 0.1)), fp / pp))
PY
}
ratio nsd NSD
[ -n "$KNOT_PORT" ] && ratio knot Knot
if [ -x "$BLAST" ]; then
  declare -A B_MED BC_MED BP_MED
  line="dns_blast medians:"
  for s in $SERVERS; do
    # shellcheck disable=SC2086
    B_MED[$s]=$(median ${BLAST_RUNS[$s]} | cut -d. -f1)
    # shellcheck disable=SC2086
    BC_MED[$s]=$(median ${BLAST_CPU_RUNS[$s]})
    # shellcheck disable=SC2086
    BP_MED[$s]=$(median ${BLAST_P99_RUNS[$s]})
    line="$line $s ${B_MED[$s]} qps (CPU ${BC_MED[$s]}%, p99 at saturation ${BP_MED[$s]}us);"
  done
  echo "${line%;}"
  for peer in $SERVERS; do
    [ "$peer" = flashdns ] && continue
    label=NSD
    [ "$peer" = knot ] && label=Knot
    python3 -c "print('ratio flashdns/$label with dns_blast: qps %.2f, qps per server CPU-second %.2f, p99 at saturation %.2f' % (${B_MED[flashdns]} / ${B_MED[$peer]}, (${B_MED[flashdns]} / max(${BC_MED[flashdns]}, 0.1)) / (${B_MED[$peer]} / max(${BC_MED[$peer]}, 0.1)), ${BP_MED[flashdns]} / ${BP_MED[$peer]}))"
  done
fi
rss_line="RSS for $RECORDS records: flashdns $(( FD_RSS / 1024 )) MiB, NSD (all processes) $(( NSD_RSS / 1024 )) MiB"
[ -n "$KNOT_PORT" ] && rss_line="$rss_line, Knot $(( KNOT_RSS / 1024 )) MiB"
echo "$rss_line"
echo "load average at the end: $(loadavg)"
