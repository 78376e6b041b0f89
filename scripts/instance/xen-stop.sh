#!/bin/sh
# `xen-stop.sh NAME GRACE`: xl shutdown, then xl destroy after GRACE seconds.
xl list "$1" >/dev/null 2>&1 || exit 0
if [ "$2" -gt 0 ] && timeout "$2" xl shutdown -w "$1"; then exit 0; fi
[ "$2" -gt 0 ] && echo "$1 did not shut down within $2 s; destroying the domain" >&2
xl destroy "$1"
