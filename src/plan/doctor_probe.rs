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

#[cfg(test)]
mod tests {
    //! The probe gathered host-free: each role gets its own program and reads as its facts.
    use super::*;
    use crate::exec::record::{Log, ScriptedConnector};
    use crate::exec::{gather, Limits, ScriptOutput};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn every_role_gets_its_probe_and_reads_as_its_facts_with_the_clock() {
        let inv = crate::inventory::parse("seed-lab.toml", include_str!("../../examples/seed-lab.toml")).unwrap();
        let hosts = inv.hosts();
        let log = Log::default();
        let connector = ScriptedConnector {
            log: log.clone(),
            connect: Arc::new(|_| Ok(())),
            answer: Arc::new(|_, _| {
                Ok(ScriptOutput {
                    output: "clock 1700000000.%N\n".into(),
                    status: 0,
                })
            }),
        };
        let probe = Probe {
            inv: &inv,
            authorized_keys: String::new(),
        };
        let limits = Limits {
            forks: 4,
            host_timeout: Duration::from_secs(5),
        };
        let got = gather(&hosts, &probe, &connector, &limits);
        assert_eq!(got.len(), hosts.len());
        for (h, answer) in hosts.iter().zip(got) {
            let f = answer.unwrap().unwrap();
            assert_eq!(f.clock, Some((1_700_000_000.0, 1.0)), "{}", h.name);
            let role_ok = matches!(
                (h.role, &f.role),
                ("confignode", RoleFacts::ConfigNode(_))
                    | ("hnode", RoleFacts::Hnode(_))
                    | ("snode", RoleFacts::Snode(_))
            );
            assert!(role_ok, "{}: {:?}", h.name, f.role);
            let script = &log
                .lock()
                .unwrap()
                .iter()
                .find(|(n, _)| *n == h.name)
                .unwrap()
                .1
                .clone();
            assert!(script.starts_with(CLOCK_PROBE), "{script}");
            assert_eq!(*script, probe.script(h).unwrap());
        }
    }
}
