//! `node add` requests checked against the inventory: conflicts named, addresses chosen, CSV
//! read. Pure.

use crate::inventory::{addresses, Inventory, Node, Role};
use crate::inventory_file::NewNode;
use crate::types::{shown, Mac, Name};
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
                .map_err(|_| format!("invalid IP {}: write an IPv4 address like 10.0.0.31", shown(s)))?,
        ),
        None => None,
    };
    let role: Role = role
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("hnode")
        .parse()?;
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

/// Reads `name,mac,ip,role[,profile]` rows as CSV (quoted fields, a UTF-8 byte-order mark and
/// CRLF line ends as spreadsheets write them); `ip` and `role` may be empty. A header row and `#`
/// comments are skipped. Errors name the file, line and field, and never echo a whole line
/// (the file could be anything, `/etc/shadow` included).
pub fn parse_csv(file: &str, text: &str) -> Result<Vec<NodeRequest>, String> {
    const HEADER: [&str; 5] = ["name", "mac", "ip", "role", "profile"];
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(String::new(), |p| format!(":{}", p.line()));
            format!("{file}{line}: not readable as CSV ({})", csv_reason(&e))
        })?;
        let line = record.position().map_or(i as u64 + 1, |p| p.line());
        let fields: Vec<&str> = record.iter().collect();
        if fields.iter().all(|f| f.is_empty()) {
            continue;
        }
        if i == 0 && fields[0].eq_ignore_ascii_case("name") {
            let names: Vec<String> = fields.iter().map(|f| f.to_ascii_lowercase()).collect();
            if !(4..=5).contains(&names.len()) || names.iter().zip(HEADER).any(|(f, h)| f != h) {
                return Err(format!(
                    "{file}:{line}: the header row must be name,mac,ip,role or name,mac,ip,role,profile"
                ));
            }
            continue;
        }
        if !(4..=5).contains(&fields.len()) {
            return Err(format!(
                "{file}:{line}: expected name,mac,ip,role[,profile], found {} field{}",
                fields.len(),
                if fields.len() == 1 { "" } else { "s" }
            ));
        }
        out.push(
            request(
                fields[0],
                fields[1],
                Some(fields[2]),
                Some(fields[3]),
                fields.get(4).copied(),
            )
            .map_err(|e| format!("{file}:{line}: {e}"))?,
        );
    }
    if out.is_empty() {
        return Err(format!(
            "{file}: no nodes in it (expected lines of name,mac,ip,role[,profile])"
        ));
    }
    Ok(out)
}

/// Why the CSV reader gave up, without the data it was reading.
fn csv_reason(e: &csv::Error) -> &'static str {
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text",
        csv::ErrorKind::UnequalLengths { .. } => "rows of different lengths",
        csv::ErrorKind::Io(_) => "read error",
        _ => "malformed CSV",
    }
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
                "MAC {} already belongs to node \"{}\"",
                r.mac,
                other.name.get_ref()
            ));
        }
        if let Some(i) = inv.instance.iter().find(|i| *i.mac.get_ref() == r.mac) {
            return Err(format!(
                "MAC {} already belongs to instance \"{}\"",
                r.mac,
                i.name.get_ref()
            ));
        }
        if given.contains_key(&format!("name {}", r.name)) {
            return Err(format!("node {} is given twice in this request", r.name));
        }
        if let Some(other) = given.get(&format!("mac {}", r.mac)) {
            return Err(format!(
                "MAC {} is given to both {other} and {} in this request",
                r.mac, r.name
            ));
        }
        let ip = match r.ip {
            Some(ip) => {
                if let Some(other) = given_ips.get(&ip) {
                    return Err(format!(
                        "IP {ip} is given twice in this request (nodes {other} and {})",
                        r.name
                    ));
                }
                if let Some(holder) = by_ip
                    .get(&ip)
                    .map(|n| format!("node \"{}\"", n.name.get_ref()))
                    .or_else(|| addresses::holder(inv, ip))
                {
                    return Err(format!("IP {ip} already belongs to {holder}"));
                }
                addresses::check_fixed(inv, ip).map_err(|why| format!("IP {why}"))?;
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
    addresses::reserved(inv)
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
