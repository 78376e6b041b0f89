#!/usr/bin/env bash
# Builds the Xen hypervisor with shadow paging, as root, from Debian's own Xen 4.17 source:
#   examples/build-xen-shadow.sh
# Why: a PV guest's live migration needs Xen to track the guest's dirty memory, which for PV
# guests is shadow paging's log-dirty mode, and Debian builds xen-hypervisor-4.17-amd64 without
# it (`# CONFIG_SHADOW_PAGING is not set` in /boot/xen-4.17-amd64.config): `xl migrate` then
# fails with "Failed to enable logdirty". PVH and HVM guests, which would not need it, need
# VT-x/AMD-V, which a VM under QEMU's TCG does not have.
# What it does: downloads the xen source package of Debian 12 (the version pinned below, its
# sha256 checked), applies Debian's patches, takes Debian's own configuration from
# /boot/xen-4.17-amd64.config with only CONFIG_SHADOW_PAGING switched on, and builds the
# hypervisor alone (about 2 minutes on 2 cores); the installed xen-utils-4.17 tools stay as they
# are (the same 4.17 interface). Result: /var/cache/cloudctl/xen-shadow-KEY/xen-4.17-amd64.gz and
# its .config beside it, written in a temp directory and renamed; a second run reuses it.
# Prints "built: PATH" (or "cached: PATH"). Name PATH as a profile's `xen`.
# Needs: curl, xz-utils, patch, gcc, make, flex, bison, python3 (.ci/install-deps installs them).
set -euo pipefail
version=4.17.5+72-g01140da4e8
revision=1
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# The sha256 of each file, from Debian 12's source index (dists/bookworm/main/source/Sources).
sources="53922f4d0a02c577f2ea9d63f65989cd88715779eebeed879ca1d314103ee06e xen_$version.orig.tar.xz
5bcf3812c64585e270e0b3fa6ee8fd16dff7b9bc0f61375d648c64672484c4d9 xen_$version-$revision.debian.tar.xz"
config=/boot/xen-4.17-amd64.config

[ "$(id -u)" = 0 ] || { echo "$0: run as root (it writes /var/cache/cloudctl)" >&2; exit 2; }
[ -r "$config" ] || { echo "$0: no $config: install xen-hypervisor-4.17-amd64 first" >&2; exit 2; }
for tool in curl xz patch gcc make flex bison python3; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is missing: run .ci/install-deps (or apt-get install it)" >&2; exit 2; }
done
cache=/var/cache/cloudctl
key=$( { cat "$0" "$config"; } | sha256sum | cut -c1-12)
out="$cache/xen-shadow-$key"
if [ -s "$out/xen-4.17-amd64.gz" ]; then
    echo "cached: $out/xen-4.17-amd64.gz"
    exit 0
fi
mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
while read -r sum file; do
    curl -fsS --retry 3 -o "$work/$file" "$mirror/pool/main/x/xen/${file//+/%2B}"
    echo "$sum  $work/$file" | sha256sum -c --quiet - ||
        { echo "$0: $file does not have the sha256 Debian's index gives" >&2; exit 1; }
done <<<"$sources"
tar -C "$work" -xJf "$work/xen_$version.orig.tar.xz"
src="$work/xen-$version"
tar -C "$src" -xJf "$work/xen_$version-$revision.debian.tar.xz"
while read -r p; do
    patch -d "$src" -p1 -s < "$src/debian/patches/$p"
done < "$src/debian/patches/series"
sed 's/^# CONFIG_SHADOW_PAGING is not set$/CONFIG_SHADOW_PAGING=y/' "$config" > "$src/xen/.config"
make -C "$src/xen" olddefconfig >/dev/null
grep -qx 'CONFIG_SHADOW_PAGING=y' "$src/xen/.config" ||
    { echo "$0: CONFIG_SHADOW_PAGING did not stay on in the configuration" >&2; exit 1; }
make -C "$src/xen" -j"$(nproc)" >"$work/build.log" 2>&1 ||
    { tail -n 30 "$work/build.log" >&2; echo "$0: the hypervisor did not build (log above)" >&2; exit 1; }
mkdir "$work/out"
cp "$src/xen/xen.gz" "$work/out/xen-4.17-amd64.gz"
cp "$src/xen/.config" "$work/out/xen-4.17-amd64.config"
rm -rf "$out"
mv "$work/out" "$out"
find "$cache" -maxdepth 1 -name 'xen-shadow-*' ! -name "${out##*/}" -exec rm -rf {} +
echo "built: $out/xen-4.17-amd64.gz ($(du -h "$out/xen-4.17-amd64.gz" | cut -f1))"
