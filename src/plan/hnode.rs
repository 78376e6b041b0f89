//! Planner for `hnode boot`: the node's overlay initrd and boot profile on the ConfigNode, then
//! power-on (Wake-on-LAN or IPMI, run from the ConfigNode, which sits on the nodes' network). Pure.

use super::confignode::{self, node_dir, node_initrd, Facts, Scope};
use super::steps::on_change;
use super::{command, install_packages, strings, CommandStep, DirStep, FileStep, Plan, Step, Steps, When};
use crate::cpio;
use crate::error::Error;
use crate::inventory::{Hypervisor, Inventory, Node, Power};
use crate::shell::Script;
use crate::templates::Templates;

/// Writes a node's initrd (the profile's with the node's overlay) on the ConfigNode.
const NODE_INITRD: &str = include_str!("../../scripts/hnode/node-initrd.sh");

/// What cloudctl generated for the node (host keys) and what it lets in (authorized keys).
pub struct NodeSecrets {
    pub host_key: Vec<u8>,
    pub host_key_pub: Vec<u8>,
    /// The same key in dropbear's format, for initramfs-based nodes.
    pub dropbear_key: Vec<u8>,
    pub authorized_keys: Vec<u8>,
    /// For `power = "ipmi"`: the BMC password, read from the local password file.
    pub ipmi_password: Option<Vec<u8>>,
}

/// The hypervisor a node runs: its own setting, else the cloud's.
pub fn hypervisor(inv: &Inventory, node: &Node) -> Hypervisor {
    node.hypervisor.unwrap_or(inv.cloud.hypervisor)
}

/// The TCP port of the ConfigNode's key server (`cloudctl-keyserver`, socat).
pub const KEYSERVER_PORT: u16 = 7722;
/// The privileged port a booting node listens on for its keys: only root there can bind it.
pub const NODE_KEY_PORT: u16 = 1022;
/// The key server's service name on the ConfigNode.
pub const KEYSERVER_SERVICE: &str = "cloudctl-keyserver";

/// The overlay initrd: hostname, network settings, the public host key, authorized keys and the
/// script that fetches the private host keys, unpacked by the kernel on top of the profile's
/// initrd. TFTP serves it to anyone on the boot network, so it holds no secret.
pub fn overlay(inv: &Inventory, templates: &Templates, node: &Node, secrets: &NodeSecrets) -> Result<Vec<u8>, Error> {
    let sections = confignode::sections(inv)?;
    let (net, cn) = (sections.network, sections.confignode);
    let name = node.name.get_ref().to_string();
    let (Some(ip), Some(mac)) = (&node.ip, &node.mac) else {
        return Err(Error::Usage(format!(
            "node {name} needs `ip` and `mac` in the inventory to boot from the network"
        )));
    };
    let dns: Vec<String> = net.dns.iter().map(|d| d.to_string()).collect();
    // A shell sources node.conf: every value goes in as one quoted word.
    let settings: String = [
        ("NAME", name.clone()),
        ("MAC", mac.get_ref().to_string()),
        ("IP", ip.get_ref().to_string()),
        ("PREFIX", net.subnet.prefix().to_string()),
        ("GATEWAY", net.gateway.map(|g| g.to_string()).unwrap_or_default()),
        ("DNS", dns.join(" ")),
        (
            "HYPERVISOR",
            match hypervisor(inv, node) {
                Hypervisor::Xen => "xen",
                Hypervisor::Kvm => "kvm",
            }
            .into(),
        ),
        ("KEY_SERVER", confignode::next_server(cn)),
        ("KEY_SERVER_PORT", KEYSERVER_PORT.to_string()),
        ("KEY_PORT", NODE_KEY_PORT.to_string()),
    ]
    .into_iter()
    .chain(net.mtu.as_ref().map(|m| ("MTU", m.get_ref().to_string())))
    // The bridge the guests join: a hardware node's network-up makes it and moves eth0 into it.
    .chain((node.role == crate::inventory::Role::Hnode).then(|| ("BRIDGE", inv.instances().bridge.to_string())))
    .fold(Script::new(), |mut s, (k, v)| {
        s.text(k).text("=").word(&v).text("\n");
        s
    })
    .build();
    let fetch = templates.render(
        "hnode-boot/fetch-host-keys",
        &serde_json::json!({ "cloud": inv.cloud.name }),
    )?;
    let hostname = format!("{name}\n");
    let storage = storage_client(inv);
    let attach = templates.render(
        "hnode-boot/attach-storage",
        &serde_json::json!({ "cloud": inv.cloud.name }),
    )?;
    let dir = |path| cpio::Entry {
        path,
        mode: 0o755,
        content: None,
    };
    let mut entries = vec![
        dir("etc"),
        cpio::Entry {
            path: "etc/hostname",
            mode: 0o644,
            content: Some(hostname.as_bytes()),
        },
        dir("etc/cloudctl"),
        cpio::Entry {
            path: "etc/cloudctl/node.conf",
            mode: 0o644,
            content: Some(settings.as_bytes()),
        },
        dir("etc/ssh"),
        cpio::Entry {
            path: "etc/cloudctl/fetch-host-keys",
            mode: 0o755,
            content: Some(fetch.as_bytes()),
        },
        cpio::Entry {
            path: "etc/cloudctl/network-up",
            mode: 0o755,
            content: Some(NETWORK_UP.as_bytes()),
        },
        cpio::Entry {
            path: "etc/ssh/ssh_host_ed25519_key.pub",
            mode: 0o644,
            content: Some(&secrets.host_key_pub),
        },
        dir("etc/dropbear"),
        cpio::Entry {
            path: "root",
            mode: 0o700,
            content: None,
        },
        cpio::Entry {
            path: "root/.ssh",
            mode: 0o700,
            content: None,
        },
        cpio::Entry {
            path: "root/.ssh/authorized_keys",
            mode: 0o600,
            content: Some(&secrets.authorized_keys),
        },
    ];
    let store = store_client(inv, templates, node)?;
    if let Some(store) = &store {
        entries.push(dir("etc/ocfs2"));
        for (path, mode, content) in [
            ("etc/ocfs2/cluster.conf", 0o644, store.cluster_conf.as_str()),
            ("etc/cloudctl/store.conf", 0o644, store.conf.as_str()),
            ("etc/cloudctl/mount-store", 0o755, store.mount.as_str()),
            ("etc/cloudctl/format-store", 0o755, FORMAT_STORE),
        ] {
            entries.push(cpio::Entry {
                path,
                mode,
                content: Some(content.as_bytes()),
            });
        }
        if let Some(root) = &store.root {
            entries.push(cpio::Entry {
                path: "etc/cloudctl/root-from-storage",
                mode: 0o755,
                content: Some(root.as_bytes()),
            });
        }
    }
    if let Some((conf, md)) = &storage {
        entries.push(cpio::Entry {
            path: "etc/cloudctl/storage.conf",
            mode: 0o644,
            content: Some(conf.as_bytes()),
        });
        entries.push(dir("etc/mdadm"));
        entries.push(cpio::Entry {
            path: "etc/mdadm/mdadm.conf",
            mode: 0o644,
            content: Some(md.as_bytes()),
        });
        entries.push(cpio::Entry {
            path: "etc/cloudctl/attach-storage",
            mode: 0o755,
            content: Some(attach.as_bytes()),
        });
    }
    Ok(cpio::archive(&entries))
}

/// The node's private host keys (OpenSSH and dropbear formats) as the archive the key server
/// sends and the node's `fetch-host-keys` unpacks at `/`.
pub fn host_keys(secrets: &NodeSecrets) -> Vec<u8> {
    cpio::archive(&[
        cpio::Entry {
            path: "etc/ssh/ssh_host_ed25519_key",
            mode: 0o600,
            content: Some(&secrets.host_key),
        },
        cpio::Entry {
            path: "etc/dropbear/dropbear_ed25519_host_key",
            mode: 0o600,
            content: Some(&secrets.dropbear_key),
        },
    ])
}

/// The key server on the ConfigNode: socat accepts callers from the boot network and runs
/// `keyserver-send`, which sends a node's keys only to a privileged port at its registered
/// address (the map `confignode::node_addresses` keeps in step with the inventory).
fn keyserver_steps(inv: &Inventory, templates: &Templates) -> Result<Vec<Step>, Error> {
    let net = confignode::sections(inv)?.network;
    let cloud = serde_json::json!({ "cloud": inv.cloud.name });
    let settings = serde_json::json!({
        "cloud": inv.cloud.name,
        "port": KEYSERVER_PORT,
        "range": net.subnet.to_string(),
        "node_port": NODE_KEY_PORT,
    });
    let sh_checked = |id: &str, path: &str, content: String, mode: u32| {
        super::file(super::FileSpec {
            id,
            path,
            content,
            mode,
            owner: Some("root:root"),
            validate: Some(strings(&["sh", "-n", "{}"])),
            secret: false,
        })
    };
    let mut steps = Steps::new();
    steps.push(install_packages(&["socat"]));
    steps.push(super::dir("/usr/local/lib/cloudctl", 0o755)?);
    let send = steps.file(sh_checked(
        "keyserver-send",
        "/usr/local/lib/cloudctl/keyserver-send",
        templates.render("hnode-boot/keyserver-send", &cloud)?,
        0o755,
    )?)?;
    let default = steps.file(sh_checked(
        "keyserver-default",
        &format!("/etc/default/{KEYSERVER_SERVICE}"),
        templates.render("hnode-boot/keyserver-default", &settings)?,
        0o644,
    )?)?;
    let init = steps.file(sh_checked(
        "keyserver-init",
        &format!("/etc/init.d/{KEYSERVER_SERVICE}"),
        templates.render("hnode-boot/keyserver-init", &cloud)?,
        0o755,
    )?)?;
    steps.push(on_change(&["update-rc.d", KEYSERVER_SERVICE, "defaults"], &[&init]));
    steps.push(on_change(
        &["service", KEYSERVER_SERVICE, "restart"],
        &[&send, &default, &init],
    ));
    steps.push(command(
        &["service", KEYSERVER_SERVICE, "start"],
        When::Unless(strings(&["service", KEYSERVER_SERVICE, "status"])),
    ));
    steps.build()
}

/// How a hardware node sees the storage: the two AoE exports (one per storage node) as one md
/// multipath device, so either storage node can go down without stopping the guests.
/// Returns (storage.conf, mdadm.conf) when the inventory has `[storage]`.
fn storage_client(inv: &Inventory) -> Option<(String, String)> {
    use super::storage::{md_uuid, AOE_CLIENT_FRAMES, AOE_DEAD_SECS};
    let s = inv.storage.as_ref()?.get_ref();
    let shelf = s.shelf.get_ref();
    let devices = format!("/dev/etherd/e{shelf}.0 /dev/etherd/e{shelf}.1");
    let uuid = md_uuid(inv, "aoe-multipath", s.drbd_device.as_str());
    let conf = format!(
        "AOE_DEVICES=\"{devices}\"\nMD_DEVICE=/dev/md/cloudctl-storage\nMD_UUID={uuid}\nAOE_DEADSECS={AOE_DEAD_SECS}\nAOE_MAXOUT={AOE_CLIENT_FRAMES}\n"
    );
    let md = format!("# Managed by cloudctl: the storage, seen through both storage nodes.\nDEVICE {devices}\nARRAY /dev/md/cloudctl-storage level=multipath num-devices=2 UUID={uuid}\n");
    Some((conf, md))
}

/// Formats the store once: scripts/lamp/mkfs-ocfs2.sh (the same guard as the web nodes' OCFS2).
/// scripts/hnode/network-up.sh: the node's network (MTU, the guests' bridge, its address).
const NETWORK_UP: &str = include_str!("../../scripts/hnode/network-up.sh");
const FORMAT_STORE: &str = include_str!("../../scripts/lamp/mkfs-ocfs2.sh");

/// A hardware node's view of the instance store: the OCFS2 cluster of the hardware nodes that
/// attach the storage, and (when its profile names a root image) its root from the store.
struct StoreClient {
    cluster_conf: String,
    conf: String,
    mount: String,
    root: Option<String>,
}

/// The OCFS2 cluster name of a cloud: o2cb takes up to 16 letters and digits.
pub fn store_cluster(inv: &Inventory) -> String {
    let name: String = inv
        .cloud
        .name
        .as_str()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    if name.is_empty() {
        "cloudctl".into()
    } else {
        name
    }
}

/// The hardware nodes that attach the storage, in inventory order, with their OCFS2 node
/// numbers: the last byte of the address, so a number never changes when nodes come and go.
pub fn store_nodes(inv: &Inventory) -> Result<Vec<(&Node, u8)>, Error> {
    let Some(s) = inv.storage.as_ref() else {
        return Ok(Vec::new());
    };
    let clients = inv.select(s.get_ref().clients.get_ref()).unwrap_or_default();
    let mut nodes: Vec<(&Node, u8)> = Vec::new();
    for n in inv.node.iter().filter(|n| n.role == crate::inventory::Role::Hnode) {
        let Some(ip) = &n.ip else { continue };
        if !clients.iter().any(|h| h.name == n.name.get_ref().as_str()) {
            continue;
        }
        let number = ip.get_ref().octets()[3];
        if number == 255 {
            return Err(Error::Usage(format!(
                "hardware node {} has address {}: its OCFS2 node number would be 255 (the last byte of the address), and OCFS2 numbers nodes 0-254; give it another address",
                n.name.get_ref(),
                ip.get_ref()
            )));
        }
        if let Some((other, _)) = nodes.iter().find(|(_, x)| *x == number) {
            return Err(Error::Usage(format!(
                "hardware nodes {} and {} would have the same OCFS2 node number {number} (the last byte of their addresses); give one of them an address that ends differently",
                other.name.get_ref(),
                n.name.get_ref()
            )));
        }
        nodes.push((n, number));
    }
    Ok(nodes)
}

/// The o2cb port of the hardware nodes' cluster (o2cb's default).
pub const STORE_O2CB_PORT: u16 = 7777;

fn store_client(inv: &Inventory, templates: &Templates, node: &Node) -> Result<Option<StoreClient>, Error> {
    let nodes = store_nodes(inv)?;
    if !nodes.iter().any(|(n, _)| n.name == node.name) {
        return Ok(None);
    }
    let cluster = store_cluster(inv);
    let members: Vec<_> = nodes
        .iter()
        .map(|(n, number)| {
            serde_json::json!({ "name": n.name.get_ref().as_str(), "id": number,
                                "address": n.ip.as_ref().map(|i| i.get_ref().to_string()) })
        })
        .collect();
    let cluster_conf = templates.render(
        "lamp-deploy/cluster.conf",
        &serde_json::json!({ "cluster": cluster, "count": nodes.len(), "port": STORE_O2CB_PORT, "nodes": members }),
    )?;
    let formatter = nodes[0].0.name.get_ref().to_string();
    let root = confignode::profile_of(inv, node).and_then(|(_, p)| p.root.clone());
    // Room for nodes added later: tunefs.ocfs2 -N adds slots, but only while the store is unmounted.
    let slots = nodes.len().max(8);
    let conf = [
        ("STORE", inv.instances().store.to_string()),
        ("CLUSTER", cluster.clone()),
        ("LABEL", format!("{cluster}-store")),
        ("SLOTS", slots.to_string()),
        (
            "FORMAT",
            if formatter == node.name.get_ref().as_str() {
                "yes"
            } else {
                "no"
            }
            .into(),
        ),
        ("FORMATTER", formatter),
        ("ROOT_IMAGE", root.as_ref().map(|r| r.to_string()).unwrap_or_default()),
    ]
    .iter()
    .fold(Script::new(), |mut s, (k, v)| {
        s.text(k).text("=").word(v).text("\n");
        s
    })
    .build();
    let cloud = serde_json::json!({ "cloud": inv.cloud.name });
    Ok(Some(StoreClient {
        cluster_conf,
        conf,
        mount: templates.render("hnode-boot/mount-store", &cloud)?,
        root: match root {
            Some(_) => Some(templates.render("hnode-boot/root-from-storage", &cloud)?),
            None => None,
        },
    }))
}

/// The ConfigNode plan for booting `node`: its files and PXE entry on every ConfigNode probed
/// (`facts` in `confignode::hosts` order, `None` for one left out), then power-on from the first.
pub fn plan(
    inv: &Inventory,
    templates: &Templates,
    facts: &[Option<Facts>],
    node: &Node,
    power: Power,
    secrets: &NodeSecrets,
) -> Result<Plan, Error> {
    let name = node.name.get_ref().to_string();
    let sections = confignode::sections(inv)?;
    let (cn, net) = (sections.confignode, sections.network);
    let Some((pname, profile)) = confignode::profile_of(inv, node) else {
        return Err(Error::Usage(format!(
            "node {name} has no boot profile: add [profiles.{}] or set `profile` on the node",
            node.role.as_str()
        )));
    };
    let root = cn.tftp_root.as_str().trim_end_matches('/');
    let dir = format!("{root}/{}", node_dir(&name));
    let overlay_path = format!("{dir}/overlay.img");
    let combined = format!("{root}/{}", node_initrd(&name));
    let base = profile.initrd.to_string();
    let with_overlay: Vec<Option<Facts>> = facts
        .iter()
        .map(|f| {
            f.clone().map(|mut f| {
                f.overlays.insert(name.clone());
                f
            })
        })
        .collect();
    let mut plan = confignode::plan_each(inv, templates, &with_overlay, &Scope::nodes([&name]))?;
    let kind = match node.role {
        crate::inventory::Role::Snode => "storage",
        _ => "hardware",
    };
    plan.title = format!("boot {kind} node {name} (profile {pname})");
    // Node files come first: the PXE entry that names them is written after they exist.
    let layout = if profile.xen.is_some() { "single" } else { "append" };
    let concat = crate::shell::sh_c_argv(NODE_INITRD, &["write", layout, &base, &overlay_path, &combined]);
    let same = crate::shell::sh_c_argv(NODE_INITRD, &["same", layout, &base, &overlay_path, &combined]);
    // The private keys stay out of the TFTP root: only the key server reads them.
    let mut node_steps = vec![Step::File(FileStep {
        id: "host-keys".into(),
        path: format!("{}/{name}.keys", confignode::NODE_KEYS_DIR)
            .parse()
            .map_err(Error::Usage)?,
        content: host_keys(secrets),
        mode: 0o600,
        owner: Some("root:root".into()),
        validate: None,
        secret: true,
        masked: Vec::new(),
    })];
    node_steps.extend(keyserver_steps(inv, templates)?);
    node_steps.extend([
        Step::Dir(DirStep {
            path: dir.parse().map_err(Error::Usage)?,
            mode: 0o755,
        }),
        Step::File(FileStep {
            id: "overlay".into(),
            path: overlay_path.parse().map_err(Error::Usage)?,
            content: overlay(inv, templates, node, secrets)?,
            mode: 0o644,
            owner: None,
            validate: None,
            secret: false,
            masked: Vec::new(),
        }),
        Step::Command(CommandStep {
            argv: concat,
            when: When::Unless(same),
        }),
    ]);
    // Every ConfigNode of a pair gets the node's files (either may serve its boot); the first
    // one in the plan powers it on.
    for host in &mut plan.hosts {
        let steps = &mut host.steps;
        // After the key directory and the address map the ConfigNode plan starts with.
        let at = steps
            .iter()
            .position(|s| matches!(s, Step::File(f) if f.id == confignode::NODE_ADDRESSES_ID))
            .map_or(0, |i| i + 1);
        steps.splice(at..at, node_steps.clone());
    }
    let steps = &mut plan.hosts[0].steps;
    let mac = node.mac.as_ref().map(|m| m.get_ref().to_string()).unwrap_or_default();
    match power {
        Power::None => {}
        Power::Wol => {
            let broadcast = net
                .subnet
                .nth(!0u32 >> net.subnet.prefix())
                .map(|b| b.to_string())
                .unwrap_or_else(|| "255.255.255.255".into());
            steps.push(Step::Command(CommandStep {
                argv: strings(&["wakeonlan", "-i", &broadcast, "-p", "9", &mac]),
                when: When::Always,
            }));
        }
        Power::Ipmi => {
            if node.ipmi.is_none() {
                return Err(Error::Usage(format!(
                    "node {name}: --power ipmi needs an `ipmi = {{ address, user, password_file }}` table on the node"
                )));
            }
            let password = secrets
                .ipmi_password
                .clone()
                .ok_or_else(|| Error::Usage(format!("node {name}: no IPMI password was read")))?;
            steps.extend(ipmi_steps(node, password, IpmiPower::On)?);
        }
    }
    Ok(plan)
}

/// What an IPMI chassis command asks the node's BMC for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpmiPower {
    On,
    /// An ACPI power-button press: the node's OS shuts down cleanly, then powers off.
    Soft,
}

/// Steps on the ConfigNode that send `action` to the node's BMC with `ipmitool`: the password
/// goes into a 0600 file there and reaches ipmitool through its environment (`-E`), never a
/// command line.
pub fn ipmi_steps(node: &Node, password: Vec<u8>, action: IpmiPower) -> Result<Vec<Step>, Error> {
    let name = node.name.get_ref();
    let Some(ipmi) = &node.ipmi else {
        return Err(Error::Usage(format!(
            "node {name}: IPMI needs an `ipmi = {{ address, user, password_file }}` table on the node"
        )));
    };
    let secret_path = format!("/etc/cloudctl/ipmi/{name}");
    macro_rules! ipmitool {
        ($power:literal) => {
            concat!(
                "IPMI_PASSWORD=$(cat \"$1\") exec ipmitool -I lanplus -H \"$2\" -U \"$3\" -E chassis power ",
                $power
            )
        };
    }
    let script = match action {
        IpmiPower::On => ipmitool!("on"),
        IpmiPower::Soft => ipmitool!("soft"),
    };
    let host = ipmi.address.to_string();
    Ok(vec![
        Step::Dir(DirStep {
            path: "/etc/cloudctl/ipmi".parse().map_err(Error::Usage)?,
            mode: 0o700,
        }),
        Step::File(FileStep {
            id: "ipmi-password".into(),
            path: secret_path.parse().map_err(Error::Usage)?,
            content: password,
            mode: 0o600,
            owner: Some("root:root".into()),
            validate: None,
            secret: true,
            masked: Vec::new(),
        }),
        Step::Command(CommandStep {
            argv: strings(&["sh", "-c", script, "sh", &secret_path, &host, ipmi.user.as_str()]),
            when: When::Always,
        }),
    ])
}
