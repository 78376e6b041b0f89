#!/bin/sh
# Read-only facts of a hardware node before a guest is created on it or migrated to it.
#
#   node-facts.sh HYPERVISOR BRIDGE DISK DIR STORE SOURCE TOOL...
#       Prints `version` of the hypervisor (kvm|xen), `mem` MiB available, `bridge` if BRIDGE
#       is a bridge, `missing TOOL` for each TOOL not installed, `arch`, `disk SIZE INODE` and
#       `disk-readable` for the guest's DISK, `dir` if the guest's folder DIR exists,
#       `store-writable` if STORE is a writable folder, and `source SIZE` of the copy source
#       SOURCE (empty: none), and `ssh-server dropbear` when dropbear serves SSH (no sshd runs).
hv=$1 br=$2 disk=$3 dir=$4 store=$5 src=$6
shift 6
if [ "$hv" = kvm ]; then
  echo "version $(qemu-system-x86_64 --version 2>/dev/null | head -n 1)"
  echo "mem $(awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo)"
else
  echo "version $(xl info 2>/dev/null | sed -n 's/^xen_version *: *//p')"
  echo "mem $(xl info 2>/dev/null | sed -n 's/^free_memory *: *//p')"
fi
[ -d "/sys/class/net/$br/bridge" ] && echo bridge
for t in "$@"; do command -v "$t" >/dev/null 2>&1 || echo "missing $t"; done
echo "arch $(dpkg --print-architecture 2>/dev/null || uname -m)"
[ -e "$disk" ] && echo "disk $(stat -L -c '%s %i' "$disk")"
dd if="$disk" of=/dev/null bs=64k count=1 2>/dev/null && echo disk-readable
[ -e "$dir" ] && echo dir
[ -d "$store" ] && [ -w "$store" ] && echo store-writable
if [ -n "$src" ] && [ -f "$src" ]; then echo "source $(stat -L -c %s "$src")"; fi
if ! pidof sshd >/dev/null 2>&1 && pidof dropbear >/dev/null 2>&1; then echo "ssh-server dropbear"; fi
exit 0
