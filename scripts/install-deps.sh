#!/usr/bin/env bash
# Installs every build, run and test dependency of PhotonCloud from Debian 12 packages.
# Idempotent: a second run only checks. Needs root (or sudo) on Debian 12 (bookworm).
set -euo pipefail

PKGS=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git clang-format
  # libraries
  libgrpc++-dev libgrpc-dev protobuf-compiler protobuf-compiler-grpc libprotobuf-dev
  libboost-dev libboost-system-dev libsqlite3-dev libssl-dev libspdlog-dev libfmt-dev
  libcli11-dev libyaml-cpp-dev nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev
  libgoogle-perftools-dev libexpat1-dev libsodium-dev
  # real peers and clients used by tests and benchmarks
  etcd-server etcd-client curl ca-certificates python3 procps iproute2 psmisc sqlite3
  dnsutils nsd knot dnsperf awscli python3-boto3 python3-requests rclone restic nginx-light
  clang libclang-rt-14-dev
  runc busybox-static
  monitoring-plugins-basic
  # operations: Prometheus scrapes the daemons through photon's discovery, alerts into photon
  prometheus
  qemu-system-x86 qemu-utils linux-image-amd64 mtools dosfstools e2fsprogs openssl
  # VPC networking: BGP daemon of every node and the test bed's router, nftables, throughput
  bird2 nftables iperf3 iputils-ping libnftables-dev
  # fiberlb: HAProxy is the L7 data plane; wrk loads it in tests and bench/lb
  haproxy wrk
  # web dashboard: its tests and bench/ui drive headless Chromium over the DevTools protocol
  chromium python3-websocket
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Debian starts some daemons as it installs them (etcd, nsd, nginx, knot); the tests start
# their own on loopback ports. A policy-rc.d that refuses every start keeps the new ones from
# starting (invoke-rc.d and deb-systemd-invoke ask it, the Debian way for this); one the
# machine already has is left as it is.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# installed by PhotonCloud scripts/install-deps.sh for one apt-get run\nexit 101\n' |
    $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  trap '$SUDO rm -f "$POLICY"' EXIT
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Nor at boot: only the services of the packages installed just now. A daemon the machine
# already had (the owner's nginx, say) is not ours to stop.
for pair in etcd-server:etcd nsd:nsd nginx-light:nginx knot:knot bird2:bird haproxy:haproxy \
  prometheus:prometheus; do
  pkg="${pair%%:*}" svc="${pair##*:}"
  [[ " ${missing[*]} " == *" $pkg "* ]] || continue
  if command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done
echo "install-deps: done"
