#!/bin/sh
# Receives one golden image into the shared instance store (cloudctl image push).
#
#   receive.sh STORE NAME SIZE
#       Reads from stdin `d OFFSET LENGTH` lines, each followed by LENGTH bytes of data, then
#       `e SHA256`. Writes them into STORE/.images/.NAME.partial, sized SIZE first so that what
#       is not sent stays a hole, and renames it to STORE/.images/NAME only when its size is SIZE
#       and the sha256 of every `d` line followed by the data read back from where it was written
#       is SHA256 (the sender hashes the same). Prints `@cloudctl pushed|mismatch|busy|refused|
#       truncated|garbled ...`; anything but `pushed` leaves NAME as it was and no temp file.
#
# The holes are not read back: the file starts empty and sized, and only the extents are
# written into it. The read-back runs beside the transfer: after each extent the loop writes
# where it went into a FIFO, and a background reader feeds its `d` line and the data read back
# from the file to the hasher, so the check overlaps with the transfer (its CPU it still costs,
# which on a busy machine is wall time: see the README's speed section). Hashing the stream as
# it arrives (`tee` into the hasher through a FIFO, no read-back) was measured slower: the same
# CPU, 0.3-0.5 s more for 512 MiB of data. The reader also flushes the file to disk every 64 MiB
# of data it has read, so the writes to disk overlap with the transfer instead of all waiting
# for the `sync` before the rename. Both `dd`s move 128 KiB at a time: measured 0.3-0.9 s
# faster for 512 MiB of data than 1 MiB blocks (a 128 KiB buffer stays in the CPU's cache).
set -u
umask 077
store=$1 name=$2 size=$3
dir=$store/.images
tmp=$dir/.$name.partial
final=$dir/$name
say() { echo "@cloudctl $*"; }
# Nothing is touched before the first line arrives: cloudctl starts the receiver while it still
# checks the store through its own session, and closes this input unwritten if it then does not
# push after all.
kind=
read -r kind a b || { say truncated; exit 1; }
if [ ! -d "$store" ] || [ ! -w "$store" ]; then say refused "$store is not a writable directory"; exit 2; fi
[ ! -L "$dir" ] || { say refused "$dir is a symbolic link"; exit 2; }
mkdir -p "$dir" || exit 1
exec 9>>"$tmp" || exit 1
flock -n 9 || { say busy; exit 75; }
T=$(mktemp -d "${TMPDIR:-/tmp}/cloudctl-push.XXXXXX") || exit 1
trap 'rm -f "$tmp"; rm -rf "$T"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM
{ truncate -s 0 "$tmp" && truncate -s "$size" "$tmp" && mkfifo "$T/done"; } || exit 1
if command -v openssl >/dev/null 2>&1; then hash() { openssl dgst -sha256 -r; }; else hash() { sha256sum; }; fi
(
  unflushed=0
  while read -r at len; do
    printf 'd %s %s\n' "$at" "$len"
    dd if="$tmp" bs=128K iflag=skip_bytes,count_bytes skip="$at" count="$len" status=none || exit 1
    unflushed=$((unflushed + len))
    if [ "$unflushed" -ge $((64 << 20)) ]; then sync "$tmp" || exit 1; unflushed=0; fi
  done
) <"$T/done" 9>&- | hash >"$T/sum" 9>&- &
hasher=$!
exec 7>"$T/done"
while :; do
  case $kind in
  d) dd of="$tmp" bs=128K iflag=fullblock,count_bytes count="$b" oflag=seek_bytes seek="$a" conv=notrunc status=none || exit 1
     echo "$a $b" >&7 ;;
  e) break ;;
  *) say garbled; exit 1 ;;
  esac
  read -r kind a b || { kind=; break; }
done
[ "$kind" = e ] || { say truncated; exit 1; }
[ "$(stat -c %s "$tmp")" = "$size" ] || { say truncated; exit 1; }
exec 7>&-
wait "$hasher" || exit 1
got=$(cat "$T/sum") || exit 1
got=${got%% *}
[ "$got" = "$a" ] || { say mismatch "$got"; exit 1; }
# On disk before it has its name (the reader flushed all but the last 64 MiB of data already),
# and the name on disk before `pushed` is said: a node that loses power a second later (the
# lab's reboot right after a push did) still has the image.
sync "$tmp" || exit 1
mv -f "$tmp" "$final" || exit 1
trap - EXIT
sync "$dir" || exit 1
rm -rf "$T"
say pushed "$got"
