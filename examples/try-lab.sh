#!/usr/bin/env bash
# Try cloudctl's main job for real on one Debian 12 machine, as root: the seed's cloud in a local
# lab. Three hosts (network namespaces with their own sshd: the ConfigNode and two hardware nodes
# for guests) and four QEMU machines on the lab's network:
#   1. `config init` makes the ConfigNode the cloud's DHCP/TFTP/PXE server;
#   2. two storage machines PXE-boot and `storage init` makes md RAID1 + DRBD primary/primary +
#      AoE exports of them;
#   3. two diskless hardware machines PXE-boot Xen and attach that storage as one md multipath
#      device; the first formats the instance store on it (OCFS2, mounted on both); the dom0 root
#      image goes into the store (`image push`), and after a power cycle both run Xen with their
#      root read from the storage;
#   4. a storage machine is switched off: both roots and the store carry on through the other;
#      it comes back and resyncs;
#   5. a guest is created on hardware node 1 from a golden image, waited for until it answers SSH
#      with its pinned key, and live-migrated to hardware node 2 while the ConfigNode pings it
#      every 100 ms. These two hardware nodes are namespace hosts sharing a folder as their
#      store: Debian's Xen cannot live-migrate a guest (it is built without shadow paging), so
#      guests on the Xen machines, with their disks on the OCFS2 store, are created and started
#      by tests/it/hnode_root_e2e.rs but not moved (see the README).
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
# The instance store: a folder every namespace host shares, and the OCFS2 mount of the machines.
store() { sed -n 's/^store = "\(.*\)"$/\1/p' "$CLOUDCTL_INVENTORY"; }
started=$SECONDS
seconds() { echo "$((SECONDS - $1)) s"; }

step "cloudctl lab up: 3 hosts and 4 machines (2 storage, 2 hardware) on bridge cllabbr (10.201.0.0/24)"
"$cloudctl" lab down >/dev/null 2>&1 || true   # a fresh lab on every run
"$cloudctl" lab up --hosts 3 --subnet 10.201.0.0/24 --vm snode --vm snode --vm hnode --vm hnode
# shellcheck disable=SC2016 # expanded by each lab host's shell, not here
"$cloudctl" run --on confignode,hnode1,hnode2 -- 'echo "$(hostname): $(uname -sr)"'

step "Boot images: the storage machines' (md, DRBD, AoE), and Xen's dom0 root for the hardware machines"
snode=$(examples/build-snode-initrd.sh)
kernel=$(sed -n 's/^kernel: \([^ ]*\).*/\1/p' <<<"$snode")
initrd=$(sed -n 's/^\(built\|cached\): \([^ ]*\).*/\2/p' <<<"$snode")
root=$(examples/build-dom0-initrd.sh | sed -n 's/^root: \([^ ]*\).*/\1/p')
# shellcheck disable=SC2016 # $1..$3 are the ConfigNode shell's positional arguments
"$cloudctl" -q run --on confignode -- sh -c 'for p in snode hnode; do mkdir -p /srv/tftp/images/$p && cp "$1" /srv/tftp/images/$p/vmlinuz && cp "$2" /srv/tftp/images/$p/initrd.img; done && cp "$3" /srv/tftp/images/hnode/xen.gz' \
    sh "$kernel" "$initrd" /boot/xen-4.17-amd64.gz
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

step "snode2 switched off: both roots and the store carry on through snode1"
"$cloudctl" lab power-off snode2
t=$SECONDS
# Every binary of the Xen toolstack read afresh from the storage, and a file written to the store.
# shellcheck disable=SC2016 # expanded on the hardware machines
"$cloudctl" run --on hvm1,hvm2 -- sh -c 'sync; echo 3 > /proc/sys/vm/drop_caches; cat /usr/lib/xen-4.17/bin/* > /dev/null && xl info > /dev/null && hostname > "$1/$(hostname)-while-snode2-was-off" && echo "root and store fine"' sh "$(store)"
through=$(seconds "$t")

step "snode2 back: PXE, storage init (never forced), resync, both paths returned"
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

step "cloudctl instance create web1 on hnode1, from a golden image on the shared store"
examples/build-tiny-guest.sh "$(store)/golden.img"
"$cloudctl" --yes instance create web1 --hnode hnode1 --copy "$(store)/golden.img" --ip 10.201.0.50 --wait 150

step "cloudctl instance migrate web1 to hnode2, while the ConfigNode pings it every 100 ms"
pings="$work/pings.txt"
# cl-lab-h1 is the ConfigNode's network namespace.
ip netns exec cl-lab-h1 ping -n -i 0.1 -c 150 -W 1 10.201.0.50 > "$pings" 2>&1 &
pinger=$!
sleep 2
"$cloudctl" --yes instance migrate web1 --to hnode2
wait "$pinger" || true
"$cloudctl" instance list
lost=$(tail -n 2 "$pings" | head -n 1)

step "Done ($(seconds "$started") in all)"
echo "storage machines PXE-booted and md + DRBD + AoE made: $storage_up"
echo "hardware machines power-cycled onto Xen with their root on the storage: $hnodes_up"
echo "snode2 off: both roots read afresh and the store written in $through"
echo "snode2 back, resynced, paths returned: $back"
echo "web1 migrated from hnode1 to hnode2 under ping: $lost"
echo
echo "The lab is still up (inventory $CLOUDCTL_INVENTORY):"
echo "  export CLOUDCTL_INVENTORY=$CLOUDCTL_INVENTORY"
echo "  $cloudctl storage status"
echo "  $cloudctl run --on hvm1 -- xl info"
echo "  $cloudctl instance migrate web1 --to hnode1"
echo "  $cloudctl lab down"
