#!/usr/bin/env bash
# Try cloudctl's main job for real on one Debian 12 machine, as root: the seed's cloud in a local
# lab. Three hosts (network namespaces with their own sshd: the ConfigNode and two hardware nodes
# for guests) and four QEMU machines on the lab's network:
#   1. `config init` makes the ConfigNode the cloud's DHCP/TFTP/PXE server;
#   2. two storage machines PXE-boot and `storage init` makes md RAID1 + DRBD primary/primary +
#      AoE exports of them;
#   3. two diskless hardware machines PXE-boot Xen (Debian's, rebuilt with shadow paging by
#      examples/build-xen-shadow.sh: a PV guest's live migration needs it) and attach that
#      storage as one md multipath device; the first formats the instance store on it (OCFS2,
#      mounted on both); the dom0 root image goes into the store (`image push`), and after a
#      power cycle both run Xen with their root read from the storage;
#   4. a Xen guest is created on hardware machine 1 from a golden image pushed into the store,
#      its disk a file of the OCFS2 store, and live-migrated to hardware machine 2 while the
#      ConfigNode pings it every 100 ms;
#   5. the seed's promise: while that guest writes checksummed blocks to its disk and the
#      ConfigNode pings it, a storage machine is switched off; the roots, the store and the
#      guest carry on through the other; it comes back by Wake-on-LAN, resyncs, and every block
#      the guest wrote reads back with its checksum;
#   6. the kvm backend's live migration: a guest on namespace hardware
#      node 1 (their store a shared folder) moves to hardware node 2 under the same ping.
# Prints the figures as it goes. The lab stays up afterwards; remove it with:
#   target/release/cloudctl lab down
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/install-deps
cargo build --release --locked
cloudctl="$PWD/target/release/cloudctl"
export CLOUDCTL_INVENTORY="$PWD/lab.toml"   # the same shape as examples/one-box.toml
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '\n==> %s\n' "$*"; }
# A string setting of the inventory (the first line `KEY = "..."`).
setting() { sed -n "s/^$1 = \"\(.*\)\"$/\\1/p" "$CLOUDCTL_INVENTORY" | head -n1; }
# The instance store: a folder every namespace host shares, and the OCFS2 mount of the machines.
store() { setting store; }
xen_guest=10.201.0.60
# A command in the Xen guest, over SSH from the ConfigNode's namespace (cl-lab-h1); the lab's
# client key and known_hosts ([ssh]) pin the guests' host keys too.
in_guest() {
    ip netns exec cl-lab-h1 ssh -i "$(setting identity)" -o UserKnownHostsFile="$(setting known_hosts)" \
        -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=10 "root@$xen_guest" "$@"
}
started=$SECONDS
seconds() { echo "$((SECONDS - $1)) s"; }

step "cloudctl lab up: 3 hosts and 4 machines (2 storage, 2 hardware) on bridge cllabbr (10.201.0.0/24)"
"$cloudctl" lab down >/dev/null 2>&1 || true   # a fresh lab on every run
"$cloudctl" lab up --hosts 3 --subnet 10.201.0.0/24 --vm snode --vm snode --vm hnode --vm hnode --vm-disk-mib 256
# shellcheck disable=SC2016 # expanded by each lab host's shell, not here
"$cloudctl" run --on confignode,hnode1,hnode2 -- 'echo "$(hostname): $(uname -sr)"'

step "Boot images: the storage machines' (md, DRBD, AoE), Xen's dom0 root for the hardware machines, and Xen with shadow paging"
snode=$(examples/build-snode-initrd.sh)
kernel=$(sed -n 's/^kernel: \([^ ]*\).*/\1/p' <<<"$snode")
initrd=$(sed -n 's/^\(built\|cached\): \([^ ]*\).*/\2/p' <<<"$snode")
root=$(examples/build-dom0-initrd.sh | sed -n 's/^root: \([^ ]*\).*/\1/p')
# Debian's Xen without the shadow paging a PV guest's live migration needs, rebuilt with it.
xen=$(examples/build-xen-shadow.sh | sed -n 's/^\(built\|cached\): \([^ ]*\).*/\2/p')
# shellcheck disable=SC2016 # $1..$3 are the ConfigNode shell's positional arguments
"$cloudctl" -q run --on confignode -- sh -c 'for p in snode hnode; do mkdir -p /srv/tftp/images/$p && cp "$1" /srv/tftp/images/$p/vmlinuz && cp "$2" /srv/tftp/images/$p/initrd.img; done && cp "$3" /srv/tftp/images/hnode/xen.gz' \
    sh "$kernel" "$initrd" "$xen"
# The hardware machines boot Xen (pxelinux's mboot.c32) with the storage client as their initrd
# and the dom0 image from the store as their root; the namespace hardware nodes keep kvm.
sed -i -e '/^\[profiles.hnode\]$/,/^append = /{s|^append = .*|xen = "/srv/tftp/images/hnode/xen.gz"\nxen_args = "console=com1 dom0_mem=384M"\nappend = "console=hvc0"\nroot = "dom0-root"|}' \
    -e '/^name = "hvm[12]"$/a hypervisor = "xen"' "$CLOUDCTL_INVENTORY"

step "cloudctl config init: dhcpd + tftpd + pxelinux on the ConfigNode"
"$cloudctl" --yes config init
"$cloudctl" node list

step "The storage: snode1 and snode2 PXE-boot (Wake-on-LAN), then md + DRBD + AoE on them"
t=$SECONDS
"$cloudctl" --yes node boot snode1
"$cloudctl" --yes node boot snode2 --wait 240
"$cloudctl" --yes node boot snode1 --power none --wait 240
"$cloudctl" --yes storage init
"$cloudctl" storage status || true   # the initial sync may still run
storage_up=$(seconds "$t")

step "The hardware machines: hvm1 and hvm2 PXE-boot Xen and attach the storage; hvm1 formats the store"
t=$SECONDS
# No root image in the store yet: they stay on the boot image's RAM root, where there is no xl,
# so the hypervisor check fails on this first boot (and says why).
"$cloudctl" --yes hnode boot hvm1
"$cloudctl" --yes hnode boot hvm2 --wait 300 || true
"$cloudctl" --yes hnode boot hvm1 --power none --wait 300 || true
# shellcheck disable=SC2016 # expanded on the hardware machines
"$cloudctl" run --on hvm1,hvm2 -- sh -c 'grep " $1 " /proc/mounts' sh "$(store)"

step "cloudctl image push: the dom0 root into the store, then both machines power-cycled onto it"
"$cloudctl" --yes image push "$root" dom0-root --via hvm1
for vm in hvm1 hvm2; do "$cloudctl" lab power-off "$vm"; done
t=$SECONDS
"$cloudctl" --yes hnode boot hvm1
"$cloudctl" --yes hnode boot hvm2 --wait 300
"$cloudctl" --yes hnode boot hvm1 --power none --wait 300
hnodes_up=$(seconds "$t")
"$cloudctl" run --on hvm1,hvm2 -- sh -c 'grep -E " / | /run/cloudctl/root/ro " /proc/mounts; xl info | grep -E "xen_version|free_memory"'

step "cloudctl instance create xg1 on hvm1: a Xen guest whose disk is a file of the OCFS2 store"
examples/build-tiny-guest.sh "$work/tiny.img"
guest=$(examples/build-xen-guest-initrd.sh)
"$cloudctl" --yes image push "$work/tiny.img" tiny --via hvm1
"$cloudctl" --yes image push "$(sed -n 's/^kernel: //p' <<<"$guest")" guest-kernel --via hvm1
"$cloudctl" --yes image push "$(sed -n 's/^\(built\|cached\): //p' <<<"$guest")" guest-initrd --via hvm1
# A guest boots its hardware node's /vmlinuz and /initrd.img ([instances]); on the Xen machines
# those are the PV guest kernel and initrd just pushed into the store.
# shellcheck disable=SC2016 # expanded on the hardware machines
"$cloudctl" -q run --on hvm1,hvm2 -- sh -c 'ln -sfn "$1/.images/guest-kernel" /vmlinuz && ln -sfn "$1/.images/guest-initrd" /initrd.img' sh "$(store)"
t=$SECONDS
"$cloudctl" --yes instance create xg1 --hnode hvm1 --copy tiny --ip "$xen_guest" --memory 128 --disk 64M --wait 300
xen_guest_up=$(seconds "$t")
# shellcheck disable=SC2016 # expanded on hvm1
"$cloudctl" run --on hvm1 -- sh -c 'xl list xg1 && xl block-list xg1 && losetup -a | grep xg1'

step "cloudctl instance migrate xg1 to hvm2, while the ConfigNode pings it every 100 ms"
# A migration's one-time key goes into [instances] authorized_keys on the target, one setting for
# the cloud: the lab's file is what its namespace sshds read, the Xen machines' dropbear reads
# root's own (the default), so the setting is left out while the Xen guest moves.
lab_keys=$(setting authorized_keys)
sed -i '/^authorized_keys = /d' "$CLOUDCTL_INVENTORY"
xen_pings="$work/xen-pings.txt"
ip netns exec cl-lab-h1 ping -n -i 0.1 -w 120 "$xen_guest" > "$xen_pings" 2>&1 &
xen_pinger=$!
sleep 2
"$cloudctl" --yes instance migrate xg1 --to hvm2
sleep 2
kill -INT "$xen_pinger"
wait "$xen_pinger" || true
xen_moved=$(grep 'packets transmitted' "$xen_pings")

step "The seed's promise: snode2 switched off under xg1 writing to its disk, and back; the ConfigNode pings xg1 every 100 ms"
writes=600   # 4 KiB + fsync each, 0.2 s apart: about three minutes
in_guest 'cat > /root/blocks.sh' < examples/guest-blocks.sh
in_guest "setsid sh /root/blocks.sh write $writes </dev/null >/dev/null 2>&1 &"
ip netns exec cl-lab-h1 ping -n -i 0.1 -w 900 "$xen_guest" > "$xen_pings" 2>&1 &
xen_pinger=$!
sleep 10
"$cloudctl" lab power-off snode2
t=$SECONDS
# Every binary of the Xen toolstack read afresh from the storage, and a file written to the store.
# shellcheck disable=SC2016 # expanded on the hardware machines
"$cloudctl" run --on hvm1,hvm2 -- sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches; cat /usr/lib/xen-4.17/bin/* > /dev/null && xl info > /dev/null && hostname > "$1/$(hostname)-while-snode2-was-off" && echo "root and store fine"' sh "$(store)"
through=$(seconds "$t")

t=$SECONDS
"$cloudctl" --yes node boot snode2 --wait 240
"$cloudctl" --yes storage init
until "$cloudctl" -q storage status >/dev/null 2>&1; do
    [ $((SECONDS - t)) -lt 300 ] || { echo "the storage did not resync within 300 s" >&2; exit 1; }
    sleep 5
done
"$cloudctl" storage status
"$cloudctl" run --on hvm1,hvm2 -- sh -c '/etc/cloudctl/attach-storage && mdadm --detail /dev/md/cloudctl-storage | grep -E "Active Devices|active sync"'
back=$(seconds "$t")
t=$SECONDS
until in_guest 'tail -n 1 /root/w.log' | grep -qx 'done'; do
    [ $((SECONDS - t)) -lt 300 ] || { echo "xg1's writer did not finish within 300 s" >&2; exit 1; }
    sleep 5
done
kill -INT "$xen_pinger"
wait "$xen_pinger" || true
verified=$(in_guest 'sync; echo 3 > /proc/sys/vm/drop_caches; sh /root/blocks.sh verify')
echo "xg1: $writes writes, $verified"
[ "${verified% longest-stall *}" = "verified $writes bad 0" ] || { echo "xg1 lost writes: $verified" >&2; exit 1; }
xen_lost=$(grep 'packets transmitted' "$xen_pings")

step "The kvm backend: web1 on namespace hardware node hnode1, from a golden image in their shared folder"
examples/build-tiny-guest.sh "$(store)/golden.img"
# Back to the lab's file for the namespace hardware nodes' migration key.
sed -i "/^\[instances\]$/a authorized_keys = \"$lab_keys\"" "$CLOUDCTL_INVENTORY"
"$cloudctl" --yes instance create web1 --hnode hnode1 --copy "$(store)/golden.img" --ip 10.201.0.50 --wait 150

step "cloudctl instance migrate web1 to hnode2, while the ConfigNode pings it every 100 ms"
pings="$work/pings.txt"
# cl-lab-h1 is the ConfigNode's network namespace.
ip netns exec cl-lab-h1 ping -n -i 0.1 -c 150 -W 1 10.201.0.50 > "$pings" 2>&1 &
pinger=$!
sleep 2
"$cloudctl" --yes instance migrate web1 --to hnode2
wait "$pinger" || true
lost=$(tail -n 2 "$pings" | head -n 1)

"$cloudctl" instance list

step "Done ($(seconds "$started") in all)"
echo "storage machines PXE-booted and md + DRBD + AoE made: $storage_up"
echo "hardware machines power-cycled onto Xen with their root on the storage: $hnodes_up"
echo "Xen guest xg1 created from the store's golden image, answering SSH with its pinned key: $xen_guest_up"
echo "xg1 live-migrated from hvm1 to hvm2 under ping: $xen_moved"
echo "snode2 off: both roots read afresh and the store written in $through"
echo "snode2 back, resynced, paths returned: $back"
echo "xg1 through snode2's loss and return: $writes writes; read back: $verified; pings: $xen_lost"
echo "web1 (kvm) migrated from namespace hnode1 to hnode2 under ping: $lost"
echo
echo "The lab is still up (inventory $CLOUDCTL_INVENTORY):"
echo "  export CLOUDCTL_INVENTORY=$CLOUDCTL_INVENTORY"
echo "  $cloudctl storage status"
echo "  $cloudctl instance list"
echo "  $cloudctl run --on hvm1 -- xl list"
echo "  $cloudctl instance migrate web1 --to hnode1"
echo "  $cloudctl lab down"
