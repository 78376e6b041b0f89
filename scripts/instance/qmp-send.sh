#!/bin/sh
# qmp-send.sh SOCKET COMMAND_JSON...: QEMU's answers on stdout; fails when the monitor does not
# answer or answers an error. (qmp: scripts/instance/qmp.sh, put in front.)
sock=$1; shift
out=$(qmp 10 "$sock" "$@") || { echo "cannot reach QEMU's monitor at $sock" >&2; exit 1; }
printf '%s\n' "$out"
case $out in *'"error"'*) exit 1;; esac
