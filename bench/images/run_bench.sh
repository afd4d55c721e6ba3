#!/usr/bin/env bash
# Image service benchmark (docs/images.md): upload and first fetch of a 1 GiB image through
# photon-server into lightningstor and back, next to a plain `aws s3 cp` of the same file to
# and from the same lightningstor in the same run. Prints MB/s for each and photon-server's
# peak RSS (the upload is streamed: it must not grow with the image). Not part of ctest.
#   bench/images/run_bench.sh   (after scripts/build.sh photon-server photon photon-agent lightningstor)
# Env: SIZE_MIB (1024), ROUNDS (3), BENCH_DIR (default: a temp dir under /var/tmp),
#      NODE_FETCH (1: also time a node's first fetch: a photon-agent with the vm driver
#      fetching the image as a VM's disk into its cache; 0 skips it).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="${PHOTON_BUILD_DIR:-$ROOT/build}"
SIZE_MIB="${SIZE_MIB:-1024}"
ROUNDS="${ROUNDS:-3}"
NODE_FETCH="${NODE_FETCH:-1}"
WORK="${BENCH_DIR:-$(mktemp -d /var/tmp/photon-images-bench.XXXXXX)}"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # A VM the node-fetch round started (the agent leaves VMs running when it stops).
  for p in $(grep -l "$WORK/agent/" /proc/[0-9]*/cmdline 2>/dev/null | cut -d/ -f3); do
    kill -9 "$p" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
for b in src/server/photon-server src/cli/photon src/lightningstor/lightningstor; do
  [ -x "$BUILD/$b" ] || { echo "build first: scripts/build.sh photon-server photon lightningstor photon-agent" >&2; exit 1; }
done
command -v aws >/dev/null || { echo "needs the aws CLI (apt-get install awscli)" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
now() { date +%s.%N; }
# CPU seconds (user + system) a process has used so far.
cpu() { awk -v t="$(getconf CLK_TCK)" '{print ($14 + $15) / t}' "/proc/$1/stat"; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN {printf "%.1f", b / s / 1e6}'; }
wait_http() { for _ in $(seq 200); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "$1 did not answer" >&2; exit 1; }

S3_PORT=$(free_port)
cat >"$WORK/ls.yaml" <<CFG
listen: 127.0.0.1:$S3_PORT
data_dir: $WORK/ls
region: local
log_level: warn
CFG
(umask 077 && "$BUILD/src/lightningstor/lightningstor" --config "$WORK/ls.yaml" keys create bench >"$WORK/ls.key")
"$BUILD/src/lightningstor/lightningstor" --config "$WORK/ls.yaml" >"$WORK/ls.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$S3_PORT/healthz"
export AWS_ACCESS_KEY_ID=$(awk '/access_key_id/{print $2}' "$WORK/ls.key")
export AWS_SECRET_ACCESS_KEY=$(awk '/secret_access_key/{print $2}' "$WORK/ls.key")
export AWS_DEFAULT_REGION=local
AWS=(aws --endpoint-url "http://127.0.0.1:$S3_PORT")

PORT=$(free_port)
cat >"$WORK/server.yaml" <<CFG
image_max_bytes: $(( (SIZE_MIB + 1) << 20 ))
providers:
  - driver: lightningstor
    endpoint: http://127.0.0.1:$S3_PORT
    region: local
    credentials_file: $WORK/ls.key
CFG
"$BUILD/src/server/photon-server" --config "$WORK/server.yaml" --data-dir "$WORK/server" \
  --listen "127.0.0.1:$PORT" --grpc-listen "127.0.0.1:$(free_port)" >"$WORK/server.log" 2>&1 &
SERVER=$!
PIDS+=($SERVER)
wait_http "http://127.0.0.1:$PORT/healthz"
export PHOTON_SERVER="http://127.0.0.1:$PORT" PHOTON_TOKEN=$(cat "$WORK/server/admin.token")
PHOTON="$BUILD/src/cli/photon"

FILE="$WORK/big.img"
head -c $((SIZE_MIB << 20)) /dev/urandom >"$FILE"
BYTES=$(stat -c %s "$FILE")
"${AWS[@]}" s3 mb s3://peer >/dev/null
up=(); down=(); peer_up=(); peer_down=(); cpu_up=(); cpu_down=()
LS_PID=${PIDS[0]}
# CPU seconds per GiB moved: photon-server, lightningstor, the photon CLI.
cpu_line() {
  awk -v s="$1" -v l="$2" -v c="$3" -v b="$BYTES" \
    'BEGIN {g = b / 1073741824; printf "server %.2f, store %.2f, cli %.2f", s / g, l / g, c / g}'
}
timed_cpu() {  # runs "$@", prints "<server s> <store s> <cli s>" and its wall time after it
  local s0 l0 t0 t1 cli
  s0=$(cpu "$SERVER"); l0=$(cpu "$LS_PID"); t0=$(now)
  cli=$(/usr/bin/time -f "%U %S" "$@" 2>&1 >/dev/null | tail -1 | awk '{print $1 + $2}')
  t1=$(now)
  echo "$(echo "$(cpu "$SERVER") - $s0" | bc) $(echo "$(cpu "$LS_PID") - $l0" | bc) $cli $(echo "$t1 - $t0" | bc)"
}
for r in $(seq "$ROUNDS"); do
  read -r s l c w < <(timed_cpu "$PHOTON" image upload big "$FILE" --format raw)
  up+=("$(mbps "$BYTES" "$w")"); cpu_up+=("$(cpu_line "$s" "$l" "$c")")
  rm -f "$WORK/out"
  read -r s l c w < <(timed_cpu "$PHOTON" image download big "$WORK/out")
  down+=("$(mbps "$BYTES" "$w")"); cpu_down+=("$(cpu_line "$s" "$l" "$c")")
  t0=$(now); "${AWS[@]}" s3 cp "$FILE" s3://peer/big.img --only-show-errors; t1=$(now)
  peer_up+=("$(mbps "$BYTES" "$(echo "$t1 - $t0" | bc)")")
  rm -f "$WORK/out"
  t0=$(now); "${AWS[@]}" s3 cp s3://peer/big.img "$WORK/out" --only-show-errors; t1=$(now)
  peer_down+=("$(mbps "$BYTES" "$(echo "$t1 - $t0" | bc)")")
  rm -f "$WORK/out"
  echo "round $r: upload ${up[-1]} MB/s (aws s3 cp ${peer_up[-1]}), fetch ${down[-1]} MB/s (aws s3 cp ${peer_down[-1]})"
  echo "  CPU s per GiB: upload ${cpu_up[-1]}; download ${cpu_down[-1]}"
done
HWM=$(awk '/VmHWM/{printf "%.0f", $2/1024}' "/proc/$SERVER/status")

NODE="skipped (NODE_FETCH=0)"
if [ "$NODE_FETCH" = 1 ] && [ -x "$BUILD/src/agent/photon-agent" ]; then
  bash "$ROOT/scripts/make-vm-image.sh" "$WORK/guest" >/dev/null
  "$PHOTON" image upload kernel "$WORK/guest/vmlinuz" >/dev/null 2>&1
  "$PHOTON" image upload initrd "$WORK/guest/initrd.img" >/dev/null 2>&1
  mkdir -p "$WORK/none"
  printf 'drivers:\n  vm:\n    images_root: "%s/none"\n  container:\n    enabled: "false"\n' "$WORK" >"$WORK/agent.yaml"
  "$BUILD/src/agent/photon-agent" --server "127.0.0.1:$PORT" --token-file "$WORK/server/join.token" \
    --data-dir "$WORK/agent" --name benchnode --config "$WORK/agent.yaml" --network-mode shared \
    --resync-seconds 1 >"$WORK/agent.log" 2>&1 &
  PIDS+=($!)
  cat >"$WORK/vm.yaml" <<YAML
kind: ComputeInstance
metadata: {name: fetcher}
spec:
  vm: {image: big, kernel: kernel, initrd: initrd, kernelArgs: "console=ttyS0 quiet"}
  resources: {vcpu: 1, memoryMb: 256}
  network: {hostNetwork: true}
YAML
  for _ in $(seq 600); do "$PHOTON" get nodes benchnode -n system >/dev/null 2>&1 && break; sleep 0.1; done
  "$PHOTON" create -f "$WORK/vm.yaml" >/dev/null
  for _ in $(seq 1200); do grep -q "fetched default/big" "$WORK/agent.log" && break; sleep 0.25; done
  NODE=$(sed -n 's/.*fetched default\/big .* in \([0-9.]*\) s, \([0-9.]*\) MB\/s.*/\2 MB\/s (\1 s)/p' "$WORK/agent.log")
  "$PHOTON" delete computeinstances fetcher >/dev/null 2>&1 || true
  for _ in $(seq 600); do "$PHOTON" get computeinstances fetcher >/dev/null 2>&1 || break; sleep 0.2; done
fi

cat <<OUT

image of $SIZE_MIB MiB, $ROUNDS rounds, load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores
                                  median MB/s   rounds
photon image upload               $(printf '%s\n' "${up[@]}" | median | xargs printf '%11s')   ${up[*]}
aws s3 cp (upload, same store)    $(printf '%s\n' "${peer_up[@]}" | median | xargs printf '%11s')   ${peer_up[*]}
photon image download             $(printf '%s\n' "${down[@]}" | median | xargs printf '%11s')   ${down[*]}
aws s3 cp (download, same store)  $(printf '%s\n' "${peer_down[@]}" | median | xargs printf '%11s')   ${peer_down[*]}
node first fetch (agent cache)    $NODE
photon-server peak RSS            $HWM MiB
OUT
