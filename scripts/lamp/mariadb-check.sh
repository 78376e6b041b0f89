#!/bin/sh
# Checks a candidate my.cnf with mariadbd itself: it must parse and set the seed's values.
out=$(mariadbd --defaults-file="$1" --help --verbose 2>&1) || { printf '%s\n' "$out" | grep -i error >&2; exit 1; }
shift
while [ $# -ge 2 ]; do
  printf '%s\n' "$out" | awk -v k="$1" -v v="$2" '$1 == k && $2 == v { found = 1 } END { exit !found }' || { echo "the file does not make $1 $2" >&2; exit 1; }
  shift 2
done
