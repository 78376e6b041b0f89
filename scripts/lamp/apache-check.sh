#!/bin/sh
# Validates a candidate Apache file inside the real configuration: a copy of apache2.conf that
# includes the candidate in place of ports.conf (`ports`) or of the enabled sites (`site`).
d=$(mktemp -d) || exit 1
trap 'rm -rf "$d"' EXIT
case $1 in
  ports) line='Include ports.conf' ;;
  *) line='IncludeOptional sites-enabled/*.conf' ;;
esac
F=$2 L=$line awk '$0 == ENVIRON["L"] { print "Include " ENVIRON["F"]; n++; next } { print } END { exit n != 1 }' /etc/apache2/apache2.conf > "$d/apache2.conf" || { echo "/etc/apache2/apache2.conf has no line '$line' to check against" >&2; exit 1; }
apache2ctl -t -f "$d/apache2.conf"
