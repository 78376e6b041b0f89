#!/bin/sh
# kvm-stop.sh SOCKET PIDFILE TAP GRACE: ACPI power button, then QEMU's quit after GRACE seconds.
# Only a pid whose process is a QEMU is ever signalled (a stale pid file may name another).
# (qmp: scripts/instance/qmp.sh, put in front.)
sock=$1 pidfile=$2 tap=$3 grace=$4
pid=$(cat "$pidfile" 2>/dev/null)
alive() { [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && case $(cat "/proc/$pid/comm" 2>/dev/null) in qemu*) true;; *) false;; esac; }
say() { qmp 2 "$sock" "$1" >/dev/null 2>&1; }
if alive; then
  [ "$grace" -gt 0 ] && say '{"execute":"system_powerdown"}'
  i=0; while alive && [ $i -lt $((grace * 10)) ]; do sleep 0.1; i=$((i + 1)); done
  if alive; then
    [ "$grace" -gt 0 ] && echo "the guest did not power off within $grace s; stopping QEMU" >&2
    say '{"execute":"quit"}'
    i=0; while alive && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    alive && kill -9 "$pid"
  fi
fi
rm -f "$pidfile" "$sock"
ip link del "$tap" 2>/dev/null
exit 0
