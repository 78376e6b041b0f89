#!/bin/sh
# Formats $1 as OCFS2 (cluster $2, label $3, $4 node slots) unless it holds anything: a device
# with OCFS2 on it is left as it is, one with other data is refused. Blocks are 4 KiB whatever
# the size: on a small device mkfs.ocfs2 picks 1 KiB, and page-cache writeback then reaches the
# device one 1 KiB request at a time; over AoE that is one frame and one synchronous write on the
# storage node each, so a 12 MiB write queued the cluster's disk heartbeat for over a minute and
# o2hb fenced the node (measured on the lab's hardware VMs; at 4 KiB the same write takes 17 s).
t=$(blkid -p -o value -s TYPE "$1" 2>/dev/null)
case $t in
  ocfs2) exit 0 ;;
  '') ;;
  *) echo "refusing to format $1: it holds a $t filesystem" >&2; exit 1 ;;
esac
sig=$(wipefs -n -O TYPE --noheadings "$1") || exit 1
if [ -n "$sig" ]; then echo "refusing to format $1: it holds data ($sig)" >&2; exit 1; fi
mkfs.ocfs2 -q -b 4K -N "$4" -L "$3" --cluster-stack=o2cb --cluster-name="$2" "$1" </dev/null
