//! The ConfigNode pair of `[confignode]` (`nodes = [..]`): two hosts converged to the same
//! state, sharing the DHCP leases (dhcpd failover) and a floating next-server address (VRRP).
//! Typed on parsing, checked against the network and the nodes. Pure.

use super::{ConfigNodeSection, Inventory, InventoryError, GROUP_NAMES};
use crate::types::{Address, Name};
use serde::Deserialize;
use std::net::Ipv4Addr;
use std::ops::Range;

/// One ConfigNode of the pair.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    pub name: Name,
    /// Its own address on the network: the dhcpd failover and VRRP peers talk over it.
    pub ip: Ipv4Addr,
    /// Where cloudctl connects, when not `ip` (host or host:port).
    pub address: Option<Address>,
}

impl Member {
    /// (host, port) cloudctl connects to.
    pub fn endpoint(&self, default_port: u16) -> (String, u16) {
        match &self.address {
            Some(a) => (a.host.clone(), a.port.unwrap_or(default_port)),
            None => (self.ip.to_string(), default_port),
        }
    }
}

/// The VRRP router id when `[confignode] vrrp_id` is not set; only matters when another VRRP
/// group shares the network (then each needs its own).
pub const DEFAULT_VRRP_ID: u8 = 51;

impl ConfigNodeSection {
    /// The two ConfigNodes, primary first; empty for a single ConfigNode.
    pub fn members(&self) -> &[Member] {
        self.nodes.as_ref().map(|n| n.get_ref().as_slice()).unwrap_or_default()
    }

    pub fn is_pair(&self) -> bool {
        !self.members().is_empty()
    }

    /// The floating address of a pair (its `address`, checked to be an IPv4 address).
    pub fn floating(&self) -> Option<Ipv4Addr> {
        self.is_pair().then(|| self.address.host.parse().ok()).flatten()
    }
}

pub fn validate(
    inv: &Inventory,
    cn: &ConfigNodeSection,
    text: &str,
    err: &dyn Fn(Range<usize>, String) -> InventoryError,
) -> Result<(), InventoryError> {
    let Some(nodes) = &cn.nodes else { return Ok(()) };
    let span = nodes.span();
    let members = nodes.get_ref();
    let field = |key: &str| super::field_span(text, "confignode", key);
    if members.len() != 2 || members[0].name == members[1].name || members[0].ip == members[1].ip {
        return Err(err(
            span,
            "[confignode] nodes: name exactly two ConfigNodes with different names and ips, e.g. nodes = [{ name = \"cn1\", ip = \"10.0.0.3\" }, { name = \"cn2\", ip = \"10.0.0.4\" }] (the first is the DHCP failover primary)".into(),
        ));
    }
    let Some(net) = &inv.network else {
        return Err(err(
            span,
            "[confignode] nodes needs a [network] section: the pair shares its subnet".into(),
        ));
    };
    let floating: Ipv4Addr = match (cn.address.host.parse(), cn.address.port) {
        (Ok(ip), None) if net.subnet.is_host_address(ip) => ip,
        _ => {
            return Err(err(
                field("address"),
                format!(
                    "[confignode] address \"{}\" must be the pair's floating IPv4 address inside subnet {} (no port): the ConfigNode that is up holds it and serves TFTP on it",
                    cn.address, net.subnet
                ),
            ))
        }
    };
    if cn.next_server.is_some_and(|n| n != floating) {
        return Err(err(
            field("next_server"),
            format!("[confignode] next_server must be the floating address {floating} with a pair (or left out): nodes must boot from whichever ConfigNode is up"),
        ));
    }
    let in_range = |ip: Ipv4Addr| net.dynamic_range.as_ref().is_some_and(|r| r.get_ref().contains(ip));
    if in_range(floating) {
        return Err(err(
            field("address"),
            format!("[confignode] address {floating} is inside the DHCP dynamic_range; give the floating address one outside it"),
        ));
    }
    for m in members {
        let name = &m.name;
        if GROUP_NAMES.contains(&name.as_str()) || inv.node.iter().any(|n| n.name.get_ref() == name) {
            return Err(err(
                span.clone(),
                format!("[confignode] nodes: name \"{name}\" is already a group or a [[node]] name; choose another"),
            ));
        }
        if !net.subnet.is_host_address(m.ip) || m.ip == floating || in_range(m.ip) {
            return Err(err(
                span.clone(),
                format!(
                    "[confignode] nodes: {name}'s ip {} must be a host address of subnet {}, outside the dynamic_range and not the floating address {floating}",
                    m.ip, net.subnet
                ),
            ));
        }
    }
    if cn.vrrp_id == Some(0) {
        return Err(err(
            field("vrrp_id"),
            "[confignode] vrrp_id must be 1-255 (the VRRP router id)".into(),
        ));
    }
    // A [[node]] with a member's ip is refused by the nodes' own check (the members are among
    // the network's reserved addresses).
    Ok(())
}
