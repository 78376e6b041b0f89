#!/bin/sh
# Brings the ConfigNode's running dhcpd in line with cloudctl's DHCP hosts file.
#
#   dhcpd.sh live    HOSTS KEY STATE LEASES PORT
#       Changes the host objects of the running dhcpd through OMAPI: those whose entry in HOSTS
#       differs from the hosts file dhcpd last took (STATE/applied.conf) are removed, and created
#       again when HOSTS has them. dhcpd keeps running, and its pid. When OMAPI is not there or
#       refuses, or there are too many changes for it to be quicker, restarts instead and says so
#       on stderr.
#   dhcpd.sh restart HOSTS KEY STATE LEASES
#       Restarts dhcpd (starts it if it is stopped) on the files as they are.
#
# OMAPI writes every live change into the lease file, and dhcpd replays those records after the
# configuration when it starts: a host removed live would stay removed even if HOSTS names it
# again. So each name changed live is noted in STATE/journal first, and a restart drops the lease
# file's host records of those names while dhcpd is stopped: HOSTS stays the only truth.
# The OMAPI secret is read from KEY here and reaches omshell on its standard input, never an
# argument list.
set -u
mode=$1 hosts=$2 key=$3 state=$4 leases=$5
service=isc-dhcp-server
journal=$state/journal applied=$state/applied.conf
# More changes than this and one restart (about 4 s with Debian's init script) is quicker.
live_limit=64

restart() {
    mkdir -p "$state" || return 1
    if [ -s "$journal" ]; then
        service "$service" stop >/dev/null 2>&1
        if [ -f "$leases" ]; then
            awk 'NR == FNR { drop[$1] = 1; next }
                 $1 == "host" && ($2 in drop) && $3 == "{" { skip = 1 }
                 !skip { print }
                 skip && $1 == "}" { skip = 0 }' "$journal" "$leases" >"$leases.cloudctl-new" &&
                mv -f "$leases.cloudctl-new" "$leases" || return 1
        fi
        rm -f "$journal"
        service "$service" start || return 1
    elif service "$service" status >/dev/null 2>&1; then
        service "$service" restart || return 1
    else
        service "$service" start || return 1
    fi
    cp "$hosts" "$applied.new" && mv -f "$applied.new" "$applied"
}

if [ "$mode" = restart ]; then
    restart
    exit
fi
port=$6

fallback() {
    echo "cloudctl: $1; restarted dhcpd instead (on the same validated files)" >&2
    restart
    exit
}

# "NAME MAC IP" for each host entry of the hosts files given (cloudctl writes one field a line).
entries() {
    awk '$1 == "host" && $3 == "{" { n = $2; mac = ""; ip = "" }
        $1 == "hardware" { mac = $3 } $1 == "fixed-address" { ip = $2 }
        $1 == "}" && n != "" { sub(";", "", mac); sub(";", "", ip); print n, mac, ip; n = "" }' "$1"
}

[ -f "$applied" ] || fallback "dhcpd has not taken a hosts file from cloudctl yet"
changed=$( { entries "$applied" | sed 's/^/old /'; entries "$hosts" | sed 's/^/new /'; } |
    awk '{ v = $3 " " $4 } $1 == "old" { old[$2] = v } $1 == "new" { new[$2] = v }
        END { for (n in old) if (!(n in new) || new[n] != old[n]) print n
              for (n in new) if (!(n in old)) print n }' | sort)
[ -n "$changed" ] || { cp "$hosts" "$applied.new" && mv -f "$applied.new" "$applied"; exit; }
count=$(printf '%s\n' "$changed" | wc -l)
[ "$count" -le "$live_limit" ] || fallback "$count host changes"
secret=$(sed -n 's/.*secret "\([^"]*\)".*/\1/p' "$key" 2>/dev/null)
[ -n "$secret" ] || fallback "no OMAPI key in $key (\`cloudctl config init\` writes one)"
service "$service" status >/dev/null 2>&1 || fallback "dhcpd was not running"

# Runs omshell: the connection preamble, then the lines given; prints what it answered.
omapi() {
    { printf 'server 127.0.0.1\nport %s\nkey-algorithm hmac-sha256\nkey cloudctl-omapi %s\nconnect\n' "$port" "$secret"
      printf '%s\n' "$@"; } | omshell 2>&1
}
# omshell exits 0 whatever happens: its words say whether the server took the change.
refused() {
    printf '%s\n' "$1" | grep -E "can't|not connected|dhcpctl_|no open object|not found" | head -n 1
}

for name in $changed; do
    echo "$name" >>"$journal" || fallback "cannot write $journal"
    why=$(refused "$(omapi 'new host' "set name = \"$name\"" open remove)")
    case $why in
        "" | *"can't open object: not found"*) ;;
        *) fallback "OMAPI did not remove host $name ($why)" ;;
    esac
    e=$(entries "$hosts" | awk -v n="$name" '$1 == n { print $2, $3; exit }')
    [ -n "$e" ] || continue
    mac=${e% *} ip=${e#* }
    why=$(refused "$(omapi 'new host' "set name = \"$name\"" "set hardware-address = $mac" \
        'set hardware-type = 1' "set ip-address = $ip" \
        "set statements = \"option host-name \\\"$name\\\";\"" create)")
    [ -z "$why" ] || fallback "OMAPI did not create host $name ($why)"
done
cp "$hosts" "$applied.new" && mv -f "$applied.new" "$applied"
