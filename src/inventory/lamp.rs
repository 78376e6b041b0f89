//! The `[lamp]` inventory section: which nodes run pen, Apache/PHP and MariaDB, and the shared
//! storage under the docroot. Typed on parsing, checked against `[[node]]` here. Pure.

use super::{Inventory, InventoryError};
use crate::types::{Name, RemotePath};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::ops::Range;
use toml::Spanned;

/// Why more than one mysqld on the shared data directory is refused unless asked for.
pub const MULTIPLE_MYSQLD_WARNING: &str = "more than one mysqld on the shared data directory is unsafe: MySQL's \
external locking uses fcntl() POSIX locks, and OCFS2 on the o2cb stack has no cluster-wide POSIX locks, so two \
mysqld on one MyISAM data directory are not protected from each other (the seed setup itself calls this \"not a good idea\")";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LampSection {
    /// The node running pen.
    pub balancer: Spanned<Name>,
    /// The web nodes (Apache + PHP), two or more.
    pub web: Spanned<Vec<Name>>,
    /// The node running MariaDB, or several with `allow_multiple_mysqld`.
    pub database: Spanned<OneOrMany>,
    /// Allows several mysqld on one shared data directory (unsafe on o2cb; see the warning).
    #[serde(default)]
    pub allow_multiple_mysqld: bool,
    /// Where the shared filesystem is mounted on every web node (docroot and sessions live under it).
    #[serde(default = "default_mount")]
    pub mount: Spanned<RemotePath>,
    /// What the shared filesystem is.
    #[serde(default)]
    pub storage: Storage,
    /// `storage = "bind"`: a directory already shared between the web nodes, bind-mounted at `mount`.
    pub bind_source: Option<Spanned<RemotePath>>,
    #[serde(default)]
    pub pen: PenSettings,
    pub drbd: Option<Spanned<DrbdSettings>>,
    #[serde(default)]
    pub ocfs2: Ocfs2Settings,
    #[serde(default)]
    pub mysql: MysqlSettings,
}

/// `"db1"` or `["web1", "web2"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(Name),
    Many(Vec<Name>),
}

impl OneOrMany {
    pub fn names(&self) -> Vec<&Name> {
        match self {
            OneOrMany::One(n) => vec![n],
            OneOrMany::Many(v) => v.iter().collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Storage {
    /// DRBD primary/primary between two web nodes, OCFS2 on top (real hosts).
    #[default]
    DrbdOcfs2,
    /// A directory that is already shared between the web nodes (NFS, or the lab's shared /tmp),
    /// bind-mounted at `mount`. cloudctl does not make it shared.
    Bind,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PenSettings {
    /// Port pen listens on (all addresses of the balancer).
    pub port: u16,
    /// Port Apache listens on, on every web node.
    pub backend_port: u16,
    /// Client tracking time in seconds (`pen -T`; 0 = forever): a client keeps its web node this long.
    pub timeout: u32,
}

impl Default for PenSettings {
    fn default() -> Self {
        PenSettings {
            port: 80,
            backend_port: 80,
            timeout: 10,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrbdSettings {
    #[serde(default = "default_resource")]
    pub resource: Name,
    #[serde(default = "default_drbd_port")]
    pub port: u16,
    #[serde(default = "default_device")]
    pub device: Spanned<RemotePath>,
    /// The backing disk on each of the two web nodes (with `md`: the RAID1 array, /dev/mdN).
    pub disk: RemotePath,
    /// The seed's md under DRBD: `disk` is a RAID1 array of these disks, which `lamp deploy`
    /// creates when they are blank and assembles when they carry it already.
    pub md: Option<Spanned<Vec<RemotePath>>>,
    /// The cross-over link address of each web node (`web1 = "192.168.100.1"`).
    pub address: Spanned<BTreeMap<Name, Ipv4Addr>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ocfs2Settings {
    /// o2cb cluster name (1-16 characters).
    pub cluster: Spanned<Name>,
    pub port: u16,
}

impl Default for Ocfs2Settings {
    fn default() -> Self {
        Ocfs2Settings {
            cluster: Spanned::new(0..0, "www".parse().expect("static name")),
            port: 7777,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSettings {
    /// Data directory; default /var/lib/mysql, or `<mount>/mysql` for several mysqld.
    pub datadir: Option<Spanned<RemotePath>>,
}

fn default_mount() -> Spanned<RemotePath> {
    Spanned::new(0..0, "/srv/www".parse().expect("static path"))
}
fn default_resource() -> Name {
    "www".parse().expect("static name")
}
fn default_drbd_port() -> u16 {
    7789
}
fn default_device() -> Spanned<RemotePath> {
    Spanned::new(0..0, "/dev/drbd0".parse().expect("static path"))
}

impl LampSection {
    pub fn databases(&self) -> Vec<&Name> {
        self.database.get_ref().names()
    }

    /// The MariaDB data directory.
    pub fn datadir(&self) -> String {
        match &self.mysql.datadir {
            Some(d) => d.get_ref().to_string(),
            None if self.databases().len() > 1 => format!("{}/mysql", self.mount.get_ref()),
            None => "/var/lib/mysql".into(),
        }
    }
}

/// Checks what spans nodes and settings; `err` locates a message at a span of the file.
pub fn validate(
    inv: &Inventory,
    lamp: &Spanned<LampSection>,
    err: &dyn Fn(Range<usize>, String) -> InventoryError,
) -> Result<(), InventoryError> {
    let section = lamp.span();
    let lamp = lamp.get_ref();
    let node_ip = |name: &Name| {
        inv.node
            .iter()
            .find(|n| n.name.get_ref() == name)
            .map(|n| n.ip.as_ref().map(|ip| *ip.get_ref()))
    };
    let check_node = |field: &str, name: &Name, span: Range<usize>| -> Result<(), InventoryError> {
        match node_ip(name) {
            None => Err(err(
                span,
                format!("[lamp] {field}: there is no [[node]] named \"{name}\"; add the node or fix the name"),
            )),
            Some(None) => Err(err(
                span,
                format!(
                    "[lamp] {field}: node \"{name}\" has no `ip`; LAMP nodes need one (pen, grants and DRBD use it)"
                ),
            )),
            Some(Some(_)) => Ok(()),
        }
    };
    check_node("balancer", lamp.balancer.get_ref(), lamp.balancer.span())?;
    let web = lamp.web.get_ref();
    for w in web {
        check_node("web", w, lamp.web.span())?;
    }
    if web.len() < 2 {
        return Err(err(
            lamp.web.span(),
            "[lamp] web: name at least two web nodes (pen balances between them)".into(),
        ));
    }
    let unique: BTreeSet<&Name> = web.iter().collect();
    if unique.len() != web.len() {
        return Err(err(lamp.web.span(), "[lamp] web: a node is listed twice".into()));
    }
    if web.contains(lamp.balancer.get_ref()) {
        return Err(err(
            lamp.balancer.span(),
            format!(
                "[lamp] balancer: \"{}\" is also a web node; pen needs a node of its own",
                lamp.balancer.get_ref()
            ),
        ));
    }
    let dbs = lamp.databases();
    for d in &dbs {
        check_node("database", d, lamp.database.span())?;
        if *d == lamp.balancer.get_ref() {
            return Err(err(
                lamp.database.span(),
                format!("[lamp] database: \"{d}\" is the balancer; give MariaDB another node"),
            ));
        }
    }
    if dbs.is_empty() || dbs.iter().collect::<BTreeSet<_>>().len() != dbs.len() {
        return Err(err(
            lamp.database.span(),
            "[lamp] database: name one node (each at most once)".into(),
        ));
    }
    if dbs.len() > 1 {
        if !lamp.allow_multiple_mysqld {
            return Err(err(
                lamp.database.span(),
                format!("[lamp] database: {} nodes would run mysqld on one shared data directory, and {MULTIPLE_MYSQLD_WARNING}; name one node, or set `allow_multiple_mysqld = true` if you accept that", dbs.len()),
            ));
        }
        if let Some(d) = dbs.iter().find(|d| !web.contains(d)) {
            return Err(err(
                lamp.database.span(),
                format!("[lamp] database: \"{d}\" is not a web node; several mysqld share the data directory on the web nodes' shared storage, so each must be a web node"),
            ));
        }
    }
    let mount = lamp.mount.get_ref();
    check_not_system("mount", mount, lamp.mount.span(), err)?;
    if let Some(d) = &lamp.mysql.datadir {
        let under = d.get_ref().as_str().starts_with(&format!("{}/", mount));
        if dbs.len() > 1 && !under {
            return Err(err(
                d.span(),
                format!("[lamp.mysql] datadir: several mysqld share one data directory, so it must lie under the shared mount {mount}"),
            ));
        }
    }
    let pen = &lamp.pen;
    if pen.port == 0 || pen.backend_port == 0 {
        return Err(err(section, "[lamp.pen] port and backend_port must be 1-65535".into()));
    }
    if pen.timeout > 86_400 {
        return Err(err(
            section,
            format!(
                "[lamp.pen] timeout = {}: use 0 (track clients forever) up to 86400 seconds",
                pen.timeout
            ),
        ));
    }
    let cluster = lamp.ocfs2.cluster.get_ref();
    if cluster.as_str().len() > 16 {
        return Err(err(
            lamp.ocfs2.cluster.span(),
            format!("[lamp.ocfs2] cluster = \"{cluster}\": o2cb cluster names have at most 16 characters"),
        ));
    }
    match lamp.storage {
        Storage::Bind => {
            let Some(src) = &lamp.bind_source else {
                return Err(err(
                    section,
                    "[lamp] storage = \"bind\" needs bind_source: a directory already shared between the web nodes (bind-mounted at `mount`)".into(),
                ));
            };
            check_not_system("bind_source", src.get_ref(), src.span(), err)?;
            if lamp.drbd.is_some() {
                return Err(err(
                    section,
                    "[lamp] storage = \"bind\" uses no DRBD; remove [lamp.drbd] or set storage = \"drbd-ocfs2\"".into(),
                ));
            }
        }
        Storage::DrbdOcfs2 => {
            if let Some(src) = &lamp.bind_source {
                return Err(err(
                    src.span(),
                    "[lamp] bind_source is only for storage = \"bind\"".into(),
                ));
            }
            let Some(drbd) = &lamp.drbd else {
                return Err(err(
                    section,
                    "[lamp] storage = \"drbd-ocfs2\" (the default) needs a [lamp.drbd] section with disk and the cross-over address of each web node; for a directory already shared between the web nodes use storage = \"bind\"".into(),
                ));
            };
            validate_drbd(web, drbd, err)?;
        }
    }
    Ok(())
}

fn validate_drbd(
    web: &[Name],
    drbd: &Spanned<DrbdSettings>,
    err: &dyn Fn(Range<usize>, String) -> InventoryError,
) -> Result<(), InventoryError> {
    let span = drbd.span();
    let drbd = drbd.get_ref();
    if web.len() != 2 {
        return Err(err(
            span,
            format!("[lamp.drbd] DRBD primary/primary joins exactly two nodes, and [lamp] web names {}; use two web nodes, or storage = \"bind\" over storage shared another way", web.len()),
        ));
    }
    let device = drbd.device.get_ref().as_str();
    let minor_ok = device
        .strip_prefix("/dev/drbd")
        .is_some_and(|m| !m.is_empty() && m.len() <= 6 && m.bytes().all(|b| b.is_ascii_digit()));
    if !minor_ok {
        return Err(err(
            drbd.device.span(),
            format!("[lamp.drbd] device = \"{device}\": write /dev/drbdN (N is the minor number)"),
        ));
    }
    let addrs = drbd.address.get_ref();
    for w in web {
        if !addrs.contains_key(w) {
            return Err(err(
                drbd.address.span(),
                format!("[lamp.drbd] address: no cross-over address for web node \"{w}\"; add `{w} = \"192.168.x.y\"`"),
            ));
        }
    }
    if let Some(extra) = addrs.keys().find(|k| !web.contains(k)) {
        return Err(err(
            drbd.address.span(),
            format!("[lamp.drbd] address: \"{extra}\" is not one of the web nodes"),
        ));
    }
    let mut seen: BTreeMap<&Ipv4Addr, &Name> = BTreeMap::new();
    for (node, ip) in addrs {
        if let Some(first) = seen.insert(ip, node) {
            return Err(err(
                drbd.address.span(),
                format!("[lamp.drbd] address: {ip} is given to both \"{first}\" and \"{node}\"; the two web nodes need different addresses"),
            ));
        }
    }
    if drbd.port == 0 {
        return Err(err(span, "[lamp.drbd] port must be 1-65535".into()));
    }
    if let Some(md) = &drbd.md {
        let (members, disk) = (md.get_ref(), drbd.disk.as_str());
        let array_ok = disk
            .strip_prefix("/dev/md")
            .is_some_and(|m| !m.is_empty() && m.len() <= 6 && m.bytes().all(|b| b.is_ascii_digit()));
        if !array_ok {
            return Err(err(
                span,
                format!("[lamp.drbd] disk = \"{disk}\": with `md` the disk is the RAID1 array lamp deploy makes; write /dev/mdN"),
            ));
        }
        let distinct: std::collections::BTreeSet<&str> = members.iter().map(|m| m.as_str()).collect();
        if members.len() < 2 || distinct.len() != members.len() || distinct.contains(disk) {
            return Err(err(
                md.span(),
                format!(
                    "[lamp.drbd] md = {:?}: name two or more different disks (the RAID1 members), none of them the array itself ({disk})",
                    members.iter().map(|m| m.as_str()).collect::<Vec<_>>()
                ),
            ));
        }
    }
    Ok(())
}

/// Directories the system itself lives in. Mounting the shared filesystem over one would hide the
/// node's own files (and put that in fstab); bind-mounting one as the docroot would serve them.
const SYSTEM_DIRS: [&str; 17] = [
    "/",
    "/home",
    "/media",
    "/mnt",
    "/opt",
    "/root",
    "/srv",
    "/tmp",
    "/var",
    "/var/backups",
    "/var/cache",
    "/var/lib",
    "/var/local",
    "/var/log",
    "/var/mail",
    "/var/spool",
    "/var/tmp",
];
/// Trees of the system nothing may be mounted anywhere inside.
const SYSTEM_TREES: [&str; 12] = [
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run", "/sbin", "/usr",
];

/// Refuses a system directory (paths are normalised already: `RemotePath` has no `.`, `..` or
/// empty component).
fn check_not_system(
    field: &str,
    path: &RemotePath,
    span: Range<usize>,
    err: &dyn Fn(Range<usize>, String) -> InventoryError,
) -> Result<(), InventoryError> {
    let tree = SYSTEM_TREES.iter().find(|t| path.is_within(t));
    if SYSTEM_DIRS.contains(&path.as_str()) || tree.is_some() || path.is_within("/sys") {
        let what = match tree {
            Some(t) if *t != path.as_str() => format!("{path} lies inside {t}, a system directory"),
            _ => format!("{path} is a system directory"),
        };
        return Err(err(
            span,
            format!("[lamp] {field} = \"{path}\": {what}; use a directory of its own such as /srv/www"),
        ));
    }
    Ok(())
}
