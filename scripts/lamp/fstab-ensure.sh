#!/bin/sh
# Replaces the fstab entries for mount point $1 with line $2, keeping everything else; checks
# the result parses (`findmnt --verify`) before it replaces /etc/fstab, and keeps a backup.
t=/etc/.fstab.cloudctl-new
# shellcheck disable=SC2015 # C runs when A or B fails: exactly the cleanup wanted
M=$1 awk '/^[ \t]*#/ || $2 != ENVIRON["M"]' /etc/fstab > "$t" && printf '%s\n' "$2" >> "$t" || { rm -f "$t"; exit 1; }
case $(findmnt --verify --tab-file "$t" 2>&1) in
  *'Success, no errors'*|*'0 parse errors'*) ;;
  *) rm -f "$t"; echo "the new /etc/fstab would not parse" >&2; exit 1 ;;
esac
chmod 644 "$t" && cp -p /etc/fstab /etc/fstab.cloudctl-bak && mv -f "$t" /etc/fstab
