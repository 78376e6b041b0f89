#!/bin/sh
# Checksummed writes inside a guest (busybox sh), to show that what it writes to its own disk
# survives a storage node's loss under it (examples/try-lab.sh, tests/it/hnode_root_e2e.rs):
#   guest-blocks.sh write N   block i < N of /root/data.bin gets 4 KiB of random data written with
#                             fsync, 0.2 s apart; each write logs "i uptime ok|ERR sha256" in
#                             /root/w.log, and "done" ends the log
#   guest-blocks.sh verify    reads every logged block back (drop the page cache first) and
#                             prints "verified GOOD bad BAD longest-stall SECONDS"; a failed
#                             write counts as bad, the stall is the longest gap between writes
set -u
log=/root/w.log
data=/root/data.bin
case "${1:-}" in
write)
    n=${2:?usage: guest-blocks.sh write N}
    i=0
    : > "$log"
    while [ "$i" -lt "$n" ]; do
        head -c 4096 /dev/urandom > /tmp/blk
        s=$(sha256sum < /tmp/blk)
        if dd if=/tmp/blk of="$data" bs=4096 seek="$i" count=1 conv=fsync,notrunc 2>/dev/null; then r=ok; else r=ERR; fi
        read -r t _ < /proc/uptime
        echo "$i $t $r ${s%% *}" >> "$log"
        i=$((i + 1))
        sleep 0.2
    done
    echo "done" >> "$log"
    ;;
verify)
    good=0
    bad=0
    while read -r i _ r s; do
        [ "$i" = "done" ] && continue
        got=$(dd if="$data" bs=4096 skip="$i" count=1 2>/dev/null | sha256sum)
        if [ "$r" = ok ] && [ "${got%% *}" = "$s" ]; then good=$((good + 1)); else bad=$((bad + 1)); fi
    done < "$log"
    stall=$(awk '$1 != "done" { if (seen && $2 - last > max) max = $2 - last; last = $2; seen = 1 } END { printf "%.1f", max }' "$log")
    echo "verified $good bad $bad longest-stall $stall"
    ;;
*)
    echo "usage: guest-blocks.sh write N | verify" >&2
    exit 2
    ;;
esac
