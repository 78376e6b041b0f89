#!/bin/sh
# Becomes primary once this node or its peer holds UpToDate data (never forced).
# $1 resource, $2 seconds to wait.
i=0
while [ "$i" -lt "$2" ]; do
  case "$(drbdadm dstate "$1")" in
    UpToDate/* | */UpToDate) exec drbdadm primary "$1" ;;
  esac
  sleep 1; i=$((i + 1))
done
echo "$1: neither this node nor its peer has UpToDate data after $2 s (is the peer up and connected?); not becoming primary" >&2
exit 1
