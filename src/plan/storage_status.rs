//! `storage status`: the read-only probe of a storage node as a `Fact` — its md, DRBD and AoE
//! state, and the problems in it. Pure.

use super::fact::Fact;
use super::storage::{status_problems, status_script};
use crate::error::Error;
use crate::inventory::storage::StorageSection;
use crate::inventory::Host;
use std::collections::BTreeMap;

/// The probe of `storage status` for the nodes of one `[storage]` section.
pub struct Status<'a>(pub &'a StorageSection);

/// What one storage node reports.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    /// Every `key value` line of scripts/storage/status.sh, `-` in keys read as `_` (the JSON
    /// field names users script against).
    pub fields: BTreeMap<String, String>,
    /// Empty when the node is healthy.
    pub problems: Vec<String>,
}

impl Fact for Status<'_> {
    type Value = NodeStatus;

    fn script(&self, _: &Host) -> Result<String, Error> {
        Ok(status_script(self.0))
    }

    fn parse(&self, _: &Host, output: &str) -> NodeStatus {
        let mut fields = BTreeMap::new();
        for line in output.lines() {
            if let Some((k, v)) = line.split_once(' ') {
                fields.insert(k.replace('-', "_"), v.trim().to_string());
            }
        }
        let problems = status_problems(&fields);
        NodeStatus { fields, problems }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_healthy_node_reads_as_its_fields_and_no_problem() {
        let inv = crate::inventory::parse("seed-lab.toml", include_str!("../../examples/seed-lab.toml")).unwrap();
        let s = inv.storage.as_ref().unwrap().get_ref();
        let host = inv.select(&["snode1".into()]).unwrap().remove(0);
        let out = "md clean\ndrbd-role Primary/Primary\ndrbd-cstate Connected\ndrbd-dstate UpToDate/UpToDate\ndrbd-sync \naoe exporting\n";
        let st = Status(s).parse(&host, out);
        assert!(st.problems.is_empty(), "{:?}", st.problems);
        assert_eq!(st.fields["drbd_role"], "Primary/Primary");
        assert_eq!(st.fields["drbd_sync"], "");
        let st = Status(s).parse(&host, "md absent\naoe stopped\n");
        assert_eq!(st.problems.len(), 5, "{:?}", st.problems);
    }
}

#[cfg(test)]
mod gathered {
    //! `Status` gathered host-free: the scripted connector answers for each storage node.
    use super::*;
    use crate::exec::record::{Log, ScriptedConnector};
    use crate::exec::{gather, HostError, Limits, ScriptOutput};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn each_node_is_read_and_an_unreachable_one_does_not_stop_the_other() {
        let inv = crate::inventory::parse("seed-lab.toml", include_str!("../../examples/seed-lab.toml")).unwrap();
        let s = inv.storage.as_ref().unwrap().get_ref();
        let hosts = inv.select(&["snode".into()]).unwrap();
        let log = Log::default();
        let connector = ScriptedConnector {
            log: log.clone(),
            connect: Arc::new(|name| match name {
                "snode2" => Err(HostError::HostKey("snode2: host key changed".into())),
                _ => Ok(()),
            }),
            answer: Arc::new(|_, _| {
                Ok(ScriptOutput {
                    output: "md clean\ndrbd-role Secondary/Primary\naoe exporting\n".into(),
                    status: 0,
                })
            }),
        };
        let limits = Limits {
            forks: 2,
            host_timeout: Duration::from_secs(5),
        };
        let got = gather(&hosts, &Status(s), &connector, &limits);
        let snode1 = got[0].as_ref().unwrap().as_ref().unwrap();
        assert_eq!(snode1.fields["md"], "clean");
        assert!(snode1
            .problems
            .contains(&"DRBD roles are Secondary/Primary (not both primary)".to_string()));
        let e = got[1].as_ref().unwrap().as_ref().unwrap_err();
        assert_eq!(e.exit(), crate::error::Exit::HostKey, "{e}");
        assert_eq!(*log.lock().unwrap(), [("snode1".to_string(), status_script(s))]);
    }
}
