#!/usr/bin/env bash
# Builds the initrd of a small Xen PV guest whose root is its disk (/dev/xvda, e.g. a copy of
# examples/build-tiny-guest.sh's image), as root, from this machine's kernel:
#   examples/build-xen-guest-initrd.sh [KERNEL_VERSION]
# Result: /var/cache/cloudctl/xen-guest-initrd-VERSION-KEY.img (gzip'd newc initramfs), written
# to a temp file and renamed; KEY changes with this script and the kernel package, and a second
# run reuses the cache. It prints "built: PATH" (or "cached: PATH") and "kernel: PATH" (the
# kernel to boot it with). Debian's kernel has the Xen front ends and ext4 as modules, so the
# guest cannot mount its disk without them: the image loads xen-blkfront, xen-netfront (the
# guest's network, used once it is on its root) and ext4, waits for the root= device of the
# kernel command line, mounts it and switches to its /sbin/init. Name both in the inventory's
# [instances] kernel and initrd (e.g. pushed into the store with `cloudctl image push`).
set -euo pipefail
modules="xen-blkfront xen-netfront crc16 mbcache jbd2 crc32c_generic ext4"

[ "$(id -u)" = 0 ] || { echo "$0: run as root (it writes /var/cache/cloudctl)" >&2; exit 2; }
version=${1:-$(find /boot -maxdepth 1 -name 'vmlinuz-*' | sed 's|.*/vmlinuz-||' | sort -V | tail -n1)}
if [ -z "$version" ] || [ ! -f "/boot/vmlinuz-$version" ] || [ ! -d "/lib/modules/$version" ]; then
    echo "$0: no kernel ${version:-in /boot}: install linux-image-amd64 (or name an installed version)" >&2
    exit 2
fi
dpkg-query -W -f='${db:Status-Status}' busybox-static 2>/dev/null | grep -qx installed ||
    { echo "$0: install busybox-static first: apt-get install busybox-static" >&2; exit 2; }
cache=/var/cache/cloudctl
key=$( { cat "$0"; dpkg-query -W busybox-static "linux-image-$version"; } | sha256sum | cut -c1-12)
out="$cache/xen-guest-initrd-$version-$key.img"
if [ -s "$out" ]; then
    echo "cached: $out"
    echo "kernel: /boot/vmlinuz-$version"
    exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"/bin "$root"/lib/modules "$root"/proc "$root"/sys "$root"/dev "$root"/newroot
cp /bin/busybox "$root/bin/busybox"
for applet in sh mount umount insmod switch_root sleep cat echo mkdir; do ln -s busybox "$root/bin/$applet"; done
for m in $modules; do
    path=$(modinfo -k "$version" -n "$m") || { echo "$0: kernel $version has no module $m" >&2; exit 2; }
    case "$path" in /*) cp "$path" "$root/lib/modules/$m.ko" ;; esac # built in: nothing to load
done
cat > "$root/init" <<'EOF'
#!/bin/sh
# A Xen PV guest's first stage: the front ends and ext4, then the root= disk and its /sbin/init.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in xen-blkfront xen-netfront crc16 mbcache jbd2 crc32c_generic ext4; do
    [ -f "/lib/modules/$m.ko" ] && insmod "/lib/modules/$m.ko"
done
root=/dev/xvda
for word in $(cat /proc/cmdline); do
    case "$word" in root=*) root=${word#root=} ;; esac
done
i=0
while [ ! -b "$root" ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if mount -t ext4 -o rw "$root" /newroot; then
    umount /proc /sys /dev
    exec switch_root /newroot /sbin/init
fi
echo "guest initrd: cannot mount the root $root; a shell on the console"
exec sh
EOF
chmod 755 "$root/init"
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --reproducible) | gzip -6n > "$work/initrd.img"
mv "$work/initrd.img" "$out"
find "$cache" -maxdepth 1 -name "xen-guest-initrd-$version-*.img" ! -name "${out##*/}" -delete
echo "built: $out ($(du -h "$out" | cut -f1))"
echo "kernel: /boot/vmlinuz-$version"
