//! The web nodes' shared filesystem for `lamp deploy`: DRBD primary/primary + OCFS2 on real hosts
//! (metadata and mkfs exactly once, refused on a disk holding data), or a directory that is
//! already shared, bind-mounted (the lab). Both end mounted at `mount` and listed in fstab. Pure.

use super::{command, config, dir, file, sh, strings, Facts, FileSpec, WebFacts};
use crate::error::Error;
use crate::inventory::lamp::{DrbdSettings, LampSection, Storage};
use crate::inventory::Inventory;
use crate::plan::steps::on_change;
use crate::plan::wait::{Reading, Stage, WaitStep};
use crate::plan::Steps;
use crate::plan::{CommandStep, Step, When};
use crate::shell::Script;
use crate::templates::Templates;
use crate::types::Name;
use serde_json::json;

/// iputils-ping: DRBD's fence-peer handler asks with it whether the peer is gone.
pub const DRBD_PACKAGES: [&str; 3] = ["drbd-utils", "ocfs2-tools", "iputils-ping"];
pub const OCFS2_CLUSTER_CONF: &str = "/etc/ocfs2/cluster.conf";
/// DRBD's fence-peer handler on the web nodes (templates/lamp-deploy/fence-peer.hbs).
pub const FENCE_PEER: &str = "/usr/local/sbin/cloudctl-lamp-fence-peer";
/// DRBD's split-brain handler on the web nodes (templates/lamp-deploy/split-brain.hbs).
pub const SPLIT_BRAIN: &str = "/usr/local/sbin/cloudctl-lamp-split-brain";

/// Written by the split-brain handler; `lamp status` names the split brain while it is there and
/// the resource is not connected.
pub fn split_brain_marker(resource: &str) -> String {
    format!("/var/lib/cloudctl/lamp-split-brain-{resource}")
}

/// scripts/lamp/fstab-ensure.sh (its arguments and what it does are described there).
const FSTAB_ENSURE: &str = include_str!("../../../scripts/lamp/fstab-ensure.sh");

/// scripts/lamp/drbd-create-md.sh (its arguments and what it does are described there).
const CREATE_MD: &str = include_str!("../../../scripts/lamp/drbd-create-md.sh");

/// scripts/lamp/mkfs-ocfs2.sh (its arguments and what it does are described there).
pub const MKFS_OCFS2: &str = include_str!("../../../scripts/lamp/mkfs-ocfs2.sh");

pub fn packages(lamp: &LampSection) -> Vec<&'static str> {
    match lamp.storage {
        Storage::DrbdOcfs2 => {
            let md = lamp.drbd.as_ref().is_some_and(|d| d.get_ref().md.is_some());
            DRBD_PACKAGES.iter().copied().chain(md.then_some("mdadm")).collect()
        }
        Storage::Bind => vec![],
    }
}

/// The web nodes' part of the read-only probe.
pub fn facts_script(lamp: &LampSection) -> String {
    match (&lamp.storage, &lamp.drbd, &lamp.bind_source) {
        (Storage::DrbdOcfs2, Some(drbd), _) => {
            let disk = drbd.get_ref().disk.as_str();
            let mut script = Script::new();
            script
                .text("echo \"hostname $(uname -n)\"\n")
                .text(crate::plan::storage::DRBD_VERSION_PROBE)
                .call(
                    "if [ -e",
                    &[disk],
                    " ]; then echo disk; wipefs -n -O TYPE --noheadings ",
                )
                .word(disk)
                .text(" 2>/dev/null | sed 's/^/signature /'; fi\n");
            if let Some(md) = &drbd.get_ref().md {
                script.call("mdadm --detail", &[disk], " >/dev/null 2>&1 && echo md-active\n");
                for m in md.get_ref() {
                    // One line per member, its signatures after its path: `member /dev/vda linux_raid_member`.
                    script
                        .call("[ -e", &[m.as_str()], " ] && printf 'member %s %s\\n' ")
                        .word(m.as_str())
                        .text(" \"$(wipefs -n -O TYPE --noheadings ")
                        .word(m.as_str())
                        .text(" 2>/dev/null | tr '\\n' ' ')\"\n");
                }
            }
            script.build()
        }
        (Storage::Bind, _, Some(src)) => Script::new()
            .call("[ -d", &[src.get_ref().as_str()], " ] && echo source\n")
            .build(),
        _ => String::new(),
    }
}

pub fn parse_facts(output: &str) -> WebFacts {
    let mut f = WebFacts::default();
    for line in output.lines() {
        if line == "disk" {
            f.disk_signatures = Some(Vec::new());
        } else if line == "source" {
            f.bind_source = true;
        } else if line == "md-active" {
            f.md_active = true;
        } else if let Some(rest) = line.strip_prefix("member ") {
            let mut words = rest.split_whitespace();
            if let Some(path) = words.next() {
                f.md_members
                    .insert(path.to_string(), words.map(str::to_string).collect());
            }
        } else if let Some(v) = line.strip_prefix("drbd-version ") {
            f.drbd_version = Some(v.trim().to_string());
        } else if let Some(h) = line.strip_prefix("hostname ") {
            f.hostname = Some(h.trim().to_string());
        } else if let (Some(sig), Some(list)) = (line.strip_prefix("signature "), f.disk_signatures.as_mut()) {
            list.push(sig.trim().to_string());
        }
    }
    f
}

/// Waits (at most `seconds`, checking once a second) until `check` (with `arg` as `$1`)
/// succeeds on the host; `what` names it when the wait gives up.
fn wait(seconds: u32, check: &'static str, arg: &str, what: &str) -> Step {
    let probe = Script::new()
        .sh_c(check, &[arg])
        .text(" >/dev/null 2>&1 && echo done; exit 0")
        .build();
    Step::WaitUntil(WaitStep {
        what: what.to_string(),
        setup: None,
        probe,
        every_ms: 1000,
        timeout_secs: seconds.into(),
        reading: Reading::Stages {
            stages: vec![Stage::new("done", what)],
            done: Some("done".into()),
            then_ssh: None,
            tools: Vec::new(),
        },
        timed_out: None,
    })
}

/// Mounts the shared filesystem at `mount` from `fstab_line`, now and at boot.
fn mount_steps(mount: &str, fstab_line: &str) -> Vec<Step> {
    vec![
        command(&["mkdir", "-p", mount], When::Unless(strings(&["test", "-d", mount]))),
        Step::Command(CommandStep {
            argv: sh(FSTAB_ENSURE, &[mount, fstab_line]),
            when: When::Unless(sh("grep -qxF -- \"$1\" /etc/fstab", &[fstab_line])),
        }),
        command(&["mount", mount], When::Unless(strings(&["mountpoint", "-q", mount]))),
    ]
}

pub fn steps(
    inv: &Inventory,
    lamp: &LampSection,
    templates: &Templates,
    facts: &Facts,
    node: &Name,
    cloud: &str,
) -> Result<Vec<Step>, Error> {
    let mount = lamp.mount.get_ref().as_str();
    let found = facts.web.get(node.as_str()).cloned().unwrap_or_default();
    match (&lamp.storage, &lamp.drbd, &lamp.bind_source) {
        (Storage::Bind, _, Some(src)) => {
            let src = src.get_ref().as_str();
            if !found.bind_source {
                return Err(Error::Usage(format!(
                    "[lamp] bind_source {src} is not a directory on web node {node}; storage = \"bind\" serves a directory that is already shared between the web nodes (mount it there first)"
                )));
            }
            Ok(mount_steps(mount, &format!("{src} {mount} none bind 0 0")))
        }
        (Storage::DrbdOcfs2, Some(drbd), _) => drbd_steps(inv, lamp, drbd.get_ref(), templates, &found, node, cloud),
        _ => Err(Error::Usage("[lamp] storage settings are incomplete".into())),
    }
}

fn drbd_steps(
    inv: &Inventory,
    lamp: &LampSection,
    drbd: &DrbdSettings,
    templates: &Templates,
    found: &WebFacts,
    node: &Name,
    cloud: &str,
) -> Result<Vec<Step>, Error> {
    let (res, disk, device) = (
        drbd.resource.as_str(),
        drbd.disk.as_str(),
        drbd.device.get_ref().as_str(),
    );
    let mount = lamp.mount.get_ref().as_str();
    let web = lamp.web.get_ref();
    let first = node == &web[0];
    if let Some(h) = found.hostname.as_deref().filter(|h| *h != node.as_str()) {
        return Err(Error::Usage(format!(
            "web node {node} calls itself \"{h}\" (uname -n); DRBD and o2cb find a node's section by its host name, so name the [[node]] \"{h}\" or change the host name"
        )));
    }
    let md = match &drbd.md {
        Some(members) => Some(md_step(inv, disk, members.get_ref(), found, node)?),
        None => None,
    };
    let fresh = match (&found.disk_signatures, &md) {
        // The array is made (or assembled) first: fresh when its members were blank.
        (None, Some((_, blank))) => *blank,
        (None, None) => {
            return Err(Error::Usage(format!(
                "[lamp.drbd] disk {disk} does not exist on web node {node}; fix the path"
            )))
        }
        (Some(sigs), _) if sigs.iter().any(|s| s == "drbd") => false,
        (Some(sigs), _) if !sigs.is_empty() => {
            return Err(Error::Usage(format!(
                "[lamp.drbd] disk {disk} on web node {node} holds data ({}) and no DRBD metadata; cloudctl will not put DRBD on it. If it is really unused, wipe it yourself (wipefs -a {disk}) and deploy again",
                sigs.join(", ")
            )))
        }
        (Some(_), _) => true,
    };
    let nodes: Vec<_> = web
        .iter()
        .enumerate()
        .map(|(i, w)| json!({ "name": w, "id": i, "address": drbd.address.get_ref()[w].to_string() }))
        .collect();
    let drbd84 = found.drbd_version.as_deref().is_some_and(|v| v.starts_with("8."));
    let peer = web.iter().find(|w| *w != node).expect("validation: two web nodes");
    let mut steps = Steps::new();
    // drbdadm reads the resource in the loaded module's syntax (8.4 or 9), also to validate it.
    steps.push(command(
        &["modprobe", "drbd"],
        When::Unless(strings(&["test", "-e", "/proc/drbd"])),
    ));
    steps.push(handler(
        "fence-peer",
        FENCE_PEER,
        templates.render(
            "lamp-deploy/fence-peer",
            &json!({ "cloud": cloud, "resource": res, "node": node, "peer": peer,
                     "peer_link": drbd.address.get_ref()[peer].to_string(), "peer_ip": super::ip(inv, peer).to_string(),
                     "witness": super::ip(inv, lamp.balancer.get_ref()).to_string() }),
        )?,
    )?);
    let marker = split_brain_marker(res);
    steps.push(handler(
        "split-brain",
        SPLIT_BRAIN,
        templates.render(
            "lamp-deploy/split-brain",
            &json!({ "cloud": cloud, "resource": res, "marker": marker }),
        )?,
    )?);
    let drbd_res = steps.file(config(
        "drbd-res",
        &format!("/etc/drbd.d/{res}.res"),
        templates.render(
            "lamp-deploy/drbd.res",
            &json!({ "cloud": cloud, "resource": res, "device": device, "disk": disk, "port": drbd.port, "nodes": nodes,
                     "drbd84": drbd84, "fence_peer": FENCE_PEER, "split_brain": SPLIT_BRAIN }),
        )?,
        Some(strings(&["drbdadm", "-c", "{}", "dump"])),
    )?)?;
    let cluster = lamp.ocfs2.cluster.get_ref().as_str();
    steps.push(dir("/etc/ocfs2", 0o755)?);
    let ocfs2_cluster = steps.file(config(
        "ocfs2-cluster",
        OCFS2_CLUSTER_CONF,
        templates.render(
            "lamp-deploy/cluster.conf",
            &json!({ "cluster": cluster, "count": web.len(), "port": lamp.ocfs2.port, "nodes": nodes }),
        )?,
        Some(sh(
            "o2cb --config-file=\"$1\" list-cluster \"$2\" 2>&1 | grep -qx 'cluster:'",
            &["{}", cluster],
        )),
    )?)?;
    let o2cb_default = steps.file(file(FileSpec {
        id: "o2cb-default",
        path: "/etc/default/o2cb",
        content: templates.render(
            "lamp-deploy/o2cb-default",
            &json!({ "cloud": cloud, "cluster": cluster }),
        )?,
        mode: 0o644,
        owner: None,
        validate: Some(strings(&["sh", "-n", "{}"])),
        secret: false,
    })?)?;
    steps.push(command(
        &["service", "o2cb", "start"],
        When::Unless(strings(&["service", "o2cb", "status"])),
    ));
    steps.push(on_change(
        &["service", "o2cb", "restart"],
        &[&ocfs2_cluster, &o2cb_default],
    ));
    if let Some((step, _)) = md {
        steps.push(step);
    }
    steps.push(Step::Command(CommandStep {
        argv: sh(CREATE_MD, &[res, disk]),
        when: When::Unless(sh("wipefs -n -O TYPE --noheadings \"$1\" | grep -qx drbd", &[disk])),
    }));
    steps.push(command(
        &["drbdadm", "up", res],
        When::Unless(strings(&["drbdadm", "status", res])),
    ));
    steps.push(on_change(&["drbdadm", "adjust", res], &[&drbd_res]));
    steps.push(wait(
        120,
        "drbdadm cstate \"$1\" | grep -qx Connected",
        res,
        "the DRBD peer to connect",
    ));
    // DRBD 9 prints "Primary", 8.4 "Primary/<the peer's role>".
    let is_primary = sh("drbdadm role \"$1\" | grep -q '^Primary'", &[res]);
    if first {
        if fresh {
            // Both disks were just given metadata and hold nothing: no initial sync needed.
            steps.push(Step::Command(CommandStep {
                argv: strings(&["drbdadm", "new-current-uuid", "--clear-bitmap", &format!("{res}/0")]),
                when: When::Unless(sh(
                    "! drbdadm dstate \"$1\" | grep -qx Inconsistent/Inconsistent",
                    &[res],
                )),
            }));
        }
        steps.push(Step::Command(CommandStep {
            argv: strings(&["drbdadm", "primary", res]),
            when: When::Unless(is_primary),
        }));
        // Exactly once, on the first web node only; MKFS_OCFS2 refuses a device holding data.
        steps.push(Step::Command(CommandStep {
            argv: sh(MKFS_OCFS2, &[device, cluster, res, &web.len().to_string()]),
            when: When::Unless(sh("blkid -p -o value -s TYPE \"$1\" | grep -qx ocfs2", &[device])),
        }));
    } else {
        steps.push(wait(
            600,
            "drbdadm dstate \"$1\" | grep -q ^UpToDate",
            res,
            "this node's DRBD disk to be UpToDate (initial sync); deploy again when it is",
        ));
        steps.push(Step::Command(CommandStep {
            argv: strings(&["drbdadm", "primary", res]),
            when: When::Unless(is_primary),
        }));
        steps.push(wait(
            300,
            "blkid -p -o value -s TYPE \"$1\" | grep -qx ocfs2",
            device,
            "the first web node to create the OCFS2 filesystem",
        ));
    }
    // A split brain resolved by hand (the resource connected again) is no longer reported.
    steps.push(Step::Command(CommandStep {
        argv: strings(&["rm", "-f", &marker]),
        when: When::Unless(sh(
            "! [ -e \"$2\" ] || ! drbdadm cstate \"$1\" | grep -qx Connected",
            &[res, &marker],
        )),
    }));
    steps.extend(mount_steps(
        mount,
        &format!("{device} {mount} ocfs2 _netdev,defaults 0 0"),
    ));
    steps.build()
}

/// One of DRBD's handler scripts (run by drbdadm as root), checked with `sh -n` before it is used.
fn handler(id: &'static str, path: &'static str, content: String) -> Result<Step, Error> {
    file(FileSpec {
        id,
        path,
        content,
        mode: 0o755,
        owner: None,
        validate: Some(strings(&["sh", "-n", "{}"])),
        secret: false,
    })
}

/// The seed's md under DRBD (`[lamp.drbd] md`): the RAID1 array `disk`, created from blank
/// members, assembled from members that carry it already (after a reboot), refused over members
/// holding anything else. Also says whether the members were blank (nothing to sync).
fn md_step(
    inv: &Inventory,
    disk: &str,
    members: &[crate::types::RemotePath],
    found: &WebFacts,
    node: &Name,
) -> Result<(Step, bool), Error> {
    let mut blank = true;
    for m in members {
        let Some(sigs) = found.md_members.get(m.as_str()) else {
            if found.md_active {
                continue; // a degraded array runs without it
            }
            return Err(Error::Usage(format!(
                "[lamp.drbd] md: disk {m} does not exist on web node {node}; fix the path"
            )));
        };
        // An array member may show what the array holds too (DRBD's metadata at its end).
        if !sigs.is_empty() && !sigs.iter().any(|s| s == "linux_raid_member") {
            return Err(Error::Usage(format!(
                "[lamp.drbd] md: disk {m} on web node {node} holds data ({}) and is no md member; cloudctl will not put md on it. If it is really unused, wipe it yourself (wipefs -a {m}) and deploy again",
                sigs.join(", ")
            )));
        }
        blank &= sigs.is_empty();
    }
    let uuid = crate::plan::storage::md_uuid(inv, node.as_str(), disk);
    let count = members.len().to_string();
    let mut args = vec![disk, uuid.as_str()];
    let argv = if blank {
        args.extend(["1", count.as_str()]);
        args.extend(members.iter().map(|m| m.as_str()));
        sh(crate::plan::storage::MD_CREATE, &args)
    } else {
        args.extend(members.iter().map(|m| m.as_str()));
        sh(
            "md=$1 uuid=$2; shift 2; exec mdadm --assemble --run \"$md\" --uuid \"$uuid\" \"$@\"",
            &args,
        )
    };
    let when = When::Unless(strings(&["mdadm", "--detail", disk]));
    Ok((Step::Command(CommandStep { argv, when }), blank))
}
