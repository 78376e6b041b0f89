//! Planner for the ConfigNode (`config init`, `node add`, `node remove`): DHCP, TFTP and the
//! pxelinux tree. `config init` renders all of it from the inventory (every run idempotent, stale
//! per-MAC files removed) on the one ConfigNode or on both of a pair; node changes render only
//! the file of DHCP host entries and the PXE file of each changed node, so their cost does not
//! grow with the cloud. Pure.

use super::steps::on_change;
use super::{
    command, config, file, install_packages, strings, AbsentStep, CommandStep, DirStep, FileSpec, HostPlan, Plan, Step,
    When,
};
use super::{StepId, Steps};
use crate::error::Error;
use crate::inventory::confignode::{Member, DEFAULT_VRRP_ID};
use crate::inventory::{ConfigNodeSection, Inventory, NetworkSection, Node, Profile};
use crate::shell::Script;
use crate::templates::Templates;
use crate::types::{Mac, RemotePath};
use serde_json::json;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// Packages `config init` installs when missing: the PXE server, and the tools cloudctl itself
/// runs on the ConfigNode later (`hnode boot`: ping to watch a node come up, wakeonlan to power it).
pub const PACKAGES: [&str; 6] = [
    "isc-dhcp-server",
    "tftpd-hpa",
    "pxelinux",
    "syslinux-common",
    "iputils-ping",
    "wakeonlan",
];
/// Installed as well on each ConfigNode of a pair: VRRP for the floating next-server address.
pub const PAIR_PACKAGE: &str = "keepalived";
/// Installed as well when a node is powered by IPMI (`hnode boot` runs ipmitool on the ConfigNode).
pub const IPMI_PACKAGE: &str = "ipmitool";

/// The packages `config init` makes sure of for this inventory.
pub fn packages(inv: &Inventory) -> Vec<&'static str> {
    let mut packages = PACKAGES.to_vec();
    if inv
        .node
        .iter()
        .any(|n| n.ipmi.is_some() || n.power == crate::inventory::Power::Ipmi)
    {
        packages.push(IPMI_PACKAGE);
    }
    packages
}

/// Boot files staged into the TFTP root: (source on the ConfigNode, name in the TFTP root).
const BOOT_FILES: [(&str, &str); 4] = [
    ("/usr/lib/PXELINUX/pxelinux.0", "pxelinux.0"),
    ("/usr/lib/syslinux/modules/bios/ldlinux.c32", "ldlinux.c32"),
    ("/usr/lib/syslinux/modules/bios/mboot.c32", "mboot.c32"),
    ("/usr/lib/syslinux/modules/bios/libcom32.c32", "libcom32.c32"),
];

/// Where the ConfigNode keeps each hardware node's private host keys (`NAME.keys`, 0600), outside
/// the TFTP root, and the map `addresses` ("IP NAME" lines) the key server looks callers up in.
pub const NODE_KEYS_DIR: &str = "/var/lib/cloudctl/node-keys";
/// The plan step id of that map.
pub const NODE_ADDRESSES_ID: &str = "node-addresses";

/// How many files the DHCP host entries are spread over (`cloudctl-hosts.d/NN.conf`, a node's
/// file chosen by a hash of its name): a node change renders, sends and validates one of them,
/// about 1/32 of the entries, instead of all of them.
pub const HOST_SHARDS: usize = 32;

/// Changes the running dhcpd live through OMAPI, or restarts it (see the script's header).
const DHCPD_SCRIPT: &str = include_str!("../../scripts/confignode/dhcpd.sh");
/// Where that script keeps the hosts file dhcpd last took and the names it changed live.
const DHCPD_STATE_DIR: &str = "/var/lib/cloudctl/dhcpd";
/// Debian's dhcpd lease file (the init script passes no other).
pub const LEASES: &str = "/var/lib/dhcp/dhcpd.leases";
/// Where Debian's keepalived init script keeps the daemon's pid.
pub const KEEPALIVED_PID: &str = "/run/keepalived.pid";
/// dhcpd's OMAPI port (ISC's registered default).
pub const OMAPI_PORT: u16 = 7911;
/// Writes a fresh OMAPI key file (root only) at $1: the secret goes from /dev/urandom through a
/// pipe and the shell's own printf into the file, never into an argument list.
const OMAPI_KEYGEN: &str = "umask 077; s=$(head -c 32 /dev/urandom | base64) && [ -n \"$s\" ] && printf 'key cloudctl-omapi { algorithm hmac-sha256; secret \"%s\"; };\\n' \"$s\" >\"$1.cloudctl-new\" && mv -f \"$1.cloudctl-new\" \"$1\"";

/// What `config init` does, or only what node changes touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything: packages, daemons' settings, every node's entries, stale PXE files removed.
    Init,
    /// The DHCP hosts file (from every node), the PXE files of the nodes named in `write`, the
    /// removal of the PXE files of the MACs in `remove`, and of the boot folder and host keys of
    /// the nodes named in `forget` (removed from the inventory).
    Nodes {
        write: BTreeSet<String>,
        remove: Vec<Mac>,
        forget: BTreeSet<String>,
    },
}

impl Scope {
    /// Node changes writing the entries of `names`.
    pub fn nodes<S: ToString>(names: impl IntoIterator<Item = S>) -> Scope {
        Scope::Nodes {
            write: names.into_iter().map(|n| n.to_string()).collect(),
            remove: Vec::new(),
            forget: BTreeSet::new(),
        }
    }

    fn writes(&self, node: &str) -> bool {
        match self {
            Scope::Init => true,
            Scope::Nodes { write, .. } => write.contains(node),
        }
    }
}

/// What a read-only probe of the ConfigNode found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// Per-MAC files present in pxelinux.cfg (`01-…`).
    pub mac_files: BTreeSet<String>,
    /// Boot files the profiles in use need that do not exist.
    pub missing: Vec<String>,
    /// Whether dhcpd.conf includes cloudctl's hosts file (i.e. `config init` ran).
    pub initialised: bool,
    /// Whether that hosts file includes the files of host entries (`config init` of this version
    /// ran; before, the hosts file held every entry itself).
    pub sharded: bool,
    /// Nodes with a per-node overlay initrd (written by `hnode boot`) in `tftp_root/nodes/`.
    pub overlays: BTreeSet<String>,
    /// Nodes whose private host keys the key server holds (`NODE_KEYS_DIR/NAME.keys`).
    pub node_keys: BTreeSet<String>,
}

/// The pieces of the inventory the ConfigNode needs, checked.
pub struct Sections<'a> {
    pub network: &'a NetworkSection,
    pub confignode: &'a ConfigNodeSection,
}

pub fn sections(inv: &Inventory) -> Result<Sections<'_>, Error> {
    match (&inv.network, &inv.confignode) {
        (Some(network), Some(confignode)) => Ok(Sections { network, confignode }),
        _ => Err(Error::Usage(
            "the inventory needs [network] (subnet, dynamic_range, interface) and [confignode] (address) sections for this command; see examples/seed-lab.toml".into(),
        )),
    }
}

fn dhcp_dir(cn: &ConfigNodeSection) -> &str {
    cn.dhcpd_conf.parent()
}

/// The hosts file dhcpd.conf includes: it includes the `HOST_SHARDS` files of host entries.
pub fn hosts_file(cn: &ConfigNodeSection) -> String {
    format!("{}/cloudctl-hosts.conf", dhcp_dir(cn))
}

/// Where dhcpd's commit hook (dhcpd.conf) leaves one empty file per MAC it gave an address to,
/// named by the MAC as dhcpd prints it (`52:54:0:c1:0:2`: hex without leading zeros).
pub const BOOTED_DIR: &str = "/var/lib/cloudctl/booted";

/// The folder of the files of host entries.
pub fn hosts_dir(cn: &ConfigNodeSection) -> String {
    format!("{}/cloudctl-hosts.d", dhcp_dir(cn))
}

/// Which of the `HOST_SHARDS` files holds a node's host entry: FNV-1a of its name, a hash that
/// never changes between builds, so a node stays in its file.
pub fn shard_of(name: &str) -> usize {
    let hash = name
        .bytes()
        .fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    hash as usize % HOST_SHARDS
}

/// The file of host entries number `k`.
pub fn shard_file(cn: &ConfigNodeSection, k: usize) -> String {
    format!("{}/{k:02}.conf", hosts_dir(cn))
}

fn shard_id(k: usize) -> String {
    format!("dhcpd-hosts-{k:02}")
}

/// The include line of shard `k` in the hosts file; `facts_script` looks for the first one to
/// know the ConfigNode has this layout.
fn shard_include(cn: &ConfigNodeSection, k: usize) -> String {
    format!("include \"{}\";", shard_file(cn, k))
}

/// The OMAPI key dhcpd.conf includes (0600, written on the ConfigNode, never read by cloudctl).
pub fn omapi_key_file(cn: &ConfigNodeSection) -> String {
    format!("{}/cloudctl-omapi.key", dhcp_dir(cn))
}

fn local_file(cn: &ConfigNodeSection) -> String {
    format!("{}/dhcpd.local.conf", dhcp_dir(cn))
}

fn pxe_dir(cn: &ConfigNodeSection) -> String {
    format!("{}/pxelinux.cfg", cn.tftp_root)
}

/// Where `hnode boot` keeps a node's files, relative to tftp_root.
pub fn node_dir(name: &str) -> String {
    format!("nodes/{name}")
}

/// The node's own initrd (profile initrd + overlay), relative to tftp_root.
pub fn node_initrd(name: &str) -> String {
    format!("{}/initrd.img", node_dir(name))
}

/// The TFTP server the nodes are told about (and where their key server runs).
pub fn next_server(cn: &ConfigNodeSection) -> String {
    cn.next_server
        .map(|n| n.to_string())
        .unwrap_or_else(|| cn.address.host.clone())
}

/// `01-aa-bb-cc-dd-ee-ff`, the file pxelinux looks for first.
pub fn mac_file_name(mac: &Mac) -> String {
    format!("01-{}", mac.to_string().replace(':', "-"))
}

/// The profile a node boots: its own, else the one named like its role (if defined).
pub fn profile_of<'a>(inv: &'a Inventory, node: &Node) -> Option<(String, &'a Profile)> {
    let name = node
        .profile
        .as_ref()
        .map(|p| p.to_string())
        .unwrap_or_else(|| node.role.as_str().to_string());
    inv.profiles
        .iter()
        .find(|(k, _)| k.as_str() == name)
        .map(|(k, p)| (k.to_string(), p))
}

/// A path under the TFTP root, as pxelinux asks for it (relative to the root).
fn tftp_relative(cn: &ConfigNodeSection, profile: &str, field: &str, path: &RemotePath) -> Result<String, Error> {
    let root = format!("{}/", cn.tftp_root.as_str().trim_end_matches('/'));
    path.as_str().strip_prefix(&root).map(str::to_string).ok_or_else(|| {
        Error::Usage(format!(
            "[profiles.{profile}] {field} = \"{path}\" is outside tftp_root {}: TFTP serves only files under it; move the file there and fix the path",
            cn.tftp_root
        ))
    })
}

/// Boot files the inventory's nodes need on the ConfigNode (checked by a read-only probe).
pub fn needed_boot_files(inv: &Inventory) -> Vec<String> {
    boot_files(inv, |_| true)
}

/// Boot files (kernel, initrd, xen) of the profiles that the nodes chosen by `which` boot.
pub fn boot_files(inv: &Inventory, which: impl Fn(&Node) -> bool) -> Vec<String> {
    let mut files = BTreeSet::new();
    for node in inv.node.iter().filter(|n| n.mac.is_some() && which(n)) {
        if let Some((_, p)) = profile_of(inv, node) {
            files.extend([p.kernel.to_string(), p.initrd.to_string()]);
            files.extend(p.xen.as_ref().map(|x| x.to_string()));
        }
    }
    files.into_iter().collect()
}

/// A read-only script reporting the facts `plan` needs for `scope`: for node changes only about
/// the nodes changed (their overlays), for `config init` about every per-MAC file and overlay.
pub fn facts_script(inv: &Inventory, scope: &Scope) -> Result<String, Error> {
    let s = sections(inv)?;
    let cn = s.confignode;
    let mut script = Script::new();
    for f in needed_boot_files(inv) {
        script
            .text("[ -f ")
            .word(&f)
            .text(" ] || echo missing ")
            .word(&f)
            .text("\n");
    }
    let root = cn.tftp_root.as_str().trim_end_matches('/');
    match scope {
        Scope::Init => {
            script
                .text("ls -1 ")
                .word(&pxe_dir(cn))
                .text(" 2>/dev/null | grep '^01-' | sed 's/^/macfile /'\n");
            script.text("for f in ").word(root).text(
                "/nodes/*/overlay.img; do [ -f \"$f\" ] && { d=${f%/overlay.img}; echo overlay ${d##*/}; }; done\n",
            );
            script
                .text("for f in ")
                .word(NODE_KEYS_DIR)
                .text("/*.keys; do [ -f \"$f\" ] && { n=${f##*/}; echo nodekeys ${n%.keys}; }; done\n");
        }
        // Only the nodes changed: their overlays, and the keys of the ones removed.
        Scope::Nodes { write, forget, .. } => {
            for name in write.iter().chain(forget) {
                let overlay = format!("{root}/{}/overlay.img", node_dir(name));
                script
                    .text("[ -f ")
                    .word(&overlay)
                    .text(" ] && echo overlay ")
                    .word(name)
                    .text("\n");
                let keys = format!("{NODE_KEYS_DIR}/{name}.keys");
                script
                    .text("[ -f ")
                    .word(&keys)
                    .text(" ] && echo nodekeys ")
                    .word(name)
                    .text("\n");
            }
        }
    }
    let include = format!("include \"{}\";", hosts_file(cn));
    script
        .text("grep -qxF ")
        .word(&include)
        .text(" ")
        .word(cn.dhcpd_conf.as_str())
        .text(" 2>/dev/null && echo initialised\n");
    script
        .text("grep -qxF ")
        .word(&shard_include(cn, 0))
        .text(" ")
        .word(&hosts_file(cn))
        .text(" 2>/dev/null && echo sharded\n");
    Ok(script.text("exit 0\n").build())
}

pub fn parse_facts(output: &str) -> Facts {
    let mut facts = Facts::default();
    for line in output.lines() {
        match line.split_once(' ') {
            Some(("macfile", f)) => {
                facts.mac_files.insert(f.to_string());
            }
            Some(("missing", f)) => facts.missing.push(f.to_string()),
            Some(("overlay", n)) => {
                facts.overlays.insert(n.to_string());
            }
            Some(("nodekeys", n)) => {
                facts.node_keys.insert(n.to_string());
            }
            _ if line == "initialised" => facts.initialised = true,
            _ if line == "sharded" => facts.sharded = true,
            _ => {}
        }
    }
    facts
}

/// The key server's map of registered addresses, re-rendered from the inventory on every run, so
/// an address that changes hands never keeps pointing at the old node's keys.
fn node_addresses(inv: &Inventory) -> Result<Vec<Step>, Error> {
    let map: String = inv
        .node
        .iter()
        .filter(|n| matches!(n.role, crate::inventory::Role::Hnode | crate::inventory::Role::Snode))
        .filter_map(|n| Some(format!("{} {}\n", n.ip.as_ref()?.get_ref(), n.name.get_ref())))
        .collect();
    Ok(vec![
        super::dir(NODE_KEYS_DIR, 0o700)?,
        super::file(super::FileSpec {
            id: NODE_ADDRESSES_ID,
            path: &format!("{NODE_KEYS_DIR}/addresses"),
            content: format!("# Written by cloudctl: registered address and name of each hardware node.\n{map}"),
            mode: 0o600,
            owner: Some("root:root"),
            validate: None,
            secret: false,
        })?,
    ])
}

/// What `hnode boot` left for nodes no longer in the inventory: their TFTP folder and keys.
fn removed_nodes(inv: &Inventory, cn: &ConfigNodeSection, facts: &Facts) -> Result<Vec<Step>, Error> {
    let known: BTreeSet<&str> = inv.node.iter().map(|n| n.name.get_ref().as_str()).collect();
    let mut steps = Vec::new();
    let found: BTreeSet<&String> = facts.overlays.iter().chain(&facts.node_keys).collect();
    // Only names cloudctl itself would write are candidates (never a path the probe made up).
    for name in found.into_iter().filter_map(|n| n.parse::<crate::types::Name>().ok()) {
        if known.contains(name.as_str()) {
            continue;
        }
        if facts.overlays.contains(name.as_str()) {
            let folder = format!(
                "{}/{}",
                cn.tftp_root.as_str().trim_end_matches('/'),
                node_dir(name.as_str())
            );
            steps.push(command(&["rm", "-rf", "--", &folder], When::Always));
        }
        if facts.node_keys.contains(name.as_str()) {
            steps.push(Step::Absent(AbsentStep {
                path: format!("{NODE_KEYS_DIR}/{name}.keys").parse().map_err(Error::Usage)?,
            }));
        }
    }
    Ok(steps)
}

/// When one of `ids` changed, `service NAME restart` if it runs, `start` if not (a stopped one is
/// not stopped and started for nothing: Debian's dhcpd script sleeps 2 s each way); then `start`
/// unless it runs.
fn service_steps(name: &str, ids: &[&StepId]) -> [Step; 2] {
    // A stopped one is started instead: so is it when a failed restart is rolled back and run
    // again on the previous files (the executor does that), and dhcpd then runs again.
    let restart =
        "if service \"$1\" status >/dev/null 2>&1; then service \"$1\" restart; else service \"$1\" start; fi";
    [
        on_change(&["sh", "-c", restart, "sh", name], ids),
        command(
            &["service", name, "start"],
            When::Unless(strings(&["service", name, "status"])),
        ),
    ]
}

/// keepalived takes a changed configuration by a reload (it keeps the address if it holds it),
/// or starts. Debian's init script has no `status`: the pid file says whether it runs.
fn keepalived_service(conf: &StepId) -> [Step; 2] {
    let mut running = Script::new();
    running
        .text("p=$(cat ")
        .word(KEEPALIVED_PID)
        .text(" 2>/dev/null) && [ -n \"$p\" ] && kill -0 \"$p\" 2>/dev/null");
    let apply = Script::new()
        .text("if ")
        .script(&running)
        .text("; then service keepalived reload; else service keepalived start; fi")
        .build();
    let running = running.build();
    [
        on_change(&["sh", "-c", &apply], &[conf]),
        command(
            &["service", "keepalived", "start"],
            When::Unless(strings(&["sh", "-c", &running])),
        ),
    ]
}

/// dhcpd takes a changed hosts file: live through OMAPI for node changes, by a restart when
/// `config init` changed its settings; then it is started if it is not running. `ids` are the
/// files it reacts to: `config init`'s settings, then the shards of host entries written.
fn dhcpd_steps(cn: &ConfigNodeSection, scope: &Scope, ids: &[&StepId]) -> [Step; 2] {
    let mode = match scope {
        Scope::Init => "restart",
        Scope::Nodes { .. } => "live",
    };
    // The argv names no node: it is the same in every run, and so is its pending marker (a run
    // cut off before it made the next run take the change, whichever nodes that one changes).
    let (hosts, key, port) = (hosts_dir(cn), omapi_key_file(cn), OMAPI_PORT.to_string());
    let mut argv = vec![
        "sh",
        "-c",
        DHCPD_SCRIPT,
        "sh",
        mode,
        &hosts,
        &key,
        DHCPD_STATE_DIR,
        LEASES,
    ];
    if mode == "live" {
        argv.push(&port);
    }
    [
        on_change(&argv, ids),
        command(
            &["service", "isc-dhcp-server", "start"],
            When::Unless(strings(&["service", "isc-dhcp-server", "status"])),
        ),
    ]
}

/// The ConfigNodes of the inventory: one, or the pair (primary first).
pub fn hosts(inv: &Inventory) -> Result<Vec<crate::inventory::Host>, Error> {
    inv.select(&["confignode".into()]).map_err(Error::Usage)
}

/// Where one ConfigNode of a pair stands: itself, its peer, and what they share.
#[derive(Debug, Clone)]
pub struct PairSide<'a> {
    pub primary: bool,
    pub me: &'a Member,
    pub peer: &'a Member,
    pub floating: Ipv4Addr,
}

/// The pair as seen from each side, primary first; empty for a single ConfigNode.
pub fn pair_sides(cn: &ConfigNodeSection) -> Vec<PairSide<'_>> {
    let (m, Some(floating)) = (cn.members(), cn.floating()) else {
        return Vec::new();
    };
    if m.len() != 2 {
        return Vec::new();
    }
    vec![
        PairSide {
            primary: true,
            me: &m[0],
            peer: &m[1],
            floating,
        },
        PairSide {
            primary: false,
            me: &m[1],
            peer: &m[0],
            floating,
        },
    ]
}

/// dhcpd's failover port (IANA's, also ISC's usual choice).
pub const FAILOVER_PORT: u16 = 647;
/// Seconds a server alone may extend a lease past what its partner knows (ISC's usual hour).
pub const FAILOVER_MCLT: u32 = 3600;
/// keepalived's configuration (Debian's init script reads this one).
pub const KEEPALIVED_CONF: &str = "/etc/keepalived/keepalived.conf";
/// keepalived's check that this ConfigNode serves PXE (dhcpd and tftpd listening); root's, not
/// writable by others, as keepalived's script security wants.
const SERVES_PXE: &str = "/etc/keepalived/cloudctl-serves-pxe.sh";
const SERVES_PXE_SCRIPT: &str = include_str!("../../scripts/confignode/serves-pxe.sh");

/// The files of host entries a run writes: all for `config init`, else those of the nodes named.
fn host_shards(scope: &Scope) -> BTreeSet<usize> {
    match scope {
        Scope::Init => (0..HOST_SHARDS).collect(),
        Scope::Nodes { write, forget, .. } => write.iter().chain(forget).map(|n| shard_of(n)).collect(),
    }
}

/// The files of host entries in `shards`, in order: each holds the entries of the inventory's
/// nodes (with a MAC and an IP) whose name hashes to it.
pub fn shard_contents(
    inv: &Inventory,
    templates: &Templates,
    shards: &BTreeSet<usize>,
) -> Result<Vec<(usize, String)>, Error> {
    let mut entries: Vec<Vec<serde_json::Value>> = vec![Vec::new(); HOST_SHARDS];
    for n in &inv.node {
        let (Some(mac), Some(ip)) = (&n.mac, &n.ip) else {
            continue;
        };
        let name = n.name.get_ref().as_str();
        let k = shard_of(name);
        if shards.contains(&k) {
            entries[k].push(json!({ "name": name, "mac": mac.get_ref(), "ip": ip.get_ref() }));
        }
    }
    shards
        .iter()
        .map(|&k| {
            let content = templates.render("config-init/dhcpd-host-entries.conf", &json!({ "nodes": entries[k] }))?;
            Ok((k, content))
        })
        .collect()
}

/// One file step per shard in `shards`, each validated alone by dhcpd before it is active; their
/// handles in shard order.
fn shard_steps(
    inv: &Inventory,
    templates: &Templates,
    cn: &ConfigNodeSection,
    shards: &BTreeSet<usize>,
    steps: &mut Steps,
) -> Result<Vec<StepId>, Error> {
    shard_contents(inv, templates, shards)?
        .into_iter()
        .map(|(k, content)| {
            steps.file(config(
                &shard_id(k),
                &shard_file(cn, k),
                content,
                Some(strings(&["dhcpd", "-t", "-q", "-cf", "{}"])),
            )?)
        })
        .collect()
}

/// The plan for the ConfigNode(s), every one probed to the same `facts`.
pub fn plan(inv: &Inventory, templates: &Templates, facts: &Facts, scope: &Scope) -> Result<Plan, Error> {
    let each = vec![Some(facts.clone()); hosts(inv)?.len()];
    plan_each(inv, templates, &each, scope)
}

/// One plan converging every ConfigNode identically from the inventory; `facts` are each
/// host's own probe, in `hosts` order, `None` for one left out (down, `--degraded`). A pair's
/// two differ only in their failover and VRRP roles.
pub fn plan_each(
    inv: &Inventory,
    templates: &Templates,
    facts: &[Option<Facts>],
    scope: &Scope,
) -> Result<Plan, Error> {
    let s = sections(inv)?;
    let sides = pair_sides(s.confignode);
    let hosts = hosts(inv)?;
    if facts.len() != hosts.len() {
        return Err(Error::Failed(anyhow::anyhow!(
            "internal: {} ConfigNode probes for {} ConfigNodes",
            facts.len(),
            hosts.len()
        )));
    }
    let mut plans = Vec::new();
    for (i, (host, facts)) in hosts.into_iter().zip(facts).enumerate() {
        let Some(facts) = facts else { continue };
        plans.push(HostPlan {
            host,
            exclusive: true,
            steps: host_steps(inv, templates, facts, scope, sides.get(i))?,
        });
    }
    let title = match scope {
        Scope::Init => "config init",
        Scope::Nodes { .. } => "converge the ConfigNode's node entries",
    };
    Ok(Plan {
        title: title.into(),
        confirm: true,
        redact: Vec::new(),
        hosts: plans,
    })
}

/// keepalived's settings for one side of the pair, validated by keepalived itself.
fn keepalived_step(inv: &Inventory, templates: &Templates, side: &PairSide) -> Result<Step, Error> {
    let s = sections(inv)?;
    let conf = templates.render(
        "config-init/keepalived.conf",
        &json!({
            "cloud": inv.cloud.name,
            "me_name": side.me.name,
            "peer_name": side.peer.name,
            "me": side.me.ip,
            "peer": side.peer.ip,
            "floating": side.floating,
            "prefix": s.network.subnet.prefix(),
            "interface": s.network.interface,
            "vrrp_id": s.confignode.vrrp_id.unwrap_or(DEFAULT_VRRP_ID),
            // The primary holds the address whenever it is up and serves.
            "priority": if side.primary { 150 } else { 100 },
            "check": SERVES_PXE,
        }),
    )?;
    config(
        "keepalived.conf",
        KEEPALIVED_CONF,
        conf,
        Some(strings(&["keepalived", "-t", "-f", "{}"])),
    )
}

fn host_steps(
    inv: &Inventory,
    templates: &Templates,
    facts: &Facts,
    scope: &Scope,
    side: Option<&PairSide>,
) -> Result<Vec<Step>, Error> {
    let s = sections(inv)?;
    let (net, cn) = (s.network, s.confignode);
    let dhcpd_check = |p: &str| Some(strings(&["dhcpd", "-t", "-q", "-cf", p]));
    let mut steps = Steps::new();
    steps.extend(node_addresses(inv)?);
    // Handles of the files `config init` writes, which its services react to.
    let (mut keepalived, mut dhcpd_default, mut tftpd_default) = (None, None, None);
    let (mut dhcpd_hosts, mut dhcpd_conf) = (None, None);
    if *scope == Scope::Init {
        let mut packages = packages(inv);
        if side.is_some() {
            packages.push(PAIR_PACKAGE);
        }
        steps.push(install_packages(&packages));
        if let Some(side) = side {
            steps.push(Step::Dir(DirStep {
                path: "/etc/keepalived".parse().map_err(Error::Usage)?,
                mode: 0o755,
            }));
            steps.push(file(FileSpec {
                id: "serves-pxe",
                path: SERVES_PXE,
                content: SERVES_PXE_SCRIPT.to_string(),
                mode: 0o755,
                owner: Some("root:root"),
                validate: None,
                secret: false,
            })?);
            keepalived = Some(steps.file(keepalived_step(inv, templates, side)?)?);
        }
        steps.push(Step::Dir(DirStep {
            path: cn.tftp_root.clone(),
            mode: 0o755,
        }));
        steps.push(Step::Dir(DirStep {
            path: pxe_dir(cn).parse().map_err(Error::Usage)?,
            mode: 0o755,
        }));
        // Before dhcpd.conf names it: dhcpd's commit hook marks each MAC it answered here.
        steps.push(Step::Dir(DirStep {
            path: BOOTED_DIR.parse().map_err(Error::Usage)?,
            mode: 0o755,
        }));
        let root = cn.tftp_root.as_str().trim_end_matches('/');
        // Source and target of each boot file, as separate arguments (never joined and re-split).
        let args: Vec<String> = BOOT_FILES
            .iter()
            .flat_map(|(src, name)| [src.to_string(), format!("{root}/{name}")])
            .collect();
        // Copies the boot files whose staged copy differs; pairs arrive as arguments, never spliced into the script.
        let stage = "set -e; while [ $# -gt 1 ]; do cmp -s \"$1\" \"$2\" || cp \"$1\" \"$2\"; shift 2; done";
        let same = "while [ $# -gt 1 ]; do cmp -s \"$1\" \"$2\" || exit 1; shift 2; done";
        let with = |script: &str| [strings(&["sh", "-c", script, "sh"]), args.clone()].concat();
        steps.push(Step::Command(CommandStep {
            argv: with(stage),
            when: When::Unless(with(same)),
        }));
        dhcpd_default = Some(steps.file(config(
            "dhcpd-default",
            "/etc/default/isc-dhcp-server",
            templates.render("config-init/isc-dhcp-server", &json!({ "interface": net.interface }))?,
            None,
        )?)?);
        tftpd_default = Some(steps.file(config(
            "tftpd-default",
            "/etc/default/tftpd-hpa",
            templates.render("config-init/tftpd-hpa", &json!({ "tftp_root": cn.tftp_root }))?,
            None,
        )?)?);
    } else if !facts.initialised {
        return Err(Error::Usage(format!(
            "the ConfigNode's {} does not include {} yet; run `cloudctl config init` first",
            cn.dhcpd_conf,
            hosts_file(cn)
        )));
    } else if !facts.sharded {
        return Err(Error::Usage(format!(
            "the ConfigNode's {} still holds every host entry itself (written by an older cloudctl); run `cloudctl config init` once, which moves them into {}/",
            hosts_file(cn),
            hosts_dir(cn)
        )));
    }
    let shards = host_shards(scope);
    if *scope == Scope::Init {
        steps.push(super::dir(&hosts_dir(cn), 0o755)?);
    }
    let shard_ids = shard_steps(inv, templates, cn, &shards, &mut steps)?;
    if *scope == Scope::Init {
        let includes: Vec<String> = (0..HOST_SHARDS).map(|k| shard_include(cn, k)).collect();
        let hosts = templates.render(
            "config-init/dhcpd-hosts.conf",
            &json!({ "includes": includes, "hosts_dir": hosts_dir(cn) }),
        )?;
        // Checked after every file of host entries is active: dhcpd -t reads them through it.
        dhcpd_hosts = Some(steps.file(config("dhcpd-hosts", &hosts_file(cn), hosts, dhcpd_check("{}"))?)?);
        steps.push(command(
            &["touch", &local_file(cn)],
            When::Unless(strings(&["test", "-e", &local_file(cn)])),
        ));
        let key = omapi_key_file(cn);
        steps.push(command(
            &["sh", "-c", OMAPI_KEYGEN, "sh", &key],
            When::Unless(strings(&["test", "-s", &key])),
        ));
        let range = net
            .dynamic_range
            .as_ref()
            .map(|r| format!("{} {}", r.get_ref().first, r.get_ref().last));
        let dns: Vec<String> = net.dns.iter().map(|d| d.to_string()).collect();
        let conf = templates.render(
            "config-init/dhcpd.conf",
            &json!({
                "cloud": inv.cloud.name,
                "network": net.subnet.network(),
                "netmask": net.subnet.netmask(),
                "range": range,
                "gateway": net.gateway,
                "dns": if dns.is_empty() { None } else { Some(dns.join(", ")) },
                "next_server": next_server(cn),
                "hosts_file": hosts_file(cn),
                "local_file": local_file(cn),
                "omapi_port": OMAPI_PORT,
                "omapi_key": omapi_key_file(cn),
                "booted_dir": BOOTED_DIR,
                "failover": side.map(|p| json!({
                    "role": if p.primary { "primary" } else { "secondary" },
                    "primary": p.primary,
                    "me_name": p.me.name,
                    "peer_name": p.peer.name,
                    "me": p.me.ip,
                    "peer": p.peer.ip,
                    "port": FAILOVER_PORT,
                    "mclt": FAILOVER_MCLT,
                })),
            }),
        )?;
        dhcpd_conf = Some(steps.file(config(
            "dhcpd.conf",
            &cn.dhcpd_conf.to_string(),
            conf,
            dhcpd_check("{}"),
        )?)?);
        steps.push(config(
            "pxe-default",
            &format!("{}/default", pxe_dir(cn)),
            templates.render("config-init/pxelinux-default", &json!({}))?,
            None,
        )?);
    }
    let mut wanted = BTreeSet::new();
    for node in inv.node.iter().filter(|n| scope.writes(n.name.get_ref().as_str())) {
        let (Some(mac), Some((pname, p))) = (&node.mac, profile_of(inv, node)) else {
            continue;
        };
        let name = mac_file_name(mac.get_ref());
        let data = json!({
            "name": node.name.get_ref(),
            "mac": mac.get_ref(),
            "profile": pname,
            "kernel": tftp_relative(cn, &pname, "kernel", &p.kernel)?,
            // A node with an overlay boots its own initrd: the profile's with the overlay appended.
            "initrd": if facts.overlays.contains(node.name.get_ref().as_str()) {
                node_initrd(node.name.get_ref().as_str())
            } else {
                tftp_relative(cn, &pname, "initrd", &p.initrd)?
            },
            "xen": p.xen.as_ref().map(|x| tftp_relative(cn, &pname, "xen", x)).transpose()?,
            "xen_args": p.xen_args.as_ref().map(|a| a.to_string()).unwrap_or_default(),
            "append": p.append,
        });
        steps.push(config(
            &name,
            &format!("{}/{name}", pxe_dir(cn)),
            templates.render("node-add/pxelinux-node", &data)?,
            None,
        )?);
        wanted.insert(name);
    }
    let stale: Vec<String> = match scope {
        // Only names cloudctl itself would write (01- plus a MAC) are candidates for removal.
        Scope::Init => facts
            .mac_files
            .iter()
            .filter(|f| !wanted.contains(*f))
            .filter(|f| f.strip_prefix("01-").and_then(|m| m.parse::<Mac>().ok()).is_some())
            .cloned()
            .collect(),
        // A removed MAC that another node still has keeps its file.
        Scope::Nodes { remove, .. } => remove
            .iter()
            .filter(|m| !inv.node.iter().any(|n| n.mac.as_ref().map(|x| x.get_ref()) == Some(*m)))
            .map(mac_file_name)
            .collect(),
    };
    for name in stale {
        steps.push(Step::Absent(AbsentStep {
            path: format!("{}/{name}", pxe_dir(cn)).parse().map_err(Error::Usage)?,
        }));
    }
    steps.extend(removed_nodes(inv, cn, facts)?);
    let dhcpd_ids: Vec<&StepId> = [&dhcpd_conf, &dhcpd_hosts, &dhcpd_default]
        .into_iter()
        .flatten()
        .chain(&shard_ids)
        .collect();
    steps.extend(dhcpd_steps(cn, scope, &dhcpd_ids));
    if let Some(tftpd) = &tftpd_default {
        steps.extend(service_steps("tftpd-hpa", &[tftpd]));
    }
    // Last: the floating address comes to a host only once it serves DHCP and TFTP.
    if let Some(conf) = &keepalived {
        steps.extend(keepalived_service(conf));
    }
    steps.build()
}
