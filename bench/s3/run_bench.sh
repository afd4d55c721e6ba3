#!/usr/bin/env bash
# lightningstor benchmark: large-object throughput against the raw disk (dd), small-object
# PUT/GET rates against nginx serving the same files, and memory plus ListObjectsV2 time with
# 1,000,000 objects in one bucket. Prints medians and ratios. Not part of ctest.
#   bench/s3/run_bench.sh            (after scripts/build.sh lightningstor s3_load)
# Env: BENCH_DIR (default: a temp dir under /var/tmp, same disk as the data), ROUNDS (5),
#      SECONDS_PER_RUN (10), MILLION (1000000), CLIENTS (16), ONLY (unset; "large" runs only
#      the 64 MiB PUT/GET against dd, for quick iterations).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${PHOTON_BUILD_DIR:-$ROOT/build}"
BIN="${LIGHTNINGSTOR_BIN:-$BUILD/src/lightningstor/lightningstor}"
LOAD="$BUILD/bench/s3/s3_load"
ROUNDS="${ROUNDS:-5}"
SECS="${SECONDS_PER_RUN:-10}"
MILLION="${MILLION:-1000000}"
CLIENTS="${CLIENTS:-16}"
ONLY="${ONLY:-}"
SIZE_LARGE=$((64 << 20))
WORK="${BENCH_DIR:-$(mktemp -d /var/tmp/lightningstor-bench.XXXXXX)}"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
[ -x "$BIN" ] && [ -x "$LOAD" ] || { echo "build first: scripts/build.sh lightningstor s3_load" >&2; exit 1; }

drop_caches() {
  sync
  if [ -w /proc/sys/vm/drop_caches ]; then echo 3 > /proc/sys/vm/drop_caches; fi
}
can_drop() { [ -w /proc/sys/vm/drop_caches ] && echo yes || echo "no (reads may hit the page cache)"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }

start_daemon() {  # $1 = data dir, $2 = an extra config line (optional)
  local dir="$1"
  mkdir -p "$dir"
  cat > "$WORK/config.yaml" <<CFG
listen: 127.0.0.1:0
data_dir: $dir
region: us-east-1
port_file: $WORK/port
log_level: warn
${2:-}
CFG
  rm -f "$WORK/port"
  "$BIN" --config "$WORK/config.yaml" keys create bench > "$WORK/key" 2>/dev/null
  "$BIN" --config "$WORK/config.yaml" > "$WORK/daemon.log" 2>&1 &
  DAEMON=$!
  PIDS+=("$DAEMON")
  for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.05; done
  PORT=$(cat "$WORK/port")
  export AWS_ACCESS_KEY_ID=$(awk '/access_key_id/{print $2}' "$WORK/key")
  export AWS_SECRET_ACCESS_KEY=$(awk '/secret_access_key/{print $2}' "$WORK/key")
}
stop_daemon() { kill "$DAEMON"; wait "$DAEMON" 2>/dev/null || true; }
# The daemon's CPU time (user + system, ms) spent on one s3_load call: $1 = figures file, $2 =
# CPU file, the rest s3_load's arguments. Unlike MB/s it hardly moves with the machine's load.
daemon_ms() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) * 1000 / hz}' "/proc/$DAEMON/stat"; }
timed() {
  local out="$1" cpu="$2" t0
  shift 2
  t0=$(daemon_ms)
  "$LOAD" "$@" >> "$out"
  awk -v a="$t0" -v b="$(daemon_ms)" 'BEGIN { print b - a }' >> "$cpu"
}
rss_mib() { awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$1/status"; }

# nginx (nginx-light) serving directory $1 on a free loopback port, checked by fetching the file
# $2: sets NGINX_PORT and NGINX.
start_nginx() {
  local root="$1" probe="$2"
  mkdir -p "$WORK/nginx"
  chmod 755 "$WORK" "$root"  # nginx workers drop root and must reach the files
  NGINX_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$WORK/nginx/nginx.conf" <<NGX
worker_processes 2;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  scgi_temp_path $WORK/nginx/scgi;
  server { listen 127.0.0.1:$NGINX_PORT; root $root; }
}
NGX
  nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" &
  NGINX=$!
  PIDS+=("$NGINX")
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$NGINX_PORT/$probe" && break; sleep 0.05; done
  curl -sf -o /dev/null "http://127.0.0.1:$NGINX_PORT/$probe" || { echo "nginx did not serve:" >&2; cat "$WORK/nginx/error.log" >&2; exit 1; }
}
stop_nginx() { kill "$NGINX"; wait "$NGINX" 2>/dev/null || true; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== lightningstor benchmark ($(nproc) cores, data in $WORK, drop caches: $(can_drop))"

# ---- raw disk, same filesystem --------------------------------------------------------------
for i in $(seq "$ROUNDS"); do
  dd if=/dev/zero of="$WORK/dd.bin" bs=1M count=64 conv=fsync 2>&1 | awk '/copied/{print $(NF-1), $NF}' |
    awk '{v=$1; if ($2=="GB/s") v*=1000; if ($2=="kB/s") v/=1000; print v}' >> "$WORK/dd_write"
  drop_caches
  dd if="$WORK/dd.bin" of=/dev/null bs=1M 2>&1 | awk '/copied/{print $(NF-1), $NF}' |
    awk '{v=$1; if ($2=="GB/s") v*=1000; if ($2=="kB/s") v/=1000; print v}' >> "$WORK/dd_read"
  rm -f "$WORK/dd.bin"
done
DD_W=$(median < "$WORK/dd_write"); DD_R=$(median < "$WORK/dd_read")
# The other bound of a single PUT: its ETag is the body's MD5, one core's MD5 rate on 1 MiB blocks.
MD5_MBPS=$(openssl speed -evp md5 -bytes 1048576 -seconds 3 2>/dev/null |
  awk '/^md5/{v=$NF; sub(/k$/, "", v); printf "%.1f", v / 1000}')
PUT_BOUND=$(awk -v a="$DD_W" -v b="$MD5_MBPS" 'BEGIN { print (a < b ? a : b) }')
# openssl speed divides by CPU time; on a shared machine one thread gets less than a core, so
# the same MD5 by wall-clock time (-elapsed) is printed beside it: what one thread hashed here.
MD5_WALL=$(openssl speed -elapsed -evp md5 -bytes 1048576 -seconds 3 2>/dev/null |
  awk '/^md5/{v=$NF; sub(/k$/, "", v); printf "%.1f", v / 1000}')

# ---- lightningstor: large objects ------------------------------------------------------------
start_daemon "$WORK/data"
python3 - "$PORT" <<'PY'
import os, sys, boto3
boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1").create_bucket(Bucket="bench")
PY
# Plain and SSE-S3 (format 2) PUTs and GETs interleaved, so a change of load hits both alike.
for i in $(seq "$ROUNDS"); do
  timed "$WORK/put_large.txt" "$WORK/cpu_put_plain" put-large --port "$PORT" --size "$SIZE_LARGE" --count 1
  timed "$WORK/put_sse.txt" "$WORK/cpu_put_sse" put-large --port "$PORT" --size "$SIZE_LARGE" --count 1 --sse AES256
done
# The same object as `aws s3 cp` uploads it (8 MiB parts, several at a time).
"$LOAD" put-multipart --port "$PORT" --size "$SIZE_LARGE" --count "$ROUNDS" --clients 4 > "$WORK/put_mp.txt"
for i in $(seq "$ROUNDS"); do
  drop_caches
  timed "$WORK/get_large.txt" "$WORK/cpu_get_plain" get-large --port "$PORT" --size "$SIZE_LARGE" --count 1
  drop_caches
  timed "$WORK/get_sse.txt" "$WORK/cpu_get_sse" get-large --port "$PORT" --size "$SIZE_LARGE" --count 1 --sse AES256
done
# nginx serving one 64 MiB file over loopback, caches dropped before each GET as above.
mkdir -p "$WORK/www-large"
head -c "$SIZE_LARGE" /dev/urandom > "$WORK/www-large/large.bin"
start_nginx "$WORK/www-large" large.bin
for i in $(seq "$ROUNDS"); do
  drop_caches
  curl -sf -o /dev/null -w '%{speed_download}\n' "http://127.0.0.1:$NGINX_PORT/large.bin" |
    awk '{printf "%.1f\n", $1 / 1e6}' >> "$WORK/nginx_large.txt"
done
stop_nginx
# SSE-S3 as stored before format 2 (AES-256-CTR, no integrity; `sse_write_format: ctr-legacy`)
# in a second daemon, with plain PUTs and GETs of that daemon beside it: what format 2 costs
# over format 1 in the same run.
stop_daemon
start_daemon "$WORK/data-ctr" "sse_write_format: ctr-legacy"
python3 - "$PORT" <<'PY'
import os, sys, boto3
boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1").create_bucket(Bucket="bench")
PY
for i in $(seq "$ROUNDS"); do
  timed "$WORK/put_plain2.txt" "$WORK/cpu_put_plain2" put-large --port "$PORT" --size "$SIZE_LARGE" --count 1
  timed "$WORK/put_ctr.txt" "$WORK/cpu_put_ctr" put-large --port "$PORT" --size "$SIZE_LARGE" --count 1 --sse AES256
done
for i in $(seq "$ROUNDS"); do
  drop_caches
  timed "$WORK/get_plain2.txt" "$WORK/cpu_get_plain2" get-large --port "$PORT" --size "$SIZE_LARGE" --count 1
  drop_caches
  timed "$WORK/get_ctr.txt" "$WORK/cpu_get_ctr" get-large --port "$PORT" --size "$SIZE_LARGE" --count 1 --sse AES256
done
stop_daemon
rm -rf "$WORK/data-ctr"
start_daemon "$WORK/data"
PUT_L=$(field mbps < "$WORK/put_large.txt" | median); PUT_MP=$(field mbps < "$WORK/put_mp.txt" | median); GET_L=$(field mbps < "$WORK/get_large.txt" | median)
PUT_SSE=$(field mbps < "$WORK/put_sse.txt" | median); GET_SSE=$(field mbps < "$WORK/get_sse.txt" | median)
NGINX_L=$(median < "$WORK/nginx_large.txt")
PUT_P2=$(field mbps < "$WORK/put_plain2.txt" | median); PUT_CTR=$(field mbps < "$WORK/put_ctr.txt" | median)
GET_P2=$(field mbps < "$WORK/get_plain2.txt" | median); GET_CTR=$(field mbps < "$WORK/get_ctr.txt" | median)
# Mean over the rounds: the kernel counts CPU time in 10 ms ticks, too coarse for one PUT.
cpu() { awk '{s += $1} END {printf "%.1f", s / NR}' "$WORK/cpu_$1"; }
print_large() {
  echo "64 MiB PUT   lightningstor $PUT_L MB/s   bound min(dd conv=fsync $DD_W, openssl md5 1 MiB $MD5_MBPS) = $PUT_BOUND MB/s   ratio $(ratio "$PUT_L" "$PUT_BOUND")   (ETag checked = body MD5)"
  echo "             openssl md5 1 MiB by wall-clock time in the same run: $MD5_WALL MB/s   ratio $(ratio "$PUT_L" "$MD5_WALL")"
  echo "64 MiB PUT as multipart (8 MiB parts, 4 at a time, as aws s3 cp)   $PUT_MP MB/s   ratio $(ratio "$PUT_MP" "$DD_W")"
  echo "64 MiB GET   lightningstor $GET_L MB/s   raw disk (dd read, cold) $DD_R MB/s   ratio $(ratio "$GET_L" "$DD_R")"
  echo "64 MiB GET   lightningstor $GET_L MB/s   nginx same size over loopback (cold) $NGINX_L MB/s   ratio $(ratio "$GET_L" "$NGINX_L")"
  echo "SSE-S3       PUT $PUT_SSE MB/s ($(ratio "$PUT_SSE" "$PUT_L") of plain)   GET $GET_SSE MB/s ($(ratio "$GET_SSE" "$GET_L") of plain)"
  echo "SSE-S3 format 1 (CTR, before)   PUT $PUT_CTR MB/s ($(ratio "$PUT_CTR" "$PUT_P2") of plain $PUT_P2)   GET $GET_CTR MB/s ($(ratio "$GET_CTR" "$GET_P2") of plain $GET_P2)   (second daemon, interleaved with its plain runs)"
  echo "   format 2 / format 1: PUT $(ratio "$PUT_SSE" "$PUT_CTR")   GET $(ratio "$GET_SSE" "$GET_CTR")"
  echo "Daemon CPU ms per 64 MiB (mean of the rounds): PUT plain $(cpu put_plain), SSE-S3 $(cpu put_sse) ($(ratio "$(cpu put_sse)" "$(cpu put_plain)") of plain); GET plain $(cpu get_plain), SSE-S3 $(cpu get_sse) ($(ratio "$(cpu get_sse)" "$(cpu get_plain)"))"
  echo "   format 1 daemon: PUT plain $(cpu put_plain2), CTR $(cpu put_ctr) ($(ratio "$(cpu put_ctr)" "$(cpu put_plain2)")); GET plain $(cpu get_plain2), CTR $(cpu get_ctr) ($(ratio "$(cpu get_ctr)" "$(cpu get_plain2)"))"
  echo "   PUT runs: $(field mbps < "$WORK/put_large.txt" | tr '\n' ' ')  dd write runs: $(tr '\n' ' ' < "$WORK/dd_write")"
  echo "   multipart PUT runs: $(field mbps < "$WORK/put_mp.txt" | tr '\n' ' ')"
  echo "   GET runs: $(field mbps < "$WORK/get_large.txt" | tr '\n' ' ')  dd read runs: $(tr '\n' ' ' < "$WORK/dd_read")  nginx runs: $(tr '\n' ' ' < "$WORK/nginx_large.txt")"
  echo "   SSE PUT runs: $(field mbps < "$WORK/put_sse.txt" | tr '\n' ' ')  SSE GET runs: $(field mbps < "$WORK/get_sse.txt" | tr '\n' ' ')"
  echo "   format 1 daemon: plain PUT runs: $(field mbps < "$WORK/put_plain2.txt" | tr '\n' ' ')  CTR PUT runs: $(field mbps < "$WORK/put_ctr.txt" | tr '\n' ' ')"
  echo "                    plain GET runs: $(field mbps < "$WORK/get_plain2.txt" | tr '\n' ' ')  CTR GET runs: $(field mbps < "$WORK/get_ctr.txt" | tr '\n' ' ')"
  echo "   load average at start: $LOAD_START   now: $(cut -d' ' -f1-3 /proc/loadavg)"
}
if [ "$ONLY" = large ]; then
  stop_daemon
  echo
  print_large
  exit 0
fi

# ---- small objects ---------------------------------------------------------------------------
# nginx serves the same 1000 4 KiB files beside the daemon, and the GET rounds alternate
# between the two: a neighbour's burst or a change of load then hits both alike.
mkdir -p "$WORK/www"
head -c 4096 /dev/urandom > "$WORK/www/0"
for i in $(seq 1 999); do cp "$WORK/www/0" "$WORK/www/$i"; done
start_nginx "$WORK/www" 0
"$LOAD" prep-small --port "$PORT" --size 4096 --count 1000 --clients "$CLIENTS" >/dev/null
for i in $(seq 3); do
  "$LOAD" put-small --port "$PORT" --size 4096 --clients "$CLIENTS" --seconds "$SECS" >> "$WORK/put_small.txt"
done
for i in $(seq "$ROUNDS"); do
  "$LOAD" get-small --port "$PORT" --size 4096 --count 1000 --clients "$CLIENTS" --seconds "$SECS" >> "$WORK/get_small.txt"
  "$LOAD" get-plain --port "$NGINX_PORT" --size 4096 --count 1000 --clients "$CLIENTS" --seconds "$SECS" >> "$WORK/nginx_get.txt"
done
PUT_S=$(field rate < "$WORK/put_small.txt" | median); GET_S=$(field rate < "$WORK/get_small.txt" | median)
NGINX_S=$(field rate < "$WORK/nginx_get.txt" | median)
RSS_SMALL=$(rss_mib "$DAEMON")
stop_nginx
stop_daemon

# ---- 1,000,000 objects in one bucket ---------------------------------------------------------
mkdir -p "$WORK/million"
"$LOAD" seed --data-dir "$WORK/million" --bucket million --count "$MILLION" --clients 4 > "$WORK/seed.txt"
SEED_S=$(field seconds < "$WORK/seed.txt")
start_daemon "$WORK/million"
sleep 0.5
RSS_IDLE=$(rss_mib "$DAEMON")
"$LOAD" list --port "$PORT" --bucket million > "$WORK/list.txt"
LIST_S=$(field seconds < "$WORK/list.txt"); LIST_KEYS=$(field keys < "$WORK/list.txt")
RSS_LIST=$(rss_mib "$DAEMON")
DB_MIB=$(du -sm "$WORK/million" | cut -f1)
stop_daemon

echo
print_large
echo "4 KiB PUT    lightningstor $PUT_S ops/s ($CLIENTS clients, median of 3 x ${SECS}s)"
echo "4 KiB GET    lightningstor $GET_S ops/s   nginx $NGINX_S ops/s   ratio $(ratio "$GET_S" "$NGINX_S")   (median of $ROUNDS alternating rounds of ${SECS}s)"
echo "   GET rounds: lightningstor $(field rate < "$WORK/get_small.txt" | tr '\n' ' ')  nginx $(field rate < "$WORK/nginx_get.txt" | tr '\n' ' ')"
echo "RSS after small-object runs: $RSS_SMALL MiB"
echo "1M objects   seeded in ${SEED_S}s; daemon RSS idle $RSS_IDLE MiB, after full listing $RSS_LIST MiB; data dir $DB_MIB MiB"
echo "ListObjectsV2 over $LIST_KEYS keys (1000 per page): ${LIST_S}s"
