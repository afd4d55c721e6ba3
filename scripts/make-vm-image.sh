#!/usr/bin/env bash
# Builds the PhotonCloud test guest for the vm driver: Debian's installed kernel plus a tiny
# busybox initramfs.
#   scripts/make-vm-image.sh [OUT_DIR]      (default: build/vm-image)
# Writes OUT_DIR/vmlinuz, OUT_DIR/initrd.img and their .sha256 files (hex digest only).
# Needs: linux-image-amd64 (a /boot/vmlinuz-* with its /lib/modules), busybox-static.
#
# The guest's /init (see docs/vm.md):
#   - mounts proc, sys, devtmpfs and loads the virtio/vfat/ACPI-button modules;
#   - mounts the config drive (vfat, label CIDATA) and echoes user-data between
#     PHOTON-USERDATA-BEGIN / PHOTON-USERDATA-END lines;
#   - when the drive has a network-config (a VM with a port), gives the NIC with its MAC the
#     /32 address and the default route via the on-link gateway it names (PHOTON-NET IF ADDR);
#   - when user-data starts with "#!", runs it as a script once ready (as cloud-init runs user
#     scripts), its output on the console, then PHOTON-USERSCRIPT-EXIT CODE;
#   - mounts the first other virtio disk (formatting it vfat when blank), prints what a previous
#     boot wrote (PHOTON-VOL-READ), bumps a boot counter file (PHOTON-VOL-WROTE) and unmounts;
#   - prints PHOTON-READY on the serial console (the driver's readiness signal);
#   - watches for hot-plugged disks (PHOTON-HOTPLUG / PHOTON-UNPLUG) and powers off on the ACPI
#     power button (the driver's graceful stop).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-$ROOT/build/vm-image}"
BUSYBOX="$(command -v busybox || true)"
[ -x /bin/busybox ] && BUSYBOX=/bin/busybox
if [ -z "$BUSYBOX" ]; then echo "make-vm-image: busybox-static is not installed" >&2; exit 1; fi
KERNEL="$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1 || true)"
if [ -z "$KERNEL" ]; then echo "make-vm-image: no /boot/vmlinuz-* (install linux-image-amd64)" >&2; exit 1; fi
KVER="${KERNEL#/boot/vmlinuz-}"
MODDIR="/lib/modules/$KVER"
if [ ! -f "$MODDIR/modules.dep" ]; then echo "make-vm-image: $MODDIR/modules.dep missing" >&2; exit 1; fi

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE"/{bin,sbin,proc,sys,dev,cfg,vol,tmp,etc,lib/modules/"$KVER"}
cp "$BUSYBOX" "$STAGE/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$STAGE/bin/$applet"
done

# Modules the guest needs, with their dependencies.
source "$(dirname "$0")/lib/guest-modules.sh"
stage_modules "$STAGE" "$MODDIR" "$KVER" virtio_pci virtio_blk virtio_net vfat nls_cp437 nls_ascii \
  button evdev

cat > "$STAGE/init" <<'EOF'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_pci virtio_blk virtio_net vfat nls_cp437 nls_ascii button evdev; do modprobe "$m" 2>/dev/null; done
echo "PHOTON-BOOT kernel $(uname -r)"
i=0
while [ ! -e /sys/block/vda ] && [ $i -lt 30 ]; do sleep 0.1; i=$((i + 1)); done
CFG="$(findfs LABEL=CIDATA 2>/dev/null)"
if [ -n "$CFG" ] && mount -t vfat -o ro "$CFG" /cfg; then
  echo "PHOTON-USERDATA-BEGIN"
  cat /cfg/user-data 2>/dev/null
  echo
  echo "PHOTON-USERDATA-END"
  echo "PHOTON-INSTANCE $(grep instance-id /cfg/meta-data 2>/dev/null)"
  cp /cfg/user-data /tmp/user-data 2>/dev/null
  cp /cfg/network-config /tmp/network-config 2>/dev/null
  umount /cfg
fi
# The port's address (cloud-init network config v2 as the driver writes it: one interface
# matched by MAC, an /32 address, a default route via an on-link gateway).
configure_network() {
  mac="$(sed -n 's/.*macaddress: *"\{0,1\}\([0-9a-fA-F:]*\)"\{0,1\}.*/\1/p' /tmp/network-config | head -n 1)"
  addr="$(sed -n 's/.*addresses: *\[ *\([0-9./]*\).*/\1/p' /tmp/network-config | head -n 1)"
  gw="$(sed -n 's/.*via: *\([0-9.]*\).*/\1/p' /tmp/network-config | head -n 1)"
  i=0
  while [ $i -lt 50 ]; do
    for n in /sys/class/net/*; do
      [ "$(cat "$n/address" 2>/dev/null)" = "$mac" ] && IF="${n##*/}"
    done
    [ -n "$IF" ] && break
    sleep 0.1
    i=$((i + 1))
  done
  if [ -z "$IF" ] || [ -z "$addr" ] || [ -z "$gw" ]; then
    echo "PHOTON-NET-FAILED no interface with MAC $mac (address $addr, gateway $gw)"
    return 1
  fi
  ip link set lo up
  ip link set "$IF" up
  ip addr add "$addr" dev "$IF"
  ip route add "$gw" dev "$IF" scope link
  ip route add default via "$gw" dev "$IF"
  echo "PHOTON-NET $IF $addr via $gw"
}
[ -f /tmp/network-config ] && configure_network
use_volume() {
  dev="$1"
  if ! mount -t vfat "$dev" /vol 2>/dev/null; then
    mkdosfs -n PHOTONVOL "$dev" >/dev/null 2>&1 && mount -t vfat "$dev" /vol || return 1
  fi
  echo "PHOTON-VOL-READ $dev: $(cat /vol/photon.txt 2>/dev/null)"
  n=$(( $(cat /vol/boots 2>/dev/null || echo 0) + 1 ))
  echo "$n" > /vol/boots
  echo "written by boot $n" > /vol/photon.txt
  sync
  echo "PHOTON-VOL-WROTE $dev: boot $n"
  umount /vol
}
known=" "
for b in /sys/block/vd*; do
  [ -e "$b" ] || continue
  dev="/dev/${b##*/}"
  known="$known${b##*/} "
  [ "$dev" = "$CFG" ] && continue
  [ -n "$FIRST" ] && continue
  FIRST="$dev"
  use_volume "$dev"
done
# Graceful stop: the ACPI power button is an input device; any event from it powers off.
for e in /sys/class/input/event*; do
  [ -e "$e" ] || continue
  if grep -q "Power Button" "$e/device/name" 2>/dev/null; then
    (head -c 1 "/dev/input/${e##*/}" >/dev/null 2>&1; echo "PHOTON-POWEROFF"; sync; poweroff -f) &
  fi
done
echo "PHOTON-READY"
if [ "$(head -c 2 /tmp/user-data 2>/dev/null)" = "#!" ]; then
  (sh /tmp/user-data 2>&1; echo "PHOTON-USERSCRIPT-EXIT $?") &
fi
# Hot-plugged disks: write to them once and report; report removals.
while true; do
  now=" "
  for b in /sys/block/vd*; do
    [ -e "$b" ] || continue
    name="${b##*/}"
    now="$now$name "
    case "$known" in *" $name "*) ;; *) use_volume "/dev/$name" && echo "PHOTON-HOTPLUG $name" ;; esac
  done
  for name in $known; do
    case "$now" in *" $name "*) ;; *) echo "PHOTON-UNPLUG $name" ;; esac
  done
  known="$now"
  sleep 1
done
EOF
chmod 0755 "$STAGE/init"

mkdir -p "$OUT"
cp "$KERNEL" "$OUT/vmlinuz.tmp" && mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
(cd "$STAGE" && find . | sort | "$BUSYBOX" cpio -o -H newc 2>/dev/null | gzip -9 > "$OUT/initrd.img.tmp")
mv "$OUT/initrd.img.tmp" "$OUT/initrd.img"
chmod 0644 "$OUT/vmlinuz" "$OUT/initrd.img"
for f in vmlinuz initrd.img; do
  sha256sum "$OUT/$f" | cut -d' ' -f1 > "$OUT/$f.sha256"
done
echo "make-vm-image: kernel $KVER -> $OUT/vmlinuz ($(cat "$OUT/vmlinuz.sha256"))"
echo "make-vm-image: initramfs -> $OUT/initrd.img ($(cat "$OUT/initrd.img.sha256"))"
