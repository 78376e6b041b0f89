#!/bin/sh
# Where a booted node's root filesystem is, as one line: "image PATH" for a root image from the
# shared storage (the loop device under /run/cloudctl/root/ro, root-from-storage's mount), else
# the filesystem type of / ("rootfs" for a RAM root, followed by why the node stayed there when
# its profile names a root image).
loop=$(awk '$2 == "/run/cloudctl/root/ro" { print $1 }' /proc/mounts | tail -n1)
if [ -n "$loop" ] && [ -r "/sys/block/${loop#/dev/}/loop/backing_file" ]; then
	echo "image $(cat "/sys/block/${loop#/dev/}/loop/backing_file")"
else
	t=$(awk '$2 == "/" { t = $3 } END { print t }' /proc/mounts)
	# A node whose profile has a root image but stayed in RAM says why (root-from-storage).
	if [ "$t" = rootfs ] && [ -r /run/cloudctl/root.status ]; then
		echo "rootfs $(head -n1 /run/cloudctl/root.status)"
	else
		echo "$t"
	fi
fi
