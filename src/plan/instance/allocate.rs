//! What a new guest is given from the inventory: its name checked free, what `--hnode auto`
//! places, its address and its MAC.
//! Pure: the inventory and the request in, a value or the reason it is refused out.

use crate::error::Error;
use crate::inventory::Inventory;
use crate::plan::placement::Need;
use crate::types::{Mac, Name};
use sha2::{Digest, Sha256};
use std::net::Ipv4Addr;

/// Refuses a name the inventory already records (checked before any host is asked).
pub fn unrecorded(inv: &Inventory, name: &Name) -> Result<(), Error> {
    if inv.instance.iter().any(|r| r.name.get_ref() == name) {
        return Err(Error::Usage(format!(
            "instance {name} is already in the inventory; choose another name"
        )));
    }
    Ok(())
}

/// What `--hnode auto` places: the requested memory or the `[instances]` default, on the
/// cloud's hypervisor (per-node overrides are the placement rule's business).
pub fn need<'a>(inv: &Inventory, name: &'a Name, memory: Option<u32>) -> Need<'a> {
    Need {
        guest: name.as_str(),
        memory: memory.unwrap_or(inv.instances().memory),
        hypervisor: inv.cloud.hypervisor,
        leaving: None,
    }
}

/// The given address, checked; or the first free one outside the dynamic range.
pub fn address(inv: &Inventory, given: Option<&str>) -> Result<Ipv4Addr, Error> {
    let taken = crate::plan::node::reserved_ips(inv);
    let net = inv
        .network
        .as_ref()
        .ok_or_else(|| Error::Usage("the inventory has no [network] section".into()))?;
    let Some(given) = given else {
        return crate::plan::node::next_free(inv, &taken).ok_or_else(|| {
            Error::Usage(format!(
                "no free address left in {} outside the dynamic range",
                net.subnet
            ))
        });
    };
    let ip: Ipv4Addr = given
        .parse()
        .map_err(|_| Error::Usage(format!("--ip {} is not an IPv4 address", crate::types::shown(given))))?;
    if let Some(holder) = crate::inventory::addresses::holder(inv, ip) {
        return Err(Error::Usage(format!("--ip {ip} already belongs to {holder}")));
    }
    crate::inventory::addresses::check_fixed(inv, ip).map_err(|why| Error::Usage(format!("--ip {why}")))?;
    Ok(ip)
}

/// The given MAC, or one derived from the cloud and guest names: a re-created guest keeps its
/// MAC, so DHCP leases and switch tables stay valid.
pub fn mac(inv: &Inventory, name: &Name, given: Option<&str>) -> Result<Mac, Error> {
    let mac: Mac = match given {
        Some(m) => m.parse().map_err(|e| Error::Usage(format!("--mac: {e}")))?,
        None => {
            let d = Sha256::digest(format!("{}/{name}", inv.cloud.name).as_bytes());
            format!("52:54:00:{:02x}:{:02x}:{:02x}", d[0], d[1], d[2])
                .parse()
                .map_err(Error::Usage)?
        }
    };
    if let Some(n) = inv
        .node
        .iter()
        .find(|n| n.mac.as_ref().map(|m| *m.get_ref()) == Some(mac))
    {
        return Err(Error::Usage(format!(
            "MAC {mac} already belongs to node {}; pass another --mac",
            n.name.get_ref()
        )));
    }
    if let Some(i) = inv.instance.iter().find(|i| *i.mac.get_ref() == mac) {
        return Err(Error::Usage(format!(
            "MAC {mac} already belongs to instance {}; pass another --mac",
            i.name.get_ref()
        )));
    }
    Ok(mac)
}
