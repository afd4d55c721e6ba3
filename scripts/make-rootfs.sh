#!/usr/bin/env bash
# Builds a minimal container rootfs from Debian's busybox-static: /bin/busybox plus its applet
# links, the usual empty mount points and /etc/passwd. Used by the container example and tests.
#   scripts/make-rootfs.sh [DIR]            # default: /var/lib/photon/images/busybox-rootfs
#   scripts/make-rootfs.sh DIR --tar FILE   # also packs it as a .tar.gz rootfs
# examples/container.yaml names the default directory.
set -euo pipefail
DIR="${1:-/var/lib/photon/images/busybox-rootfs}"
TAR=""
if [ "${2:-}" = "--tar" ]; then TAR="${3:?--tar needs a file name}"; fi
BUSYBOX="$(command -v busybox || true)"
if [ -z "$BUSYBOX" ] || ! file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked'; then
  for b in /bin/busybox /usr/bin/busybox; do [ -x "$b" ] && BUSYBOX="$b" && break; done
fi
[ -x "$BUSYBOX" ] || { echo "busybox not found (apt-get install busybox-static)" >&2; exit 1; }
mkdir -p "$DIR"/{bin,sbin,etc,proc,sys,dev,tmp,root,var/log,usr/bin,usr/sbin}
install -m 0755 "$BUSYBOX" "$DIR/bin/busybox"
for applet in $("$DIR/bin/busybox" --list); do
  [ "$applet" = busybox ] && continue
  ln -sf busybox "$DIR/bin/$applet"
done
chmod 1777 "$DIR/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' > "$DIR/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$DIR/etc/group"
echo "rootfs ready in $DIR"
if [ -n "$TAR" ]; then
  tar -czf "$TAR" -C "$DIR" .
  echo "rootfs tarball in $TAR"
fi
