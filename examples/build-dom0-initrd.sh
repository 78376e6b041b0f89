#!/usr/bin/env bash
# Builds the RAM-root boot image of a diskless Xen hardware node (a PV dom0), as root, from the
# Debian packages installed on this machine:
#   examples/build-dom0-initrd.sh [KERNEL_VERSION]
# Result: /var/cache/cloudctl/dom0-initrd-VERSION-KEY.img (gzip'd newc initramfs) and the same
# tree as a root image for the shared storage, /var/cache/cloudctl/dom0-root-VERSION-KEY.squashfs
# (`cloudctl image push` it into the instance store and name it as a profile's `root`; the
# profile's initrd is then the storage client image of examples/build-snode-initrd.sh, which
# attaches the storage and switches to this root). Both are written to temp files and renamed so
# a cache file is always whole; KEY changes with this script and with the packages' versions,
# and a second run reuses the cache. The profile that boots it names
# /boot/vmlinuz-VERSION as its kernel and /boot/xen-4.17-amd64.gz as its `xen` (pxelinux's
# mboot.c32 loads Xen, the kernel and this image); `cloudctl hnode boot` appends the node's
# overlay (hostname, address, pinned host key).
#
# The image holds the Xen toolstack a dom0 needs to answer `xl info` and run PV guests (xl,
# xenstored, xen-init-dom0, xenconsoled and their libraries, the xenfs/evtchn/privcmd/gntdev
# drivers), the lab VMs' NIC driver (e1000), dropbear as sshd, and busybox for the rest; and
# what a node whose root is on the storage calls once booted: mdadm and aoetools (to return a
# storage path that was down), blkid and the OCFS2 tools (the instance store).
#
# For guests: the block and network back ends (xen-blkback, xen-netback, bridge, loop; ext4 to
# write a new guest's identity into its disk), Xen's
# two hotplug scripts as small sh programs (Debian's need bash and more: `block` puts a disk
# file on a loop device, `vif-bridge` puts the guest's vif on its bridge), the OpenSSH client
# `xl migrate` sends through, and the tools `cloudctl instance create` runs there (util-linux's
# losetup/mount, e2fsprogs, GNU cp/truncate/install).
set -euo pipefail
packages="dash busybox-static dropbear-bin xen-utils-4.17 xenstore-utils xen-hypervisor-4.17-amd64 kmod squashfs-tools mdadm aoetools
  ocfs2-tools util-linux mount e2fsprogs coreutils openssh-client findutils sed tar gzip"
modules="e1000 xen-evtchn xen-privcmd xenfs xen-gntdev xen-gntalloc xen-blkback xen-netback llc stp bridge loop
  crc16 mbcache jbd2 crc32c_generic ext4"
xenbin=/usr/lib/xen-4.17/bin
binaries="/usr/bin/dash /usr/sbin/dropbear $xenbin/xl $xenbin/xenstored $xenbin/xen-init-dom0 $xenbin/xenconsoled $xenbin/libxl-save-helper
  /sbin/mdadm /sbin/blkid /sbin/mount.ocfs2 /sbin/tunefs.ocfs2 /sbin/o2cb /sbin/ocfs2_hb_ctl
  /usr/bin/xenstore-read /usr/bin/xenstore-write /usr/bin/xenstore-rm /usr/bin/ssh
  /sbin/losetup /bin/mount /bin/umount /bin/mountpoint /sbin/mke2fs /sbin/e2fsck /sbin/resize2fs /usr/bin/truncate /usr/bin/install
  /usr/bin/flock /usr/bin/sha256sum /usr/bin/stat /usr/bin/mv /usr/bin/cp /usr/bin/rm /usr/bin/chmod /usr/bin/chown
  /usr/bin/mktemp /usr/bin/base64 /usr/bin/tar /usr/bin/gzip /usr/bin/xargs /usr/bin/find /usr/bin/sed"
# (GNU tools where cloudctl's file steps, image receiver and instance create use options busybox
# lacks, such as `sha256sum -c --strict`, `mv -t`, `cp --sparse`, and util-linux's flock.)

[ "$(id -u)" = 0 ] || { echo "$0: run as root (it writes /var/cache/cloudctl)" >&2; exit 2; }
version=${1:-$(find /boot -maxdepth 1 -name 'vmlinuz-*' | sed 's|.*/vmlinuz-||' | sort -V | tail -n1)}
if [ -z "$version" ] || [ ! -f "/boot/vmlinuz-$version" ] || [ ! -d "/lib/modules/$version" ]; then
    echo "$0: no kernel ${version:-in /boot}: install linux-image-amd64 (or name an installed version)" >&2
    exit 2
fi
missing=
for p in $packages; do
    dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing="$missing $p"
done
[ -z "$missing" ] || { echo "$0: install these Debian packages first: apt-get install$missing" >&2; exit 2; }

cache=/var/cache/cloudctl
# shellcheck disable=SC2086 # $packages is a list of words
key=$( { cat "$0"; dpkg-query -W $packages "linux-image-$version"; } | sha256sum | cut -c1-12)
out="$cache/dom0-initrd-$version-$key.img"
squash="$cache/dom0-root-$version-$key.squashfs"
if [ -s "$out" ] && [ -s "$squash" ]; then
    echo "cached: $out"
    echo "root: $squash"
    exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"/bin "$root"/sbin "$root"/etc/xen "$root"/etc/dropbear "$root"/etc/cloudctl "$root"/root/.ssh \
    "$root"/var/lib/xen "$root"/var/lib/xenstored "$root"/var/log/xen/console "$root"/proc "$root"/sys "$root"/dev "$root"/run "$root"/tmp
chmod 1777 "$root/tmp"
# The Xen daemons keep their sockets and pid files under /var/run.
ln -s /run "$root/var/run"
chmod 700 "$root/root" "$root/root/.ssh"

# Copies a file to the same path in the image, following symlinks.
put() {
    mkdir -p "$root$(dirname "$1")"
    cp -L "$1" "$root$1"
}
for b in $binaries; do
    put "$b"
    { ldd "$b" 2>/dev/null || true; } | { grep -o '/[^ ]*' || true; } | while read -r lib; do put "$lib"; done
done
# xl cancels threads, which glibc does through libgcc_s (loaded at run time, so ldd misses it).
put "$(find /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu -maxdepth 1 -name 'libgcc_s.so.1' | head -n1)"
# aoetools are shell scripts plus small binaries.
for f in $(dpkg -L aoetools | grep -E '^/s?bin/|^/usr/s?bin/'); do [ -f "$f" ] && put "$f"; done
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
# /bin/sh is dash: busybox's own shell runs its applets in preference to the real programs
# above (GNU sha256sum, mv, cp ...), whatever PATH says.
ln -sf /usr/bin/dash "$root/bin/sh"
# On the PATH of an SSH session (dropbear's is /usr/bin:/bin), as Debian's wrappers put them.
for tool in xl xenstored xenconsoled; do ln -s "$xenbin/$tool" "$root/bin/$tool"; done
ln -s /sbin/mke2fs "$root/bin/mkfs.ext4"
for tool in /sbin/mdadm /sbin/blkid /sbin/mount.ocfs2 /sbin/tunefs.ocfs2 /sbin/o2cb /sbin/losetup /sbin/mke2fs /sbin/e2fsck /sbin/resize2fs /usr/sbin/aoe-*; do
    [ -e "$root/bin/${tool##*/}" ] || ln -s "$tool" "$root/bin/${tool##*/}"
done
cp /etc/xen/xl.conf "$root/etc/xen/"
mkdir -p "$root/etc/xen/scripts"
cat > "$root/etc/xen/scripts/block" <<'EOF'
#!/bin/sh
# Xen's hotplug call for a guest disk, `block add|remove`, XENBUS_PATH in the environment: a
# disk file goes on a loop device (direct I/O where the filesystem allows it: the store is
# shared, and the guest's writes should reach it, not sit in this node's page cache), a block
# device is used as it is; blkback is told which one.
PATH=/sbin:/usr/sbin:/bin:/usr/bin
case "$1" in
add)
    [ -n "$(xenstore-read "$XENBUS_PATH/physical-device" 2>/dev/null)" ] && exit 0
    p=$(xenstore-read "$XENBUS_PATH/params") || exit 1
    if [ -b "$p" ]; then
        dev=$p
    elif [ -f "$p" ]; then
        dev=$(losetup --find --show --direct-io=on "$p" 2>/dev/null || losetup --find --show "$p") || {
            xenstore-write "$XENBUS_PATH/hotplug-error" "cannot put $p on a loop device"
            exit 1
        }
    else
        xenstore-write "$XENBUS_PATH/hotplug-error" "$p is neither a file nor a block device"
        exit 1
    fi
    xenstore-write "$XENBUS_PATH/node" "$dev" \
        "$XENBUS_PATH/physical-device" "$(stat -L -c '%t:%T' "$dev")" \
        "$XENBUS_PATH/hotplug-status" connected
    ;;
remove)
    dev=$(xenstore-read "$XENBUS_PATH/node" 2>/dev/null)
    case "$dev" in /dev/loop*) losetup -d "$dev" ;; esac
    ;;
esac
exit 0
EOF
cat > "$root/etc/xen/scripts/vif-bridge" <<'EOF'
#!/bin/sh
# Xen's hotplug call for a guest's network interface, `vif-bridge online|offline` (add|remove
# for an emulated one), the interface in $vif, XENBUS_PATH in the environment: the vif joins
# the bridge named in the guest's config, with the bridge's MTU.
PATH=/sbin:/usr/sbin:/bin:/usr/bin
case "$1" in
online|add)
    bridge=$(xenstore-read "$XENBUS_PATH/bridge" 2>/dev/null || echo br0)
    [ -d "/sys/class/net/$bridge/bridge" ] || {
        xenstore-write "$XENBUS_PATH/hotplug-error" "no bridge $bridge on this node"
        exit 1
    }
    ip link set dev "$vif" mtu "$(cat "/sys/class/net/$bridge/mtu")"
    [ -d "/sys/class/net/$bridge/brif/$vif" ] || brctl addif "$bridge" "$vif"
    ip link set dev "$vif" up
    xenstore-write "$XENBUS_PATH/hotplug-status" connected
    ;;
offline|remove)
    ip link set dev "$vif" down 2>/dev/null
    ;;
esac
exit 0
EOF
chmod 755 "$root/etc/xen/scripts/block" "$root/etc/xen/scripts/vif-bridge"

for m in $modules; do
    path=$(modinfo -k "$version" -n "$m") || { echo "$0: kernel $version has no module $m" >&2; exit 2; }
    case "$path" in /*) put "$path" ;; esac # a module built into the kernel needs nothing
done

printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\n' > "$root/etc/group"
printf '/bin/sh\n' > "$root/etc/shells"
printf '127.0.0.1 localhost\n' > "$root/etc/hosts"
# The OCFS2 tools read the mount table from /etc/mtab.
ln -s /proc/mounts "$root/etc/mtab"
cat > "$root/init" <<'EOF'
#!/bin/sh
# Boot of a Xen dom0: devices, the NIC and the address from cloudctl's overlay, the Xen drivers
# and daemons (xenstored first: nothing else in dom0 works without it), then sshd. As a RAM root
# it does it all; as the root from the shared storage, the boot image did part of it already.
# (busybox here has no `mountpoint`.)
mounted() { grep -q " $1 " /proc/mounts 2>/dev/null; }
mounted /proc || mount -t proc proc /proc
mounted /sys || mount -t sysfs sys /sys
mounted /dev || mount -t devtmpfs dev /dev
mkdir -p /dev/pts; mounted /dev/pts || mount -t devpts devpts /dev/pts
mounted /run || mount -t tmpfs tmpfs /run
mkdir -p /run/xen /run/xenstored
hostname "$(cat /etc/hostname 2>/dev/null || echo node)"
load() {
    [ -d "/sys/module/$(echo "$1" | tr - _)" ] && return 0
    insmod "$(find /lib/modules -name "$1.ko" | head -n1)" 2>/dev/null || echo "cloudctl boot: cannot load $1"
}
# Dependencies first: xenfs needs privcmd.
for m in e1000 xen-evtchn xen-privcmd xenfs xen-gntdev xen-gntalloc xen-blkback xen-netback llc stp bridge loop \
    crc16 mbcache jbd2 crc32c_generic ext4; do load "$m"; done
. /etc/cloudctl/node.conf
# cloudctl's overlay brings the network up as node.conf says (MTU, the guests' bridge).
/etc/cloudctl/network-up || echo "cloudctl boot: the network did not come up as node.conf says"
if [ "$(cat /sys/hypervisor/type 2>/dev/null)" = xen ]; then
    mount -t xenfs xenfs /proc/xen || echo "cloudctl boot: cannot mount xenfs"
    # Each needs the one before: without xenstored, xen-init-dom0 would wait for it forever.
    if ! xenstored --pid-file /run/xenstored.pid; then
        echo "cloudctl boot: xenstored did not start"
    elif ! /usr/lib/xen-4.17/bin/xen-init-dom0; then
        echo "cloudctl boot: xen-init-dom0 failed"
    else
        xenconsoled --log=guest --log-dir=/var/log/xen/console || echo "cloudctl boot: xenconsoled did not start"
    fi
else
    echo "cloudctl boot: not running on Xen (booted without the hypervisor?)"
fi
/etc/cloudctl/fetch-host-keys || echo "cloudctl boot: NO HOST KEYS"
echo "cloudctl boot: $(hostname) up at $IP (kernel $(uname -r), $(cat /sys/hypervisor/type 2>/dev/null || echo no) hypervisor)"
exec dropbear -F -E -s -r /etc/dropbear/dropbear_ed25519_host_key -p 22
EOF
chmod 755 "$root/init"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --reproducible) | gzip -6n > "$work/initrd.img"
mksquashfs "$root" "$work/root.squashfs" -comp gzip -all-root -noappend -quiet -no-progress
mv "$work/initrd.img" "$out"
mv "$work/root.squashfs" "$squash"
# Older builds of this kernel's images are superseded.
find "$cache" -maxdepth 1 -name "dom0-initrd-$version-*.img" ! -name "${out##*/}" -delete
find "$cache" -maxdepth 1 -name "dom0-root-$version-*.squashfs" ! -name "${squash##*/}" -delete
echo "built: $out ($(du -h "$out" | cut -f1))"
echo "root: $squash ($(du -h "$squash" | cut -f1))"
