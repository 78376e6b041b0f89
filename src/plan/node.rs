//! `node add` requests checked against the inventory: conflicts named, addresses chosen, CSV
//! read. Pure.

use crate::inventory::{Inventory, Node, Role};
use crate::inventory_file::NewNode;
use crate::types::{Mac, Name};
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

/// One node to add, typed.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRequest {
    pub name: Name,
    pub mac: Mac,
    pub ip: Option<Ipv4Addr>,
    pub role: Role,
    pub profile: Option<Name>,
}

/// Parses typed fields (shared by the command line and CSV rows).
pub fn request(
    name: &str,
    mac: &str,
    ip: Option<&str>,
    role: Option<&str>,
    profile: Option<&str>,
) -> Result<NodeRequest, String> {
    let ip = match ip.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => Some(
            s.parse::<Ipv4Addr>()
                .map_err(|_| format!("invalid IP {s:?}: write an IPv4 address like 10.0.0.31"))?,
        ),
        None => None,
    };
    let role = match role.map(str::trim).filter(|s| !s.is_empty()).unwrap_or("hnode") {
        "hnode" => Role::Hnode,
        "snode" => Role::Snode,
        other => return Err(format!("unknown role {other:?}: use hnode or snode")),
    };
    let profile = profile
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse::<Name>)
        .transpose()?;
    Ok(NodeRequest {
        name: name.trim().parse()?,
        mac: mac.trim().parse()?,
        ip,
        role,
        profile,
    })
}

/// Reads `name,mac,ip,role[,profile]` rows; `ip` and `role` may be empty. A header row and
/// `#` comments are skipped. Errors name the file and line.
pub fn parse_csv(file: &str, text: &str) -> Result<Vec<NodeRequest>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || (i == 0 && line.starts_with("name,")) {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        if !(4..=5).contains(&f.len()) {
            return Err(format!(
                "{file}:{}: expected name,mac,ip,role[,profile], found {} fields: {line}",
                i + 1,
                f.len()
            ));
        }
        out.push(
            request(f[0], f[1], Some(f[2]), Some(f[3]), f.get(4).copied())
                .map_err(|e| format!("{file}:{}: {e}", i + 1))?,
        );
    }
    if out.is_empty() {
        return Err(format!(
            "{file}: no nodes in it (expected lines of name,mac,ip,role[,profile])"
        ));
    }
    Ok(out)
}

/// Checks requests against the inventory and each other; returns the nodes to append (a request
/// identical to an existing node adds nothing). Refusals name the node that has the value.
/// Lookups are indexed once, so a rack of R rows against N nodes costs O(N + R), not O(N·R).
pub fn resolve(inv: &Inventory, requests: &[NodeRequest]) -> Result<Vec<NewNode>, String> {
    let net = inv
        .network
        .as_ref()
        .ok_or("the inventory has no [network] section; node add needs its subnet")?;
    let by_name: HashMap<&Name, &Node> = inv.node.iter().map(|n| (n.name.get_ref(), n)).collect();
    let by_mac: HashMap<Mac, &Node> = inv
        .node
        .iter()
        .filter_map(|n| Some((*n.mac.as_ref()?.get_ref(), n)))
        .collect();
    let by_ip: HashMap<Ipv4Addr, &Node> = inv
        .node
        .iter()
        .filter_map(|n| Some((*n.ip.as_ref()?.get_ref(), n)))
        .collect();
    let mut taken_ips: BTreeSet<Ipv4Addr> = reserved_ips(inv);
    let mut new: Vec<NewNode> = Vec::new();
    // What this request already gives: name or MAC → its node's name; IP → its node's name.
    let mut given: HashMap<String, String> = HashMap::new();
    let mut given_ips: HashMap<Ipv4Addr, String> = HashMap::new();
    // Free addresses are searched upwards from the last one handed out.
    let mut cursor = 1;
    for r in requests {
        let profile = r
            .profile
            .clone()
            .unwrap_or_else(|| r.role.as_str().parse().expect("roles are names"));
        if !inv.profiles.contains_key(&profile) {
            let known: Vec<String> = inv.profiles.keys().map(|k| k.to_string()).collect();
            return Err(format!(
                "node {}: unknown profile \"{profile}\" (known: {}); add [profiles.{profile}] to the inventory or pass --profile",
                r.name,
                if known.is_empty() { "none".into() } else { known.join(", ") }
            ));
        }
        if let Some(existing) = by_name.get(&r.name) {
            let same = existing.mac.as_ref().map(|m| *m.get_ref()) == Some(r.mac)
                && (r.ip.is_none() || existing.ip.as_ref().map(|i| *i.get_ref()) == r.ip)
                && existing.role == r.role
                && existing.profile == r.profile;
            if same {
                continue;
            }
            return Err(format!(
                "node name {} is already in the inventory with other values; remove it first (cloudctl node remove {})",
                r.name, r.name
            ));
        }
        if let Some(other) = by_mac.get(&r.mac) {
            return Err(format!(
                "MAC {} already belongs to node {}",
                r.mac,
                other.name.get_ref()
            ));
        }
        for key in [format!("name {}", r.name), format!("mac {}", r.mac)] {
            if let Some(other) = given.get(&key) {
                return Err(format!(
                    "node {other} is given twice (name or MAC {} repeats in this request)",
                    r.mac
                ));
            }
        }
        let ip = match r.ip {
            Some(ip) => {
                if let Some(other) = by_ip.get(&ip) {
                    return Err(format!("IP {ip} already belongs to node {}", other.name.get_ref()));
                }
                if let Some(other) = given_ips.get(&ip) {
                    return Err(format!(
                        "IP {ip} is given twice in this request (nodes {other} and {})",
                        r.name
                    ));
                }
                if !net.subnet.is_host_address(ip) {
                    return Err(format!(
                        "IP {ip} is not a host address of subnet {}; pick one inside it",
                        net.subnet
                    ));
                }
                if let Some(range) = net
                    .dynamic_range
                    .as_ref()
                    .map(|r| *r.get_ref())
                    .filter(|r| r.contains(ip))
                {
                    return Err(format!(
                        "IP {ip} is inside the DHCP dynamic_range {range}; a fixed address must lie outside it"
                    ));
                }
                if taken_ips.contains(&ip) {
                    return Err(format!(
                        "IP {ip} is used by the network itself (gateway, DNS or ConfigNode) or by an instance"
                    ));
                }
                ip
            }
            None => {
                let ip = free_from(inv, &taken_ips, cursor)
                    .ok_or_else(|| format!("no free address left in {} outside the dynamic range", net.subnet))?;
                cursor = u32::from(ip) - u32::from(net.subnet.network());
                ip
            }
        };
        taken_ips.insert(ip);
        given.insert(format!("name {}", r.name), r.name.to_string());
        given.insert(format!("mac {}", r.mac), r.name.to_string());
        given_ips.insert(ip, r.name.to_string());
        new.push(NewNode {
            name: r.name.to_string(),
            mac: r.mac.to_string(),
            ip: ip.to_string(),
            role: r.role.as_str().into(),
            profile: r.profile.as_ref().map(|p| p.to_string()),
        });
    }
    Ok(new)
}

/// Addresses no node or guest may take: gateway, DNS, the ConfigNode, existing nodes and guests.
pub fn reserved_ips(inv: &Inventory) -> BTreeSet<Ipv4Addr> {
    let mut ips: BTreeSet<Ipv4Addr> = inv
        .node
        .iter()
        .filter_map(|n| n.ip.as_ref().map(|i| *i.get_ref()))
        .collect();
    ips.extend(inv.instance.iter().map(|i| *i.ip.get_ref()));
    if let Some(net) = &inv.network {
        ips.extend(net.gateway);
        ips.extend(net.dns.iter().copied());
    }
    if let Some(cn) = &inv.confignode {
        ips.extend(cn.next_server);
        ips.extend(cn.address.host.parse::<Ipv4Addr>().ok());
    }
    ips
}

/// The lowest host address of the subnet that is free and outside the dynamic range.
pub fn next_free(inv: &Inventory, taken: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
    free_from(inv, taken, 1)
}

/// Like `next_free`, from the subnet's `start`-th address up.
fn free_from(inv: &Inventory, taken: &BTreeSet<Ipv4Addr>, start: u32) -> Option<Ipv4Addr> {
    let net = inv.network.as_ref()?;
    let range = net.dynamic_range.as_ref().map(|r| *r.get_ref());
    (start..)
        .map_while(|n| net.subnet.nth(n))
        .filter(|ip| net.subnet.is_host_address(*ip))
        .find(|ip| !taken.contains(ip) && !range.is_some_and(|r| r.contains(*ip)))
}
