#!/usr/bin/env bash
# Try cloudctl's main job for real on one Debian 12 machine, as root: a local lab of 3 hosts
# (network namespaces with their own sshd: the ConfigNode and two hardware nodes), `config init`
# to make the first a DHCP/TFTP/PXE server, `node add` to register a machine by MAC and a real
# QEMU VM with that MAC PXE-booting the profile; then a guest created on hardware node 1 from a
# golden image, waited for until it answers SSH with its pinned key, and live-migrated to
# hardware node 2 while the ConfigNode pings it every 100 ms. Prints the figures as it goes.
# The lab (and the guest) stay up afterwards; remove them with: target/release/cloudctl lab down
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
"$cloudctl" lab down >/dev/null 2>&1 || true   # a fresh lab on every run
"$cloudctl" lab up --hosts 3
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

kill "$qemu_pid" 2>/dev/null || true
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=

step "cloudctl node remove demo-vm: it was a demonstration; guest commands ask every hardware node"
"$cloudctl" --yes node remove demo-vm

step "cloudctl instance create web1 on hnode1, from a golden image on the shared store"
store=$(sed -n 's/^store = "\(.*\)"$/\1/p' "$CLOUDCTL_INVENTORY")
examples/build-tiny-guest.sh "$store/golden.img"
"$cloudctl" --yes instance create web1 --hnode hnode1 --copy "$store/golden.img" --ip 10.201.0.50 --wait 150

step "cloudctl instance migrate web1 to hnode2, while the ConfigNode pings it every 100 ms"
pings="$work/pings.txt"
# cl-lab-h1 is the ConfigNode's network namespace.
ip netns exec cl-lab-h1 ping -n -i 0.1 -c 150 -W 1 10.201.0.50 > "$pings" 2>&1 &
pinger=$!
sleep 2
"$cloudctl" --yes instance migrate web1 --to hnode2
wait "$pinger" || true
"$cloudctl" instance list

step "Done: pings to web1 while it moved from hnode1 to hnode2:"
tail -n 2 "$pings"
echo
echo "The lab is still up (inventory $CLOUDCTL_INVENTORY):"
echo "  export CLOUDCTL_INVENTORY=$CLOUDCTL_INVENTORY"
echo "  $cloudctl run --on hnode -- ip -br addr"
echo "  $cloudctl instance migrate web1 --to hnode1"
echo "  $cloudctl lab down"
