#!/usr/bin/env bash
# Builds the guest of the power-loss test (tests/powerloss/): Debian's installed kernel plus an
# initramfs holding busybox, photon-server, lightningstor, their shared libraries and an /init
# that runs both daemons on the first virtio disk.
#   scripts/make-powerloss-image.sh PHOTON_SERVER LIGHTNINGSTOR OUT_DIR
# Writes OUT_DIR/vmlinuz and OUT_DIR/initrd.img (an uncompressed cpio: under TCG the guest
# unpacks it faster than it would gunzip it).
# Needs: linux-image-amd64 (a /boot/vmlinuz-* with its /lib/modules), busybox-static, binutils.
#
# The guest's /init (the test waits for its PL-* lines on the serial console):
#   - loads the virtio, ext4 and crc32c modules, brings up eth0 as 10.0.2.15 (QEMU user net);
#   - mounts /dev/vda (ext4, made by the test on the host) on /data, prints PL-MOUNTED;
#   - on the first boot creates a lightningstor access key and prints PL-S3-KEY ID SECRET;
#   - starts photon-server (REST 0.0.0.0:8080, SQLite store in /data/server) and lightningstor
#     (0.0.0.0:9000, /data/s3), prints PL-ADMIN-TOKEN (read back from the disk) and PL-READY
#     once both answer /healthz; PL-EXIT NAME RC if a daemon stops.
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 PHOTON_SERVER LIGHTNINGSTOR OUT_DIR" >&2
  exit 2
fi
SERVER_BIN="$1" S3_BIN="$2" OUT="$3"
BUSYBOX="$(command -v busybox || true)"
[ -x /bin/busybox ] && BUSYBOX=/bin/busybox
if [ -z "$BUSYBOX" ]; then echo "make-powerloss-image: busybox-static is not installed" >&2; exit 1; fi
KERNEL="$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1 || true)"
if [ -z "$KERNEL" ]; then echo "make-powerloss-image: no /boot/vmlinuz-* (install linux-image-amd64)" >&2; exit 1; fi
KVER="${KERNEL#/boot/vmlinuz-}"
MODDIR="/lib/modules/$KVER"
if [ ! -f "$MODDIR/modules.dep" ]; then echo "make-powerloss-image: $MODDIR/modules.dep missing" >&2; exit 1; fi
for b in "$SERVER_BIN" "$S3_BIN"; do
  [ -x "$b" ] || { echo "make-powerloss-image: $b is not an executable" >&2; exit 1; }
done

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE"/{bin,proc,sys,dev,data,tmp,etc,lib64,lib/x86_64-linux-gnu,lib/modules/"$KVER"}
chmod 1777 "$STAGE/tmp"
cp "$BUSYBOX" "$STAGE/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$STAGE/bin/$applet"
done

# The daemons without their debug sections (they are most of the file), and every library the
# dynamic loader resolves for them, flattened into one directory named by LD_LIBRARY_PATH.
strip --strip-debug -o "$STAGE/bin/photon-server" "$SERVER_BIN"
strip --strip-debug -o "$STAGE/bin/lightningstor" "$S3_BIN"
for b in "$SERVER_BIN" "$S3_BIN"; do
  ldd "$b" | awk '/=> \// { print $3 } /^\t\/.*ld-linux/ { print $1 }'
done | sort -u | while read -r lib; do
  case "$lib" in
    */ld-linux-x86-64.so.2) cp -L "$lib" "$STAGE/lib64/ld-linux-x86-64.so.2" ;;
    *) cp -L "$lib" "$STAGE/lib/x86_64-linux-gnu/$(basename "$lib")" ;;
  esac
done
[ -f "$STAGE/lib64/ld-linux-x86-64.so.2" ] || {
  echo "make-powerloss-image: ldd named no dynamic loader" >&2
  exit 1
}

# Modules the guest needs, with their dependencies.
MODULES="virtio_pci virtio_blk virtio_net virtio_rng crc32c_generic ext4"
source "$(dirname "$0")/lib/guest-modules.sh"
# shellcheck disable=SC2086  # one word a module
stage_modules "$STAGE" "$MODDIR" "$KVER" $MODULES

cat > "$STAGE/init" <<EOF
#!/bin/sh
MODULES="$MODULES"
EOF
cat >> "$STAGE/init" <<'EOF'
export PATH=/bin LD_LIBRARY_PATH=/lib/x86_64-linux-gnu HOME=/tmp
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $MODULES; do modprobe "$m" 2>/dev/null; done
echo "PL-BOOT kernel $(uname -r)"
fatal() {
  echo "PL-FATAL $*"
  poweroff -f
}
# Waits up to 10 s for a path to exist (devices appear asynchronously after modprobe).
wait_for() {
  i=0
  while [ ! -e "$1" ]; do
    [ $i -lt 100 ] || return 1
    sleep 0.1
    i=$((i + 1))
  done
}
wait_for /sys/block/vda || fatal "no /dev/vda"
wait_for /sys/class/net/eth0 || fatal "no eth0"
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
ip route add default via 10.0.2.2
# The default ext4 options are the ones under test: data=ordered, 5 s journal commits, delayed
# allocation; a mount after a power loss replays the journal.
mount -t ext4 /dev/vda /data || fatal "mount /dev/vda"
echo "PL-MOUNTED"
mkdir -p /data/server /data/s3
chmod 0700 /data/server /data/s3
cat > /tmp/s3.yaml <<YAML
listen: 0.0.0.0:9000
data_dir: /data/s3
log_level: warn
YAML
if [ ! -f /data/s3/keys.json ]; then
  lightningstor --config /tmp/s3.yaml keys create powerloss > /tmp/key || fatal "keys create"
  echo "PL-S3-KEY $(sed -n 's/^access_key_id: //p' /tmp/key) $(sed -n 's/^secret_access_key: //p' /tmp/key)"
fi
# Plain HTTP on purpose: the listeners are reached only through QEMU's loopback port forwards.
photon-server --data-dir /data/server --listen 0.0.0.0:8080 --grpc-listen 127.0.0.1:8081 \
  --tls off --log-level warn &
SERVER=$!
lightningstor --config /tmp/s3.yaml &
S3=$!
i=0
until wget -q -O /dev/null http://127.0.0.1:8080/healthz 2>/dev/null &&
  wget -q -O /dev/null http://127.0.0.1:9000/healthz 2>/dev/null; do
  [ $i -lt 600 ] || fatal "daemons did not answer /healthz in 60 s"
  kill -0 $SERVER 2>/dev/null || fatal "photon-server exited"
  kill -0 $S3 2>/dev/null || fatal "lightningstor exited"
  sleep 0.1
  i=$((i + 1))
done
echo "PL-ADMIN-TOKEN $(cat /data/server/admin.token)"
echo "PL-READY"
wait $SERVER
echo "PL-EXIT photon-server $?"
wait $S3
echo "PL-EXIT lightningstor $?"
EOF
chmod 0755 "$STAGE/init"

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
cp "$KERNEL" "$OUT/vmlinuz.tmp" && mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
(cd "$STAGE" && find . | sort | "$BUSYBOX" cpio -o -H newc 2>/dev/null > "$OUT/initrd.img.tmp")
mv "$OUT/initrd.img.tmp" "$OUT/initrd.img"
chmod 0644 "$OUT/vmlinuz" "$OUT/initrd.img"
echo "make-powerloss-image: kernel $KVER, initramfs $(du -h "$OUT/initrd.img" | cut -f1) -> $OUT"
