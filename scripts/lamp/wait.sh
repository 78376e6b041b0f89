#!/bin/sh
# Waits (at most $1 seconds) until the check script $2 (with argument $3) succeeds.
i=0
until sh -c "$2" sh "$3" >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -ge "$1" ]; then echo "gave up after $1 s waiting for: $4" >&2; exit 1; fi
  sleep 1
done
