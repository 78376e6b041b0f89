//! The one poller: runs a `WaitStep`'s probe on a host round after round until its reading says
//! done, it fails, or the time runs out (naming the last stage seen). Every wait of cloudctl —
//! a node or guest coming up, a live migration, a node going off, a step of a plan — goes
//! through here.

use super::{Connector, HostError, Transport, INTERRUPTED};
use crate::inventory::Host;
use crate::plan::wait::{self, Read, Reading, Stage, WaitStep};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How a wait ended without being done.
#[derive(Debug)]
pub enum WaitError {
    /// The time ran out; `last` is the last stage seen (how messages name it), if any.
    TimedOut { last: Option<String> },
    /// The reading said it will not happen (or cannot be watched).
    Failed(String),
    /// The host stopped answering (twice in a row), or the target's host key was refused.
    Lost(HostError),
    /// Ctrl-C.
    Interrupted,
}

/// What a wait that ended done leaves: the last round's output, and the SSH session to the
/// target when the reading ends with one.
pub struct Waited {
    pub output: String,
    pub ssh: Option<Box<dyn Transport>>,
}

/// What the poller tells its caller while it waits.
pub enum Seen<'a> {
    /// A stage seen for the first time (the SSH stage included), with the time since `started`.
    Stage(&'a str, Duration),
    /// A round's output (every round, e.g. for a progress line).
    Round(&'a str),
}

/// Runs `step` on `host` through `session` (re-connected once through `connector` when a round
/// loses it) until done; `started` is when the wait began, `observe` hears of every stage and
/// round. The target of a `then_ssh` reading is reached through `connector` too.
pub fn until(
    connector: &dyn Connector,
    host: &Host,
    session: &mut Box<dyn Transport>,
    step: &WaitStep,
    started: Instant,
    observe: &mut dyn FnMut(Seen),
) -> Result<Waited, WaitError> {
    let limit = Duration::from_secs(step.timeout_secs);
    // A week at most (commands refuse longer): the clock cannot overflow.
    let deadline = started.checked_add(limit).unwrap_or(started);
    if let Some(setup) = &step.setup {
        session.run_script(setup, deadline).map_err(WaitError::Lost)?;
    }
    let mut seen: Vec<String> = Vec::new();
    let note = |what: &str, seen: &mut Vec<String>, observe: &mut dyn FnMut(Seen)| {
        if !seen.iter().any(|s| s == what) {
            seen.push(what.to_string());
            observe(Seen::Stage(what, started.elapsed()));
        }
    };
    let every = Duration::from_millis(step.every_ms);
    let mut fresh_session = true;
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            return Err(WaitError::Interrupted);
        }
        if Instant::now() >= deadline {
            // A reading whose timeout is an outcome ends as that outcome.
            if let Some(outcome) = step.reading.outcome_at_timeout() {
                return Ok(Waited {
                    output: format!("{outcome}\n"),
                    ssh: None,
                });
            }
            return Err(WaitError::TimedOut { last: seen.pop() });
        }
        let round = Instant::now();
        let out = match session.run_script(&step.probe, deadline) {
            Ok(out) => out,
            // The deadline ran out during the probe itself: report it as the timeout it is.
            Err(_) if Instant::now() >= deadline => continue,
            // One lost session is not the end of the wait: connect again; a probe that fails on
            // the fresh session too is the error.
            Err(e) if fresh_session => return Err(WaitError::Lost(e)),
            Err(_) => {
                *session = connector.connect(host, deadline).map_err(WaitError::Lost)?;
                fresh_session = true;
                continue;
            }
        };
        fresh_session = false;
        observe(Seen::Round(&out.output));
        let stages: Vec<&Stage> = match wait::read(step, &host.name, &out.output) {
            Read::Done => {
                return Ok(Waited {
                    output: out.output,
                    ssh: None,
                })
            }
            Read::Failed(why) => return Err(WaitError::Failed(why)),
            Read::NotYet(stages) => stages,
        };
        for stage in &stages {
            note(&stage.what, &mut seen, observe);
        }
        if let Reading::Stages {
            stages: all,
            then_ssh: Some(ssh),
            ..
        } = &step.reading
        {
            let after = all.iter().find(|s| s.key == ssh.after).map(|s| s.what.as_str());
            if after.is_some_and(|a| seen.iter().any(|s| s == a)) {
                match connector.connect(&ssh.target, deadline.min(Instant::now() + Duration::from_secs(5))) {
                    Ok(t) => {
                        note(wait::SSH_STAGE, &mut seen, observe);
                        return Ok(Waited {
                            output: out.output,
                            ssh: Some(t),
                        });
                    }
                    Err(e @ HostError::HostKey(_)) => return Err(WaitError::Lost(e)),
                    Err(_) => {}
                }
            }
        }
        std::thread::sleep(every.saturating_sub(round.elapsed()));
    }
}

impl WaitError {
    /// The error a step of a plan reports (the commands that wait themselves word their own).
    pub fn message(&self, step: &WaitStep) -> String {
        match self {
            WaitError::TimedOut { .. } if step.timed_out.is_some() => step.timed_out.clone().unwrap_or_default(),
            WaitError::TimedOut { last } => format!(
                "gave up after {} s waiting for: {}{}",
                step.timeout_secs,
                step.what,
                last.as_deref()
                    .map(|l| format!("; last stage seen: {l}"))
                    .unwrap_or_default()
            ),
            WaitError::Failed(why) => why.clone(),
            WaitError::Lost(e) => e.to_string(),
            WaitError::Interrupted => "interrupted".into(),
        }
    }
}
