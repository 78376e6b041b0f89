#!/usr/bin/env bash
# Try cloudctl's main job for real on one Debian 12 machine, as root: a local lab of 3 hosts
# (network namespaces with their own sshd; the first is the ConfigNode), `config init` to make it
# a DHCP/TFTP/PXE server, `node add` to register a machine by MAC, and then a real QEMU VM with
# that MAC PXE-boots the profile's kernel and prints its kernel command line.
# The lab stays up afterwards; remove it with: target/release/cloudctl lab down
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/install-deps
cargo build --release --locked
cloudctl="$PWD/target/release/cloudctl"
export CLOUDCTL_INVENTORY="$PWD/lab.toml"   # the same inventory as examples/one-box.toml
work=$(mktemp -d)
tap=cllabdemo0
qemu_pid=
cleanup() {
    if [ -n "$qemu_pid" ]; then
        kill "$qemu_pid" 2>/dev/null || true
        wait "$qemu_pid" 2>/dev/null || true
    fi
    ip link del "$tap" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n==> %s\n' "$*"; }

step "cloudctl lab up: 3 real hosts on bridge cllabbr (10.201.0.0/24)"
"$cloudctl" lab status >/dev/null 2>&1 || "$cloudctl" lab up --hosts 3
# shellcheck disable=SC2016 # expanded by each lab host's shell, not here
"$cloudctl" run -- 'echo "$(hostname): $(uname -sr)"'

step "cloudctl config init: dhcpd + tftpd + pxelinux on the ConfigNode"
# A kernel and a tiny busybox initramfs that prints its command line, for the hnode profile.
mkdir -p "$work/root/bin"
cp /bin/busybox "$work/root/bin/"
# shellcheck disable=SC2016 # the VM's init expands it
printf '#!/bin/busybox sh\n/bin/busybox mkdir -p /proc\n/bin/busybox mount -t proc proc /proc\necho "KERNEL COMMAND LINE: $(/bin/busybox cat /proc/cmdline)"\n/bin/busybox poweroff -f\n' > "$work/root/init"
chmod +x "$work/root/init"
(cd "$work/root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initrd.img"
kernel=$(readlink -f /vmlinuz)   # Debian's link to the newest installed kernel
# shellcheck disable=SC2016 # $1 and $2 are the ConfigNode shell's positional arguments
"$cloudctl" -q run --on confignode -- sh -c 'mkdir -p /srv/tftp/images/hnode && cp "$1" /srv/tftp/images/hnode/vmlinuz && cp "$2" /srv/tftp/images/hnode/initrd.img' sh "$kernel" "$work/initrd.img"
"$cloudctl" --yes config init

step "cloudctl node add demo-vm --mac 52:54:00:de:00:01"
"$cloudctl" --yes node add demo-vm --mac 52:54:00:de:00:01
"$cloudctl" node list

step "A QEMU VM with that MAC PXE-boots from the ConfigNode (about 30 s under TCG)"
ip link del "$tap" 2>/dev/null || true   # left over from an interrupted run
ip tuntap add dev "$tap" mode tap
ip link set "$tap" master cllabbr up
qemu-system-x86_64 -accel tcg -m 256 -display none -no-reboot -serial "file:$work/console.log" \
    -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" \
    -device e1000,netdev=n0,mac=52:54:00:de:00:01,bootindex=1,romfile=/usr/lib/ipxe/qemu/pxe-e1000.rom &
qemu_pid=$!
for _ in $(seq 1 150); do
    grep -q 'KERNEL COMMAND LINE' "$work/console.log" 2>/dev/null && break
    sleep 1
done
grep 'KERNEL COMMAND LINE' "$work/console.log" || { echo "the VM did not boot within 150 s" >&2; exit 1; }

step "Done. The lab is still up (inventory $CLOUDCTL_INVENTORY):"
echo "  export CLOUDCTL_INVENTORY=$CLOUDCTL_INVENTORY"
echo "  $cloudctl run --on hnode -- ip -br addr"
echo "  $cloudctl lab down"
