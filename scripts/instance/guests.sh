#!/bin/sh
# Read-only: the guests on a hardware node, one `guest NAME STATE` line each.
#
#   guests.sh kvm RUN_DIR
#       Each RUN_DIR/NAME.pid whose process is a QEMU: `guest NAME qemu-STATUS` (QMP's
#       query-status; `qemu-unknown` when QMP does not answer); a pid file whose QEMU is gone:
#       `guest NAME dead`.
#   guests.sh xen
#       Each domain but Domain-0 that `xl list` shows: `guest NAME xen-STATE`.
#
# (qmp: scripts/instance/qmp.sh, put in front.)
case $1 in
kvm)
  run=$2
  for f in "$run"/*.pid; do
    [ -e "$f" ] || continue
    n=${f##*/}; n=${n%.pid}; pid=$(cat "$f" 2>/dev/null)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && case $(cat "/proc/$pid/comm" 2>/dev/null) in qemu*) true;; *) false;; esac; then
      st=$(qmp 3 "$run/$n.qmp" '{"execute":"query-status"}' 2>/dev/null | sed -n 's/.*"status": *"\([a-z-]*\)".*/\1/p' | tail -n 1)
      echo "guest $n qemu-${st:-unknown}"
    else
      echo "guest $n dead"
    fi
  done
  ;;
xen)
  # shellcheck disable=SC2034 # xl's columns, named for the reader
  xl list 2>/dev/null | tail -n +2 | while read -r name id mem vcpus state rest; do
    [ "$name" = Domain-0 ] || echo "guest $name xen-$state"
  done
  ;;
esac
