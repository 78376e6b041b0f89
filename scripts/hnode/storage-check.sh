#!/bin/sh
# What a storage node needs once it is up: the md, DRBD and AoE drivers loaded (or loadable) and
# the tools. Prints `ok`, or what is missing, comma-separated.
m=
for d in md_mod raid1 drbd aoe; do
  [ -d "/sys/module/$d" ] || modprobe "$d" 2>/dev/null || m="$m${m:+, }module $d missing"
done
for t in mdadm drbdadm vblade blkid; do
  command -v "$t" >/dev/null || m="$m${m:+, }$t missing"
done
echo "${m:-ok}"
