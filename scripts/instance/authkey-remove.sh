#!/bin/sh
# `authkey-remove.sh FILE MARKER`: removes every line carrying MARKER, replacing the file atomically.
f=${1:-$HOME/.ssh/authorized_keys}
[ -f "$f" ] && grep -qF -- "$2" "$f" || exit 0
tmp=$(mktemp "$f.XXXXXX") || exit 1
grep -vF -- "$2" "$f" >"$tmp"
chmod --reference="$f" "$tmp"; chown --reference="$f" "$tmp" 2>/dev/null
mv "$tmp" "$f"
