#!/bin/sh
# `create-rollback.sh DIR NONCE STAGE`: removes the guest folder only if this run's nonce marks it.
dir=$1 nonce=$2 stage=$3
rm -rf "$stage"
if [ "$(cat "$dir/.cloudctl-create" 2>/dev/null)" != "$nonce" ]; then
  [ -e "$dir" ] && echo "$dir was not created by this run: left as it is"
  exit 0
fi
rm -f "$dir/disk.img" "$dir/disk.img.building" "$dir/xl.cfg" "$dir/console.log" "$dir/.cloudctl-create"
rmdir "$dir" && echo "removed $dir"
