#!/bin/sh
# `delete-folder.sh DIR NONCE`: checked again where it runs (the folder may have changed since the
# probe): the mark must still be the recorded one; then only cloudctl's own files go, and the
# folder itself only if that left it empty.
dir=$1 nonce=$2
if [ -L "$dir" ] || ! [ -d "$dir" ]; then echo "$dir is gone or not a folder; nothing deleted" >&2; exit 1; fi
if [ -L "$dir/.cloudctl-create" ] || [ "$(head -n 1 "$dir/.cloudctl-create" 2>/dev/null)" != "$nonce" ]; then
  echo "$dir no longer carries this guest's create mark; nothing deleted" >&2; exit 1
fi
rm -f "$dir/disk.img" "$dir/disk.img.building" "$dir/xl.cfg" "$dir/console.log"
rm -f "$dir/.cloudctl-create"
rmdir "$dir" || { echo "$dir still holds files cloudctl did not make; they were left" >&2; exit 1; }
