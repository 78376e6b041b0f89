//! Planner for `storage init`: md array, DRBD primary/primary and the AoE export on the two
//! storage nodes, from the inventory and a read-only probe of each node. Metadata is created only
//! where none is found, and the initial sync forced only on a fresh resource (both sides
//! Inconsistent, checked on the node when it runs), never again: a node that comes back becomes
//! primary only once it or its peer holds UpToDate data. Pure.

use super::masked::SecretField;
use super::steps::on_change;
use super::{command, file, install_packages, strings, FileSpec, HostPlan, Plan, Step, When, SECRET_FACT};
use crate::digest::sha256_hex;
use crate::error::Error;
use crate::inventory::storage::StorageSection;
use crate::inventory::Inventory;
use crate::shell::Script;
use crate::templates::Templates;
use serde_json::json;
use std::collections::BTreeMap;

pub const PACKAGES: [&str; 3] = ["mdadm", "drbd-utils", "vblade"];
const STATE_DIR: &str = "/var/lib/cloudctl/storage";
/// The DRBD fence-peer handler storage init installs (see templates/storage-init/fence-peer).
pub const FENCE_PEER: &str = "/usr/local/sbin/cloudctl-drbd-fence-peer";
/// Frames each vblade buffers (`vblade -b`; its socket's receive buffer is this many MTUs).
/// Four times what a client keeps in flight, so the retransmissions a client sends while DRBD
/// holds I/O on this node (its peer just died) are queued, not dropped.
pub const AOE_SERVER_FRAMES: u32 = 64;
/// Frames a client keeps in flight to one export (the aoe driver's `aoe_maxout`).
pub const AOE_CLIENT_FRAMES: u32 = 16;
/// Seconds a client's AoE waits for an export before failing its I/O (`aoe_deadsecs`), so md
/// multipath moves to the other storage node. It must outlast what a *surviving* node's path
/// goes through when its peer dies: DRBD's freeze (about 4 s to notice, 3 s of fence-peer), then
/// vblade working through the frames queued meanwhile while the clients' AoE window, collapsed
/// by the freeze, grows back. Under a writing guest that took 25.6 s in the lab: at 20 s the
/// healthy path was failed too (twice), at 55 s the guest wrote on without an error. It stays
/// below OCFS2's disk heartbeat limit (60 s) on the hardware nodes' store.
pub const AOE_DEAD_SECS: u32 = 55;
/// How long a node waits for its peer during `storage init` (connect, initial handshake).
const PEER_WAIT_SECS: &str = "120";

/// scripts/storage/initial-sync.sh (its arguments and what it does are described there).
const INITIAL_SYNC: &str = include_str!("../../scripts/storage/initial-sync.sh");

/// scripts/storage/become-primary.sh (its arguments and what it does are described there).
const BECOME_PRIMARY: &str = include_str!("../../scripts/storage/become-primary.sh");

/// What a member disk holds, by `blkid -p` (the low-level probe wipefs uses too).
#[derive(Debug, Clone, PartialEq)]
pub enum Disk {
    Missing,
    Blank,
    /// A member of this cloud's array on this node (a re-run).
    Ours,
    /// Anything else: a filesystem, a partition table, other RAID or DRBD metadata.
    Foreign(String),
}

/// One storage node, as its probe found it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeFacts {
    pub hostname: String,
    pub disks: BTreeMap<String, Disk>,
    pub md_active: bool,
    /// DRBD metadata was created by cloudctl (marker written after `create-md` succeeded).
    pub drbd_metadata: bool,
    pub sync_started: bool,
    pub secret: Option<String>,
    /// Version of the node's DRBD kernel module (8.4 and 9 want different resource syntax).
    pub drbd_version: Option<String>,
}

impl NodeFacts {
    fn drbd84(&self) -> bool {
        self.drbd_version.as_deref().is_some_and(|v| v.starts_with("8."))
    }
}

/// Prints `drbd-version V`: the loaded DRBD module's version, else the installed one's (8.4 and 9
/// want different resource syntax). Shared by the storage nodes' and the web nodes' probes.
pub const DRBD_VERSION_PROBE: &str = "v=$(sed -n 's/^version: \\([0-9.]*\\).*/\\1/p' /proc/drbd 2>/dev/null); [ -n \"$v\" ] || v=$(modinfo -F version drbd 2>/dev/null); [ -n \"$v\" ] && echo \"drbd-version $v\"\n";

/// scripts/storage/md-create.sh (its arguments and what it does are described there).
pub const MD_CREATE: &str = include_str!("../../scripts/storage/md-create.sh");

/// scripts/storage/md-repair.sh (its arguments and what it does are described there).
pub const MD_REPAIR: &str = include_str!("../../scripts/storage/md-repair.sh");

/// The array UUID, derived from the cloud, node and device so every run names the same array.
pub fn md_uuid(inv: &Inventory, node: &str, md: &str) -> String {
    let h = sha256_hex(format!("cloudctl-md:{}:{node}:{md}", inv.cloud.name).as_bytes());
    format!("{}:{}:{}:{}", &h[0..8], &h[8..16], &h[16..24], &h[24..32])
}

fn res_file(s: &StorageSection) -> String {
    format!("/etc/drbd.d/{}.res", s.resource)
}

fn marker(s: &StorageSection, what: &str) -> String {
    format!("{STATE_DIR}/{}.{what}", s.resource)
}

/// scripts/storage/disk-facts.sh (its arguments and what it does are described there).
const DISK_FACTS: &str = include_str!("../../scripts/storage/disk-facts.sh");

/// The read-only probe of a storage node (runs under `--dry-run` too): fixed text, and every
/// inventory value (disks, the md device, the resource's files) as one quoted word.
pub fn facts_script(s: &StorageSection) -> String {
    let mut script = Script::new();
    script.text("echo \"hostname $(uname -n)\"\n").text(DISK_FACTS);
    for d in s.disks.get_ref() {
        script.call("disk", &[d.as_str()], "\n");
    }
    script
        .call(
            "mdadm --detail",
            &[s.md_device.as_str()],
            " >/dev/null 2>&1 && echo md-active\n",
        )
        .call("[ -e", &[&marker(s, "metadata-created")], " ] && echo drbd-metadata\n")
        .call("[ -e", &[&marker(s, "initial-sync")], " ] && echo sync-started\n")
        .text("sed -n 's/^[[:space:]]*shared-secret \"\\([^\"]*\\)\";.*/")
        .text(SECRET_FACT)
        .text("secret \\1/p' ")
        .word(&res_file(s))
        .text(" 2>/dev/null\n")
        .text(DRBD_VERSION_PROBE)
        .text("exit 0\n")
        .build()
}

/// `scripts/storage/status.sh MD RESOURCE` (what it prints is described there).
const STATUS: &str = include_str!("../../scripts/storage/status.sh");

/// The read-only program of `storage status` for a storage node.
pub fn status_script(s: &StorageSection) -> String {
    crate::shell::sh_c(STATUS, &[s.md_device.as_str(), s.resource.as_str()])
}

/// Parses a node's probe; `uuid` is the array UUID cloudctl gives that node.
pub fn parse_facts(output: &str, uuid: &str) -> NodeFacts {
    let mut f = NodeFacts::default();
    let mut blkid: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for line in output.lines() {
        let line = line.strip_prefix(SECRET_FACT).unwrap_or(line);
        let mut words = line.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("hostname"), Some(h), None) => f.hostname = h.to_string(),
            (Some("disk"), Some(d), Some("present")) => {
                f.disks.insert(d.to_string(), Disk::Blank);
            }
            (Some("disk"), Some(d), Some("missing")) => {
                f.disks.insert(d.to_string(), Disk::Missing);
            }
            (Some("blkid"), Some(d), Some(kv)) => {
                if let Some((k, v)) = kv.split_once('=') {
                    blkid
                        .entry(d.to_string())
                        .or_default()
                        .insert(k.to_string(), v.to_string());
                }
            }
            (Some("md-active"), None, None) => f.md_active = true,
            (Some("drbd-metadata"), None, None) => f.drbd_metadata = true,
            (Some("sync-started"), None, None) => f.sync_started = true,
            (Some("secret"), Some(s), None) => f.secret = Some(s.to_string()),
            (Some("drbd-version"), Some(v), None) => f.drbd_version = Some(v.to_string()),
            _ => {}
        }
    }
    let plain = |u: &str| {
        u.chars()
            .filter(char::is_ascii_hexdigit)
            .collect::<String>()
            .to_lowercase()
    };
    for (disk, tags) in blkid {
        let kind = tags.get("TYPE").map(String::as_str);
        let state = match (kind, tags.get("PTTYPE")) {
            // blkid found several signatures and will not say which is real: never take it as blank.
            _ if tags.contains_key("AMBIVALENT") => {
                Disk::Foreign("more than one signature (blkid -p reports them as ambivalent)".into())
            }
            (Some("linux_raid_member"), _) if tags.get("UUID").map(|u| plain(u)) == Some(plain(uuid)) => Disk::Ours,
            (Some("linux_raid_member"), _) => Disk::Foreign("md RAID metadata of another array".into()),
            (Some("drbd"), _) => Disk::Foreign("DRBD metadata".into()),
            (Some(t), _) => Disk::Foreign(format!("a {t} filesystem or signature")),
            (None, Some(pt)) => Disk::Foreign(format!("a {pt} partition table")),
            (None, None) => continue,
        };
        f.disks.insert(disk, state);
    }
    f
}

/// Disks that must be wiped first (foreign, and named with --force-wipe); refuses any other
/// foreign or missing disk, naming it and what it holds.
pub fn check_disks(
    node: &str,
    s: &StorageSection,
    facts: &NodeFacts,
    force_wipe: &[String],
) -> Result<Vec<String>, String> {
    let mut wipe = Vec::new();
    for d in s.disks.get_ref() {
        match facts.disks.get(d.as_str()).unwrap_or(&Disk::Missing) {
            Disk::Missing => return Err(format!("{node}: member disk {d} is not a block device there; fix [storage] disks")),
            Disk::Foreign(_) if force_wipe.iter().any(|f| f == d.as_str()) => wipe.push(d.to_string()),
            Disk::Foreign(what) => {
                return Err(format!(
                    "{node}: refusing to touch {d}: it holds {what}. Nothing was written. If its data may be destroyed, pass --force-wipe {d}"
                ))
            }
            Disk::Blank | Disk::Ours => {}
        }
    }
    Ok(wipe)
}

/// Storage config files are root's: `file` with owner root:root.
fn root_file(
    id: &str,
    path: &str,
    content: String,
    mode: u32,
    validate: Option<&[&str]>,
    secret: bool,
) -> Result<Step, Error> {
    file(FileSpec {
        id,
        path,
        content,
        mode,
        owner: Some("root:root"),
        validate: validate.map(strings),
        secret,
    })
}

/// The plan for the storage nodes in `only` (both when empty). `facts` and `wipe` follow
/// `[storage] nodes` order; `secret` is the DRBD shared secret (existing or newly generated).
pub fn plan(
    inv: &Inventory,
    templates: &Templates,
    facts: &[NodeFacts; 2],
    wipe: &[Vec<String>; 2],
    secret: &str,
    only: &[String],
) -> Result<Plan, Error> {
    let s = inv
        .storage
        .as_ref()
        .ok_or_else(|| Error::Usage("the inventory has no [storage] section; see examples/seed-lab.toml".into()))?
        .get_ref();
    let nodes = s.nodes.get_ref();
    let address = |n: &crate::types::Name| -> String {
        s.address.get(n).map(|a| a.to_string()).unwrap_or_else(|| {
            inv.node
                .iter()
                .find(|x| x.name.get_ref() == n)
                .and_then(|x| x.ip.as_ref())
                .map(|i| i.get_ref().to_string())
                .unwrap_or_default()
        })
    };
    let peers: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| json!({ "name": n, "address": address(n), "id": i }))
        .collect();
    // Rendered for the DRBD version on the node (the module decides which drbdadm parses it).
    let res = |f: &NodeFacts| {
        templates.render(
            "storage-init/drbd.res",
            &json!({ "resource": s.resource, "md_device": s.md_device, "drbd_device": s.drbd_device, "secret": secret, "port": s.drbd_port, "peers": peers, "fence_peer": FENCE_PEER, "drbd84": f.drbd84() }),
        )
    };
    let clients = inv.select(s.clients.get_ref()).map_err(Error::Usage)?;
    let mut macs: Vec<String> = clients
        .iter()
        .filter_map(|h| inv.node.iter().find(|n| n.name.get_ref().as_str() == h.name))
        .filter_map(|n| n.mac.as_ref().map(|m| m.get_ref().to_string()))
        .collect();
    macs.sort();
    if macs.is_empty() {
        return Err(Error::Usage(
            "[storage] clients have no MACs: vblade would export to nobody; give the hardware nodes `mac`".into(),
        ));
    }
    // Only a resource fresh on both nodes gets its initial sync forced, and only once.
    let fresh = !facts[0].drbd_metadata && !facts[1].drbd_metadata && !facts[0].sync_started;
    let mut hosts = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        if !only.is_empty() && !only.iter().any(|o| o == node.as_str()) {
            continue;
        }
        let host = inv.select(&[node.to_string()]).map_err(Error::Usage)?.remove(0);
        let f = &facts[i];
        let md = s.md_device.as_str();
        let uuid = md_uuid(inv, node.as_str(), md);
        let disks: Vec<&str> = s.disks.get_ref().iter().map(|d| d.as_str()).collect();
        let mut steps = super::Steps::new();
        steps.push(install_packages(&PACKAGES));
        for d in &wipe[i] {
            steps.push(command(&["wipefs", "-a", d], When::Always));
        }
        if !f.md_active {
            // Wiped disks are blank by now; the scripts probe every disk again before writing.
            let (ours, blank): (Vec<&str>, Vec<&str>) = disks
                .iter()
                .partition(|d| f.disks.get(**d) == Some(&Disk::Ours) && !wipe[i].iter().any(|w| w == *d));
            let level = s.md_level.get_ref().to_string();
            let count = disks.len().to_string();
            let step = if blank.is_empty() {
                let mut argv = vec!["mdadm", "--assemble", md, "--uuid", &uuid];
                argv.extend(ours.iter().copied());
                strings(&argv)
            } else if ours.is_empty() {
                let mut argv = vec!["sh", "-c", MD_CREATE, "sh", md, &uuid, &level, &count];
                argv.extend(blank.iter().copied());
                strings(&argv)
            } else {
                // A member survived (md stopped, a disk replaced): never --create over it.
                let n = ours.len().to_string();
                let mut argv = vec!["sh", "-c", MD_REPAIR, "sh", md, &uuid, &n];
                argv.extend(ours.iter().chain(&blank).copied());
                strings(&argv)
            };
            steps.push(Step::Command(super::CommandStep {
                argv: step,
                when: When::Unless(strings(&["mdadm", "--detail", md])),
            }));
        }
        let mdadm_conf = steps.file(root_file(
            "mdadm.conf",
            "/etc/mdadm/mdadm.conf",
            templates.render("storage-init/mdadm.conf", &json!({ "md_device": md, "uuid": uuid }))?,
            0o644,
            None,
            false,
        )?)?;
        // A RAM-root (network-booted) storage node has no initramfs of its own to update.
        steps.push(on_change(
            &[
                "sh",
                "-c",
                "command -v update-initramfs >/dev/null || exit 0; exec update-initramfs -u",
            ],
            &[&mdadm_conf],
        ));
        let peer = &nodes[1 - i];
        steps.push(root_file(
            "fence-peer",
            FENCE_PEER,
            templates.render(
                "storage-init/fence-peer",
                &json!({ "resource": s.resource, "node": node, "peer": peer, "peer_address": address(peer) }),
            )?,
            0o755,
            Some(&["sh", "-n", "{}"]),
            false,
        )?);
        // Shown in a dry run with only the shared secret masked (as the template writes it).
        steps.push(super::masked_file(
            FileSpec {
                id: "drbd.res",
                path: &res_file(s),
                content: res(f)?,
                mode: 0o600,
                owner: Some("root:root"),
                validate: Some(strings(&["drbdadm", "-t", "{}", "dump"])),
                secret: true,
            },
            &[SecretField::new("shared-secret \"", "\";")],
            &[secret],
        )?);
        let meta = marker(s, "metadata-created");
        if !f.drbd_metadata {
            // No --force: on a device that already holds data, create-md asks and (stdin is
            // /dev/null) refuses, which is what we want. Metadata that is there already (a
            // RAM-root node forgets its marker at power-off) is found by reading it. A node
            // that lost power as a primary has "unclean" metadata (activity log not applied),
            // which plain dump-md refuses to read; --force makes it read it anyway (dump-md
            // only reads), so the node that comes back is recognised instead of refused.
            let script = "drbdadm create-md \"$1\" && mkdir -p \"$3\" && touch \"$2\"";
            let present = "test -e \"$1\" || drbdadm -- --force dump-md \"$2\" >/dev/null 2>&1";
            steps.push(command(
                &["sh", "-c", script, "sh", s.resource.as_str(), &meta, STATE_DIR],
                When::Unless(strings(&["sh", "-c", present, "sh", &meta, s.resource.as_str()])),
            ));
        }
        steps.push(command(&["drbdadm", "adjust", s.resource.as_str()], When::Always));
        let is_primary = [
            "sh",
            "-c",
            "drbdadm role \"$1\" | grep -q '^Primary'",
            "sh",
            s.resource.as_str(),
        ];
        if i == 0 && fresh {
            let sync = marker(s, "initial-sync");
            let has_data = "test -e \"$1\" || drbdadm dstate \"$2\" | grep -q UpToDate";
            steps.push(command(
                &[
                    "sh",
                    "-c",
                    INITIAL_SYNC,
                    "sh",
                    s.resource.as_str(),
                    &sync,
                    STATE_DIR,
                    PEER_WAIT_SECS,
                ],
                When::Unless(strings(&["sh", "-c", has_data, "sh", &sync, s.resource.as_str()])),
            ));
        }
        steps.push(command(
            &["sh", "-c", BECOME_PRIMARY, "sh", s.resource.as_str(), PEER_WAIT_SECS],
            When::Unless(strings(&is_primary)),
        ));
        let aoe = json!({ "shelf": s.shelf.get_ref(), "slot": i, "interface": s.interface, "device": s.drbd_device, "macs": macs.join(","), "bufcnt": AOE_SERVER_FRAMES });
        let aoe_default = steps.file(root_file(
            "aoe-default",
            "/etc/default/cloudctl-aoe",
            templates.render("storage-init/aoe.default", &aoe)?,
            0o644,
            None,
            false,
        )?)?;
        let aoe_init = steps.file(root_file(
            "aoe-init",
            "/etc/init.d/cloudctl-aoe",
            templates.render("storage-init/aoe.init", &json!({}))?,
            0o755,
            Some(&["sh", "-n", "{}"]),
            false,
        )?)?;
        steps.push(command(
            &["update-rc.d", "cloudctl-aoe", "defaults"],
            When::Unless(strings(&["sh", "-c", "ls /etc/rc2.d | grep -q cloudctl-aoe"])),
        ));
        steps.push(on_change(
            &["service", "cloudctl-aoe", "restart"],
            &[&aoe_default, &aoe_init],
        ));
        steps.push(command(
            &["service", "cloudctl-aoe", "start"],
            When::Unless(strings(&["service", "cloudctl-aoe", "status"])),
        ));
        hosts.push(HostPlan {
            host,
            exclusive: true,
            steps: steps.build()?,
        });
    }
    Ok(Plan {
        title: "storage init".into(),
        confirm: true,
        redact: vec![secret.to_string()],
        hosts,
    })
}

/// What is wrong with one storage node, from `storage status`'s probe fields (empty: healthy).
/// Pure.
pub fn status_problems(row: &BTreeMap<String, String>) -> Vec<String> {
    let get = |k: &str| row.get(k).map(String::as_str).unwrap_or("unknown");
    let mut problems = Vec::new();
    if !get("md").starts_with("clean") && !get("md").starts_with("active") {
        problems.push(format!("md array is {}", get("md")));
    }
    if get("drbd_cstate") != "Connected" {
        problems.push(format!("DRBD is {} (not connected to its peer)", get("drbd_cstate")));
    }
    if get("drbd_dstate") != "UpToDate/UpToDate" {
        let sync = get("drbd_sync");
        let progress = if sync.is_empty() || sync == "unknown" {
            String::new()
        } else {
            format!(", resync {sync} done")
        };
        problems.push(format!("DRBD disks are {}{progress}", get("drbd_dstate")));
    }
    if get("drbd_role") != "Primary/Primary" {
        problems.push(format!("DRBD roles are {} (not both primary)", get("drbd_role")));
    }
    if get("aoe") != "exporting" {
        problems.push("the AoE export (vblade) is not running".into());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_names_what_is_degraded() {
        let row = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let healthy = row(&[
            ("md", "clean"),
            ("drbd_cstate", "Connected"),
            ("drbd_dstate", "UpToDate/UpToDate"),
            ("drbd_role", "Primary/Primary"),
            ("aoe", "exporting"),
        ]);
        assert!(status_problems(&healthy).is_empty());
        let mut lonely = healthy.clone();
        lonely.insert("drbd_cstate".into(), "WFConnection".into());
        lonely.insert("drbd_dstate".into(), "UpToDate/Outdated".into());
        lonely.insert("drbd_role".into(), "Primary/Unknown".into());
        let p = status_problems(&lonely);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(p[0].contains("WFConnection"), "{p:?}");
        let mut syncing = healthy;
        syncing.insert("drbd_dstate".into(), "Inconsistent/UpToDate".into());
        syncing.insert("drbd_sync".into(), "37.5%".into());
        assert_eq!(
            status_problems(&syncing),
            ["DRBD disks are Inconsistent/UpToDate, resync 37.5% done"]
        );
    }
}
