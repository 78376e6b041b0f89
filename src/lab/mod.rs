//! Local lab: creates, checks and removes real test hosts on this machine (network namespaces on a bridge, each running its own sshd); needs root and changes the local machine.
//!
//! Everything a lab creates is named after it (`cl<name>br`, `cl-<name>-h<i>`, `cl<name>h<i>`,
//! VM taps `cl<name>v<i>`, `/tmp/cloudctl-lab/<name>/`), so `down` can find and remove it even
//! without its state file. Besides namespace hosts a lab can have VM machines (`vm`), powered on
//! by Wake-on-LAN through its power listener (`power`).

pub mod bmc;
pub mod power;
mod sshd;
pub mod subnet;
mod sys;
pub mod vm;

pub use vm::{LabVm, VmRole};

use crate::digest::sha256_hex;
use crate::local_tools::{Tool, IP, NSENTER, SETSID, SSHD, SSH_KEYGEN, UNSHARE};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where labs keep their state. Not under /etc, /var, /run or /srv: hosts see those privately.
const LAB_ROOT: &str = "/tmp/cloudctl-lab";
/// Hosts get .10 upwards; more than 90 would run into the DHCP dynamic range (.100-.199).
const MAX_HOSTS: u8 = 90;
/// VMs get .200 upwards (past the dynamic range); TCG on two cores runs only a few at a time.
const MAX_VMS: usize = 8;
/// The bridge inside every lab hardware node that guests join (`[instances] bridge`).
const HNODE_BRIDGE: &str = "br0";
const MARKER_PREFIX: &str = "# written by cloudctl lab up (lab \"";
/// The programs the lab runs on this machine.
const TOOLS: [Tool; 6] = [IP, UNSHARE, NSENTER, SETSID, SSH_KEYGEN, SSHD];

pub struct LabRequest {
    pub name: String,
    pub hosts: u8,
    pub subnet: crate::types::Cidr,
    pub inventory: PathBuf,
    /// VM machines to add, in order (storage nodes snode1.., hardware nodes hvm1..).
    pub vms: Vec<VmRole>,
    /// Size of each storage VM's two member disks.
    pub vm_disk_mib: u64,
    /// The cloudctl binary that runs the power listener (needed when there are VMs).
    pub power_exe: Option<PathBuf>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LabHost {
    pub name: String,
    pub role: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    pub mac: String,
    pub sshd_pid: u32,
    /// Private key; the `.pub` is beside it.
    pub host_key: PathBuf,
    pub fingerprint: String,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LabState {
    pub name: String,
    pub dir: PathBuf,
    pub bridge: String,
    pub gateway: Ipv4Addr,
    pub subnet: String,
    pub hosts: Vec<LabHost>,
    pub inventory: PathBuf,
    pub inventory_sha256: String,
    pub client_key: PathBuf,
    pub known_hosts: PathBuf,
    #[serde(default)]
    pub vms: Vec<LabVm>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct HostHealth {
    pub name: String,
    pub netns_present: bool,
    pub sshd_running: bool,
    pub ssh_port_open: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct VmHealth {
    pub name: String,
    /// QEMU runs (the machine is switched on).
    pub powered: bool,
    pub qemu_pid: Option<u32>,
    pub ssh_port_open: bool,
}

pub fn require_root() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err(
            "`cloudctl lab` needs root (it creates network namespaces and a bridge); run it as root (e.g. with sudo)"
                .into(),
        );
    }
    Ok(())
}

/// Lab names end up in interface names, which Linux limits to 15 characters.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = (1..=8).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !ok {
        return Err(format!(
            "invalid lab name {name:?}: use 1-8 lowercase letters or digits, e.g. \"lab1\" (it becomes part of interface names, which are limited to 15 characters)"
        ));
    }
    Ok(())
}

/// Checks that every tool the lab runs is installed; the error names the packages to install.
pub fn check_tools() -> Result<(), String> {
    crate::local_tools::require(&TOOLS).map_err(|e| format!("`cloudctl lab`: {e}"))
}

fn lab_dir(name: &str) -> PathBuf {
    Path::new(LAB_ROOT).join(name)
}
fn bridge_name(name: &str) -> String {
    format!("cl{name}br")
}
fn netns_name(name: &str, i: u8) -> String {
    format!("cl-{name}-h{i}")
}
fn veth_name(name: &str, i: u8) -> String {
    format!("cl{name}h{i}")
}
fn marker(name: &str) -> String {
    format!("{MARKER_PREFIX}{name}\")")
}

/// True if `s` is `prefix` followed by a host number; the only names a lab's hosts get.
fn is_numbered(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The trailing host number of a namespace or veth name, to list hosts in order (h2 before h10).
fn host_number(s: &str) -> u32 {
    s.rsplit('h').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Network namespaces that exist now (first field of `ip netns list`).
fn netns_list() -> Result<Vec<String>> {
    let out = sys::run("ip", &["netns", "list"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// Interfaces of the root namespace (`5: name@peer: <...>` lines of `ip -o link show`).
fn link_list() -> Result<Vec<String>> {
    let out = sys::run("ip", &["-o", "link", "show"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect())
}

fn state_path(name: &str) -> PathBuf {
    lab_dir(name).join("state.json")
}

/// The saved state of a lab, or None if it has none.
fn read_state(name: &str) -> Result<Option<LabState>> {
    let path = state_path(name);
    match std::fs::read_to_string(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow!("cannot read {}: {e}", path.display())),
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("{} is not a valid lab state file", path.display())),
    }
}

/// Every check `up` makes before it touches anything (a failure here is a usage error).
pub fn preflight(req: &LabRequest) -> Result<()> {
    require_root().map_err(anyhow::Error::msg)?;
    validate_name(&req.name).map_err(anyhow::Error::msg)?;
    check_tools().map_err(anyhow::Error::msg)?;
    let name = &req.name;
    if !(1..=MAX_HOSTS).contains(&req.hosts) {
        bail!("a lab has 1 to {MAX_HOSTS} hosts, not {}", req.hosts);
    }
    // Up to a /16, so a lab ConfigNode can serve thousands of registered nodes.
    if !(16..=24).contains(&req.subnet.prefix()) {
        bail!(
            "lab subnet {} is not a /16 to /24; use one like 10.201.0.0/24 (.1 is the gateway, hosts get .10 upwards)",
            req.subnet
        );
    }
    if state_path(name).exists() {
        bail!("lab \"{name}\" already exists; run `cloudctl lab down --name {name}` first");
    }
    let leftovers = leftovers(name)?;
    if !leftovers.is_empty() {
        bail!("parts of an earlier lab \"{name}\" are still there ({}); run `cloudctl lab down --name {name}` to remove them", leftovers.join(", "));
    }
    if !req.vms.is_empty() {
        vm::check_tools().map_err(anyhow::Error::msg)?;
        if req.vms.len() > MAX_VMS {
            bail!("a lab has at most {MAX_VMS} VMs, not {}", req.vms.len());
        }
        let webs = req.vms.iter().filter(|r| **r == VmRole::Web).count();
        if webs != 0 && webs != 2 {
            bail!("a lab has two web VMs or none, not {webs}: a cross-over cable joins exactly two machines");
        }
        if req.power_exe.is_none() {
            bail!("lab VMs need the cloudctl binary for their power listener");
        }
        if !(16..=4096).contains(&req.vm_disk_mib) {
            bail!("--vm-disk-mib {}: use 16 to 4096", req.vm_disk_mib);
        }
    }
    check_subnet_free(&req.subnet)?;
    check_inventory_ours(&req.inventory)
}

pub fn up(req: &LabRequest, templates: &crate::templates::Templates) -> Result<LabState> {
    preflight(req)?;
    let name = &req.name;
    let dir = make_lab_dir(name)?;
    build(req, templates, &dir).map_err(|e| {
        // No half lab: remove whatever was created, by name, exactly as `down` would.
        let what = format!("lab \"{name}\" could not be created");
        match down(name) {
            Ok(_) => e.context(format!("{what}; everything it had created was removed again")),
            Err(d) => e.context(format!(
                "{what}, and cleaning up failed too ({d:#}); run `cloudctl lab down --name {name}`"
            )),
        }
    })
}

/// What of lab `name` exists on the machine (state dir, namespaces, interfaces).
fn leftovers(name: &str) -> Result<Vec<String>> {
    let mut found: Vec<String> = netns_list()?
        .into_iter()
        .filter(|n| is_numbered(n, &format!("cl-{name}-h")))
        .collect();
    let (veth_prefix, tap_prefix) = (format!("cl{name}h"), format!("cl{name}v"));
    found.extend(
        link_list()?
            .into_iter()
            .filter(|l| is_numbered(l, &veth_prefix) || is_numbered(l, &tap_prefix) || *l == bridge_name(name)),
    );
    found.extend(
        sys::qemu_pids_under(&lab_dir(name))
            .iter()
            .map(|p| format!("QEMU process {p}")),
    );
    if lab_dir(name).exists() {
        found.push(lab_dir(name).display().to_string());
    }
    Ok(found)
}

/// The network `lab up` takes without `--subnet`: the first /24 of 10.201.0.0/16 that overlaps
/// no route (every table, so local and broadcast routes too), no interface's network and no
/// other lab's subnet (from its state file, in case its bridge is gone).
pub fn choose_subnet() -> Result<crate::types::Cidr> {
    let mut in_use = subnet::from_routes(&sys::run("ip", &["-4", "route", "show", "table", "all"])?);
    in_use.extend(subnet::from_addrs(&sys::run("ip", &["-4", "-o", "addr", "show"])?));
    if let Ok(dirs) = std::fs::read_dir(LAB_ROOT) {
        for e in dirs.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // A lab whose state cannot be read holds no subnet we could know of.
            if let Ok(Some(state)) = read_state(&name) {
                in_use.extend(state.subnet.parse::<crate::types::Cidr>());
            }
        }
    }
    subnet::choose(&in_use).ok_or_else(|| {
        anyhow!("every /24 of 10.201.0.0/16 is in use on this machine; pass --subnet with a free network")
    })
}

/// Refuses a subnet that overlaps a route the machine already has, so a lab never shadows a real
/// network or another lab.
fn check_subnet_free(subnet: &crate::types::Cidr) -> Result<()> {
    for line in sys::run("ip", &["-4", "route", "show"])?.lines() {
        let Some(Ok(route)) = line.split_whitespace().next().map(|d| {
            let d = if d.contains('/') {
                d.to_string()
            } else {
                format!("{d}/32")
            };
            d.parse::<crate::types::Cidr>()
        }) else {
            continue; // `default` and anything unparsable cannot collide with a /24 of ours
        };
        if subnet.contains(route.network()) || route.contains(subnet.network()) {
            bail!(
                "subnet {subnet} is already in use on this machine (route: {}); choose another, e.g. 10.201.N.0/24",
                line.trim()
            );
        }
    }
    Ok(())
}

/// Never overwrite a user's inventory: an existing file must carry a lab's marker line, and not
/// be the inventory of another lab that still exists.
fn check_inventory_ours(path: &Path) -> Result<()> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        bail!(
            "cannot write the inventory to {}: directory {} does not exist",
            path.display(),
            parent.display()
        );
    }
    let text = match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => bail!("cannot read existing inventory {}: {e}", path.display()),
        Ok(t) => t,
    };
    let first = text.lines().next().unwrap_or("");
    let Some(owner) = first.strip_prefix(MARKER_PREFIX).and_then(|r| r.strip_suffix("\")")) else {
        bail!("{} exists and was not written by `cloudctl lab up`; refusing to overwrite it (choose another path with --inventory)", path.display());
    };
    if validate_name(owner).is_ok() && state_path(owner).exists() {
        bail!("{} belongs to lab \"{owner}\", which still exists; choose another path or run `cloudctl lab down --name {owner}`", path.display());
    }
    Ok(())
}

/// Creates the lab's directory. `create_dir` fails if it exists, so two `up`s of one name cannot
/// both proceed; the parent must be a real root-owned directory since /tmp is world-writable.
fn make_lab_dir(name: &str) -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let mut builder = std::fs::DirBuilder::new();
    builder.mode(0o700);
    match builder.create(LAB_ROOT) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
            bail!("cannot create {LAB_ROOT}: {e}")
        }
        _ => {}
    }
    let meta = std::fs::symlink_metadata(LAB_ROOT).with_context(|| format!("cannot inspect {LAB_ROOT}"))?;
    if !meta.is_dir() || meta.uid() != 0 {
        bail!("{LAB_ROOT} is not a directory owned by root; remove it and try again");
    }
    let dir = lab_dir(name);
    builder
        .create(&dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
}

/// Values the inventory template sees.
#[derive(Serialize)]
struct InventoryData<'a> {
    name: &'a str,
    bridge: &'a str,
    hosts: usize,
    identity: String,
    known_hosts: String,
    subnet: String,
    gateway: Ipv4Addr,
    dynamic_range: String,
    confignode: Ipv4Addr,
    nodes: &'a [LabHost],
    /// Guests' shared storage: one folder all lab hosts see.
    store: String,
    authorized_keys: String,
    vms: &'a [LabVm],
    /// `[network] mtu` for the VMs: their taps carry jumbo frames (`vm::JUMBO_MTU`).
    mtu: Option<u16>,
    snode_profile: bool,
    web_profile: bool,
    /// `[storage]` when the lab has exactly two storage VMs: their names, and the hardware-node
    /// VMs as the clients allowed to attach.
    storage: Option<serde_json::Value>,
}

/// Creates the lab in `dir` (which exists and is empty). On error the caller removes it all.
fn build(req: &LabRequest, templates: &crate::templates::Templates, dir: &Path) -> Result<LabState> {
    let name = &req.name;
    let nth = |n: u32| req.subnet.nth(n).expect("a /24 or larger has addresses up to .255");
    let prefix = req.subnet.prefix();
    let (gateway, bridge) = (nth(1), bridge_name(name));
    let client_key = dir.join("id_ed25519");
    keygen(&client_key, &format!("cloudctl-lab-{name}"))?;
    std::fs::copy(client_key.with_extension("pub"), dir.join("authorized_keys"))
        .context("cannot write authorized_keys")?;

    sys::run("ip", &["link", "add", &bridge, "type", "bridge"])?;
    sys::run("ip", &["addr", "add", &format!("{gateway}/{prefix}"), "dev", &bridge])?;
    sys::run("ip", &["link", "set", &bridge, "up"])?;

    // Start every host first and wait afterwards, so the sshds come up in parallel.
    let lab_octet = req.subnet.network().octets()[2];
    let mut hosts = Vec::new();
    let mut children = Vec::new();
    for i in 1..=req.hosts {
        let (host_name, role) = if i == 1 {
            ("confignode".to_string(), "confignode")
        } else {
            (format!("hnode{}", i - 1), "hnode")
        };
        let host_dir = dir.join(format!("h{i}"));
        std::fs::create_dir(&host_dir).with_context(|| format!("cannot create {}", host_dir.display()))?;
        let host = LabHost {
            name: host_name,
            role: role.into(),
            netns: netns_name(name, i),
            ip: nth(9 + u32::from(i)),
            mac: format!("52:54:00:c1:{lab_octet:02x}:{i:02x}"),
            sshd_pid: 0,
            host_key: host_dir.join("ssh_host_ed25519_key"),
            fingerprint: String::new(),
        };
        wire_host(&host, prefix, &veth_name(name, i), &bridge)?;
        keygen(&host.host_key, &format!("{}@cloudctl-lab-{name}", host.name))?;
        std::fs::write(host_dir.join("sshd_config"), sshd::config(host.ip, &host_dir, dir))
            .context("cannot write sshd_config")?;
        children.push(sshd::start(&host.name, &host.netns, &host_dir)?);
        hosts.push(host);
    }
    let mut known_hosts = String::new();
    for (i, (host, child)) in hosts.iter_mut().zip(&mut children).enumerate() {
        host.sshd_pid = sshd::wait_ready(child, &host.name, host.ip, &dir.join(format!("h{}", i + 1)))?;
        let public =
            std::fs::read_to_string(host.host_key.with_extension("pub")).context("cannot read a host's public key")?;
        // known_hosts wants `<host> <type> <base64>`: the .pub's first two fields, without its comment.
        let fields: Vec<&str> = public.split_whitespace().take(2).collect();
        known_hosts += &format!("{} {}\n", host.ip, fields.join(" "));
        let listing = sys::run(
            "ssh-keygen",
            &["-l", "-f", &host.host_key.with_extension("pub").display().to_string()],
        )?;
        host.fingerprint = listing.split_whitespace().nth(1).unwrap_or_default().to_string();
    }
    let vms = make_vms(req, dir, &bridge)?;
    let known_hosts_path = dir.join("known_hosts");
    let store = dir.join("store");
    std::fs::create_dir(&store).with_context(|| format!("cannot create {}", store.display()))?;
    sys::write_atomic(&known_hosts_path, known_hosts.as_bytes(), 0o600)?;

    let data = InventoryData {
        name,
        bridge: &bridge,
        hosts: hosts.len(),
        identity: client_key.display().to_string(),
        known_hosts: known_hosts_path.display().to_string(),
        subnet: req.subnet.to_string(),
        gateway,
        dynamic_range: format!("{}-{}", nth(100), nth(199)),
        confignode: hosts[0].ip,
        nodes: &hosts[1..],
        store: store.display().to_string(),
        authorized_keys: dir.join("authorized_keys").display().to_string(),
        vms: &vms,
        mtu: (!vms.is_empty()).then_some(vm::JUMBO_MTU),
        snode_profile: vms.iter().any(|v| v.role == VmRole::Snode),
        web_profile: vms.iter().any(|v| v.role == VmRole::Web),
        storage: storage_section(&vms),
    };
    let inventory = templates
        .render("lab-up/cloud.toml", &data)
        .map_err(|e| anyhow!("cannot render the lab inventory: {e}"))?;
    if inventory.lines().next() != Some(marker(name).as_str()) {
        bail!(
            "template lab-up/cloud.toml must start with the line {:?}, or `lab down` would not recognise the file",
            marker(name)
        );
    }
    let state = LabState {
        name: name.clone(),
        dir: dir.to_path_buf(),
        bridge,
        gateway,
        subnet: req.subnet.to_string(),
        hosts,
        inventory: std::path::absolute(&req.inventory).unwrap_or_else(|_| req.inventory.clone()),
        inventory_sha256: sha256_hex(inventory.as_bytes()),
        client_key,
        known_hosts: known_hosts_path,
        vms,
    };
    // State first: if writing the inventory fails, cleanup still knows the lab.
    sys::write_atomic(
        &state_path(name),
        serde_json::to_string_pretty(&state)?.as_bytes(),
        0o600,
    )?;
    sys::write_atomic(&state.inventory, inventory.as_bytes(), 0o644)?;
    if let (false, Some(exe)) = (state.vms.is_empty(), &req.power_exe) {
        power::spawn(exe, name, dir)?;
    }
    Ok(state)
}

/// The lab's VM machines: names, MACs, addresses (.201 upwards), folders, disks and taps.
fn make_vms(req: &LabRequest, dir: &Path, bridge: &str) -> Result<Vec<LabVm>> {
    let lab_octet = req.subnet.network().octets()[2];
    let (mut snodes, mut hnodes, mut webs) = (0, 0, 0);
    let mut vms = Vec::new();
    for (i, role) in req.vms.iter().enumerate() {
        let n = i + 1;
        let (vm_name, disks) = match role {
            VmRole::Snode => {
                snodes += 1;
                (format!("snode{snodes}"), 2)
            }
            VmRole::Hnode => {
                hnodes += 1;
                (format!("hvm{hnodes}"), 0)
            }
            VmRole::Web => {
                webs += 1;
                (format!("web{webs}"), 2)
            }
        };
        let vm_dir = dir.join("vms").join(&vm_name);
        std::fs::create_dir_all(dir.join("vms")).context("cannot create the VMs' folder")?;
        let vm = LabVm {
            disks: (1..=disks).map(|d| vm_dir.join(format!("disk{d}.img"))).collect(),
            name: vm_name,
            role: *role,
            mac: format!("52:54:00:c2:{lab_octet:02x}:{n:02x}"),
            ip: req.subnet.nth(200 + n as u32).expect("a /24 has addresses up to .255"),
            tap: vm::tap_name(&req.name, n),
            cable: None,
            dir: vm_dir,
        };
        vm::create(&vm, bridge, req.vm_disk_mib)?;
        vms.push(vm);
    }
    // The two web machines' cross-over cable (preflight allows two or none): each end sends to
    // the other's socket.
    let webs: Vec<usize> = (0..vms.len()).filter(|&i| vms[i].role == VmRole::Web).collect();
    if let [a, b] = webs[..] {
        let (end_a, end_b) = (vms[a].dir.join("cable.sock"), vms[b].dir.join("cable.sock"));
        vms[a].cable = Some((end_a.clone(), end_b.clone()));
        vms[b].cable = Some((end_b, end_a));
    }
    Ok(vms)
}

fn storage_section(vms: &[LabVm]) -> Option<serde_json::Value> {
    let names = |role| -> Vec<&str> { vms.iter().filter(|v| v.role == role).map(|v| v.name.as_str()).collect() };
    let snodes = names(VmRole::Snode);
    (snodes.len() == 2).then(|| serde_json::json!({ "nodes": snodes, "clients": names(VmRole::Hnode) }))
}

fn keygen(path: &Path, comment: &str) -> Result<()> {
    let path = path.display().to_string();
    sys::run(
        "ssh-keygen",
        &["-t", "ed25519", "-N", "", "-q", "-C", comment, "-f", &path],
    )?;
    Ok(())
}

/// The host's namespace and its cable to the bridge: `eth0` inside with its MAC and address.
/// A hardware node is wired as a real one is: `eth0` is a port of bridge `br0`, which holds the
/// address, so guests' interfaces can join `br0` and reach the lab network.
fn wire_host(host: &LabHost, prefix: u8, veth: &str, bridge: &str) -> Result<()> {
    let ns = host.netns.as_str();
    sys::run("ip", &["netns", "add", ns])?;
    sys::run(
        "ip",
        &["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns],
    )?;
    sys::run("ip", &["link", "set", veth, "master", bridge])?;
    sys::run("ip", &["link", "set", veth, "up"])?;
    sys::run("ip", &["-n", ns, "link", "set", "eth0", "address", &host.mac])?;
    let addressed = if host.role == "hnode" {
        sys::run("ip", &["-n", ns, "link", "add", HNODE_BRIDGE, "type", "bridge"])?;
        sys::run("ip", &["-n", ns, "link", "set", HNODE_BRIDGE, "address", &host.mac])?;
        sys::run("ip", &["-n", ns, "link", "set", "eth0", "master", HNODE_BRIDGE])?;
        sys::run("ip", &["-n", ns, "link", "set", HNODE_BRIDGE, "up"])?;
        HNODE_BRIDGE
    } else {
        "eth0"
    };
    sys::run(
        "ip",
        &[
            "-n",
            ns,
            "addr",
            "add",
            &format!("{}/{prefix}", host.ip),
            "dev",
            addressed,
        ],
    )?;
    sys::run("ip", &["-n", ns, "link", "set", "eth0", "up"])?;
    sys::run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
    Ok(())
}

/// The lab's state, its hosts' health, its VMs' power and SSH, and whether its power listener runs.
pub struct Status {
    pub state: LabState,
    pub hosts: Vec<HostHealth>,
    pub vms: Vec<VmHealth>,
    pub power_listener: Option<u32>,
}

pub fn status(name: &str) -> Result<Status> {
    validate_name(name).map_err(anyhow::Error::msg)?;
    let Some(state) = read_state(name)? else {
        bail!(
            "there is no lab \"{name}\" (no {}); create one with `cloudctl lab up --name {name}`",
            state_path(name).display()
        );
    };
    let present = netns_list()?;
    let vms = state
        .vms
        .iter()
        .map(|v| {
            let pid = v.pid();
            VmHealth {
                name: v.name.clone(),
                powered: pid.is_some(),
                qemu_pid: pid,
                ssh_port_open: pid.is_some()
                    && sys::ssh_answers(SocketAddr::from((v.ip, 22)), Duration::from_millis(500)),
            }
        })
        .collect();
    let health = state
        .hosts
        .iter()
        .map(|h| HostHealth {
            name: h.name.clone(),
            netns_present: present.contains(&h.netns),
            sshd_running: sys::live_comm(h.sshd_pid).as_deref() == Some("sshd"),
            ssh_port_open: sys::ssh_answers(SocketAddr::from((h.ip, 22)), Duration::from_millis(500)),
        })
        .collect();
    let power_listener = power::running(name, &lab_dir(name));
    Ok(Status {
        state,
        hosts: health,
        vms,
        power_listener,
    })
}

/// Lab `name`'s VM `vm`, or an error naming the VMs it has.
fn find_vm(name: &str, vm: &str) -> Result<LabVm> {
    validate_name(name).map_err(anyhow::Error::msg)?;
    let state = read_state(name)?.ok_or_else(|| anyhow!("there is no lab \"{name}\""))?;
    let Some(v) = state.vms.iter().find(|v| v.name == vm) else {
        let known: Vec<&str> = state.vms.iter().map(|v| v.name.as_str()).collect();
        bail!("lab \"{name}\" has no VM {vm:?}; its VMs: {}", known.join(", "));
    };
    Ok(v.clone())
}

/// Switches a lab VM off abruptly (QEMU killed: a pulled plug). True if it was on.
pub fn power_off(name: &str, vm: &str) -> Result<bool> {
    vm::power_off(&find_vm(name, vm)?)
}

/// Switches a lab VM on (QEMU started; it PXE-boots), as a BMC's power-on does. Returns QEMU's
/// pid and whether it was off.
pub fn power_on(name: &str, vm: &str) -> Result<(u32, bool)> {
    let v = find_vm(name, vm)?;
    let was_off = v.pid().is_none();
    Ok((vm::power_on(&v)?, was_off))
}

/// Presses a lab VM's power button (an ACPI event; its OS decides to shut down), as a BMC's
/// soft power-off does. False if it was off.
pub fn power_button(name: &str, vm: &str) -> Result<bool> {
    vm::power_button(&find_vm(name, vm)?)
}

/// Whether a lab VM is on (its QEMU runs).
pub fn is_on(name: &str, vm: &str) -> Result<bool> {
    Ok(find_vm(name, vm)?.pid().is_some())
}

pub fn down(name: &str) -> Result<Vec<String>> {
    require_root().map_err(anyhow::Error::msg)?;
    validate_name(name).map_err(anyhow::Error::msg)?;
    let mut done = Vec::new();
    let mut failed = Vec::new();
    let state = read_state(name).unwrap_or_else(|e| {
        done.push(format!(
            "ignored the unreadable state file ({e:#}); removing what can be found by name"
        ));
        None
    });
    let hosts = state.as_ref().map_or(&[][..], |s| &s.hosts[..]);

    // The power listener first (so it cannot start a VM again; without the state file it stops
    // by itself), then every QEMU, found by its command line naming the lab's folder.
    let listener = power::running(name, &lab_dir(name));
    for pid in listener.into_iter().chain(sys::qemu_pids_under(&lab_dir(name))) {
        let comm = sys::live_comm(pid).unwrap_or_default();
        if sys::stop(&[pid], Duration::from_secs(2)).is_empty() {
            done.push(format!("stopped {comm} (pid {pid})"));
        } else {
            failed.push(format!("{comm} (pid {pid}) would not die"));
        }
    }

    // sshd first, by pid, so it stops cleanly; but only if that pid is still an sshd of a
    // namespace other than ours (a reused pid must never take down anything else).
    for h in hosts {
        if sys::live_comm(h.sshd_pid).as_deref() == Some("sshd") && sys::in_other_netns(h.sshd_pid) {
            if sys::stop(&[h.sshd_pid], Duration::from_secs(2)).is_empty() {
                done.push(format!("stopped sshd of {} (pid {})", h.name, h.sshd_pid));
            } else {
                failed.push(format!("sshd of {} (pid {}) would not die", h.name, h.sshd_pid));
            }
        }
    }
    // Then whatever else runs in the namespaces (sessions, daemons tests started), and the namespaces.
    let mut namespaces: Vec<String> = netns_list()?
        .into_iter()
        .filter(|n| is_numbered(n, &format!("cl-{name}-h")))
        .collect();
    namespaces.sort_by_key(|n| host_number(n));
    for ns in &namespaces {
        let pids: Vec<u32> = match sys::run("ip", &["netns", "pids", ns]) {
            Ok(out) => out.lines().filter_map(|l| l.trim().parse().ok()).collect(),
            Err(e) => {
                failed.push(format!("{e:#}"));
                continue;
            }
        };
        if !pids.is_empty() {
            let left = sys::stop(&pids, Duration::from_secs(2));
            done.push(format!("stopped {} process(es) in {ns}", pids.len() - left.len()));
            if !left.is_empty() {
                failed.push(format!("processes {left:?} in {ns} would not die"));
            }
        }
        match sys::run("ip", &["netns", "delete", ns]) {
            Ok(_) => done.push(format!("removed network namespace {ns}")),
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    // The root-side veths normally vanish with their namespace, but the kernel does that
    // asynchronously; delete any still there, and the bridge last.
    let (veth_prefix, tap_prefix) = (format!("cl{name}h"), format!("cl{name}v"));
    let bridge = bridge_name(name);
    let mut links: Vec<String> = link_list()?
        .into_iter()
        .filter(|l| is_numbered(l, &veth_prefix) || is_numbered(l, &tap_prefix))
        .collect();
    links.sort_by_key(|l| host_number(l));
    links.extend(link_list()?.into_iter().filter(|l| *l == bridge));
    for link in links {
        match sys::run("ip", &["link", "delete", &link]) {
            Ok(_) if link == bridge => done.push(format!("removed bridge {link}")),
            Ok(_) => {}
            Err(_) if !link_list()?.contains(&link) => {} // went away by itself meanwhile
            Err(e) => failed.push(format!("{e:#}")),
        }
    }
    match &state {
        Some(state) => remove_inventory(state, &mut done),
        None if !done.is_empty() => {
            done.push("no state file, so the lab's inventory (if any) was left in place".into())
        }
        None => {}
    }
    if !failed.is_empty() {
        bail!(
            "could not remove all of lab \"{name}\" (its state in {} was kept so you can retry `cloudctl lab down --name {name}`):\n  {}\ndone so far:\n  {}",
            lab_dir(name).display(),
            failed.join("\n  "),
            done.join("\n  ")
        );
    }
    // The state dir is always the one derived from the name, never a path read from the state
    // file: a recursive delete must not follow an edited file elsewhere.
    let dir = lab_dir(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        done.push(format!("removed {}", dir.display()));
    }
    if done.is_empty() {
        done.push(format!("there is no lab \"{name}\"; nothing to remove"));
    }
    Ok(done)
}

/// Removes the lab's inventory unless someone changed it since `up` wrote it.
fn remove_inventory(state: &LabState, done: &mut Vec<String>) {
    let path = &state.inventory;
    match std::fs::read(path) {
        Err(_) => {}
        Ok(bytes) if sha256_hex(&bytes) == state.inventory_sha256 => match std::fs::remove_file(path) {
            Ok(()) => done.push(format!("removed inventory {}", path.display())),
            Err(e) => done.push(format!("left inventory {}: cannot remove it: {e}", path.display())),
        },
        Ok(_) => done.push(format!(
            "left inventory {}: it was changed after `cloudctl lab up` wrote it",
            path.display()
        )),
    }
}
