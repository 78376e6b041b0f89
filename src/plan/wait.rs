//! Waits as plan data (`Step::WaitUntil`): a read-only probe a host runs round after round, and
//! how its output reads — done, not yet (with the stages seen), or failed. Pure; `exec::wait`
//! is the one poller that runs it, so a wait is golden-tested and shown in `--dry-run` like any
//! other step instead of being a loop in a command.

use crate::inventory::Host;
use serde::Serialize;

/// Wait until `probe`, run on the step's host about every `every_ms`, reads as done; give up
/// after `timeout_secs`, naming the last stage seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitStep {
    /// What is waited for, as messages name it (a node, a guest, a migration).
    pub what: String,
    /// Run once before the first probe (e.g. forget neighbour entries of an earlier boot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub setup: Option<String>,
    /// A read-only script: one round of looking.
    pub probe: String,
    pub every_ms: u64,
    pub timeout_secs: u64,
    pub reading: Reading,
    /// What a timeout says instead of the general `gave up after … waiting for …` (e.g. where
    /// to look next).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timed_out: Option<String>,
}

/// How a probe's output reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reading {
    /// The probe prints the key of each stage it sees on a line of its own, and `missing
    /// PROGRAM` for a tool of `tools` the host lacks (a hard failure, not a stage not reached).
    Stages {
        stages: Vec<Stage>,
        /// The stage that means done; `None`: only `then_ssh` ends the wait.
        #[serde(skip_serializing_if = "Option::is_none")]
        done: Option<String>,
        /// Once this stage is seen, the executor tries SSH to a target: the wait is done when
        /// that answers with its pinned host key.
        #[serde(skip_serializing_if = "Option::is_none")]
        then_ssh: Option<SshAfter>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tools: Vec<Tool>,
    },
    /// QEMU's `query-migrate` answer: done once completed; failed once failed or cancelled.
    QemuMigration,
    /// The probe prints a word a round (its last line counts): a word of `ends` ends the wait
    /// with that word as its outcome, and so does the time running out, with `at_timeout` as
    /// the outcome: reported by the command, not an error (a node that still answers ping after
    /// `hnode poweroff` is something to say, not a failed step).
    Outcome { ends: Vec<String>, at_timeout: String },
}

impl Reading {
    /// The outcome a timeout is, for a reading whose timeout is no error.
    pub fn outcome_at_timeout(&self) -> Option<&str> {
        match self {
            Reading::Outcome { at_timeout, .. } => Some(at_timeout),
            _ => None,
        }
    }
}

/// A stage a probe reports by printing `key`; `what` is how messages name it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stage {
    pub key: String,
    pub what: String,
}

impl Stage {
    pub fn new(key: &str, what: &str) -> Stage {
        Stage {
            key: key.into(),
            what: what.into(),
        }
    }
}

/// SSH to `target` once the stage `after` was seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SshAfter {
    pub after: String,
    pub target: Host,
}

/// The stage the executor notes when the target answered SSH.
pub const SSH_STAGE: &str = "SSH answers with the pinned host key";

/// A program the probe needs on its host, and the Debian package that provides it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tool {
    pub program: String,
    pub package: String,
}

impl From<crate::local_tools::Tool> for Tool {
    fn from(t: crate::local_tools::Tool) -> Tool {
        Tool {
            program: t.program.into(),
            package: t.package.into(),
        }
    }
}

/// One round's reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Read<'a> {
    Done,
    /// Not yet; these stages were seen this round (in the order of the reading's stages).
    NotYet(Vec<&'a Stage>),
    /// It will not happen (or cannot be watched): the wait stops with this message.
    Failed(String),
}

/// `probe` with the check for `tools` in front (a line `missing PROGRAM` for each one absent).
pub fn with_tools(tools: &[Tool], probe: &str) -> String {
    let programs: Vec<&str> = tools.iter().map(|t| t.program.as_str()).collect();
    crate::shell::Script::new()
        .call(
            "for t in",
            &programs,
            "; do command -v \"$t\" >/dev/null 2>&1 || echo \"missing $t\"; done; ",
        )
        .build()
        + probe
}

/// How one round's `output` on `host` reads.
pub fn read<'a>(step: &'a WaitStep, host: &str, output: &str) -> Read<'a> {
    match &step.reading {
        Reading::Stages {
            stages, done, tools, ..
        } => {
            let missing = output.lines().find_map(|l| {
                let program = l.strip_prefix("missing ")?;
                tools.iter().find(|t| t.program == program)
            });
            if let Some(tool) = missing {
                return Read::Failed(format!(
                    "cannot watch {} come up: {host} has no `{}` (package {}); install it there (`cloudctl config init` does on the ConfigNode)",
                    step.what, tool.program, tool.package
                ));
            }
            let seen: Vec<&Stage> = stages.iter().filter(|s| output.lines().any(|l| l == s.key)).collect();
            match done {
                Some(d) if seen.iter().any(|s| &s.key == d) => Read::Done,
                _ => Read::NotYet(seen),
            }
        }
        Reading::QemuMigration => {
            let Some(p) = super::instance::migrate::parse_progress(output) else {
                return Read::Failed(format!("QEMU on {host} gave no migration status: {}", output.trim()));
            };
            match p.status.as_str() {
                "completed" => Read::Done,
                "failed" | "cancelled" | "cancelling" => Read::Failed(format!(
                    "the migration {}{}",
                    p.status,
                    p.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
                )),
                _ => Read::NotYet(Vec::new()),
            }
        }
        Reading::Outcome { ends, .. } => match last_word(output) {
            Some(w) if ends.iter().any(|e| e == w) => Read::Done,
            _ => Read::NotYet(Vec::new()),
        },
    }
}

/// The last line of a probe's output that is not blank, trimmed.
pub fn last_word(output: &str) -> Option<&str> {
    output.lines().map(str::trim).rfind(|l| !l.is_empty())
}

/// The wait in one line, for plan previews.
pub fn describe(step: &WaitStep) -> String {
    let until = match &step.reading {
        Reading::Stages {
            stages, done, then_ssh, ..
        } => {
            let mut said: Vec<String> = stages.iter().map(|s| s.what.clone()).collect();
            if let Some(d) = done {
                // Stages after the one that means done are never waited for.
                if let Some(at) = stages.iter().position(|s| &s.key == d) {
                    said.truncate(at + 1);
                }
            }
            if let Some(s) = then_ssh {
                said.push(format!("{} ({})", SSH_STAGE, s.target.name));
            }
            said.join(", then ")
        }
        Reading::QemuMigration => "QEMU reports the migration completed".into(),
        Reading::Outcome { ends, at_timeout } => {
            format!(
                "the probe reads {} (at the time limit: {at_timeout})",
                ends.join(" or ")
            )
        }
    };
    format!(
        "wait up to {} s for {} (every {} ms): {until}",
        step.timeout_secs, step.what, step.every_ms
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn booting() -> WaitStep {
        WaitStep {
            what: "hnode1".into(),
            setup: None,
            probe: "probe".into(),
            every_ms: 1000,
            timeout_secs: 60,
            reading: Reading::Stages {
                stages: vec![Stage::new("neigh", "talked"), Stage::new("ping", "pings")],
                done: Some("ping".into()),
                then_ssh: None,
                tools: vec![crate::local_tools::PING.into()],
            },
            timed_out: None,
        }
    }

    #[test]
    fn stages_read_as_not_yet_done_or_a_missing_tool() {
        let w = booting();
        assert_eq!(read(&w, "cn", ""), Read::NotYet(vec![]));
        let Read::NotYet(seen) = read(&w, "cn", "neigh\n") else {
            panic!()
        };
        assert_eq!(seen[0].key, "neigh");
        assert_eq!(read(&w, "cn", "neigh\nping\n"), Read::Done);
        let Read::Failed(m) = read(&w, "cn", "missing ping\n") else {
            panic!()
        };
        assert!(m.contains("cn has no `ping` (package iputils-ping)"), "{m}");
    }

    #[test]
    fn qemu_migration_reads_its_status() {
        let w = WaitStep {
            reading: Reading::QemuMigration,
            ..booting()
        };
        let answer = |s: &str| format!(r#"{{"return": {{"status": "{s}", "error-desc": "gone"}}}}"#);
        assert_eq!(read(&w, "h", &answer("active")), Read::NotYet(vec![]));
        assert_eq!(read(&w, "h", &answer("completed")), Read::Done);
        assert_eq!(
            read(&w, "h", &answer("failed")),
            Read::Failed("the migration failed: gone".into())
        );
        assert_eq!(
            read(&w, "h", "oops"),
            Read::Failed("QEMU on h gave no migration status: oops".into())
        );
    }

    #[test]
    fn an_outcome_reading_ends_on_one_of_its_words_only() {
        let w = WaitStep {
            reading: Reading::Outcome {
                ends: vec!["off".into(), "no-ping".into()],
                at_timeout: "answering".into(),
            },
            ..booting()
        };
        assert_eq!(read(&w, "cn", "answering\n"), Read::NotYet(vec![]));
        assert_eq!(read(&w, "cn", ""), Read::NotYet(vec![]));
        assert_eq!(read(&w, "cn", "off\n"), Read::Done);
        assert_eq!(read(&w, "cn", "no-ping\n\n"), Read::Done);
        assert_eq!(w.reading.outcome_at_timeout(), Some("answering"));
        assert_eq!(booting().reading.outcome_at_timeout(), None);
        assert!(
            describe(&w).ends_with("the probe reads off or no-ping (at the time limit: answering)"),
            "{}",
            describe(&w)
        );
    }
}
