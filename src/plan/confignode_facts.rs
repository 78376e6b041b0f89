//! The read-only probes of the ConfigNodes as `Fact`s: what `config init` and `node add|remove`
//! plan from, and what `config status` judges. Every ConfigNode of a pair gets the same program,
//! so each is built once, from the inventory. Pure.

use super::confignode::{self, Facts, Scope};
use super::confignode_status as status;
use super::fact::Fact;
use crate::error::Error;
use crate::inventory::{Host, Inventory};

/// The probe a plan for `scope` needs (see `confignode::facts_script`).
pub struct Probe(String);

impl Probe {
    pub fn new(inv: &Inventory, scope: &Scope) -> Result<Probe, Error> {
        confignode::facts_script(inv, scope).map(Probe)
    }
}

impl Fact for Probe {
    type Value = Facts;

    fn script(&self, _: &Host) -> Result<String, Error> {
        Ok(self.0.clone())
    }

    fn parse(&self, _: &Host, output: &str) -> Facts {
        confignode::parse_facts(output)
    }
}

/// The probe of `config status` (see `confignode_status::script`).
pub struct Status(String);

impl Status {
    pub fn new(inv: &Inventory) -> Result<Status, Error> {
        status::script(inv).map(Status)
    }
}

impl Fact for Status {
    type Value = status::NodeFacts;

    fn script(&self, _: &Host) -> Result<String, Error> {
        Ok(self.0.clone())
    }

    fn parse(&self, _: &Host, output: &str) -> status::NodeFacts {
        status::parse(output)
    }
}
