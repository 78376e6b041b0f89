#!/bin/sh
# Written by cloudctl into a PXE-booted hardware node's overlay (/etc/cloudctl/network-up): brings
# up the node's network from /etc/cloudctl/node.conf. Run by every stage of the boot that needs
# the network (the storage client image before it attaches AoE, the dom0 root after it), so it
# changes only what is not yet so.
#   - MTU: jumbo frames when the inventory says so ([network] mtu), so AoE carries 8 KiB a frame.
#   - BRIDGE: the bridge the guests join ([instances] bridge). eth0 becomes its port and the
#     node's address moves to it, before AoE starts: AoE then never changes interface under a
#     mounted root. The bridge keeps eth0's MAC (the one the ConfigNode knows) and an MTU set by
#     hand, which a guest's smaller vif then does not lower.
set -u
# shellcheck source=/dev/null
. /etc/cloudctl/node.conf
i=0
while ! ip link show eth0 >/dev/null 2>&1 && [ "$i" -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
ip link set lo up
[ -n "${MTU:-}" ] && ip link set eth0 mtu "$MTU"
ip link set eth0 up
dev=eth0
if [ -n "${BRIDGE:-}" ]; then
	dev=$BRIDGE
	if [ ! -d "/sys/class/net/$BRIDGE/bridge" ]; then
		modprobe bridge 2>/dev/null
		brctl addbr "$BRIDGE" || { echo "network-up: cannot make bridge $BRIDGE" >&2; exit 1; }
		brctl stp "$BRIDGE" off
		brctl setfd "$BRIDGE" 0
		ip link set "$BRIDGE" address "$MAC"
	fi
	[ -n "${MTU:-}" ] && ip link set "$BRIDGE" mtu "$MTU"
	[ -d "/sys/class/net/$BRIDGE/brif/eth0" ] || brctl addif "$BRIDGE" eth0
	ip link set "$BRIDGE" up
	# The address moves from eth0 to the bridge (a RAM root may have set it on eth0).
	ip -4 addr show dev eth0 | grep -q " $IP/" && ip addr del "$IP/$PREFIX" dev eth0
fi
ip -4 addr show dev "$dev" | grep -q " $IP/" || ip addr add "$IP/$PREFIX" dev "$dev"
[ -n "${GATEWAY:-}" ] && ip route replace default via "$GATEWAY"
exit 0
