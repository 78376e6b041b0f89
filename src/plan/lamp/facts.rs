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
