//! `doctor`'s read-only probe of one host as a `Fact`: its clock, and what its role is checked
//! for (a ConfigNode's DHCP and boot files, a hardware node's guests and keys, a storage node's
//! md and DRBD). Pure.

use super::doctor::{self, ConfigNodeFacts, HnodeFacts, CLOCK_PROBE};
use super::fact::Fact;
use super::instance::hypervisor_of;
use super::storage_health::{self, StorageHealth};
use crate::error::Error;
use crate::inventory::{Host, Inventory};

/// The probe of every host of `inv`, by its role.
pub struct Probe<'a> {
    pub inv: &'a Inventory,
    /// The file one-time migration keys go to (empty: the SSH user's own).
    pub authorized_keys: String,
}

/// What one host answered.
#[derive(Debug, Clone, PartialEq)]
pub struct HostFacts {
    /// The host's clock as (seconds, resolution) (see `doctor::parse_clock`).
    pub clock: Option<(f64, f64)>,
    pub role: RoleFacts,
}

/// The facts of the host's role.
#[derive(Debug, Clone, PartialEq)]
pub enum RoleFacts {
    ConfigNode(ConfigNodeFacts),
    Hnode(HnodeFacts),
    Snode(StorageHealth),
    /// A role doctor checks nothing of but the clock.
    Other,
}

impl Fact for Probe<'_> {
    type Value = HostFacts;

    fn script(&self, host: &Host) -> Result<String, Error> {
        let role = match host.role {
            "confignode" => doctor::confignode_script(self.inv),
            "hnode" => doctor::hnode_script(hypervisor_of(self.inv, &host.name)?, &self.authorized_keys),
            "snode" => doctor::snode_script(),
            _ => "exit 0\n".to_string(),
        };
        // The clock first: read as early as possible after the host was asked.
        Ok(CLOCK_PROBE.to_string() + &role)
    }

    fn parse(&self, host: &Host, output: &str) -> HostFacts {
        let role = match host.role {
            "confignode" => RoleFacts::ConfigNode(doctor::parse_confignode(output)),
            "hnode" => RoleFacts::Hnode(doctor::parse_hnode(output)),
            "snode" => RoleFacts::Snode(storage_health::parse(output)),
            _ => RoleFacts::Other,
        };
        HostFacts {
            clock: doctor::parse_clock(output),
            role,
        }
    }
}
