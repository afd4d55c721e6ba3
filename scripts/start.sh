#!/usr/bin/env bash
# The README's start command: installs what is missing (Debian 12 packages), builds, and starts
# PhotonCloud on this machine: photon-server with the embedded store, plus one local agent.
#   scripts/start.sh            # foreground; Ctrl-C stops everything
#   scripts/start.sh --no-prometheus   # without Prometheus (or PHOTON_PROMETHEUS=0)
# Environment: PHOTON_DATA (default ~/.local/share/photon), PHOTON_LISTEN (127.0.0.1:8080),
# PHOTON_GRPC_LISTEN (127.0.0.1:8081), PHOTON_AGENT_VCPU (vCPUs the local agent offers; default
# 4 per host core, so the examples all fit on a small machine — the scheduler itself never
# places more than a node offers), PHOTON_DNS_LISTEN (flashdns DNS, UDP+TCP; 127.0.0.1:5353),
# PHOTON_DNS_API (flashdns API; 127.0.0.1:5380), PHOTON_S3_LISTEN (lightningstor S3 endpoint;
# 127.0.0.1:9000), PHOTON_AGENT_NETWORK_MODE (the local agent's instance networks: "shared", the
# default here, runs them in this machine's network; "ports" gives each its port namespace, as
# root; docs/networking.md), PHOTON_PROMETHEUS_LISTEN (Prometheus's UI and API; 127.0.0.1:9090).
set -euo pipefail
PROMETHEUS="${PHOTON_PROMETHEUS:-1}"
for arg in "$@"; do
  case "$arg" in
    --no-prometheus) PROMETHEUS=0 ;;
    *) echo "start.sh: unknown option '$arg' (known: --no-prometheus)" >&2; exit 2 ;;
  esac
done
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash scripts/install-deps.sh
bash scripts/build.sh photon-server photon flashdns lightningstor $( [ -f src/agent/CMakeLists.txt ] && echo photon-agent )
BIN="${PHOTON_BUILD_DIR:-$ROOT/build}"
DATA="${PHOTON_DATA:-$HOME/.local/share/photon}"
LISTEN="${PHOTON_LISTEN:-127.0.0.1:8080}"
GRPC_LISTEN="${PHOTON_GRPC_LISTEN:-127.0.0.1:8081}"
mkdir -p "$DATA"
chmod 700 "$DATA"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# photon-server's config: each service below appends its entry to the providers list.
SERVER_CONFIG="$DATA/photon-server.yaml"
echo "providers:" >"$SERVER_CONFIG"

# --- flashdns: DNS for DnsZone/DnsRecord objects (docs/providers.md) ---
DNS_LISTEN="${PHOTON_DNS_LISTEN:-127.0.0.1:5353}"
DNS_API="${PHOTON_DNS_API:-127.0.0.1:5380}"
mkdir -p "$DATA/flashdns"
cat >"$DATA/flashdns/flashdns.yaml" <<YAML
listen: ["$DNS_LISTEN"]
api: $DNS_API
data_dir: $DATA/flashdns
workers: 1
zones: []
YAML
"$BIN/src/flashdns/flashdns" --config "$DATA/flashdns/flashdns.yaml" --log-level warn &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://$DNS_API/healthz" >/dev/null 2>&1 && [ -s "$DATA/flashdns/api.token" ] && break
  sleep 0.1
done
curl -fsS "http://$DNS_API/healthz" >/dev/null || { echo "flashdns did not start" >&2; exit 1; }
cat >>"$SERVER_CONFIG" <<YAML
  - driver: flashdns
    endpoint: http://$DNS_API
    token_file: $DATA/flashdns/api.token
  - driver: gslb
    endpoint: http://$DNS_API
    token_file: $DATA/flashdns/api.token
YAML
# --- end flashdns ---

# --- lightningstor: S3 for Bucket objects (docs/providers.md, docs/lightningstor.md) ---
S3_LISTEN="${PHOTON_S3_LISTEN:-127.0.0.1:9000}"
S3_KEY="$DATA/lightningstor/photon-server.key"
mkdir -p "$DATA/lightningstor"
cat >"$DATA/lightningstor/lightningstor.yaml" <<YAML
listen: $S3_LISTEN
data_dir: $DATA/lightningstor
region: local
log_level: warn
YAML
if [ ! -s "$S3_KEY" ]; then
  # The admin key photon-server signs with; created once, kept 0600 from the first byte.
  (umask 077 && "$BIN/src/lightningstor/lightningstor" --config "$DATA/lightningstor/lightningstor.yaml" \
    keys create photon-server >"$S3_KEY.tmp" && mv "$S3_KEY.tmp" "$S3_KEY")
fi
"$BIN/src/lightningstor/lightningstor" --config "$DATA/lightningstor/lightningstor.yaml" &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://$S3_LISTEN/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://$S3_LISTEN/healthz" >/dev/null || { echo "lightningstor did not start" >&2; exit 1; }
cat >>"$SERVER_CONFIG" <<YAML
  - driver: lightningstor
    endpoint: http://$S3_LISTEN
    region: local
    credentials_file: $S3_KEY
YAML
# --- end lightningstor ---

# The long-term statistics are computed from the Prometheus started below (docs/operations.md).
STATS_ARGS=()
[ "$PROMETHEUS" != 0 ] && STATS_ARGS=(--prometheus-url "http://${PHOTON_PROMETHEUS_LISTEN:-127.0.0.1:9090}")
"$BIN/src/server/photon-server" --config "$SERVER_CONFIG" --data-dir "$DATA/server" --listen "$LISTEN" --grpc-listen "$GRPC_LISTEN" "${STATS_ARGS[@]}" &
pids+=($!)
for _ in $(seq 1 100); do
  curl -fsS "http://$LISTEN/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://$LISTEN/healthz" >/dev/null || { echo "photon-server did not start" >&2; exit 1; }

if [ -x "$BIN/src/agent/photon-agent" ]; then
  # The busybox rootfs examples/container.yaml runs (containers need root, like runc).
  ROOTFS=/var/lib/photon/images/busybox-rootfs
  if [ ! -x "$ROOTFS/bin/busybox" ]; then
    if [ "$(id -u)" = 0 ]; then bash scripts/make-rootfs.sh "$ROOTFS" >/dev/null
    else echo "note: run 'sudo scripts/make-rootfs.sh' for examples/container.yaml" >&2; fi
  fi
  # The kernel and initramfs examples/vm.yaml boots.
  if [ ! -s /var/lib/photon/images/initrd.img ]; then
    if [ "$(id -u)" = 0 ]; then bash scripts/make-vm-image.sh /var/lib/photon/images >/dev/null
    else echo "note: run 'sudo scripts/make-vm-image.sh /var/lib/photon/images' for examples/vm.yaml" >&2; fi
  fi
  [ "${PHOTON_AGENT_NETWORK_MODE:-shared}" = ports ] && echo "note: network mode ports sets this host's net.ipv4.ip_forward=1 and net.ipv4.conf.default.rp_filter=1 (kept after exit; docs/network-node.md)" >&2
  "$BIN/src/agent/photon-agent" --server "$LISTEN" --token-file "$DATA/server/join.token" \
    --data-dir "$DATA/agent" --name "$(hostname -s | tr 'A-Z_' 'a-z-')" --labels "zone=local,rack_az=r1" \
    --vcpu "${PHOTON_AGENT_VCPU:-$(( $(nproc) * 4 ))}" \
    --network-mode "${PHOTON_AGENT_NETWORK_MODE:-shared}" &
  pids+=($!)
fi

# --- Prometheus: scrapes photon-server, every agent and the daemons through photon-server's
# discovery, and sends its alerts to photon-server (docs/operations.md "Prometheus") ---
PROM_LISTEN="${PHOTON_PROMETHEUS_LISTEN:-127.0.0.1:9090}"
PROM_NOTE="Metrics: Prometheus skipped (--no-prometheus)"
if [ "$PROMETHEUS" != 0 ]; then
  PROM_DIR="$DATA/prometheus"
  mkdir -p "$PROM_DIR/data" "$PROM_DIR/rules"
  chmod 700 "$PROM_DIR" "$PROM_DIR/data"
  bash scripts/prometheus-config.sh --server "$LISTEN" --token-file "$DATA/server/admin.token" \
    --rules "$PROM_DIR/rules/*.yml" >"$PROM_DIR/prometheus.yml"
  promtool check config "$PROM_DIR/prometheus.yml" >/dev/null
  prometheus --config.file="$PROM_DIR/prometheus.yml" --storage.tsdb.path="$PROM_DIR/data" \
    --web.listen-address="$PROM_LISTEN" --log.level=warn >>"$PROM_DIR/prometheus.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    curl -fsS "http://$PROM_LISTEN/-/ready" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "http://$PROM_LISTEN/-/ready" >/dev/null ||
    { echo "prometheus did not start (log: $PROM_DIR/prometheus.log)" >&2; exit 1; }
  PROM_NOTE="Metrics: Prometheus UI http://$PROM_LISTEN (rules: $PROM_DIR/rules/*.yml)"
fi
# --- end Prometheus ---

cat <<MSG

PhotonCloud is running.
  API:    http://$LISTEN   (gRPC on $GRPC_LISTEN)
  Token:  $DATA/server/admin.token
  DNS:    flashdns on $DNS_LISTEN (UDP/TCP), API http://$DNS_API
  S3:     lightningstor on http://$S3_LISTEN (region local; key for aws: $S3_KEY)
  $PROM_NOTE

In another shell:
  export PHOTON_SERVER=http://$LISTEN
  export PHOTON_TOKEN=\$(cat $DATA/server/admin.token)
  export PATH=$BIN/src/cli:\$PATH
  photon create -f examples/process.yaml      # a supervised process
  photon create -f examples/container.yaml    # a runc container from a busybox rootfs
  photon create -f examples/vm.yaml           # a QEMU VM (KVM if the host has it, else TCG)
  photon list computeinstances
  photon create -f examples/dns.yaml          # a DNS zone and records, served by flashdns
  dig @${DNS_LISTEN%:*} -p ${DNS_LISTEN##*:} www.example.test +short
  photon create -f examples/bucket.yaml       # an S3 bucket in lightningstor (default-photos)
  photon get buckets photos -o yaml           # status.details: endpoint and S3 bucket name

Ctrl-C stops PhotonCloud.
MSG
wait -n "${pids[@]}"
