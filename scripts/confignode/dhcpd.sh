#!/bin/sh
# Brings the ConfigNode's running dhcpd in line with cloudctl's files of DHCP host entries.
#
#   dhcpd.sh live    HOSTS KEY STATE LEASES PORT
#       Changes the host objects of the running dhcpd through OMAPI: those whose entry in the
#       files HOSTS/NN.conf differs from the copy of them dhcpd last took (STATE/applied/) are
#       removed, and created again when HOSTS has them, all in one omshell session. Only the
#       files whose checksum differs from their copy are read entry by entry. dhcpd keeps
#       running, and its pid. When OMAPI is not there or refuses, or there are too many changes
#       for it to be quicker, restarts instead and says so on stderr.
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
journal=$state/journal applied=$state/applied
# More changes than this and one restart (about 4 s with Debian's init script) is quicker: one
# omshell session changes about 2,000 hosts a second.
live_limit=8000

# Records that dhcpd took every file of HOSTS: a fresh copy replaces the old one whole.
took_all() {
    rm -rf "$applied.new" && cp -R "$hosts" "$applied.new" && rm -rf "$applied" &&
        mv "$applied.new" "$applied" && rm -f "$state/applied.conf"
}

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
    took_all
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

# "NAME MAC IP" for each host entry of the files given (cloudctl writes one field a line).
entries() {
    [ $# -gt 0 ] || return 0
    awk '$1 == "host" && $3 == "{" { n = $2; mac = ""; ip = "" }
        $1 == "hardware" { mac = $3 } $1 == "fixed-address" { ip = $2 }
        $1 == "}" && n != "" { sub(";", "", mac); sub(";", "", ip); print n, mac, ip; n = "" }' "$@"
}
# "SHA  NAME" of each file of host entries in folder $1 (none: nothing).
sums() {
    (cd "$1" && sha256sum -- [0-9]*.conf) 2>/dev/null
}

[ -d "$applied" ] || fallback "dhcpd has not taken the host entries from cloudctl yet"
# The files that differ from the copy dhcpd took (one checksum pass over each folder).
files=$( { sums "$applied" | sed 's/^/old /'; sums "$hosts" | sed 's/^/new /'; } |
    awk '$1 == "old" { old[$3] = $2 } $1 == "new" { new[$3] = $2 }
        END { for (f in old) if (old[f] != new[f]) print f
              for (f in new) if (!(f in old)) print f }' | sort)
[ -n "$files" ] || exit 0
old='' new=''
for f in $files; do
    [ -f "$applied/$f" ] && old="$old $applied/$f"
    [ -f "$hosts/$f" ] && new="$new $hosts/$f"
done
# Only cloudctl's own names (NN.conf) reach these lists: word splitting is safe here.
# shellcheck disable=SC2086
changed=$( { entries $old | sed 's/^/old /'; entries $new | sed 's/^/new /'; } |
    awk '{ v = $3 " " $4 } $1 == "old" { old[$2] = v } $1 == "new" { new[$2] = v }
        END { for (n in old) if (!(n in new) || new[n] != old[n]) print n
              for (n in new) if (!(n in old)) print n }' | sort)
# Records that dhcpd took the files that differed.
took_changed() {
    for f in $files; do
        if [ -f "$hosts/$f" ]; then
            cp "$hosts/$f" "$applied/.$f.new" && mv -f "$applied/.$f.new" "$applied/$f" || return 1
        else
            rm -f "$applied/$f" || return 1
        fi
    done
}
[ -n "$changed" ] || { took_changed; exit; }
count=$(printf '%s\n' "$changed" | wc -l)
[ "$count" -le "$live_limit" ] || fallback "$count host changes"
secret=$(sed -n 's/.*secret "\([^"]*\)".*/\1/p' "$key" 2>/dev/null)
[ -n "$secret" ] || fallback "no OMAPI key in $key (\`cloudctl config init\` writes one)"
service "$service" status >/dev/null 2>&1 || fallback "dhcpd was not running"

# Runs omshell: the connection preamble, then the commands on standard input; prints what it
# answered.
omapi() {
    { printf 'server 127.0.0.1\nport %s\nkey-algorithm hmac-sha256\nkey cloudctl-omapi %s\nconnect\n' "$port" "$secret"
      cat; } | omshell 2>&1
}

# The omshell commands for every changed name: all are removed first (a MAC may move from one
# name to another), then those HOSTS has are created. omshell keeps the last object open
# until `close`, and `new` refuses while one is.
commands() {
    # shellcheck disable=SC2086
    { printf '%s\n' "$changed" | sed 's/^/want /'; entries $new | sed 's/^/have /'; } |
        awk '$1 == "want" { want[++n] = $2 } $1 == "have" { mac[$2] = $3; ip[$2] = $4 }
            END {
                for (i = 1; i <= n; i++)
                    printf "close\nnew host\nset name = \"%s\"\nopen\nremove\n", want[i]
                for (i = 1; i <= n; i++) {
                    h = want[i]
                    if (!(h in mac)) continue
                    printf "close\nnew host\nset name = \"%s\"\nset hardware-address = %s\n", h, mac[h]
                    printf "set hardware-type = 1\nset ip-address = %s\n", ip[h]
                    printf "set statements = \"option host-name \\\"%s\\\";\"\ncreate\n", h
                }
            }'
}

printf '%s\n' "$changed" >>"$journal" || fallback "cannot write $journal"
# omshell exits 0 whatever happens: its words say whether the server took each change. A name
# dhcpd does not have yet cannot be opened nor removed, which is no failure.
why=$(commands | omapi | grep -E "can't|not connected|dhcpctl_|no open object|already open" |
    grep -v -E "can't (open|destroy) object: not found" | head -n 1)
[ -z "$why" ] || fallback "OMAPI refused a change ($why)"
took_changed
