//! The `[storage]` inventory section: two storage nodes, their member disks, md, DRBD and the AoE
//! export, and which hardware nodes may attach. Typed on parsing, checked against `[[node]]`. Pure.

use super::{Inventory, InventoryError, Role};
use crate::types::{Interface, Name, RemotePath};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::ops::Range;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSection {
    /// The two storage nodes (DRBD primary/primary between them), in export-slot order.
    pub nodes: Spanned<Vec<Name>>,
    /// Member disks of the md array, the same paths on both storage nodes.
    pub disks: Spanned<Vec<RemotePath>>,
    /// md RAID level: 0, 1, 5, 6 or 10.
    #[serde(default = "default_level")]
    pub md_level: Spanned<u8>,
    #[serde(default = "default_md")]
    pub md_device: RemotePath,
    /// DRBD resource name.
    #[serde(default = "default_resource")]
    pub resource: Name,
    #[serde(default = "default_port")]
    pub drbd_port: u16,
    #[serde(default = "default_drbd")]
    pub drbd_device: RemotePath,
    /// Replication addresses per storage node (default: the node's `ip`).
    #[serde(default)]
    pub address: BTreeMap<Name, Ipv4Addr>,
    /// The storage network interface vblade exports on.
    #[serde(default = "default_interface")]
    pub interface: Interface,
    /// AoE shelf; storage node N exports slot N (0 and 1).
    #[serde(default = "default_shelf")]
    pub shelf: Spanned<u16>,
    /// Who may attach (by MAC): node names or groups; default all hardware nodes.
    #[serde(default = "default_clients")]
    pub clients: Spanned<Vec<String>>,
}

fn default_level() -> Spanned<u8> {
    Spanned::new(0..0, 1)
}
fn default_md() -> RemotePath {
    "/dev/md0".parse().expect("static")
}
fn default_resource() -> Name {
    "r0".parse().expect("static")
}
fn default_port() -> u16 {
    7789
}
fn default_drbd() -> RemotePath {
    "/dev/drbd0".parse().expect("static")
}
fn default_interface() -> Interface {
    "eth0".parse().expect("static")
}
fn default_shelf() -> Spanned<u16> {
    Spanned::new(0..0, 1)
}
fn default_clients() -> Spanned<Vec<String>> {
    Spanned::new(0..0, vec!["hnode".into()])
}

pub fn validate(
    inv: &Inventory,
    s: &Spanned<StorageSection>,
    err: &dyn Fn(Range<usize>, String) -> InventoryError,
) -> Result<(), InventoryError> {
    let span = s.span();
    let s = s.get_ref();
    let at = |r: Range<usize>| if r.is_empty() { span.clone() } else { r };
    let nodes = s.nodes.get_ref();
    if nodes.len() != 2 || nodes[0] == nodes[1] {
        return Err(err(
            s.nodes.span(),
            "[storage] nodes: name exactly two different storage nodes (DRBD mirrors one to the other)".into(),
        ));
    }
    for n in nodes {
        match inv.node.iter().find(|x| x.name.get_ref() == n) {
            None => {
                return Err(err(
                    s.nodes.span(),
                    format!("[storage] nodes: there is no [[node]] named \"{n}\""),
                ))
            }
            Some(x) if x.role != Role::Snode => {
                return Err(err(
                    s.nodes.span(),
                    format!(
                        "[storage] nodes: \"{n}\" has role \"{}\"; storage nodes have role = \"snode\"",
                        x.role.as_str()
                    ),
                ))
            }
            Some(x) if x.ip.is_none() && !s.address.contains_key(n) => {
                return Err(err(
                    s.nodes.span(),
                    format!("[storage] nodes: \"{n}\" has no `ip`; give it one or set [storage.address] {n} = \"…\""),
                ))
            }
            _ => {}
        }
    }
    if let Some(extra) = s.address.keys().find(|k| !nodes.contains(k)) {
        return Err(err(
            span.clone(),
            format!("[storage.address] {extra} is not one of [storage] nodes"),
        ));
    }
    let disks = s.disks.get_ref();
    let level = *s.md_level.get_ref();
    let min = match level {
        0 | 1 => 2,
        5 => 3,
        6 | 10 => 4,
        _ => {
            return Err(err(
                at(s.md_level.span()),
                format!("[storage] md_level = {level}: use 0, 1, 5, 6 or 10"),
            ))
        }
    };
    if disks.len() < min {
        return Err(err(
            at(s.disks.span()),
            format!(
                "[storage] disks: RAID {level} needs at least {min} member disks, found {}",
                disks.len()
            ),
        ));
    }
    if let Some(d) = disks.iter().find(|d| !d.as_str().starts_with("/dev/")) {
        return Err(err(
            at(s.disks.span()),
            format!("[storage] disks: {d} is not a device under /dev"),
        ));
    }
    for (i, d) in disks.iter().enumerate() {
        if disks[..i].contains(d) {
            return Err(err(at(s.disks.span()), format!("[storage] disks: {d} is listed twice")));
        }
    }
    if s.drbd_port == 0 {
        return Err(err(span.clone(), "[storage] drbd_port must be 1-65535".into()));
    }
    if *s.shelf.get_ref() > 65534 {
        return Err(err(
            at(s.shelf.span()),
            "[storage] shelf: AoE shelves are 0-65534".into(),
        ));
    }
    if let Err(e) = inv.select(s.clients.get_ref()) {
        return Err(err(at(s.clients.span()), format!("[storage] clients: {e}")));
    }
    Ok(())
}
