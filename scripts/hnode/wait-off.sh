#!/bin/sh
# wait-off.sh ADDRESS (run on the ConfigNode, read-only): one round of the wait until a node is
# off, polled about once a second by the executor: pings ADDRESS up to three times and prints
# `answering` at the first answer, `off` once three pings in a row went unanswered; `no-ping`
# when this host has no ping. Each ping waits at most 1 s.
command -v ping >/dev/null || { echo no-ping; exit 0; }
for _ in 1 2 3; do
  ping -c1 -W1 "$1" >/dev/null 2>&1 && { echo answering; exit 0; }
done
echo off
