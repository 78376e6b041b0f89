#!/bin/sh
# keepalived's check that this ConfigNode serves PXE boots: something listens on the DHCP server
# port (67) and on the TFTP port (69) in this machine's network stack. While it fails, this
# ConfigNode's VRRP priority drops below its peer's, so the floating address (the next-server)
# moves to the one that serves. `ss` reads the sockets of this network namespace only: the check
# is right on a real machine and on a lab host sharing its kernel with others.
for port in 67 69; do
    [ -n "$(ss -Hlun "sport = :$port")" ] || exit 1
done
