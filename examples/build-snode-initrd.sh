#!/usr/bin/env bash
# Builds the RAM-root boot image of a network-booted storage node, as root, from the Debian
# packages installed on this machine:
#   examples/build-snode-initrd.sh [KERNEL_VERSION]
# Result: /var/cache/cloudctl/snode-initrd-VERSION-KEY.img (gzip'd newc initramfs) and
# /var/cache/cloudctl/snode-vmlinuz-VERSION, written to temp files and renamed so a cache file is
# always whole; KEY changes with this script and with the packages' versions, and a second run
# reuses the cache. Copy both to the ConfigNode's tftp_root as the snode profile's kernel and
# initrd; `cloudctl node boot` appends the node's overlay (hostname, addresses, pinned host key).
#
# The image holds: the kernel modules md, DRBD and AoE need (md-mod, raid1, multipath, drbd,
# lru_cache, libcrc32c, crc32c_generic, aoe) and the NIC/disk drivers of the lab's VMs (e1000,
# virtio_net, virtio_blk); mdadm, drbd-utils, vblade, aoetools; dropbear as sshd; and what
# cloudctl's remote scripts call (dash as sh, busybox for coreutils, blkid/wipefs/flock from util-linux,
# dpkg-query and start-stop-daemon from dpkg, a `service` that runs /etc/init.d scripts), and
# busybox acpid, so that the power button (a BMC's soft power-off, IPMI `chassis power soft`)
# shuts the node down cleanly.
# It also serves the lab's diskless storage clients: AoE + md multipath are the client side too,
# with OCFS2 (ocfs2-tools, the o2cb modules) for the instance store, and squashfs, loop and
# overlay for a hardware node whose profile takes its root from the store: its /init runs
# cloudctl's /etc/cloudctl/root-from-storage and switches to that root when it is there.
# And the lab's web machines (LAMP): their profile's `append` says `cloudctl.root=hostfs`, and
# /init then makes their root this machine's own Debian, shared read-only by QEMU over virtio-9p
# (tag `hostroot`) under a RAM layer: a machine with Apache, PHP, MariaDB, drbd-utils and
# ocfs2-tools installed, as the seed's web servers are, without installing Debian into a disk
# image (/etc/cloudctl/root-from-host below).
set -euo pipefail
packages="dash busybox-static dropbear-bin mdadm drbd-utils vblade aoetools util-linux dpkg kmod ocfs2-tools"
modules="e1000 virtio_net virtio_pci virtio_blk crc32c_generic lru_cache libcrc32c drbd aoe md-mod raid1 multipath button evdev
  configfs ocfs2 ocfs2_stack_o2cb ocfs2_dlmfs squashfs loop overlay bridge 9pnet_virtio 9p"
# Single binaries to copy (with the libraries they load); busybox provides everything else.
binaries="/usr/bin/dash /usr/sbin/dropbear /usr/sbin/mdadm /usr/sbin/drbdadm /usr/sbin/drbdsetup /usr/sbin/drbdmeta
  /usr/lib/drbd/drbdadm-84 /usr/lib/drbd/drbdsetup-84 /usr/sbin/vblade /usr/sbin/blkid /usr/sbin/wipefs
  /usr/bin/flock /usr/bin/dpkg-query /usr/sbin/start-stop-daemon
  /usr/bin/sha256sum /usr/bin/stat /usr/bin/mv /usr/bin/cp /usr/bin/rm /usr/bin/chmod /usr/bin/chown
  /usr/bin/mktemp /usr/bin/base64 /usr/bin/tar /usr/bin/gzip /usr/bin/xargs /usr/bin/find /usr/bin/sed
  /usr/sbin/mkfs.ocfs2 /usr/sbin/tunefs.ocfs2 /usr/sbin/mount.ocfs2 /usr/sbin/o2cb /usr/sbin/ocfs2_hb_ctl"
# (The GNU tools on the last two lines: cloudctl's batched file steps use options busybox lacks,
# such as `sha256sum -c --strict` and `mv -t`.)

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
out="$cache/snode-initrd-$version-$key.img"
kernel="$cache/snode-vmlinuz-$version"
if [ -s "$out" ] && [ -s "$kernel" ]; then
    echo "cached: $out"
    echo "kernel: $kernel"
    exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/root"
# A merged-/usr tree, as Debian 12 installs: /bin, /sbin and /lib point into /usr.
mkdir -p "$root"/usr/bin "$root"/usr/sbin "$root"/usr/lib "$root"/usr/lib64
for d in bin sbin lib lib64; do ln -s "usr/$d" "$root/$d"; done

# Copies a file to its merged-/usr path in the image, following symlinks.
put() {
    local src=$1 dest=${1#/}
    case "$dest" in bin/* | sbin/* | lib/* | lib64/*) dest="usr/$dest" ;; esac
    mkdir -p "$root/$(dirname "$dest")"
    cp -L "$src" "$root/$dest"
}
for b in $binaries /usr/bin/busybox; do
    put "$b"
    # A static binary (busybox) has no libraries: ldd fails for it.
    { ldd "$b" 2>/dev/null || true; } | { grep -o '/[^ ]*' || true; } | while read -r lib; do put "$lib"; done
done
# busybox applets for everything no real binary above provides.
/usr/bin/busybox --list-full | while read -r applet; do
    dest="$root/usr/${applet#usr/}"
    [ -e "$dest" ] || { mkdir -p "$(dirname "$dest")"; ln -s /usr/bin/busybox "$dest"; }
done
# /bin/sh is dash: busybox's own shell runs its applets in preference to the real programs
# above (its start-stop-daemon has no --status, its blkid no -p).
ln -sf dash "$root/usr/bin/sh"
# aoetools are shell scripts plus small binaries.
for f in $(dpkg -L aoetools | grep -E '^/s?bin/|^/usr/s?bin/'); do [ -f "$f" ] && put "$f"; done

# Kernel modules and the modules they depend on, then modules.dep for modprobe.
moddir="/lib/modules/$version"
add_module() {
    local path dep
    path=$(modinfo -k "$version" -n "$1") || { echo "$0: kernel $version has no module $1" >&2; exit 2; }
    case "$path" in /*) ;; *) return 0 ;; esac # built into the kernel
    [ -e "$root/usr$path" ] && return 0
    put "$path"
    for dep in $(modinfo -k "$version" -F depends "$1" | tr ',' ' '); do add_module "$dep"; done
}
for m in $modules; do add_module "$m"; done
cp "$moddir/modules.order" "$moddir/modules.builtin" "$moddir/modules.builtin.modinfo" "$root/usr$moddir/"
depmod -b "$root" "$version"

# Which Debian packages (and versions) the image was built from, as dpkg-query reports them.
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
for p in $packages; do dpkg-query -s "$p"; echo; done > "$root/var/lib/dpkg/status"
: > "$root/var/lib/dpkg/available"

mkdir -p "$root"/usr/local/sbin "$root"/usr/local/bin "$root"/etc/default "$root"/etc/init.d "$root"/etc/drbd.d "$root"/etc/mdadm "$root"/etc/cloudctl "$root"/etc/dropbear \
    "$root"/root/.ssh "$root"/var/lib/drbd "$root"/var/lib/cloudctl "$root"/proc "$root"/sys "$root"/dev \
    "$root"/run "$root"/tmp
ln -s /run "$root/var/run"
ln -s /run/lock "$root/var/lock"
chmod 1777 "$root/tmp"
# cloudctl refuses a state folder others could write into (it keeps markers and backups there).
chmod 700 "$root/var/lib/cloudctl"
chmod 700 "$root/root" "$root/root/.ssh"
printf 'root:x:0:0:root:/root:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\ntftp:x:50:\n' > "$root/etc/group"
printf '/bin/sh\n' > "$root/etc/shells"
printf '127.0.0.1 localhost\n' > "$root/etc/hosts"
# The OCFS2 tools read the mount table from /etc/mtab.
ln -s /proc/mounts "$root/etc/mtab"
# No usage reporting to drbd.org: the node has no route out, and must not try.
printf 'global { usage-count no; }\ninclude "drbd.d/*.res";\n' > "$root/etc/drbd.conf"

cat > "$root/usr/sbin/service" <<'EOF'
#!/bin/sh
# service NAME ACTION: what Debian's `service` does without systemd.
[ -x "/etc/init.d/$1" ] || { echo "service: no such service: $1" >&2; exit 1; }
exec "/etc/init.d/$1" "$2"
EOF
cat > "$root/usr/sbin/update-rc.d" <<'EOF'
#!/bin/sh
# update-rc.d NAME defaults: enable an init script for runlevel 2 (this RAM root forgets it at
# power-off; cloudctl storage init enables it again).
[ "$2" = defaults ] || { echo "update-rc.d: only 'NAME defaults' is supported here" >&2; exit 1; }
mkdir -p /etc/rc2.d && ln -sf "../init.d/$1" "/etc/rc2.d/S20$1"
EOF
cat > "$root/etc/inittab" <<'EOF'
::sysinit:/etc/cloudctl/boot
::respawn:/usr/sbin/dropbear -F -E -s -r /etc/dropbear/dropbear_ed25519_host_key -p 22
::ctrlaltdel:/bin/reboot -f
::shutdown:/bin/sync
EOF
cat > "$root/etc/cloudctl/boot" <<'EOF'
#!/bin/sh
# Boot of a RAM-root node: devices, drivers, the address from cloudctl's overlay, then sshd.
# (A node that tried to take its root from the storage and could not has done part of this.)
# (busybox here has no `mountpoint`.)
mounted() { grep -q " $1 " /proc/mounts 2>/dev/null; }
mounted /proc || mount -t proc proc /proc
mounted /sys || mount -t sysfs sys /sys
mounted /dev || mount -t devtmpfs dev /dev
mkdir -p /dev/pts; mounted /dev/pts || mount -t devpts devpts /dev/pts
mounted /run || mount -t tmpfs tmpfs /run; mkdir -p /run/lock
hostname "$(cat /etc/hostname 2>/dev/null || echo node)"
for m in e1000 virtio_net virtio_pci virtio_blk crc32c_generic drbd aoe md-mod raid1 multipath button evdev; do
    modprobe "$m" || echo "cloudctl boot: cannot load module $m"
done
# The power button (ACPI, through evdev) runs /etc/acpi/PWRF/00000080: a clean poweroff.
acpid -l /run/acpid.log -p /run/acpid.pid || echo "cloudctl boot: acpid did not start (the power button does nothing)"
. /etc/cloudctl/node.conf
# cloudctl's overlay brings the network up as node.conf says (MTU, a hardware node's bridge).
/etc/cloudctl/network-up || echo "cloudctl boot: the network did not come up as node.conf says"
# The private host key comes from the ConfigNode's key server (cloudctl's overlay says where),
# before sshd starts; an older overlay carries it itself.
if [ -x /etc/cloudctl/fetch-host-keys ]; then /etc/cloudctl/fetch-host-keys || echo "cloudctl boot: NO HOST KEYS"; fi
for s in /etc/rc2.d/S*; do [ -x "$s" ] && "$s" start; done
echo "cloudctl boot: $(hostname) up at $IP (kernel $(uname -r))"
EOF
mkdir -p "$root/etc/acpi/PWRF"
printf '#!/bin/sh\n# The power button was pressed (a BMC soft power-off): shut down cleanly.\nexec poweroff\n' > "$root/etc/acpi/PWRF/00000080"
chmod 755 "$root/usr/sbin/service" "$root/usr/sbin/update-rc.d" "$root/etc/cloudctl/boot" "$root/etc/acpi/PWRF/00000080"
cat > "$root/etc/cloudctl/root-from-host" <<'EOF'
#!/bin/sh
# root-from-host NEWROOT: a lab web machine's root (profile append `cloudctl.root=hostfs`). The
# lower layer is the lab machine's own / over virtio-9p, read-only; whatever the node writes goes
# to RAM and is gone at power-off. /root, /tmp and /run start empty, so the lab machine's own
# home and runtime state are not what the node sees. Not a sandbox: root in the VM can mount the
# share again and read the lab machine's files (never write them); it is a lab for your tests.
set -u
new=$1
mkdir -p /host /rw "$new"
for m in virtio_pci 9pnet_virtio 9p overlay; do modprobe "$m" || exit 1; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /host || exit 1
mount -t tmpfs -o mode=755 rw /rw && mkdir -p /rw/upper /rw/work || exit 1
mount -t overlay -o lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work overlay "$new" || exit 1
mount -t tmpfs -o mode=700 root "$new/root"
mount -t tmpfs -o mode=1777 tmp "$new/tmp"
mount -t tmpfs -o mode=755 run "$new/run"
# cloudctl's overlay (name, addresses, key fetcher, authorized key) goes over the installed system.
mkdir -p "$new/etc/cloudctl" "$new/root/.ssh" "$new/etc/dropbear" "$new/etc/acpi/PWRF"
cp -a /etc/cloudctl/. "$new/etc/cloudctl/"
cp /etc/hostname "$new/etc/hostname"
cp /etc/ssh/ssh_host_ed25519_key.pub "$new/etc/ssh/"
cp /root/.ssh/authorized_keys "$new/root/.ssh/" && chmod 700 "$new/root/.ssh"
printf '%s\n' '::sysinit:/etc/cloudctl/hostfs-boot' \
    '::respawn:/usr/sbin/dropbear -F -E -s -r /etc/dropbear/dropbear_ed25519_host_key -p 22' \
    '::ctrlaltdel:/bin/busybox reboot -f' '::shutdown:/bin/sync' > "$new/etc/inittab"
printf '#!/bin/sh\nexec busybox poweroff\n' > "$new/etc/acpi/PWRF/00000080"
chmod 755 "$new/etc/acpi/PWRF/00000080"
for d in proc sys dev; do mount --move "/$d" "$new/$d"; done
EOF
cat > "$root/etc/cloudctl/hostfs-boot" <<'EOF'
#!/bin/sh
# Boot of a lab web machine on the lab machine's Debian (root-from-host), run by busybox init
# before dropbear. No rc2.d: the lab machine's own services must not start here; what the node
# runs, cloudctl deploys. Applets the installed system lacks (brctl, acpid) come from busybox.
mkdir -p /run/busybox /run/lock /dev/pts /dev/shm
for a in $(busybox --list); do command -v "$a" >/dev/null 2>&1 || ln -sf /bin/busybox "/run/busybox/$a"; done
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:/run/busybox"
mount -t devpts devpts /dev/pts
mount -t tmpfs shm /dev/shm
hostname "$(cat /etc/hostname)"
for m in e1000 virtio_net virtio_blk button evdev; do modprobe "$m" || echo "cloudctl boot: cannot load module $m"; done
acpid -l /run/acpid.log -p /run/acpid.pid || echo "cloudctl boot: acpid did not start (the power button does nothing)"
# shellcheck source=/dev/null
. /etc/cloudctl/node.conf
/etc/cloudctl/network-up || echo "cloudctl boot: the network did not come up as node.conf says"
# The lab's cross-over cable (QEMU's second NIC, wired to the other web machine only), as an
# administrator would have set it up: eth1 at 192.168.100.N, N the last number of the node's
# address, jumbo frames for DRBD.
if ip link show eth1 >/dev/null 2>&1; then
    ip link set eth1 mtu 9000 up
    ip addr add "192.168.100.${IP##*.}/24" dev eth1
fi
/etc/cloudctl/fetch-host-keys || echo "cloudctl boot: NO HOST KEYS"
echo "cloudctl boot: $(hostname) up at $IP on the lab machine's Debian (kernel $(uname -r))"
EOF
chmod 755 "$root/etc/cloudctl/root-from-host" "$root/etc/cloudctl/hostfs-boot"
cat > "$root/init" <<'EOF'
#!/bin/sh
# A node whose profile takes its root from the shared storage switches to it (cloudctl's overlay
# brings root-from-storage); a lab web machine to the lab machine's Debian (root-from-host); any
# other node, or one that cannot, boots this RAM root.
if [ -x /etc/cloudctl/root-from-storage ] && /etc/cloudctl/root-from-storage /newroot; then
    init=/sbin/init
    [ -x /newroot/init ] && init=/init
    exec switch_root /newroot "$init"
fi
mount -t proc proc /proc
if grep -qw cloudctl.root=hostfs /proc/cmdline; then
    mount -t sysfs sys /sys
    mount -t devtmpfs dev /dev
    /etc/cloudctl/root-from-host /newroot && exec switch_root /newroot /bin/busybox init
    echo "cloudctl: no root from the lab machine (virtio-9p tag hostroot); booting the RAM root" >&2
fi
exec /bin/busybox init
EOF
chmod 755 "$root/init"

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet --reproducible) | gzip -9n > "$work/initrd.img"
cp "/boot/vmlinuz-$version" "$work/vmlinuz"
mv "$work/vmlinuz" "$kernel"
mv "$work/initrd.img" "$out"
# Older builds of this kernel's image are superseded.
find "$cache" -maxdepth 1 -name "snode-initrd-$version-*.img" ! -name "${out##*/}" -delete
echo "built: $out ($(du -h "$out" | cut -f1))"
echo "kernel: $kernel"
