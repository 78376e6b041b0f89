//! Guests on hardware nodes: what one guest is (resolved from the inventory and the request),
//! and the two hypervisor backends behind one interface (`Backend`). Pure.
//!
//! A guest's files live in `<store>/<name>/` on storage every hardware node mounts: its disk and,
//! for Xen, its xl config. What a running guest needs on its node (QEMU's pid file and monitor
//! socket, staged files) lives in `RUN_DIR` on that node only.

pub mod allocate;
pub mod create;
pub mod kvm;
pub mod migrate;
pub mod probe;
pub mod readiness;
pub mod remove;
pub mod root_source;
pub mod xen;

use super::Step;
use crate::error::Error;
use crate::inventory::instances::{Accel, InstanceRecord, InstancesSection};
use crate::inventory::{Host, Hypervisor, Inventory, Role};
use crate::types::{Interface, Mac, Name, Size};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::net::Ipv4Addr;

/// Per-node runtime state of guests (tmpfs on real nodes, private to each lab host).
pub const RUN_DIR: &str = "/run/cloudctl/instances";

/// One guest, with every value its backend needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Guest {
    pub name: Name,
    pub hypervisor: Hypervisor,
    pub memory: u32,
    pub vcpus: u8,
    pub disk_size: Size,
    pub ip: Ipv4Addr,
    pub mac: Mac,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub bridge: Interface,
    pub kernel: String,
    pub initrd: Option<String>,
    pub append: String,
    pub accel: Accel,
    /// `<store>/<name>`, on shared storage.
    pub dir: String,
}

impl Guest {
    pub fn disk(&self) -> String {
        format!("{}/disk.img", self.dir)
    }
    /// The guest's root device as its kernel sees it.
    pub fn root_device(&self) -> &'static str {
        match self.hypervisor {
            Hypervisor::Xen => "/dev/xvda",
            Hypervisor::Kvm => "/dev/vda",
        }
    }
    /// Runtime files on the node it runs on: `<RUN_DIR>/<name>.<what>`.
    pub fn run_file(&self, what: &str) -> String {
        format!("{RUN_DIR}/{}.{what}", self.name)
    }
    /// The host-side network interface: derived from the name, within Linux's 15 characters.
    pub fn tap(&self) -> String {
        let digest = Sha256::digest(self.name.as_str().as_bytes());
        format!("cc-{}", crate::digest::hex(&digest[..4]))
    }
    /// The full guest kernel command line.
    pub fn cmdline(&self) -> String {
        let console = match self.hypervisor {
            Hypervisor::Xen => "console=hvc0",
            Hypervisor::Kvm => "console=ttyS0",
        };
        let mut line = format!("root={} rw {console} net.ifnames=0", self.root_device());
        if !self.append.is_empty() {
            line.push(' ');
            line.push_str(&self.append);
        }
        line
    }
}

/// Everything `instance create` was asked for, after the CLI parsed it.
#[derive(Debug, Clone)]
pub struct GuestRequest {
    pub name: Name,
    pub memory: Option<u32>,
    pub vcpus: Option<u8>,
    pub disk: Option<Size>,
    pub ip: Ipv4Addr,
    pub mac: Mac,
}

/// The hypervisor a hardware node runs: its own setting, else the cloud's.
pub fn hypervisor_of(inv: &Inventory, hnode: &str) -> Result<Hypervisor, Error> {
    let node = inv
        .node
        .iter()
        .find(|n| n.name.get_ref().as_str() == hnode)
        .ok_or_else(|| Error::Usage(format!("there is no node named {hnode:?}")))?;
    if node.role != Role::Hnode {
        return Err(Error::Usage(format!(
            "{hnode} has role \"{}\"; guests run on hardware nodes (role = \"hnode\")",
            node.role.as_str()
        )));
    }
    Ok(super::hnode::hypervisor(inv, node))
}

/// A guest from its values, with the cloud's network and `[instances]` settings.
pub fn guest(inv: &Inventory, hnode: &str, req: &GuestRequest) -> Result<Guest, Error> {
    let s = inv.instances();
    let net = inv.network.as_ref().ok_or_else(|| {
        Error::Usage("the inventory has no [network] section; guests take their subnet and gateway from it".into())
    })?;
    Ok(build(&s, hypervisor_of(inv, hnode)?, net, req))
}

fn build(
    s: &InstancesSection,
    hypervisor: Hypervisor,
    net: &crate::inventory::NetworkSection,
    req: &GuestRequest,
) -> Guest {
    Guest {
        name: req.name.clone(),
        hypervisor,
        memory: req.memory.unwrap_or(s.memory),
        vcpus: req.vcpus.unwrap_or(s.vcpus),
        disk_size: req.disk.unwrap_or(s.disk),
        ip: req.ip,
        mac: req.mac,
        prefix: net.subnet.prefix(),
        gateway: net.gateway,
        dns: net.dns.clone(),
        bridge: s.bridge.clone(),
        kernel: s.kernel.to_string(),
        initrd: s.initrd.as_ref().map(|p| p.to_string()),
        append: s.append.to_string(),
        accel: s.accel,
        dir: format!("{}/{}", s.store, req.name),
    }
}

/// The guest an `[[instance]]` record describes (on the node it is recorded on).
pub fn recorded(inv: &Inventory, rec: &InstanceRecord) -> Result<Guest, Error> {
    let req = GuestRequest {
        name: rec.name.get_ref().clone(),
        memory: Some(rec.memory),
        vcpus: Some(rec.vcpus),
        disk: Some(rec.disk),
        ip: *rec.ip.get_ref(),
        mac: *rec.mac.get_ref(),
    };
    guest(inv, rec.hnode.get_ref().as_str(), &req)
}

/// The record of instance `name`, or an error listing the known ones.
pub fn record<'a>(inv: &'a Inventory, name: &str) -> Result<&'a InstanceRecord, Error> {
    inv.instance
        .iter()
        .find(|r| r.name.get_ref().as_str() == name)
        .ok_or_else(|| {
            let known: Vec<&str> = inv.instance.iter().map(|r| r.name.get_ref().as_str()).collect();
            Error::Usage(format!(
                "there is no instance named {name:?} in the inventory (known: {}); create one with `cloudctl instance create`",
                if known.is_empty() { "none".into() } else { known.join(", ") }
            ))
        })
}

/// The hardware nodes cloudctl can reach, in inventory order.
pub fn hnodes(inv: &Inventory) -> Vec<Host> {
    inv.hosts().into_iter().filter(|h| h.role == "hnode").collect()
}

/// What a backend does with a guest. Every method returns steps for the node named in its doc.
pub trait Backend {
    /// Files the backend keeps beside the disk (created once with the guest).
    fn config_steps(&self, g: &Guest, t: &crate::templates::Templates) -> Result<Vec<Step>, Error>;
    /// Start the guest on this node and check that it runs.
    fn start_steps(&self, g: &Guest) -> Vec<Step>;
    /// Shut the guest down on this node (ACPI or xl shutdown, then forced after `grace_secs`).
    fn stop_steps(&self, g: &Guest, grace_secs: u32) -> Vec<Step>;
}

pub fn backend(h: Hypervisor) -> &'static dyn Backend {
    match h {
        Hypervisor::Kvm => &kvm::Kvm,
        Hypervisor::Xen => &xen::Xen,
    }
}

/// A small `sh -c` program with positional arguments: the program is a constant, every value
/// arrives as its own quoted argument.
pub fn script(program: &str, args: &[&str], when: super::When) -> Step {
    Step::Command(super::CommandStep {
        argv: crate::shell::sh_c_argv(program, args),
        when,
    })
}

#[cfg(test)]
pub mod tests_support {
    use super::*;

    /// A kvm guest with the default `[instances]` settings on 10.0.0.0/24.
    pub fn guest(name: &str) -> Guest {
        let net: crate::inventory::NetworkSection = toml::from_str(
            "subnet = \"10.0.0.0/24\"\ngateway = \"10.0.0.1\"\ndns = [\"10.0.0.1\"]\ndynamic_range = \"10.0.0.100-10.0.0.199\"\ninterface = \"eth0\"\n",
        )
        .expect("network section");
        let req = GuestRequest {
            name: name.parse().expect("name"),
            memory: None,
            vcpus: None,
            disk: None,
            ip: "10.0.0.50".parse().expect("ip"),
            mac: "52:54:00:00:05:01".parse().expect("mac"),
        };
        build(&InstancesSection::default(), Hypervisor::Kvm, &net, &req)
    }
}
