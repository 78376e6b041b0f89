#!/bin/sh
# query-running.sh SOCKET (read-only): one round of the wait until a guest runs: prints
# `running` once QEMU reports the guest running, nothing before (the executor polls it).
# (qmp: scripts/instance/qmp.sh, put in front.)
if qmp 5 "$1" '{"execute":"query-status"}' 2>/dev/null | grep -q '"status": *"running"'; then
  echo running
fi
exit 0
