//! Planner for `instance create`: the root filesystem (a cached debootstrap tree or a copy of an
//! image), the guest's identity written into it, its backend config, then the first start. Pure.
//!
//! Everything the run creates is marked with the run's nonce, so a rollback removes exactly what
//! this run made and nothing else (a guest folder another run made stays untouched).

use super::{backend, script, Guest, RUN_DIR};
use crate::error::Error;
use crate::inventory::Host;
use crate::plan::{dir, file, FileSpec, HostPlan, Plan, When};
use crate::templates::Templates;
use serde::Serialize;

/// Where the root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RootSource {
    /// debootstrap SUITE, cached per suite/arch/variant as a tarball on the node.
    Debootstrap { suite: String, arch: String },
    /// A filesystem image (a golden image or another instance's disk), copied sparse.
    Copy { path: String, size: u64 },
}

/// What cloudctl generated or read locally for the guest.
pub struct GuestSecrets {
    pub host_key: Vec<u8>,
    pub host_key_pub: Vec<u8>,
    pub authorized_keys: Vec<u8>,
}

pub struct CreateRequest<'a> {
    pub guest: &'a Guest,
    pub hnode: &'a Host,
    pub source: RootSource,
    pub secrets: &'a GuestSecrets,
    /// Marks what this run created (random, from the command layer).
    pub nonce: &'a str,
}

/// `cache SUITE TARBALL VARIANT INCLUDE URLS`: debootstrap into a temporary folder beside the
/// cache, pack it, rename into place; nothing half-written is ever left under the cache name.
/// URLS is a 0600 file holding the mirror and the proxy (a line each): they may carry
/// credentials, so they are never a process argument (the proxy goes by environment, the
/// mirror's user and password by a netrc file for wget), and every message masks them.
pub const CACHE: &str = r#"set -eu
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
mv "$work/root.tar" "$tar""#;

/// `build MODE SOURCE DIR SIZE STAGE NONCE`: a new guest folder (refused if it exists), a new
/// disk file (sparse: a new guest never sees old data), the root filesystem, the guest's identity.
const BUILD: &str = r#"set -eu
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
rm -f "$tmp""#;

/// `rollback DIR NONCE STAGE`: removes the guest folder only if this run's nonce marks it.
pub const ROLLBACK: &str = r#"dir=$1 nonce=$2 stage=$3
rm -rf "$stage"
if [ "$(cat "$dir/.cloudctl-create" 2>/dev/null)" != "$nonce" ]; then
  [ -e "$dir" ] && echo "$dir was not created by this run: left as it is"
  exit 0
fi
rm -f "$dir/disk.img" "$dir/disk.img.building" "$dir/xl.cfg" "$dir/console.log" "$dir/.cloudctl-create"
rmdir "$dir" && echo "removed $dir""#;

/// The cached tarball for a suite on an architecture, named after everything that shapes it.
pub fn cache_tarball(
    cache_dir: &str,
    suite: &str,
    arch: &str,
    variant: &str,
    mirror: &str,
    include: &[String],
) -> String {
    use sha2::{Digest, Sha256};
    let key = format!("{mirror}\n{}", include.join(","));
    let digest: String = Sha256::digest(key.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{cache_dir}/debootstrap-{suite}-{arch}-{variant}-{digest}.tar")
}

fn stage_dir(g: &Guest) -> String {
    format!("{RUN_DIR}/{}.new", g.name)
}

#[derive(Serialize)]
struct Identity<'a> {
    name: &'a str,
    ip: String,
    netmask: String,
    gateway: Option<String>,
    dns: Vec<String>,
    root: &'a str,
}

fn netmask(prefix: u8) -> std::net::Ipv4Addr {
    let bits = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    };
    bits.into()
}

pub fn plan(inv: &crate::inventory::Inventory, t: &Templates, req: &CreateRequest) -> Result<Plan, Error> {
    let g = req.guest;
    let s = inv.instances();
    let stage = stage_dir(g);
    let id = Identity {
        name: g.name.as_str(),
        ip: g.ip.to_string(),
        netmask: netmask(g.prefix).to_string(),
        gateway: g.gateway.map(|x| x.to_string()),
        dns: g.dns.iter().map(|d| d.to_string()).collect(),
        root: g.root_device(),
    };
    let mut steps = vec![dir(RUN_DIR, 0o700)?, dir(&stage, 0o700)?];
    let (mode, source) = match &req.source {
        RootSource::Debootstrap { suite, arch } => {
            let tar = cache_tarball(&s.cache_dir(), suite, arch, s.variant.as_str(), &s.mirror, &s.include);
            let urls = format!("{stage}/debootstrap-urls");
            steps.push(file(FileSpec {
                id: "debootstrap-urls",
                path: &urls,
                content: format!("{}\n{}\n", s.mirror, s.http_proxy.as_deref().unwrap_or("")),
                mode: 0o600,
                owner: None,
                validate: None,
                secret: true,
            })?);
            steps.push(script(
                CACHE,
                &[suite, &tar, s.variant.as_str(), &s.include.join(","), &urls],
                When::Unless(crate::plan::strings(&["test", "-s", &tar])),
            ));
            ("debootstrap", tar)
        }
        RootSource::Copy { path, .. } => ("copy", path.clone()),
    };
    let staged = |name: &str, content: String, mode: u32, secret: bool| {
        file(FileSpec {
            id: name,
            path: &format!("{stage}/{name}"),
            content,
            mode,
            owner: None,
            validate: None,
            secret,
        })
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    steps.extend([
        staged("hostname", format!("{}\n", g.name), 0o644, false)?,
        staged("hosts", t.render("instance-create/hosts", &id)?, 0o644, false)?,
        staged("fstab", t.render("instance-create/fstab", &id)?, 0o644, false)?,
        staged(
            "resolv.conf",
            t.render("instance-create/resolv.conf", &id)?,
            0o644,
            false,
        )?,
        staged("interfaces", t.render("instance-create/interfaces", &id)?, 0o644, false)?,
        staged("authorized_keys", text(&req.secrets.authorized_keys), 0o600, false)?,
        staged("ssh_host_ed25519_key", text(&req.secrets.host_key), 0o600, true)?,
        staged(
            "ssh_host_ed25519_key.pub",
            text(&req.secrets.host_key_pub),
            0o644,
            false,
        )?,
    ]);
    let size = match &req.source {
        RootSource::Copy { size, .. } => g.disk_size.bytes().max(*size),
        RootSource::Debootstrap { .. } => g.disk_size.bytes(),
    };
    steps.push(script(
        BUILD,
        &[mode, &source, &g.dir, &size.to_string(), &stage, req.nonce],
        When::Always,
    ));
    let b = backend(g.hypervisor);
    steps.extend(b.config_steps(g, t)?);
    steps.extend(b.start_steps(g));
    // Created and running: the staged secret goes. The mark stays: it is the guest's proof of
    // ownership that `instance remove` checks (against the nonce recorded in the inventory)
    // before it deletes the folder.
    steps.push(crate::plan::command(&["rm", "-rf", &stage], When::Always));
    Ok(Plan {
        title: format!("create instance {} on {}", g.name, req.hnode.name),
        hosts: vec![HostPlan {
            host: req.hnode.clone(),
            exclusive: true,
            steps,
        }],
        confirm: true,
        redact: Vec::new(),
    })
}

/// Undoes a failed create on its node: the guest stopped, then what this run's nonce marks removed.
pub fn rollback(g: &Guest, hnode: &Host, nonce: &str) -> Plan {
    let mut steps = backend(g.hypervisor).stop_steps(g, 0);
    steps.push(script(ROLLBACK, &[&g.dir, nonce, &stage_dir(g)], When::Always));
    Plan {
        title: format!("roll back instance {} on {}", g.name, hnode.name),
        hosts: vec![HostPlan {
            host: hnode.clone(),
            exclusive: true,
            steps,
        }],
        confirm: false,
        redact: Vec::new(),
    }
}
