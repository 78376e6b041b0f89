#!/bin/sh
# Read-only state of one storage node (cloudctl storage status).
#
#   status.sh MD RESOURCE
#       Prints `md STATE` (or `md absent`), `drbd-role`, `drbd-cstate`, `drbd-dstate` and
#       `drbd-sync` of RESOURCE (`unknown` when drbdadm cannot say), and `aoe exporting|stopped`.
md=$1 res=$2
if mdadm --detail "$md" >/dev/null 2>&1; then echo "md $(mdadm --detail "$md" | sed -n 's/^ *State : //p')"; else echo 'md absent'; fi
echo "drbd-role $(drbdadm role "$res" 2>/dev/null || echo unknown)"
echo "drbd-cstate $(drbdadm cstate "$res" 2>/dev/null || echo unknown)"
echo "drbd-dstate $(drbdadm dstate "$res" 2>/dev/null || echo unknown)"
echo "drbd-sync $(sed -n 's/.*sync.ed: *\([0-9.]*%\).*/\1/p' /proc/drbd 2>/dev/null | head -n1)"
if service cloudctl-aoe status >/dev/null 2>&1; then echo 'aoe exporting'; else echo 'aoe stopped'; fi
exit 0
