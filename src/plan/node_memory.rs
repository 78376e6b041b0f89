//! The memory and CPU probe of a hardware node as a `Fact`: what placement and rebalance weigh
//! (see `placement::memory_script`). Pure.

use super::fact::Fact;
use super::instance::hypervisor_of;
use super::placement::{memory_script, parse_cpus, parse_memory, Reported};
use crate::error::Error;
use crate::inventory::{Host, Inventory};

/// Every hardware node's memory and CPUs, asked by its hypervisor.
pub struct Memory<'a>(pub &'a Inventory);

/// What one node reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeMemory {
    /// (total MiB, available MiB).
    pub reported: Reported,
    pub cpus: Option<u32>,
}

impl Fact for Memory<'_> {
    type Value = NodeMemory;

    fn script(&self, host: &Host) -> Result<String, Error> {
        Ok(memory_script(hypervisor_of(self.0, &host.name)?).to_string())
    }

    fn parse(&self, _: &Host, output: &str) -> NodeMemory {
        NodeMemory {
            reported: parse_memory(output),
            cpus: parse_cpus(output),
        }
    }

    /// Read whatever the status: it is that of the probe's last command (`sed` after `xl info`),
    /// and a node that printed nothing useful reads as knowing nothing, not as down.
    fn needs_success(&self) -> bool {
        false
    }
}
