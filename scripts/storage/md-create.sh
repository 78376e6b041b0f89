#!/bin/sh
# `md-create.sh MD UUID LEVEL COUNT DISK...`: creates the array, after probing every disk again:
# one that is not blank any more (since the probe, or after a wipe) is refused, nothing written.
set -eu
md=$1 uuid=$2 level=$3 count=$4; shift 4
for d in "$@"; do
  if blkid -p "$d" >/dev/null 2>&1; then
    echo "$d changed since it was probed: it is not blank any more; nothing was written, run storage init again to see what it holds" >&2; exit 1
  fi
done
exec mdadm --create "$md" --run --metadata=1.2 --level "$level" --raid-devices "$count" --uuid "$uuid" "$@"
