#!/bin/sh
# wait-running.sh SOCKET SECONDS: until QEMU reports the guest running.
# (qmp: scripts/instance/qmp.sh, put in front.)
i=0
while [ $i -lt $(($2 * 5)) ]; do
  qmp 5 "$1" '{"execute":"query-status"}' 2>/dev/null | grep -q '"status": *"running"' && exit 0
  sleep 0.2; i=$((i + 1))
done
echo "the guest is not running after $2 s (see its console log)" >&2; exit 1
