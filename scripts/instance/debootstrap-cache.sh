#!/bin/sh
# `debootstrap-cache.sh SUITE TARBALL VARIANT INCLUDE URLS`: debootstrap into a temporary folder beside the
# cache, pack it, rename into place; nothing half-written is ever left under the cache name.
# URLS is a 0600 file holding the mirror and the proxy (a line each): they may carry
# credentials, so they are never a process argument (the proxy goes by environment, the
# mirror's user and password by a netrc file for wget), and every message masks them.
set -eu
suite=$1 tar=$2 variant=$3 include=$4 urls=$5
{ IFS= read -r mirror; IFS= read -r proxy || proxy=; } <"$urls"
mask() { sed 's#//[^/@]*@#//***@#g'; }
mkdir -p "$(dirname "$tar")"
work=$(mktemp -d "$tar.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
# The mirror's credentials go to wget through a netrc file, not debootstrap's command line (nor
# the guest's sources.list, which gets the bare URL).
case $mirror in
  *//*@*)
    rest=${mirror#*//} scheme=${mirror%%//*}
    cred=${rest%%@*} mirror="$scheme//${rest#*@}"
    host=${mirror#*//}; host=${host%%/*}; host=${host%%:*}
    case $cred in *:*) user=${cred%%:*} pass=${cred#*:};; *) user=$cred pass=;; esac
    (umask 077 && printf 'machine %s login %s password %s\n' "$host" "$user" "$pass" >"$work/.netrc")
    export HOME="$work";;
esac
if [ -n "$proxy" ]; then export http_proxy="$proxy" https_proxy="$proxy"; fi
if ! debootstrap --variant="$variant" ${include:+--include="$include"} "$suite" "$work/root" "$mirror" >"$work/log" 2>&1; then
  tail -n 20 "$work/log" | mask >&2; echo "debootstrap $suite from $(printf '%s' "$mirror" | mask) failed" >&2; exit 1
fi
tar -C "$work/root" --numeric-owner -cf "$work/root.tar" .
mv "$work/root.tar" "$tar"
