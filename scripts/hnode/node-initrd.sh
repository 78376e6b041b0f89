#!/bin/sh
# node-initrd.sh ACTION LAYOUT BASE OVERLAY OUT: a node's initrd on the ConfigNode, the profile's
# BASE image with the node's OVERLAY (an uncompressed cpio archive) after it.
# LAYOUT append: BASE as it is, then OVERLAY gzipped. The kernel unpacks concatenated archives,
#   but after a compressed one it only accepts another compressed one.
# LAYOUT single (Xen profiles): pxelinux's mboot.c32 gunzips a gzip'd module and drops whatever
#   follows its first gzip member, which would lose the overlay. A gzip'd BASE is unpacked and
#   goes into one gzip stream with OVERLAY; any other BASE (mboot passes it untouched) is
#   appended to as with `append`.
# ACTION write: writes OUT (a temp file beside it, renamed into place); same: succeeds when OUT
#   holds it (built in a temp folder: a check, as under --dry-run, leaves the TFTP root alone).
set -eu
action=$1 layout=$2 base=$3 overlay=$4 out=$5
case $action in
    write) tmp=$(mktemp "$out.XXXXXX") ;;
    same) tmp=$(mktemp) ;;
    *) echo "node-initrd.sh: unknown action $action (write or same)" >&2; exit 2 ;;
esac
trap 'rm -f "$tmp" "$tmp.raw"' EXIT
if [ "$layout" = single ] && [ "$(head -c 2 "$base" | od -An -tx1 | tr -d ' \n')" = 1f8b ]; then
    gzip -dc "$base" > "$tmp.raw"
    cat "$overlay" >> "$tmp.raw"
    gzip -9nc "$tmp.raw" > "$tmp"
else
    cat "$base" > "$tmp"
    gzip -9nc "$overlay" >> "$tmp"
fi
if [ "$action" = write ]; then
    chmod 644 "$tmp"
    mv "$tmp" "$out"
else
    cmp -s "$tmp" "$out"
fi
