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

/// scripts/instance/debootstrap-cache.sh (its arguments and what it does are described there).
pub const CACHE: &str = include_str!("../../../scripts/instance/debootstrap-cache.sh");

/// scripts/instance/build-root.sh (its arguments and what it does are described there).
const BUILD: &str = include_str!("../../../scripts/instance/build-root.sh");

/// scripts/instance/create-rollback.sh (its arguments and what it does are described there).
pub const ROLLBACK: &str = include_str!("../../../scripts/instance/create-rollback.sh");

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
    let digest = crate::digest::hex(&Sha256::digest(key.as_bytes())[..4]);
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
