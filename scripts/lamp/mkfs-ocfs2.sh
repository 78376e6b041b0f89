#!/bin/sh
# Formats $1 as OCFS2 (cluster $2, label $3, $4 node slots) unless it holds anything: a device
# with OCFS2 on it is left as it is, one with other data is refused.
t=$(blkid -p -o value -s TYPE "$1" 2>/dev/null)
case $t in
  ocfs2) exit 0 ;;
  '') ;;
  *) echo "refusing to format $1: it holds a $t filesystem" >&2; exit 1 ;;
esac
sig=$(wipefs -n -O TYPE --noheadings "$1") || exit 1
if [ -n "$sig" ]; then echo "refusing to format $1: it holds data ($sig)" >&2; exit 1; fi
mkfs.ocfs2 -q -N "$4" -L "$3" --cluster-stack=o2cb --cluster-name="$2" "$1" </dev/null
