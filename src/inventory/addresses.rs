//! Who holds an address of the cloud's network, and whether a fixed address may be given to a
//! node or guest: the one reserved-address check inventory validation, `node add` and
//! `instance create` share. Pure.

use super::Inventory;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// Addresses the network itself uses, with what uses them: the gateway, DNS servers, the ConfigNode.
pub fn network_holders(inv: &Inventory) -> Vec<(Ipv4Addr, &'static str)> {
    let mut out = Vec::new();
    if let Some(net) = &inv.network {
        out.extend(net.gateway.map(|g| (g, "the gateway ([network] gateway)")));
        out.extend(net.dns.iter().map(|d| (*d, "a DNS server ([network] dns)")));
    }
    if let Some(cn) = &inv.confignode {
        if let Ok(ip) = cn.address.host.parse::<Ipv4Addr>() {
            out.push((ip, "the ConfigNode ([confignode] address)"));
        }
        out.extend(cn.next_server.map(|n| (n, "the ConfigNode ([confignode] next_server)")));
        out.extend(
            cn.members()
                .iter()
                .map(|m| (m.ip, "a ConfigNode of the pair ([confignode] nodes)")),
        );
    }
    out
}

/// What holds `ip`: the network itself, a node or a guest (named), or nothing.
pub fn holder(inv: &Inventory, ip: Ipv4Addr) -> Option<String> {
    if let Some((_, what)) = network_holders(inv).into_iter().find(|(a, _)| *a == ip) {
        return Some(what.to_string());
    }
    if let Some(n) = inv
        .node
        .iter()
        .find(|n| n.ip.as_ref().map(|i| *i.get_ref()) == Some(ip))
    {
        return Some(format!("node \"{}\"", n.name.get_ref()));
    }
    inv.instance
        .iter()
        .find(|i| *i.ip.get_ref() == ip)
        .map(|i| format!("instance \"{}\"", i.name.get_ref()))
}

/// Every address no new node or guest may take.
pub fn reserved(inv: &Inventory) -> BTreeSet<Ipv4Addr> {
    let mut ips: BTreeSet<Ipv4Addr> = network_holders(inv).into_iter().map(|(ip, _)| ip).collect();
    ips.extend(inv.node.iter().filter_map(|n| n.ip.as_ref().map(|i| *i.get_ref())));
    ips.extend(inv.instance.iter().map(|i| *i.ip.get_ref()));
    ips
}

/// Whether `ip` may be a fixed address: a host address of the subnet, outside the DHCP dynamic
/// range, and not one the network itself uses. (Nodes and guests holding it are checked by the
/// callers, which know whose address it may already be.)
pub fn check_fixed(inv: &Inventory, ip: Ipv4Addr) -> Result<(), String> {
    let Some(net) = &inv.network else { return Ok(()) };
    if !net.subnet.is_host_address(ip) {
        return Err(format!(
            "{ip} is not a host address of [network] subnet {}; pick one inside it",
            net.subnet
        ));
    }
    if let Some(range) = net.dynamic_range.as_ref().map(|r| *r.get_ref()) {
        if range.contains(ip) {
            return Err(format!(
                "{ip} is inside the DHCP dynamic_range {range}; a fixed address must lie outside it"
            ));
        }
    }
    if let Some((_, what)) = network_holders(inv).into_iter().find(|(a, _)| *a == ip) {
        return Err(format!("{ip} is {what}; give it an address of its own"));
    }
    Ok(())
}
