#!/usr/bin/env bash
# Builds a tiny golden guest image for `cloudctl instance create --copy`: a 64 MiB ext4 filesystem
# whose /sbin/init is busybox. At boot it names itself from /etc/hostname, loads virtio-net,
# brings up /etc/network/interfaces, serves SSH with dropbear using the host key cloudctl wrote
# into /etc/ssh, and prints "GUEST UP: NAME ADDRESS" on its console. It boots the hardware node's
# kernel (/vmlinuz, whose modules it copies), so it needs no kernel or bootloader of its own.
#   build-tiny-guest.sh OUT.img [--no-network]   (--no-network: a guest whose network never comes up)
set -euo pipefail
out=${1:?usage: build-tiny-guest.sh OUT.img [--no-network]}
network=yes
[ "${2:-}" = --no-network ] && network=no
version=$(basename "$(readlink -f /vmlinuz)")
version=${version#vmlinuz-}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,etc/network,etc/dropbear,etc/ssh,proc,sys,dev,root,tmp,var/run,run,lib/modules}
cp /bin/busybox "$root/bin/"
# dropbear and dropbearconvert with the shared libraries they load, at the same paths.
for program in /usr/sbin/dropbear /usr/bin/dropbearconvert; do
    for file in "$program" $(ldd "$program" | grep -o '/[^ ]*'); do
        mkdir -p "$root$(dirname "$file")"
        cp "$file" "$root$file"
    done
done
for m in net/core/failover.ko drivers/net/net_failover.ko drivers/net/virtio_net.ko; do
    cp "/lib/modules/$version/kernel/$m" "$root/lib/modules/"
done
up=
if [ "$network" = yes ]; then
    up='ifup -a -f
dropbearconvert openssh dropbear /etc/ssh/ssh_host_ed25519_key /etc/dropbear/key >/dev/null 2>&1 && dropbear -r /etc/dropbear/key -p 22'
fi
cat > "$root/sbin/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/usr/bin:/usr/sbin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null
hostname -F /etc/hostname
for m in failover net_failover virtio_net; do [ -f /lib/modules/\$m.ko ] && insmod /lib/modules/\$m.ko 2>/dev/null; done
ip link set lo up
$up
echo "GUEST UP: \$(hostname) \$(ip -4 -o addr show dev eth0)" >/dev/console
while true; do sleep 3600; done
EOF
chmod 755 "$root/sbin/init"
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
# shellcheck disable=SC2016 # a literal crypt hash, not an expansion
echo 'root:$6$golden$hash:19000:0:99999:7:::' > "$root/etc/shadow"
echo 'root:x:0:' > "$root/etc/group"
echo /bin/sh > "$root/etc/shells"
echo golden > "$root/etc/hostname"
# A golden image's own host key must not survive into guests (cloudctl deletes it).
echo 'GOLDEN KEY' > "$root/etc/ssh/ssh_host_rsa_key"
rm -f "$out"
truncate -s 64M "$out"
mkfs.ext4 -F -q -d "$root" "$out"
