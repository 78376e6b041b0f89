//! The `[instances]` section (where guest disks live, how guests boot, how roots are built) and
//! the `[[instance]]` records of running guests. Typed on parsing, checked against `[[node]]`. Pure.

use super::{Inventory, InventoryError, Role};
use crate::types::{Interface, KernelArgs, Mac, Name, RemotePath, Size};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::ops::Range;
use toml::Spanned;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InstancesSection {
    /// Directory on storage every hardware node mounts at the same path (OCFS2 over the AoE
    /// export on real hosts): one folder per instance with its disk.
    pub store: RemotePath,
    /// Guest kernel and initrd on the hardware nodes (Debian keeps these symlinks up to date).
    pub kernel: RemotePath,
    pub initrd: Option<RemotePath>,
    /// Extra guest kernel arguments (root= and the console come from the backend).
    pub append: KernelArgs,
    /// Bridge on every hardware node the guests' network interfaces join.
    pub bridge: Interface,
    /// Defaults for `instance create`.
    pub memory: u32,
    pub vcpus: u8,
    pub disk: Size,
    /// kvm backend: QEMU accelerator, `kvm` on real hardware, `tcg` where there is none.
    pub accel: Accel,
    /// debootstrap: mirror, variant and extra packages (`instance create --debootstrap SUITE`).
    pub mirror: String,
    pub variant: Name,
    pub include: Vec<String>,
    /// HTTP proxy the hardware node's debootstrap downloads through.
    pub http_proxy: Option<String>,
    /// Where finished debootstrap trees are cached as tarballs (default: `<store>/.cache`).
    pub cache: Option<RemotePath>,
    /// The hardware nodes' authorized_keys file that lets a migration's one-time key in
    /// (default: `~/.ssh/authorized_keys` of the SSH user).
    pub authorized_keys: Option<RemotePath>,
    /// Longest pause of the guest at the end of a live migration, in milliseconds.
    pub max_downtime_ms: u32,
}

impl Default for InstancesSection {
    fn default() -> Self {
        InstancesSection {
            store: "/srv/cloud/instances".parse().expect("static"),
            kernel: "/vmlinuz".parse().expect("static"),
            initrd: Some("/initrd.img".parse().expect("static")),
            append: KernelArgs::default(),
            bridge: "br0".parse().expect("static"),
            memory: 512,
            vcpus: 1,
            disk: "4G".parse().expect("static"),
            accel: Accel::Kvm,
            mirror: "http://deb.debian.org/debian".into(),
            variant: "minbase".parse().expect("static"),
            include: Vec::new(),
            http_proxy: None,
            cache: None,
            authorized_keys: None,
            max_downtime_ms: 50,
        }
    }
}

impl InstancesSection {
    pub fn cache_dir(&self) -> String {
        match &self.cache {
            Some(c) => c.to_string(),
            None => format!("{}/.cache", self.store),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    #[default]
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(&self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// A guest cloudctl created and that ran when it was recorded.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceRecord {
    pub name: Spanned<Name>,
    /// The hardware node it runs on.
    pub hnode: Spanned<Name>,
    pub memory: u32,
    pub vcpus: u8,
    pub disk: Size,
    pub ip: Spanned<Ipv4Addr>,
    pub mac: Spanned<Mac>,
    /// The random mark `instance create` left in the guest's folder (`<store>/NAME/.cloudctl-create`):
    /// `instance remove` deletes that folder only when it carries this mark. Guests created
    /// before the mark was kept have none, and their folder is never deleted.
    #[serde(default)]
    pub nonce: Option<Spanned<String>>,
}

/// A create mark as `instance create` writes it: 32 lowercase hex digits.
pub fn is_nonce(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A URL for a mirror or proxy: http(s) or file, nothing a shell or config line could trip on.
pub fn check_url(field: &str, url: &str) -> Result<(), String> {
    let scheme_ok = ["http://", "https://", "file:///"].iter().any(|p| url.starts_with(p));
    let chars_ok = url
        .bytes()
        .all(|b| b.is_ascii_graphic() && !b"'\"`$\\;<>|&(){}".contains(&b));
    if scheme_ok && chars_ok {
        Ok(())
    } else {
        Err(format!(
            "[instances] {field} = {url:?} is not a usable URL: write http://host[:port]/path (or https://, file:///) without spaces or shell characters"
        ))
    }
}

/// A Debian package name as `apt` accepts it.
pub fn check_package(name: &str) -> Result<(), String> {
    let ok = name.len() >= 2
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "[instances] include: {name:?} is not a Debian package name (lowercase letters, digits, + - .)"
        ))
    }
}

pub fn validate(
    inv: &Inventory,
    text: &str,
    err: &dyn Fn(Range<usize>, String) -> InventoryError,
) -> Result<(), InventoryError> {
    if let Some(s) = &inv.instances {
        let span = s.span();
        let s = s.get_ref();
        check_url("mirror", &s.mirror).map_err(|m| err(span.clone(), m))?;
        if let Some(p) = &s.http_proxy {
            check_url("http_proxy", p).map_err(|m| err(span.clone(), m))?;
        }
        for p in &s.include {
            check_package(p).map_err(|m| err(span.clone(), m))?;
        }
        if s.memory < 16 || s.vcpus == 0 {
            return Err(err(
                span,
                "[instances] memory is at least 16 (MiB) and vcpus at least 1".into(),
            ));
        }
    }
    let mut names: BTreeMap<&Name, &InstanceRecord> = BTreeMap::new();
    let mut taken_ips: BTreeMap<Ipv4Addr, String> = inv
        .node
        .iter()
        .filter_map(|n| {
            n.ip.as_ref()
                .map(|ip| (*ip.get_ref(), format!("node \"{}\"", n.name.get_ref())))
        })
        .collect();
    let mut taken_macs: BTreeMap<Mac, String> = inv
        .node
        .iter()
        .filter_map(|n| {
            n.mac
                .as_ref()
                .map(|m| (*m.get_ref(), format!("node \"{}\"", n.name.get_ref())))
        })
        .collect();
    for rec in &inv.instance {
        let name = rec.name.get_ref();
        if let Some(first) = names.insert(name, rec) {
            return Err(err(
                rec.name.span(),
                format!(
                    "duplicate instance \"{name}\" (first defined on line {}); instance names must be unique",
                    super::line_of(text, first.name.span())
                ),
            ));
        }
        match inv.node.iter().find(|n| n.name.get_ref() == rec.hnode.get_ref()) {
            Some(n) if n.role == Role::Hnode => {}
            Some(n) => {
                return Err(err(
                    rec.hnode.span(),
                    format!(
                        "instance \"{name}\": hnode \"{}\" has role \"{}\"; guests run on hardware nodes (role = \"hnode\")",
                        rec.hnode.get_ref(),
                        n.role.as_str()
                    ),
                ))
            }
            None => {
                return Err(err(
                    rec.hnode.span(),
                    format!("instance \"{name}\": there is no [[node]] named \"{}\"", rec.hnode.get_ref()),
                ))
            }
        }
        let ip = *rec.ip.get_ref();
        if let Some(owner) = taken_ips.insert(ip, format!("instance \"{name}\"")) {
            return Err(err(
                rec.ip.span(),
                format!("instance \"{name}\" field ip: {ip} already belongs to {owner}"),
            ));
        }
        if let Err(why) = super::addresses::check_fixed(inv, ip) {
            return Err(err(rec.ip.span(), format!("instance \"{name}\" field ip: {why}")));
        }
        let mac = *rec.mac.get_ref();
        if let Some(owner) = taken_macs.insert(mac, format!("instance \"{name}\"")) {
            return Err(err(
                rec.mac.span(),
                format!("instance \"{name}\" field mac: {mac} already belongs to {owner}"),
            ));
        }
        if let Some(n) = &rec.nonce {
            if !is_nonce(n.get_ref()) {
                return Err(err(
                    n.span(),
                    format!("instance \"{name}\" field nonce: not a create mark (32 hex digits); it is written by `instance create`, remove the line if you typed it"),
                ));
            }
        }
        if rec.memory < 16 || rec.vcpus == 0 {
            return Err(err(
                rec.name.span(),
                format!("instance \"{name}\": memory is at least 16 (MiB) and vcpus at least 1"),
            ));
        }
    }
    Ok(())
}
