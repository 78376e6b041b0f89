#!/bin/sh
# Read-only state of one ConfigNode (cloudctl config status): one `key value` line per fact.
#
#   status.sh FLOATING KEEPALIVED_PIDFILE LEASES TFTP_ROOT HOSTS_FILE...
#       `floating yes|no` (whether `ip -o -4 addr` shows FLOATING, " IP/"; no line when it is
#       empty), `dhcpd running|stopped`, `tftpd listening`, `keepalived running`, `failover MINE
#       PARTNER` (dhcpd's failover state as its lease file last recorded it), `hosts SHA256` (of
#       the HOSTS_FILEs as one stream, in the order given) and `tree SHA256` (of TFTP_ROOT's
#       files, names and contents).
floating=$1 pidfile=$2 leases=$3 tftp=$4
shift 4
if [ -n "$floating" ]; then
  if ip -o -4 addr show | grep -qF -e "$floating"; then echo floating yes; else echo floating no; fi
fi
if service isc-dhcp-server status >/dev/null 2>&1; then echo dhcpd running; else echo dhcpd stopped; fi
# The sockets of this machine's network stack: right on a lab host too, where Debian's
# tftpd-hpa script would see every lab host's daemon by name.
[ -n "$(ss -Hlun 'sport = :69' 2>/dev/null)" ] && echo tftpd listening
p=$(cat "$pidfile" 2>/dev/null) && [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo keepalived running
# dhcpd appends a `failover peer "NAME" state { my state S at ..; partner state S at ..; }`
# record at every change: the last one is the current state.
awk '$1 == "failover" && $2 == "peer" && $4 == "state" { b = 1 } b && $1 == "my" { m = $3 } b && $1 == "partner" { p = $3 } b && $1 == "}" { b = 0 } END { if (m != "") print "failover", m, p }' "$leases" 2>/dev/null
echo "hosts $(cat "$@" 2>/dev/null | sha256sum | cut -d' ' -f1)"
cd "$tftp" 2>/dev/null && echo "tree $(find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum | sha256sum | cut -d' ' -f1)"
exit 0
