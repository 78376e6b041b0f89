#!/bin/sh
# `md-repair.sh MD UUID N DISK...`: the first N disks are members of this array, the rest blank
# replacements. Assembles the array degraded from its members and adds the blank disks, so a
# surviving member is never overwritten by a new array. Every disk is probed again first.
set -eu
md=$1 uuid=$2 n=$3; shift 3
plain() { printf '%s' "$1" | tr -cd '0-9a-fA-F' | tr 'A-F' 'a-f'; }
i=0 members='' blanks=''
for d in "$@"; do
  i=$((i + 1))
  if [ "$i" -le "$n" ]; then
    u=$(blkid -p -o value -s UUID "$d" 2>/dev/null || true)
    if [ "$(plain "$u")" != "$(plain "$uuid")" ]; then
      echo "$d changed since it was probed: it is no longer a member of $md; nothing was written, run storage init again" >&2; exit 1
    fi
    members="$members $d"
  elif blkid -p "$d" >/dev/null 2>&1; then
    echo "$d changed since it was probed: it is not blank any more; nothing was written, run storage init again to see what it holds" >&2; exit 1
  else
    blanks="$blanks $d"
  fi
done
# Word splitting is wanted: disk paths are typed (no spaces).
# shellcheck disable=SC2086
mdadm --assemble "$md" --run --uuid "$uuid" $members
# shellcheck disable=SC2086
mdadm "$md" --add $blanks
