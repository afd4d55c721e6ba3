#!/usr/bin/env bash
# Builds a Debian 12 (bookworm) cloud image for the vm driver: debootstrap + Debian's own
# cloud-init (unmodified), openssh-server, iputils-ping, netplan (cloud-init's renderer for the
# network config version 2 the platform gives), the stock linux-image-amd64 kernel.
#   scripts/make-cloud-image.sh [OUT_DIR]      (default: build/cloud-image)
# Writes OUT_DIR/vmlinuz, OUT_DIR/initrd.img (Debian's initramfs-tools) and OUT_DIR/root.qcow2
# (ext4 on the whole disk, no partition table, no boot loader), each with a .sha256 (hex digest
# only). Boot them as spec.vm kernel + initrd + image with kernelArgs (OUT_DIR/cmdline):
#   console=ttyS0 root=LABEL=photon-root rw quiet
# docs/vm.md "A Debian cloud image" says what the guest does. Needs root (debootstrap, chroot).
#
# Cached: the debootstrapped tree is kept as a tarball in the cache directory (PHOTON_IMAGE_CACHE,
# default /var/cache/photon/cloud-image) keyed by the package list and mirror; OUT_DIR holds a
# stamp keyed by this script, so a second run with nothing changed returns at once and a change
# to the guest's configuration below rebuilds the disk without downloading again.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-$ROOT/build/cloud-image}"
CACHE="${PHOTON_IMAGE_CACHE:-/var/cache/photon/cloud-image}"
SUITE=bookworm
DISK_SIZE=2G
# python3-cffi-backend: debootstrap does not resolve the virtual package python3-cryptography
# (of cloud-init) needs.
PACKAGES=systemd-sysv,udev,dbus,linux-image-amd64,initramfs-tools,cloud-init,netplan.io,openssh-server,iputils-ping,iproute2,sudo,ca-certificates,python3-netifaces,python3-cffi-backend
log() { echo "make-cloud-image: $*"; }
die() { echo "make-cloud-image: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (debootstrap and chroot)"

# The mirror this machine reaches: the first Debian URI apt itself uses for the suite.
mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk -v s="$SUITE" 'BEGIN{RS=""} $0 ~ "Suites:[^\n]*(^| )"s"( |\n|$)" && $0 ~ "/debian\n" {
      for (i = 1; i <= NF; i++) if ($i == "URIs:") { print $(i+1); exit } }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk -v s="$SUITE" '$1 == "deb" && $0 !~ /\[/ && $3 == s { print $2; exit }' "$f"
  done
}
MIRROR="${PHOTON_DEBIAN_MIRROR:-$(mirror | head -n 1)}"
[ -n "$MIRROR" ] || die "no Debian $SUITE mirror in /etc/apt/sources.list(.d); set PHOTON_DEBIAN_MIRROR"

STAMP="$(cat "$0" | sha256sum | cut -c1-16)-$(echo "$MIRROR" | sha256sum | cut -c1-8)"
if [ -f "$OUT/stamp" ] && [ "$(cat "$OUT/stamp")" = "$STAMP" ] && [ -f "$OUT/root.qcow2" ]; then
  log "up to date in $OUT (stamp $STAMP)"
  exit 0
fi

if ! command -v debootstrap >/dev/null; then
  log "installing debootstrap with apt-get (it is not in scripts/install-deps.sh: this image is"
  log "built only by the slow test and by hand)"
  apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; }
fi
for tool in qemu-img mkfs.ext4 sha256sum; do
  command -v "$tool" >/dev/null || die "$tool is missing (scripts/install-deps.sh)"
done

mkdir -p "$CACHE" "$OUT"
BASE_KEY="$(echo "$SUITE $MIRROR $PACKAGES" | sha256sum | cut -c1-16)"
BASE="$CACHE/base-$BASE_KEY.tar"
WORK="$(mktemp -d /var/tmp/photon-cloud-image.XXXXXX)"
cleanup() {
  for m in dev/pts dev proc sys; do umountpoint="$WORK/tree/$m"; mountpoint -q "$umountpoint" && umount -l "$umountpoint"; done
  rm -rf "$WORK"
}
trap cleanup EXIT
TREE="$WORK/tree"
mkdir -p "$TREE"
start=$(date +%s)
if [ -f "$BASE" ]; then
  log "base tree from the cache ($BASE)"
  tar -xf "$BASE" -C "$TREE"
else
  log "debootstrap $SUITE from $MIRROR (packages cached in $CACHE/debs)"
  mkdir -p "$CACHE/debs"
  debootstrap --variant=minbase --include="$PACKAGES" --cache-dir="$CACHE/debs" \
    "$SUITE" "$TREE" "$MIRROR" > "$WORK/debootstrap.log" 2>&1 ||
    { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
  # Nothing of the build machine stays in the image: apt lists and the .deb cache go.
  rm -rf "$TREE"/var/lib/apt/lists/* "$TREE"/var/cache/apt/archives/*.deb
  tar -cf "$BASE.tmp" -C "$TREE" . && mv "$BASE.tmp" "$BASE"
  log "debootstrap took $(( $(date +%s) - start )) s"
fi

# --- The guest's configuration ----------------------------------------------------------------
# Identity comes from cloud-init at first boot: no machine-id, SSH host keys or hostname baked in.
: > "$TREE/etc/machine-id"
rm -f "$TREE"/etc/ssh/ssh_host_* "$TREE/var/lib/dbus/machine-id"
echo localhost > "$TREE/etc/hostname"
echo LANG=C.UTF-8 > "$TREE/etc/default/locale"
printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' > "$TREE/etc/hosts"
echo "LABEL=photon-root / ext4 rw,relatime 0 1" > "$TREE/etc/fstab"

cat > "$TREE/etc/cloud/cloud.cfg.d/90-photon.cfg" <<'EOF'
# PhotonCloud (scripts/make-cloud-image.sh). Debian's cloud-init as it ships reads the
# platform's metadata service at 169.254.1.2 (OpenStack layout: meta_data.json with the
# hostname and SSH keys, user_data, network_data.json). The VM's chassis asset tag names an
# OpenStack-compatible platform, which is what the OpenStack datasource checks first.
datasource_list: [ OpenStack, None ]
datasource:
  OpenStack:
    metadata_urls: [ "http://169.254.1.2" ]
    max_wait: 120
    timeout: 5
    retries: 2
    # The config drive already gave the address (photon-network-config.service).
    apply_network_config: false
# Only ed25519 host keys: RSA key generation alone takes many seconds under TCG.
ssh_genkeytypes: [ ed25519 ]
ssh_deletekeys: true
disable_root: true
# No locale generation (slow under TCG): C.UTF-8 is built in and already the system's.
locale: C.UTF-8
system_info:
  network:
    renderers: [ netplan ]
EOF

# The address. The metadata service knows an instance by its source address, so the address
# cannot come from the service itself, and a port has no DHCP: the platform puts it on the
# config drive (vfat, label CIDATA, file network-config: cloud-init network config version 2,
# the NIC by MAC, IP/32, default route via 169.254.1.1 on-link). cloud-init reads one
# datasource only, so this unit hands the drive's network config to it as system configuration
# (cloud-init's own "network:" key) before cloud-init-local runs; cloud-init renders it with
# netplan for systemd-networkd.
mkdir -p "$TREE/usr/local/sbin"
cat > "$TREE/usr/local/sbin/photon-network-config" <<'EOF'
#!/bin/sh
# Copies the config drive's network-config into cloud-init's system configuration.
out=/etc/cloud/cloud.cfg.d/95-photon-network.cfg
dev=/dev/disk/by-label/CIDATA
i=0
while [ ! -e "$dev" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
if [ ! -e "$dev" ]; then echo "photon-network-config: no config drive (label CIDATA)"; exit 0; fi
mnt=$(mktemp -d)
mount -t vfat -o ro "$dev" "$mnt" || exit 1
if [ -f "$mnt/network-config" ]; then
  { echo "# written at boot by photon-network-config from the config drive"; echo "network:";
    sed 's/^/  /' "$mnt/network-config"; } > "$out.tmp" && mv "$out.tmp" "$out"
  echo "photon-network-config: network config from the config drive"
else
  rm -f "$out"
fi
umount "$mnt"; rmdir "$mnt"
EOF
chmod 0755 "$TREE/usr/local/sbin/photon-network-config"
cat > "$TREE/etc/systemd/system/photon-network-config.service" <<'EOF'
[Unit]
Description=Network config from the PhotonCloud config drive for cloud-init
DefaultDependencies=no
After=systemd-remount-fs.service systemd-udevd.service systemd-udev-trigger.service
Before=cloud-init-local.service
Wants=systemd-udevd.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/photon-network-config
StandardOutput=journal+console

[Install]
WantedBy=cloud-init-local.service
EOF
mkdir -p "$TREE/etc/systemd/system/cloud-init-local.service.wants"
ln -sf /etc/systemd/system/photon-network-config.service \
  "$TREE/etc/systemd/system/cloud-init-local.service.wants/photon-network-config.service"
# The OpenStack datasource's local stage tries DHCP first (there is none): give up quickly.
echo "timeout 3;" >> "$TREE/etc/dhcp/dhclient.conf"

# Readiness for the vm driver: PHOTON-READY on the serial console once cloud-init is done (the
# driver's ready marker), with cloud-init's own verdict next to it.
cat > "$TREE/etc/systemd/system/photon-ready.service" <<'EOF'
[Unit]
Description=Tell the PhotonCloud vm driver the guest is up (serial console marker)
After=cloud-final.service ssh.service
Wants=cloud-final.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "PHOTON-CLOUD-INIT $(cloud-init status 2>&1 | tr "\\n" " ")" > /dev/ttyS0; echo PHOTON-READY > /dev/ttyS0'

[Install]
WantedBy=cloud-init.target
EOF
# cloud-init.target, not multi-user.target: cloud-final runs after multi-user.target.
ln -sf /etc/systemd/system/photon-ready.service \
  "$TREE/etc/systemd/system/cloud-init.target.wants/photon-ready.service"

# Quick boot under TCG: nothing periodic, no waiting for links the guest will never configure.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer \
  man-db.timer dpkg-db-backup.timer; do
  ln -sf /dev/null "$TREE/etc/systemd/system/$unit"
done
mkdir -p "$TREE/etc/systemd/system/systemd-networkd-wait-online.service.d"
cat > "$TREE/etc/systemd/system/systemd-networkd-wait-online.service.d/photon.conf" <<'EOF'
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=60
EOF
# systemd-networkd is what netplan renders for.
ln -sf /lib/systemd/system/systemd-networkd.service \
  "$TREE/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
mkdir -p "$TREE/etc/systemd/system/network-online.target.wants"
ln -sf /lib/systemd/system/systemd-networkd-wait-online.service \
  "$TREE/etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service"
echo "photon cloud image built $(date -u +%FT%TZ) from $MIRROR" > "$TREE/etc/photon-image"

# --- Kernel, initramfs, disk ------------------------------------------------------------------
KVER="$(ls -1 "$TREE"/lib/modules | sort -V | tail -n 1)"
[ -n "$KVER" ] || die "no kernel in the tree"
cp "$TREE/boot/vmlinuz-$KVER" "$OUT/vmlinuz.tmp"
cp "$TREE/boot/initrd.img-$KVER" "$OUT/initrd.img.tmp"
mkfs.ext4 -q -F -L photon-root -d "$TREE" "$WORK/root.raw" "$DISK_SIZE"
qemu-img convert -O qcow2 "$WORK/root.raw" "$OUT/root.qcow2.tmp"
for f in vmlinuz initrd.img root.qcow2; do
  mv "$OUT/$f.tmp" "$OUT/$f"
  chmod 0644 "$OUT/$f"
  sha256sum "$OUT/$f" | cut -d' ' -f1 > "$OUT/$f.sha256"
done
echo "console=ttyS0 root=LABEL=photon-root rw quiet" > "$OUT/cmdline"
echo "$STAMP" > "$OUT/stamp"
log "kernel $KVER, $(du -h "$OUT/root.qcow2" | cut -f1) qcow2 in $OUT ($(( $(date +%s) - start )) s)"
