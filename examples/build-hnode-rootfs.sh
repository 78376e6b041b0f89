#!/usr/bin/env bash
# Builds the root filesystem of a diskless hardware node with debootstrap, as root:
#   examples/build-hnode-rootfs.sh [kvm|xen] [SUITE] [MIRROR]
# The result is cached as /var/cache/cloudctl/hnode-rootfs-SUITE-HYPERVISOR-amd64.tar.gz (written
# to a temp file and renamed, so a cache file is always whole); a second run reuses it.
# It holds the hypervisor (QEMU/KVM or Xen dom0), the AoE and md tools that attach the storage
# (/etc/cloudctl/attach-storage from cloudctl's per-node overlay), and OpenSSH. Unpack it onto
# the node's root volume and copy its /boot/vmlinuz-* and /boot/initrd.img-* to the ConfigNode's
# tftp_root as the hnode profile's kernel and initrd (plus /boot/xen-*.gz for Xen).
set -euo pipefail
hypervisor=${1:-kvm}
suite=${2:-bookworm}
# Default mirror: the first one apt uses here (one-line or deb822 sources), else Debian's.
mirror=${3:-$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    sed -n 's|^deb \(http[^ ]*\) .*|\1|p; s|^URIs: *\(http[^ ]*\).*|\1|p' | head -n1 || true)}
mirror=${mirror:-http://deb.debian.org/debian}
case "$hypervisor" in
    kvm) hv_packages="qemu-system-x86,qemu-utils" ;;
    xen) hv_packages="xen-system-amd64,xen-utils-common" ;;
    *) echo "usage: $0 [kvm|xen] [SUITE] [MIRROR]" >&2; exit 2 ;;
esac
[ "$(id -u)" = 0 ] || { echo "$0: run as root (debootstrap needs it)" >&2; exit 2; }
command -v debootstrap >/dev/null || { echo "$0: install debootstrap first" >&2; exit 2; }
cache=/var/cache/cloudctl
out="$cache/hnode-rootfs-$suite-$hypervisor-amd64.tar.gz"
if [ -s "$out" ]; then
    echo "cached: $out"
    exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'umount -R "$work/root/proc" 2>/dev/null || true; rm -rf "$work"' EXIT
debootstrap --variant=minbase \
    --include="linux-image-amd64,initramfs-tools,openssh-server,iproute2,ifupdown,isc-dhcp-client,aoetools,mdadm,$hv_packages" \
    "$suite" "$work/root" "$mirror"
# The initramfs must reach the storage: AoE driver and md multipath, assembled before root mounts.
printf 'aoe\nmultipath\n' >> "$work/root/etc/initramfs-tools/modules"
mount -t proc proc "$work/root/proc"
chroot "$work/root" update-initramfs -u -k all
umount "$work/root/proc"
# Host keys come from cloudctl's per-node overlay, never from the image (one image, many nodes).
rm -f "$work/root"/etc/ssh/ssh_host_*
tar -C "$work/root" -czf "$work/rootfs.tar.gz" .
mv "$work/rootfs.tar.gz" "$out"
echo "built: $out ($(du -h "$out" | cut -f1))"
