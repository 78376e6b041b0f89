#!/bin/sh
# Read-only facts before an image push or removal (cloudctl image push|remove).
#
#   probe.sh STORE IMAGE
#       Prints `writable` if STORE is a writable folder, `free BYTES` free on its filesystem,
#       `existing SIZE` if the file IMAGE is there, and `missing TOOL` for each tool the
#       receiver needs that is not installed.
store=$1 img=$2
if [ -d "$store" ] && [ -w "$store" ]; then echo writable; fi
free=$(df -Pk "$store" 2>/dev/null | awk 'NR==2 {print $4}') && [ -n "$free" ] && echo "free $((free * 1024))"
if [ -f "$img" ]; then echo "existing $(stat -c %s "$img")"; fi
for t in dd truncate flock stat; do command -v "$t" >/dev/null 2>&1 || echo "missing $t"; done
exit 0
