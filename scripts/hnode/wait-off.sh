#!/bin/sh
# wait-off.sh ADDRESS SECONDS (run on the ConfigNode, read-only): pings ADDRESS about once a
# second for at most SECONDS and prints `off` once three pings in a row went unanswered, else
# `answering`; `no-ping` when this host has no ping. Each ping waits at most 1 s.
command -v ping >/dev/null || { echo no-ping; exit 0; }
end=$(( $(date +%s) + $2 )); miss=0
while [ "$(date +%s)" -lt "$end" ]; do
  if ping -c1 -W1 "$1" >/dev/null 2>&1; then miss=0; sleep 1; else miss=$((miss + 1)); fi
  [ "$miss" -ge 3 ] && { echo off; exit 0; }
done
echo answering
