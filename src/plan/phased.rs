//! Plans in phases: `Phased { phases, on_failure }`. Each phase is a plan the executor applies
//! once the one before it applied on every host; the first phase that does not stops the run,
//! the phases after it do not run, and the `on_failure` phases run instead (tidying up, best
//! effort, even after Ctrl-C). Pure data: a command's phases are golden-tested and shown by a
//! dry run like any plan; `exec::phased::run` runs them.

use super::{HostPlan, Plan};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phased {
    pub phases: Vec<Phase>,
    /// Run, in order, once a phase failed (or the caller found after the phases that the run
    /// must be undone); each runs whatever the one before it did.
    pub on_failure: Vec<Phase>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    /// How reports, tests and the command find it (`prepare`, `start`, …).
    pub name: String,
    /// What its failure is said as; `None`: what the failed step or host said (a wait's reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
    /// How long each of its hosts may take, when not the run's own bound (a phase that is the
    /// long work itself, as `xl migrate` is).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    pub plan: Plan,
}

impl Phase {
    pub fn new(name: &str, plan: Plan) -> Phase {
        Phase {
            name: name.into(),
            failed: None,
            timeout_secs: None,
            plan,
        }
    }

    /// This phase, its failure said as `why`.
    pub fn failing_as(self, why: String) -> Phase {
        Phase {
            failed: Some(why),
            ..self
        }
    }

    /// This phase, each host bounded by `secs`.
    pub fn bounded(self, secs: u64) -> Phase {
        Phase {
            timeout_secs: Some(secs),
            ..self
        }
    }
}

impl Phased {
    /// The phase called `name`, among the phases or the on_failure ones.
    pub fn phase(&self, name: &str) -> Option<&Phase> {
        self.phases.iter().chain(&self.on_failure).find(|p| p.name == name)
    }

    /// The phases (not the on_failure ones) as one plan titled `title`, followed by `then`'s
    /// hosts: what a dry run shows, each phase's hosts in the order they run.
    pub fn shown(&self, title: &str, then: &[&Plan]) -> Plan {
        let hosts: Vec<HostPlan> = (self.phases.iter().map(|p| &p.plan))
            .chain(then.iter().copied())
            .flat_map(|p| p.hosts.iter().cloned())
            .collect();
        Plan {
            title: title.into(),
            hosts,
            confirm: true,
            redact: Vec::new(),
        }
    }
}
