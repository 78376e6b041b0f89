//! Which network a lab takes when `lab up` is given no `--subnet` (pure): the first /24 of
//! 10.201.0.0/16 that overlaps nothing this machine already uses — an interface's network, a
//! route, another lab — read from `ip` output and the labs' state files by the caller.

use crate::types::Cidr;
use std::net::Ipv4Addr;

/// The /24s a lab may pick, in order: 10.201.0.0/24 (the old fixed default) first, so a machine
/// with no other lab gets the same network as before.
pub fn candidates() -> impl Iterator<Item = Cidr> {
    (0..=255u8).map(|n| format!("10.201.{n}.0/24").parse().expect("a /24 of 10.201.0.0/16"))
}

/// Whether two networks share an address (one holds the other's network address).
pub fn overlap(a: &Cidr, b: &Cidr) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

/// The first candidate that overlaps none of `in_use`, or None when all 256 are taken.
pub fn choose(in_use: &[Cidr]) -> Option<Cidr> {
    candidates().find(|c| !in_use.iter().any(|u| overlap(c, u)))
}

/// The network `addr/prefix` lies in (an interface address has host bits set, `10.0.2.15/24`);
/// a bare address is its own /32.
fn network_of(word: &str) -> Option<Cidr> {
    let (ip, prefix) = word.split_once('/').unwrap_or((word, "32"));
    let ip: Ipv4Addr = ip.parse().ok()?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32)?;
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    format!("{}/{prefix}", Ipv4Addr::from(u32::from(ip) & mask))
        .parse()
        .ok()
}

/// Route types `ip route` writes before the destination.
const ROUTE_TYPES: [&str; 9] = [
    "unicast",
    "local",
    "broadcast",
    "multicast",
    "throw",
    "unreachable",
    "prohibit",
    "blackhole",
    "nat",
];

/// The destination of one `ip -4 route show` line; `default` is no network a lab could collide
/// with, so it gives None.
pub fn route_network(line: &str) -> Option<Cidr> {
    let mut words = line.split_whitespace();
    let first = words.next()?;
    let dest = if ROUTE_TYPES.contains(&first) {
        words.next()?
    } else {
        first
    };
    network_of(dest)
}

/// The networks in `ip -4 route show` output.
pub fn from_routes(text: &str) -> Vec<Cidr> {
    text.lines().filter_map(route_network).collect()
}

/// The interface networks in `ip -4 -o addr show` output (the word after `inet`).
pub fn from_addrs(text: &str) -> Vec<Cidr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet")?;
            words.next()
        })
        .filter_map(network_of)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn a_machine_using_none_of_them_gets_the_old_default() {
        assert_eq!(
            choose(&nets(&["10.0.2.0/24", "192.168.1.0/24", "127.0.0.0/8"]))
                .unwrap()
                .to_string(),
            "10.201.0.0/24"
        );
    }

    #[test]
    fn the_first_24_that_overlaps_nothing_in_use_is_chosen() {
        let in_use = nets(&["10.201.0.0/24", "10.201.1.0/24", "10.201.2.7/32", "10.201.4.0/24"]);
        assert_eq!(choose(&in_use).unwrap().to_string(), "10.201.3.0/24");
    }

    #[test]
    fn a_wider_network_in_use_takes_every_24_inside_it() {
        let in_use = nets(&["10.201.0.0/23", "10.201.2.0/24", "10.201.4.0/22"]);
        assert_eq!(choose(&in_use).unwrap().to_string(), "10.201.3.0/24");
        assert_eq!(
            choose(&nets(&["10.0.0.0/8"])),
            None,
            "10.0.0.0/8 covers every candidate"
        );
        assert_eq!(choose(&nets(&["10.201.0.0/16"])), None);
    }

    #[test]
    fn ip_output_gives_the_networks_in_use() {
        let routes = "default via 10.0.2.2 dev eth0 proto dhcp\n\
                      10.0.2.0/24 dev eth0 proto kernel scope link src 10.0.2.15\n\
                      10.201.0.0/24 dev cllabbr proto kernel scope link src 10.201.0.1\n\
                      10.201.1.9 via 10.0.2.2 dev eth0\n\
                      unreachable 10.201.2.0/24\n";
        assert_eq!(
            from_routes(routes),
            nets(&["10.0.2.0/24", "10.201.0.0/24", "10.201.1.9/32", "10.201.2.0/24"])
        );
        let addrs = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
                     2: eth0    inet 10.201.5.20/16 brd 10.201.255.255 scope global eth0\n";
        assert_eq!(from_addrs(addrs), nets(&["127.0.0.0/8", "10.201.0.0/16"]));
        let mut in_use = from_routes(routes);
        in_use.extend(from_addrs(
            "2: eth0    inet 10.201.1.20/24 brd 10.201.1.255 scope global eth0\n",
        ));
        assert_eq!(choose(&in_use).unwrap().to_string(), "10.201.3.0/24");
    }
}
