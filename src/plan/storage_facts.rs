//! `storage init`'s read-only probe of a storage node as a `Fact`: its hostname, its disks, the
//! md array, DRBD's metadata and shared secret, the DRBD version. Pure.

use super::fact::Fact;
use super::storage::{facts_script, md_uuid, parse_facts, NodeFacts};
use crate::error::Error;
use crate::inventory::storage::StorageSection;
use crate::inventory::{Host, Inventory};

/// The probe of the nodes of `section`.
pub struct Probe<'a> {
    pub inv: &'a Inventory,
    pub section: &'a StorageSection,
}

impl Fact for Probe<'_> {
    type Value = NodeFacts;

    fn script(&self, _: &Host) -> Result<String, Error> {
        Ok(facts_script(self.section))
    }

    /// The array found is judged against the UUID cloudctl gives this node's array.
    fn parse(&self, host: &Host, output: &str) -> NodeFacts {
        parse_facts(output, &md_uuid(self.inv, &host.name, self.section.md_device.as_str()))
    }
}
