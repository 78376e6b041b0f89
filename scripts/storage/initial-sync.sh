#!/bin/sh
# Forces the initial sync only when DRBD itself shows both sides connected and Inconsistent
# (no one ever held good data); any UpToDate side ends it without forcing.
# $1 resource, $2 marker, $3 marker dir, $4 seconds to wait for the peer.
i=0
while [ "$i" -lt "$4" ]; do
  case "$(drbdadm dstate "$1")" in
    Inconsistent/Inconsistent) drbdadm primary --force "$1" && mkdir -p "$3" && touch "$2"; exit $? ;;
    UpToDate/* | */UpToDate) exit 0 ;;
  esac
  sleep 1; i=$((i + 1))
done
echo "$1: the peer did not connect within $4 s; the initial sync was not started" >&2
exit 1
