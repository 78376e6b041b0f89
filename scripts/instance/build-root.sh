#!/bin/sh
# `build-root.sh MODE SOURCE DIR SIZE STAGE NONCE`: a new guest folder (refused if it exists), a new
# disk file (sparse: a new guest never sees old data), the root filesystem, the guest's identity.
set -eu
mode=$1 src=$2 dir=$3 size=$4 stage=$5 nonce=$6
disk="$dir/disk.img" tmp="$dir/disk.img.building"
mkdir "$dir" 2>/dev/null || { echo "$dir already exists on the shared storage; refusing to touch it (another guest's folder?)" >&2; exit 1; }
printf '%s\n' "$nonce" >"$dir/.cloudctl-create"
mnt=$(mktemp -d /run/cloudctl/instances/mnt.XXXXXX)
trap 'mountpoint -q "$mnt" && umount "$mnt"; rmdir "$mnt"' EXIT
case $mode in
  copy)
    cp --sparse=always "$src" "$tmp"
    if [ "$size" -gt "$(stat -c %s "$tmp")" ]; then
      truncate -s "$size" "$tmp"
      e2fsck -fp "$tmp" >/dev/null || [ $? -le 1 ]
      resize2fs "$tmp" >/dev/null 2>&1
    fi;;
  debootstrap)
    truncate -s "$size" "$tmp"
    mkfs.ext4 -F -q -L root "$tmp";;
esac
# The image is not trusted (a stopped guest's disk is a valid source): the kernel follows no
# symbolic link on it and honours no setuid bit or device node, temp files live in the stage
# folder outside it, and every path written is refused if the image made it a symbolic link.
mount -o loop,nosymfollow,nosuid,nodev "$tmp" "$mnt"
[ "$mode" = debootstrap ] && tar -C "$mnt" --numeric-owner -xpf "$src"
nolink() { if [ -L "$mnt/$1" ]; then echo "/$1 in the image is a symbolic link; refusing to write through it" >&2; exit 1; fi; }
for d in etc etc/network etc/ssh root root/.ssh; do
  nolink "$d"
  mkdir -p "$mnt/$d"
done
chmod 0700 "$mnt/root/.ssh"
# A file the image holds is replaced, never written through: a link in its place is refused.
put() { nolink "$2"; rm -f "$mnt/$2"; install -m "$3" "$stage/$1" "$mnt/$2"; }
put hostname etc/hostname 0644
put hosts etc/hosts 0644
put fstab etc/fstab 0644
put resolv.conf etc/resolv.conf 0644
put interfaces etc/network/interfaces 0644
put authorized_keys root/.ssh/authorized_keys 0600
rm -f "$mnt"/etc/ssh/ssh_host_*
put ssh_host_ed25519_key etc/ssh/ssh_host_ed25519_key 0600
put ssh_host_ed25519_key.pub etc/ssh/ssh_host_ed25519_key.pub 0644
nolink etc/machine-id
if [ -f "$mnt/etc/machine-id" ]; then : >"$mnt/etc/machine-id"; fi
for f in shadow passwd; do
  nolink "etc/$f"
  p="$mnt/etc/$f"
  [ -f "$p" ] || continue
  # Lock root's password: shadow gets a leading "!", a hash left in passwd is replaced by "!".
  awk -v f="$f" 'BEGIN { FS = OFS = ":" } $1 == "root" { if (f == "shadow" && $2 !~ /^!/) $2 = "!" $2; if (f == "passwd" && $2 != "x") $2 = "!" } { print }' "$p" >"$stage/$f.locked"
  cat "$stage/$f.locked" >"$p"; rm -f "$stage/$f.locked"
done
umount "$mnt"
ln "$tmp" "$disk"
rm -f "$tmp"
