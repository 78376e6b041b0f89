//! Building a host's steps with typed references: a file step added hands out a `StepId`, and
//! `When::Changed` takes only those, so a command cannot name a file step that is not in the
//! plan; `check` refuses any plan (hand-built, deserialised) that still does. Pure.

use super::{CommandStep, Step, When};
use crate::error::Error;
use serde::{Deserialize, Serialize};

/// A reference to a file step of the same host plan. Serialised as the step's id, so plans read
/// as before; made only by `Steps::file` (or read back from a plan, then checked by `check`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StepId(String);

impl StepId {
    /// A reference by id alone, for plans assembled step by step outside a planner (tests,
    /// benches): nothing proves the step is there, so `check` refuses it before anything runs
    /// if it is not.
    pub fn unchecked(id: &str) -> Self {
        StepId(id.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for StepId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl std::fmt::Display for StepId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One host's steps, in order, with a handle for each file step added.
#[derive(Debug, Default)]
pub struct Steps {
    steps: Vec<Step>,
}

impl Steps {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file step and hands out the reference a later command reacts to. A step of another
    /// kind is a planner's mistake, refused like an unknown reference.
    pub fn file(&mut self, step: Step) -> Result<StepId, Error> {
        let Step::File(f) = &step else {
            return Err(Error::Usage(format!("`{}` is not a file step", step.label())));
        };
        let id = StepId(f.id.clone());
        self.steps.push(step);
        Ok(id)
    }

    /// Adds a step nothing refers to.
    pub fn push(&mut self, step: Step) {
        self.steps.push(step);
    }

    pub fn extend(&mut self, steps: impl IntoIterator<Item = Step>) {
        self.steps.extend(steps);
    }

    /// The steps, once every reference is known to name a file step among them (a handle from
    /// another host's builder is refused here, not silently never matched).
    pub fn build(self) -> Result<Vec<Step>, Error> {
        check(&self.steps)?;
        Ok(self.steps)
    }
}

/// Runs `argv` only if one of `files` changed in this run.
pub fn on_change(argv: &[&str], files: &[&StepId]) -> Step {
    Step::Command(CommandStep {
        argv: super::strings(argv),
        when: When::Changed(files.iter().map(|&f| f.clone()).collect()),
    })
}

/// Refuses a host's steps where a command reacts to a file step that is not among them, naming
/// the id: such a command would otherwise never run, and nothing would say why.
pub fn check(steps: &[Step]) -> Result<(), Error> {
    let known = |id: &StepId| steps.iter().any(|s| matches!(s, Step::File(f) if id == f.id.as_str()));
    for step in steps {
        if let Step::Command(CommandStep {
            when: When::Changed(ids),
            ..
        }) = step
        {
            if let Some(id) = ids.iter().find(|id| !known(id)) {
                return Err(Error::Usage(format!(
                    "`{}` reacts to file step `{id}`, which is not in the plan",
                    step.label()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{command, config};

    #[test]
    fn a_handle_names_its_file_and_builds() {
        let mut s = Steps::new();
        let conf = s
            .file(config("conf", "/etc/x.conf", "x\n".into(), None).unwrap())
            .unwrap();
        s.push(on_change(&["reload"], &[&conf]));
        let steps = s.build().unwrap();
        assert!(matches!(&steps[1], Step::Command(c) if c.when == When::Changed(vec![conf])));
    }

    #[test]
    fn a_handle_from_another_host_is_refused_naming_it() {
        let mut other = Steps::new();
        let elsewhere = other
            .file(config("elsewhere", "/etc/e", String::new(), None).unwrap())
            .unwrap();
        let mut s = Steps::new();
        s.push(on_change(&["reload"], &[&elsewhere]));
        let err = s.build().unwrap_err().to_string();
        assert!(err.contains("`elsewhere`"), "{err}");
    }

    #[test]
    fn a_read_back_plan_with_an_unknown_id_is_refused_naming_it() {
        let when: When = serde_json::from_str(r#"{"changed":["dhcpd.cnof"]}"#).unwrap();
        let steps = vec![
            config("dhcpd.conf", "/etc/d", String::new(), None).unwrap(),
            command(&["restart"], when),
        ];
        let err = check(&steps).unwrap_err().to_string();
        assert!(err.contains("`dhcpd.cnof`"), "{err}");
    }

    #[test]
    fn the_string_form_is_kept() {
        let mut s = Steps::new();
        let conf = s
            .file(config("conf", "/etc/x.conf", String::new(), None).unwrap())
            .unwrap();
        let json = serde_json::to_string(&When::Changed(vec![conf])).unwrap();
        assert_eq!(json, r#"{"changed":["conf"]}"#);
    }

    #[test]
    fn a_non_file_step_gets_no_handle() {
        assert!(Steps::new().file(command(&["true"], When::Always)).is_err());
    }
}
