//! The read-only probes of the LAMP nodes as `Fact`s: what `lamp deploy` plans from (each web
//! node's disk, the stored database password) and what `lamp status` shows. Pure.

use super::{facts_script, parse_facts, status, Facts, Role};
use crate::error::Error;
use crate::inventory::lamp::LampSection;
use crate::inventory::Host;
use crate::plan::fact::Fact;
use crate::types::Name;

/// A node's roles in `nodes` (none for a host that is not a LAMP node).
fn roles_of<'a>(nodes: &'a [(Name, Vec<Role>)], host: &Host) -> &'a [Role] {
    nodes
        .iter()
        .find(|(n, _)| n.as_str() == host.name)
        .map_or(&[], |(_, roles)| roles.as_slice())
}

/// `lamp deploy`'s probe of each LAMP node (`super::nodes`), by its roles.
pub struct Deploy<'a> {
    pub lamp: &'a LampSection,
    pub nodes: &'a [(Name, Vec<Role>)],
}

impl Fact for Deploy<'_> {
    /// What this one node found; `merge` them in node order.
    type Value = Facts;

    fn script(&self, host: &Host) -> Result<String, Error> {
        Ok(facts_script(self.lamp, roles_of(self.nodes, host)))
    }

    fn parse(&self, host: &Host, output: &str) -> Facts {
        let mut facts = Facts::default();
        if let Some((name, roles)) = self.nodes.iter().find(|(n, _)| n.as_str() == host.name) {
            parse_facts(&mut facts, name, roles, output);
        }
        facts
    }
}

impl Facts {
    /// Adds one node's findings (nodes taken in order: the first database node's password wins).
    pub fn merge(&mut self, node: Facts) {
        self.web.extend(node.web);
        if self.db_password.is_none() {
            self.db_password = node.db_password;
        }
    }
}

/// `lamp status`'s probe of each LAMP node; `backends` are the web nodes' `ip:port` (for the
/// balancer's checks).
pub struct Status<'a> {
    pub lamp: &'a LampSection,
    pub nodes: &'a [(Name, Vec<Role>)],
    pub backends: Vec<String>,
}

impl Fact for Status<'_> {
    type Value = status::NodeStatus;

    fn script(&self, host: &Host) -> Result<String, Error> {
        Ok(status::script(self.lamp, roles_of(self.nodes, host), &self.backends))
    }

    fn parse(&self, host: &Host, output: &str) -> status::NodeStatus {
        status::parse(&host.name, &host.endpoint(), roles_of(self.nodes, host), output)
    }
}

#[cfg(test)]
mod tests {
    //! The LAMP facts gathered host-free: the scripted connector answers for each node.
    use super::*;
    use crate::exec::record::{Log, ScriptedConnector};
    use crate::exec::{gather, HostError, Limits, ScriptOutput};
    use crate::inventory::Inventory;
    use std::sync::Arc;
    use std::time::Duration;

    const PASSWORD: &str = "TestOnlyNotARealPassword0123456789abcdef";

    fn example() -> Inventory {
        crate::inventory::parse("lamp.toml", include_str!("../../../examples/lamp.toml")).unwrap()
    }

    fn hosts(inv: &Inventory, nodes: &[(Name, Vec<Role>)]) -> Vec<Host> {
        nodes.iter().map(|(n, _)| super::super::host(inv, n).unwrap()).collect()
    }

    /// Nodes answer as `answer(node)` says; `down` cannot be reached.
    fn connector(down: &'static str, answer: fn(&str) -> String) -> (ScriptedConnector, Log) {
        let log = Log::default();
        let c = ScriptedConnector {
            log: log.clone(),
            connect: Arc::new(move |name| match name == down {
                true => Err(HostError::Unreachable(format!("{name}: no route to host"))),
                false => Ok(()),
            }),
            answer: Arc::new(move |name, _| {
                Ok(ScriptOutput {
                    output: answer(name),
                    status: 0,
                })
            }),
        };
        (c, log)
    }

    fn limits() -> Limits {
        Limits {
            forks: 3,
            host_timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn deploy_reads_each_node_by_its_roles_and_merges_in_node_order() {
        let inv = example();
        let section = super::super::section(&inv).unwrap();
        let nodes = super::super::nodes(section);
        let hosts = hosts(&inv, &nodes);
        let (c, log) = connector("", |name| match name {
            "db1" => format!("{}password {PASSWORD}\n", crate::plan::SECRET_FACT),
            web => format!("hostname {web}\ndisk\nsignature drbd\n"),
        });
        let fact = Deploy {
            lamp: section,
            nodes: &nodes,
        };
        let mut facts = Facts::default();
        for answer in gather(&hosts, &fact, &c, &limits()) {
            facts.merge(answer.unwrap().unwrap());
        }
        assert_eq!(facts.db_password.as_ref().map(|s| s.expose()), Some(PASSWORD));
        assert_eq!(facts.web.keys().collect::<Vec<_>>(), ["web1", "web2"]);
        assert_eq!(facts.web["web2"].hostname.as_deref(), Some("web2"));
        assert_eq!(facts.web["web1"].disk_signatures, Some(vec!["drbd".to_string()]));
        // Each node got the probe of its own roles.
        for (host, script) in log.lock().unwrap().iter() {
            let roles = roles_of(&nodes, &hosts.iter().find(|h| h.name == *host).unwrap().clone());
            assert_eq!(*script, facts_script(section, roles), "{host}");
        }
    }

    #[test]
    fn status_reports_an_unreachable_node_and_reads_the_others() {
        let inv = example();
        let section = super::super::section(&inv).unwrap();
        let nodes = super::super::nodes(section);
        let hosts = hosts(&inv, &nodes);
        let (c, _) = connector("web2", |name| match name {
            "lb1" => "up pen running\n".into(),
            "db1" => "up mariadb running\nsettings 0 OFF 0 MyISAM\n".into(),
            _ => "up apache2 running\n".into(),
        });
        let fact = Status {
            lamp: section,
            nodes: &nodes,
            backends: vec![],
        };
        let got = gather(&hosts, &fact, &c, &limits());
        for (h, answer) in hosts.iter().zip(&got) {
            let answer = answer.as_ref().unwrap();
            if h.name == "web2" {
                let e = answer.as_ref().unwrap_err();
                assert_eq!(e.exit(), crate::error::Exit::Unreachable, "{e}");
                continue;
            }
            let st = answer.as_ref().unwrap();
            assert_eq!((st.name.as_str(), st.address.clone()), (h.name.as_str(), h.endpoint()));
            assert!(st.healthy(), "{st:?}");
        }
        let db = got[hosts.iter().position(|h| h.name == "db1").unwrap()]
            .as_ref()
            .unwrap()
            .as_ref()
            .unwrap();
        assert_eq!(db.roles, ["database"]);
        assert_eq!(db.components.len(), 2, "{db:?}");
    }
}
