#!/bin/sh
# qmp-cancel.sh SOCKET: cancels an outgoing migration (QEMU then resumes the guest where it is);
# succeeds whatever QEMU says. (qmp: scripts/instance/qmp.sh, put in front.)
qmp 5 "$1" '{"execute":"migrate_cancel"}' >/dev/null 2>&1
exit 0
