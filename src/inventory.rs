//! The inventory (`cloud.toml`): TOML model, loading, validation and host selection. Pure except `load`.
//!
//! Parsing turns every value into a typed value (see `types`); validation then checks what spans
//! several values (duplicates, addresses inside the network). Every error names the file, the line
//! and the field, and says how to fix it.

use crate::types::{Address, Cidr, Interface, IpRange, IpmiUser, KernelArgs, Mac, Name, RemotePath};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use toml::Spanned;

pub mod addresses;
pub mod confignode;
pub mod instances;
pub mod lamp;
pub mod storage;

/// The node "name" that asks placement to choose (`--hnode auto`, `--to auto`); no node may have it.
pub const AUTO: &str = "auto";

/// Names that select groups and therefore cannot name a node.
pub const GROUP_NAMES: [&str; 4] = ["all", "confignode", "snode", "hnode"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    pub cloud: CloudSection,
    #[serde(default)]
    pub ssh: SshSection,
    pub network: Option<NetworkSection>,
    pub confignode: Option<ConfigNodeSection>,
    #[serde(default)]
    pub profiles: BTreeMap<Name, Profile>,
    #[serde(default)]
    pub node: Vec<Node>,
    /// `lamp deploy`: balancer, web and database nodes, shared storage.
    pub lamp: Option<Spanned<lamp::LampSection>>,
    /// `storage init`: md + DRBD primary/primary + AoE export on two storage nodes.
    pub storage: Option<Spanned<storage::StorageSection>>,
    /// Guests: where their disks live, how they boot, how their roots are built.
    pub instances: Option<Spanned<instances::InstancesSection>>,
    /// Guests cloudctl created, each recorded once it ran, with the hardware node it runs on.
    #[serde(default)]
    pub instance: Vec<instances::InstanceRecord>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudSection {
    pub name: Name,
    #[serde(default)]
    pub hypervisor: Hypervisor,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hypervisor {
    #[default]
    Xen,
    Kvm,
}

impl Hypervisor {
    pub fn as_str(&self) -> &'static str {
        match self {
            Hypervisor::Xen => "xen",
            Hypervisor::Kvm => "kvm",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// Refuse a host whose key is not pinned yet.
    #[default]
    Strict,
    /// Pin the key of a host seen for the first time; refuse a changed key.
    AcceptNew,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SshSection {
    pub user: String,
    pub port: u16,
    pub identity: String,
    pub known_hosts: String,
    pub host_key_policy: HostKeyPolicy,
    /// Seconds to wait for a TCP connection and the SSH handshake.
    #[serde(deserialize_with = "capped_seconds")]
    pub connect_timeout: u64,
    /// Seconds one host may take for the whole job before it is given up.
    #[serde(deserialize_with = "capped_seconds")]
    pub host_timeout: u64,
}

/// The longest time limit the inventory accepts, in seconds (a week): a deadline further away
/// could overflow the clock's arithmetic.
pub const MAX_SECONDS: u64 = 7 * 24 * 3600;

fn capped_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let secs = u64::deserialize(d)?;
    if secs > MAX_SECONDS {
        return Err(serde::de::Error::custom(format!(
            "{secs} seconds is too long: at most {MAX_SECONDS} (a week)"
        )));
    }
    Ok(secs)
}

impl Default for SshSection {
    fn default() -> Self {
        SshSection {
            user: "root".into(),
            port: 22,
            identity: "~/.ssh/id_ed25519".into(),
            known_hosts: "~/.config/cloudctl/known_hosts".into(),
            host_key_policy: HostKeyPolicy::Strict,
            connect_timeout: 10,
            host_timeout: 600,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSection {
    pub subnet: Cidr,
    pub gateway: Option<Ipv4Addr>,
    #[serde(default)]
    pub dns: Vec<Ipv4Addr>,
    pub dynamic_range: Option<Spanned<IpRange>>,
    #[serde(default = "default_interface")]
    pub interface: Interface,
    /// The MTU the booted nodes give their interface (9000: jumbo frames, so AoE carries 8 KiB
    /// per frame instead of 1 KiB); unset, they keep the driver's default. The switch must carry it.
    pub mtu: Option<Spanned<u16>>,
}

/// The MTUs `[network] mtu` accepts: IPv6's minimum up to the largest jumbo frame switches carry.
pub const MTU_RANGE: std::ops::RangeInclusive<u16> = 1280..=9216;

fn default_interface() -> Interface {
    "eth0".parse().expect("static name")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigNodeSection {
    /// Where cloudctl connects; with a pair (`nodes`), the floating address the one that is up holds.
    pub address: Address,
    pub next_server: Option<Ipv4Addr>,
    /// A ConfigNode pair: the two hosts, DHCP failover primary first (see `confignode`).
    pub nodes: Option<Spanned<Vec<confignode::Member>>>,
    /// The pair's VRRP router id (1-255), default `confignode::DEFAULT_VRRP_ID`.
    pub vrrp_id: Option<u8>,
    #[serde(default = "default_tftp_root")]
    pub tftp_root: RemotePath,
    #[serde(default = "default_dhcpd_conf")]
    pub dhcpd_conf: RemotePath,
}

fn default_tftp_root() -> RemotePath {
    "/srv/tftp".parse().expect("static path")
}
fn default_dhcpd_conf() -> RemotePath {
    "/etc/dhcp/dhcpd.conf".parse().expect("static path")
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub kernel: RemotePath,
    pub initrd: RemotePath,
    pub xen: Option<RemotePath>,
    pub xen_args: Option<KernelArgs>,
    #[serde(default)]
    pub append: KernelArgs,
    /// A golden image in the shared instance store (`<store>/.images/NAME`, a squashfs) that the
    /// profile's nodes take as their root filesystem, read-only and shared, with a per-node RAM
    /// overlay; without it a node keeps the RAM root its initrd unpacks.
    pub root: Option<Name>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Hnode,
    Snode,
}

impl Role {
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Hnode => "hnode",
            Role::Snode => "snode",
        }
    }
}

/// A role as `node add --role` and a CSV row write it.
impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "hnode" => Ok(Role::Hnode),
            "snode" => Ok(Role::Snode),
            other => Err(format!(
                "unknown role {}: use hnode or snode",
                crate::types::shown(other)
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: Spanned<Name>,
    pub mac: Option<Spanned<Mac>>,
    pub ip: Option<Spanned<Ipv4Addr>>,
    pub role: Role,
    pub profile: Option<Name>,
    pub address: Option<Address>,
    /// Overrides `[cloud] hypervisor` for this hardware node.
    pub hypervisor: Option<Hypervisor>,
    /// How `hnode boot` powers the node on (default: Wake-on-LAN).
    #[serde(default)]
    pub power: Power,
    pub ipmi: Option<Ipmi>,
    /// Hardware nodes: MiB guests may use together (default: what the node reports available).
    pub memory: Option<u32>,
    /// Hardware nodes: set by `hnode drain`; placement puts no guest here (`hnode undrain` clears it).
    #[serde(default)]
    pub drained: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Power {
    #[default]
    Wol,
    Ipmi,
    None,
}

/// A node's BMC. The password stays in a local file (0600), never in the inventory or argv.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Ipmi {
    pub address: Address,
    pub user: IpmiUser,
    pub password_file: String,
}

/// A machine cloudctl can connect to, with the groups it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Host {
    pub name: String,
    /// `confignode`, `snode` or `hnode`.
    pub role: &'static str,
    pub host: String,
    pub port: u16,
}

impl Host {
    /// `host:port` as shown to users and used as the known_hosts key.
    pub fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// An inventory error, located in its file.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {message}")]
pub struct InventoryError {
    pub location: String,
    pub message: String,
}

/// Where to look for the inventory when `-i` and `CLOUDCTL_INVENTORY` are not given.
pub fn default_paths() -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from("cloud.toml")];
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(dir) = config_home {
        paths.push(dir.join("cloudctl").join("cloud.toml"));
    }
    paths
}

/// Finds the inventory: the explicit path if given, else the first default that exists.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, InventoryError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let candidates = default_paths();
    candidates.iter().find(|p| p.exists()).cloned().ok_or_else(|| InventoryError {
        location: "inventory".into(),
        message: format!(
            "no inventory found (looked for {}); pass -i FILE, set CLOUDCTL_INVENTORY, or create a local lab with `cloudctl lab up`",
            candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" and ")
        ),
    })
}

/// Reads and validates the inventory at `path`.
pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
    let text = std::fs::read_to_string(path).map_err(|e| InventoryError {
        location: path.display().to_string(),
        message: format!("cannot read the inventory: {e}; pass -i FILE to use another one"),
    })?;
    parse(&path.display().to_string(), &text)
}

/// Parses and validates inventory text; `file` names it in errors.
pub fn parse(file: &str, text: &str) -> Result<Inventory, InventoryError> {
    let inv: Inventory = toml::from_str(text).map_err(|e| {
        let message = e.message().trim_end().to_string();
        let hint = if message.starts_with("unknown field") {
            " (check the spelling against the inventory format in README.md)"
        } else {
            ""
        };
        at(file, text, e.span(), format!("{message}{hint}"))
    })?;
    validate(file, text, &inv)?;
    Ok(inv)
}

/// What `parse(file, new)` returns when `new` is `old` (which gave `inv`) with `[[node]]` tables
/// appended, as `inventory_file::add_nodes` writes them, at the cost of the appended tables only:
/// they are parsed at their own offsets in `new` (the old text replaced by as many spaces, which
/// the parser skips at once), joined to `inv` and the whole validated again. TOML gives
/// appended `[[node]]` tables that meaning unless the old text assigns `node` inline
/// (`node = [...]`), so such a text, and anything that does not parse or validate this way, is
/// parsed in full: values and errors are always those of `parse`. With 5,000 nodes this takes
/// about a fifth of a full parse (9 ms against 42 ms here).
pub fn with_appended_nodes(file: &str, mut inv: Inventory, old: &str, new: &str) -> Result<Inventory, InventoryError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Tail {
        #[serde(default)]
        node: Vec<Node>,
    }
    let inline = old.lines().any(|l| {
        let l = l.trim_start();
        ["node", "\"node\"", "'node'"]
            .iter()
            .any(|k| l.strip_prefix(k).is_some_and(|rest| rest.trim_start().starts_with('=')))
    });
    let Some(tail) = new.strip_prefix(old).filter(|_| !inline) else {
        return parse(file, new);
    };
    // Spans are byte offsets (errors count lines in `new` itself): one line of spaces will do.
    match toml::from_str::<Tail>(&(" ".repeat(old.len()) + tail)) {
        Ok(t) => {
            inv.node.extend(t.node);
            match validate(file, new, &inv) {
                Ok(()) => Ok(inv),
                Err(_) => parse(file, new),
            }
        }
        Err(_) => parse(file, new),
    }
}

/// Builds an error pointing at `span` of `text`, quoting the offending line.
fn at(file: &str, text: &str, span: Option<std::ops::Range<usize>>, message: String) -> InventoryError {
    let Some(span) = span else {
        return InventoryError {
            location: file.to_string(),
            message,
        };
    };
    let start = floor_char_boundary(text, span.start.min(text.len()));
    let line_no = text[..start].matches('\n').count() + 1;
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    let message = match field_at(text, start) {
        Some(field) if !message.contains(&field) => format!("field {field}: {message}"),
        _ => message,
    };
    // The line is echoed cut and escaped: it may be huge, or hold terminal escapes.
    InventoryError {
        location: format!("{file}:{line_no}"),
        message: format!("{message}\n    {line_no} | {}", crate::types::shown_line(line)),
    }
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The field an offset of the inventory text belongs to, as `[section] key` (or `[section]`):
/// the last `key =` before it, under the last table header before that.
fn field_at(text: &str, offset: usize) -> Option<String> {
    let before = &text[..text[offset..].find('\n').map_or(text.len(), |i| offset + i)];
    let mut key = None;
    let mut section = None;
    for line in before.lines().rev() {
        let line = line.trim();
        if line.starts_with('[') {
            section = Some(line.trim_matches(|c| c == '[' || c == ']').trim().to_string());
            break;
        }
        if key.is_none() {
            if let Some((k, _)) = line.split_once('=') {
                let k = k.trim();
                if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) {
                    key = Some(k.to_string());
                }
            }
        }
    }
    match (section, key) {
        (Some(s), Some(k)) => Some(format!("[{s}] {k}")),
        (None, Some(k)) => Some(k),
        (Some(s), None) => Some(format!("[{s}]")),
        (None, None) => None,
    }
}

fn validate(file: &str, text: &str, inv: &Inventory) -> Result<(), InventoryError> {
    let err = |span: std::ops::Range<usize>, m: String| at(file, text, Some(span), m);
    let mut names: BTreeMap<&Name, &Node> = BTreeMap::new();
    let mut macs: BTreeMap<Mac, &Node> = BTreeMap::new();
    let mut ips: BTreeMap<Ipv4Addr, &Node> = BTreeMap::new();
    for node in &inv.node {
        let name = node.name.get_ref();
        if GROUP_NAMES.contains(&name.as_str()) {
            return Err(err(
                node.name.span(),
                format!(
                    "node name \"{name}\" is reserved for a group ({}); choose another name",
                    GROUP_NAMES.join(", ")
                ),
            ));
        }
        if name.as_str() == AUTO {
            return Err(err(
                node.name.span(),
                "node name \"auto\" is reserved: `--hnode auto` and `--to auto` ask cloudctl to choose a node; choose another name".into(),
            ));
        }
        if let Some(other) = names.insert(name, node) {
            return Err(err(
                node.name.span(),
                format!(
                    "duplicate node name \"{name}\" (first defined on line {}); node names must be unique",
                    line_of(text, other.name.span())
                ),
            ));
        }
        if let Some(mac) = &node.mac {
            if let Some(other) = macs.insert(*mac.get_ref(), node) {
                return Err(err(
                    mac.span(),
                    format!(
                        "node \"{name}\" field mac: {} already belongs to node \"{}\"; each MAC identifies one machine",
                        mac.get_ref(),
                        other.name.get_ref()
                    ),
                ));
            }
        }
        if let Some(ip) = &node.ip {
            let ipv = *ip.get_ref();
            if let Some(other) = ips.insert(ipv, node) {
                return Err(err(
                    ip.span(),
                    format!("node \"{name}\" field ip: {ipv} already belongs to node \"{}\"; give each node its own address", other.name.get_ref()),
                ));
            }
            if let Err(why) = addresses::check_fixed(inv, ipv) {
                return Err(err(ip.span(), format!("node \"{name}\" field ip: {why}")));
            }
        }
        if let Some(profile) = &node.profile {
            if !inv.profiles.contains_key(profile) {
                return Err(err(
                    node.name.span(),
                    format!("node \"{name}\" uses profile \"{profile}\", which has no [profiles.{profile}] section; add it or fix the name"),
                ));
            }
        }
    }
    for (pname, profile) in &inv.profiles {
        if profile.root.is_some() && inv.storage.is_none() {
            return Err(err(
                field_span(text, &format!("profiles.{pname}"), "root"),
                format!("[profiles.{pname}] root: the root image lives on the shared storage, and this inventory has no [storage]; add [storage] or remove `root`"),
            ));
        }
    }
    if let Some(net) = &inv.network {
        if let Some(mtu) = &net.mtu {
            if !MTU_RANGE.contains(mtu.get_ref()) {
                return Err(err(
                    mtu.span(),
                    format!(
                        "[network] mtu = {}: an MTU is {} to {} (1500 is Ethernet's default, 9000 jumbo frames); fix it or remove the line",
                        mtu.get_ref(),
                        MTU_RANGE.start(),
                        MTU_RANGE.end()
                    ),
                ));
            }
        }
        if let Some(gw) = net.gateway {
            if !net.subnet.is_host_address(gw) {
                return Err(err(
                    field_span(text, "network", "gateway"),
                    format!(
                        "[network] gateway {gw} is not a host address of subnet {}; the nodes could not reach it",
                        net.subnet
                    ),
                ));
            }
        }
        if let Some(range) = &net.dynamic_range {
            let r = range.get_ref();
            if !net.subnet.contains(r.first) || !net.subnet.contains(r.last) {
                return Err(err(
                    range.span(),
                    format!(
                        "[network] dynamic_range {r} is not inside subnet {}; fix one of them",
                        net.subnet
                    ),
                ));
            }
        }
    }
    if let Some(cn) = &inv.confignode {
        confignode::validate(inv, cn, text, &err)?;
    }
    if let Some(section) = &inv.storage {
        storage::validate(inv, section, &err)?;
    }
    if let Some(section) = &inv.lamp {
        lamp::validate(inv, section, &err)?;
    }
    instances::validate(inv, text, &err)?;
    Ok(())
}

/// The span of `key` in `[section]` (for errors about values that carry no span of their own),
/// or the start of the file.
pub(crate) fn field_span(text: &str, section: &str, key: &str) -> std::ops::Range<usize> {
    let header = format!("[{section}]");
    let mut in_section = false;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if t.starts_with('[') {
            in_section = t == header;
        } else if in_section && t.split_once('=').is_some_and(|(k, _)| k.trim() == key) {
            return offset..offset + line.len();
        }
        offset += line.len();
    }
    0..0
}

pub(crate) fn line_of(text: &str, span: std::ops::Range<usize>) -> usize {
    text[..span.start.min(text.len())].matches('\n').count() + 1
}

impl Inventory {
    /// The `[instances]` settings, defaults when the section is absent.
    pub fn instances(&self) -> std::borrow::Cow<'_, instances::InstancesSection> {
        match &self.instances {
            Some(s) => std::borrow::Cow::Borrowed(s.get_ref()),
            None => std::borrow::Cow::Owned(instances::InstancesSection::default()),
        }
    }

    /// Every host cloudctl may connect to, ConfigNode first, in inventory order.
    pub fn hosts(&self) -> Vec<Host> {
        let port = self.ssh.port;
        let mut hosts = Vec::new();
        if let Some(cn) = &self.confignode {
            // A pair is two hosts of the group, by their own names; the floating address is
            // never connected to (which of them holds it changes).
            for m in cn.members() {
                let (host, port) = m.endpoint(port);
                hosts.push(Host {
                    name: m.name.to_string(),
                    role: "confignode",
                    host,
                    port,
                });
            }
            if !cn.is_pair() {
                hosts.push(Host {
                    name: "confignode".into(),
                    role: "confignode",
                    host: cn.address.host.clone(),
                    port: cn.address.port.unwrap_or(port),
                });
            }
        }
        for n in &self.node {
            let (host, p) = match (&n.address, &n.ip) {
                (Some(a), _) => (a.host.clone(), a.port.unwrap_or(port)),
                (None, Some(ip)) => (ip.get_ref().to_string(), port),
                (None, None) => continue,
            };
            hosts.push(Host {
                name: n.name.get_ref().to_string(),
                role: n.role.as_str(),
                host,
                port: p,
            });
        }
        hosts
    }

    /// Resolves selectors (`all`, a role, or a node name) to hosts, in inventory order, without duplicates.
    pub fn select(&self, selectors: &[String]) -> Result<Vec<Host>, String> {
        let hosts = self.hosts();
        let mut chosen = vec![false; hosts.len()];
        for sel in selectors {
            let mut matched = false;
            for (i, h) in hosts.iter().enumerate() {
                if sel == "all" || sel == h.role || sel == &h.name {
                    chosen[i] = true;
                    matched = true;
                }
            }
            if !matched {
                let known: Vec<&str> = self.node.iter().map(|n| n.name.get_ref().as_str()).collect();
                let is_node = known.contains(&sel.as_str());
                return Err(if is_node {
                    format!("node \"{sel}\" has neither `ip` nor `address` in the inventory, so cloudctl cannot reach it; add one")
                } else if GROUP_NAMES.contains(&sel.as_str()) {
                    format!("group \"{sel}\" has no hosts in the inventory")
                } else {
                    format!(
                        "no host or group named {sel:?}; use all, confignode, snode, hnode or a node name ({})",
                        if known.is_empty() {
                            "the inventory has no nodes".to_string()
                        } else {
                            known.join(", ")
                        }
                    )
                });
            }
        }
        Ok(hosts
            .into_iter()
            .zip(chosen)
            .filter_map(|(h, c)| c.then_some(h))
            .collect())
    }
}

/// Expands a leading `~/` to `$HOME`.
pub fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}
