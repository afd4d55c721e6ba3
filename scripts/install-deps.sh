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
  # real peers and clients used by tests and benchmarks
  etcd-server etcd-client curl ca-certificates python3 procps iproute2 psmisc
  dnsutils nsd knot dnsperf awscli python3-boto3 nginx-light
  clang libclang-rt-14-dev
  runc busybox-static
  qemu-system-x86 qemu-utils linux-image-amd64 mtools dosfstools
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
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Debian starts some daemons on install; our tests start their own on loopback ports.
for svc in etcd nsd nginx; do
  if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
  $SUDO pkill -x "$svc" >/dev/null 2>&1 || true
done
# knot: stopped through its own control socket (/run/knot), not by process name, so the
# knotd instances that benchmarks run on their own sockets at the time keep running.
if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now knot >/dev/null 2>&1 || true; fi
if [ -x /etc/init.d/knot ]; then $SUDO /etc/init.d/knot stop >/dev/null 2>&1 || true; fi
echo "install-deps: done"
