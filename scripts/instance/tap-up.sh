#!/bin/sh
# tap-up.sh TAP BRIDGE: the guest's host-side interface, on the bridge.
[ -d "/sys/class/net/$2/bridge" ] || { echo "bridge $2 does not exist on this node" >&2; exit 1; }
ip link show dev "$1" >/dev/null 2>&1 || ip tuntap add dev "$1" mode tap || exit 1
ip link set dev "$1" master "$2" up
