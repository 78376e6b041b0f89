#!/bin/sh
# Runs inside the host's fresh mount and UTS namespaces, then becomes sshd (`exec` keeps the pid).
# $1 host name, $2 the host's state dir (overlay upper/work dirs live there, outside the overlaid
# trees), $3 sshd_config. Values come as arguments, never spliced into the script text.
set -e
hostname "$1"
for d in etc var; do
  mkdir -p "$2/$d-upper" "$2/$d-work"
  mount -t overlay overlay -o "lowerdir=/$d,upperdir=$2/$d-upper,workdir=$2/$d-work" "/$d"
done
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /srv
mkdir -p /run/sshd /run/lock
exec /usr/sbin/sshd -D -e -f "$3"
