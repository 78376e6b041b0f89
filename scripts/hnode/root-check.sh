#!/bin/sh
# Where a booted node's root filesystem is, as one line: "image PATH" for a root image from the
# shared storage (the loop device under /run/cloudctl/root/ro, root-from-storage's mount), else
# the filesystem type of / ("rootfs" for a RAM root).
loop=$(awk '$2 == "/run/cloudctl/root/ro" { print $1 }' /proc/mounts | tail -n1)
if [ -n "$loop" ] && [ -r "/sys/block/${loop#/dev/}/loop/backing_file" ]; then
	echo "image $(cat "/sys/block/${loop#/dev/}/loop/backing_file")"
else
	awk '$2 == "/" { t = $3 } END { print t }' /proc/mounts
fi
