#!/bin/sh
# dhcp-discover IFACE: sends one DHCPDISCOVER out of IFACE (broadcast flag set, from a locally
# administered MAC; no REQUEST ever follows, so no server hands out a lease) and prints
# `dhcp-server IP` for the server identifier of every offer that comes back within 3 s.
# Run by `cloudctl doctor` on the ConfigNode to find a second DHCP server on its network.
iface=$1
command -v socat >/dev/null 2>&1 || { echo "dhcp-unchecked socat is missing"; exit 0; }
pkt=$(mktemp) || exit 1
trap 'rm -f "$pkt"' EXIT
# One write, one datagram: socat sends each read of its input as its own packet.
{
  printf '\001\001\006\000\103\154\144\144\000\000\200\000'
  head -c 16 /dev/zero
  printf '\002\000\000\301\015\014'
  head -c 202 /dev/zero
  printf '\143\202\123\143\065\001\001\067\001\066\377'
} >"$pkt"
# An offer is broadcast back to port 68: the socket bound there receives every server's.
socat -t 3 - "UDP4-DATAGRAM:255.255.255.255:67,broadcast,bind=0.0.0.0:68,so-bindtodevice=$iface" <"$pkt" 2>/dev/null |
  od -An -v -tu1 | tr -s ' ' '\n' | awk '
    NF { b[n++] = $1 }
    END {
      for (i = 0; i + 3 < n; i++) {
        if (b[i] != 99 || b[i+1] != 130 || b[i+2] != 83 || b[i+3] != 99) continue
        j = i + 4
        while (j < n && b[j] != 255) {
          if (b[j] == 0) { j++; continue }
          if (b[j] == 54 && b[j+1] == 4) print "dhcp-server " b[j+2] "." b[j+3] "." b[j+4] "." b[j+5]
          j += 2 + b[j+1]
        }
        i = j
      }
    }' | sort -u
