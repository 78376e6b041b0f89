//! Phases and waits. A phased plan (`plan::phased`) runs phase after phase (`run`), its
//! on_failure phases once one fails (`undo`), each phase applied as any plan (`apply_phase`).
//!
//! A host's steps with waits among them: the steps between two waits go as one apply script
//! (as a plan without waits does), each wait is polled by `wait::until` on the same session, and
//! the first failure stops the host, the steps after it reported as not run.
//!
//! Why split rather than poll inside the script: a wait's probe reads as typed data here (stages,
//! the last one seen on a timeout), and the host lock is not held while nothing is changed. A
//! command step that reacts to a changed file (`When::Changed`) sees the files of its own run of
//! steps only, so a planner keeps such a pair on one side of a wait.

use super::script::{StepResult, StepStatus};
use super::wait::{self, WaitError};
use super::{
    apply_steps, Connector, Event, HostError, HostPlan, HostReport, HostStatus, Limits, StepReport, Transport,
};
use crate::plan::phased::{Phase, Phased};
use crate::plan::Step;
use std::time::Instant;

pub(super) fn apply_with_waits(
    hp: &HostPlan,
    connector: &dyn Connector,
    transport: &mut Box<dyn Transport>,
    limits: &Limits,
    events: &(dyn Fn(Event) + Sync),
    started: Instant,
) -> HostReport {
    if let Some(why) = split_reaction(hp) {
        let e = HostError::Failed(format!("internal: {why}; nothing was changed"));
        return super::host_failed(&hp.host, e, started);
    }
    let mut report = HostReport::new(&hp.host, HostStatus::Ok, None, started);
    let mut i = 0;
    while i < hp.steps.len() {
        if let Step::WaitUntil(w) = &hp.steps[i] {
            events(Event::Stage(&hp.host, "waiting"));
            let mut rounds = |seen: wait::Seen| {
                if let wait::Seen::Round(output) = seen {
                    events(Event::Round(&hp.host, output));
                }
            };
            let result = wait::until(connector, &hp.host, transport, w, Instant::now(), &mut rounds);
            let (status, stdout, stderr) = match &result {
                Ok(done) => (StepStatus::Ok, done.output.clone(), String::new()),
                Err(e) => (StepStatus::Failed, String::new(), e.message(w)),
            };
            report.steps.push(StepReport {
                step: hp.steps[i].label(),
                result: StepResult {
                    status,
                    exit_status: None,
                    stdout,
                    stderr: stderr.clone(),
                },
            });
            if let Err(e) = result {
                // As a failed command: the step says why. A host that stopped answering ends
                // as it would have on connecting, its error on the host.
                (report.status, report.error) = match e {
                    WaitError::Lost(HostError::Unreachable(_)) => (HostStatus::Unreachable, Some(stderr)),
                    WaitError::Lost(HostError::HostKey(_)) => (HostStatus::HostKeyRefused, Some(stderr)),
                    _ => (HostStatus::Failed, None),
                };
                break;
            }
            i += 1;
            continue;
        }
        let end = (i..hp.steps.len())
            .find(|&j| matches!(hp.steps[j], Step::WaitUntil(_)))
            .unwrap_or(hp.steps.len());
        let part = HostPlan {
            host: hp.host.clone(),
            exclusive: hp.exclusive,
            steps: hp.steps[i..end].to_vec(),
        };
        let now = Instant::now();
        let done = apply_steps(
            &part,
            transport.as_mut(),
            limits,
            events,
            now,
            now + limits.host_timeout,
        );
        report.steps.extend(done.steps);
        match done.status {
            HostStatus::Ok => {}
            HostStatus::Changed => report.status = HostStatus::Changed,
            other => {
                report.status = other;
                report.error = done.error;
                break;
            }
        }
        i = end;
    }
    for s in &hp.steps[report.steps.len()..] {
        report.steps.push(StepReport {
            step: s.label(),
            result: StepResult {
                status: StepStatus::NotRun,
                exit_status: None,
                stdout: String::new(),
                stderr: String::new(),
            },
        });
    }
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    report
}

/// How a phased run failed: the phase, and why (its own words, or what its hosts said).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhaseFailed {
    pub phase: String,
    pub why: String,
}

/// Runs `phased` through `apply` (which applies one phase and says why it did not apply on
/// every host): the phases in order until one fails; then `failed` hears of it, before anything
/// is undone, and the on_failure phases run (`undo`). The phases after a failed one never run.
pub fn run(
    phased: &Phased,
    apply: &mut dyn FnMut(&Phase) -> Result<(), String>,
    failed: &mut dyn FnMut(&PhaseFailed),
) -> Result<(), PhaseFailed> {
    for phase in &phased.phases {
        if let Err(why) = apply(phase) {
            let f = PhaseFailed {
                phase: phase.name.clone(),
                why: phase.failed.clone().unwrap_or(why),
            };
            failed(&f);
            undo(phased, apply);
            return Err(f);
        }
    }
    Ok(())
}

/// The on_failure phases, in order, each whatever the one before it did, and even after Ctrl-C
/// (which would otherwise keep their hosts from starting). Also for a caller that finds, after
/// the phases applied, that the run must be undone.
pub fn undo(phased: &Phased, apply: &mut dyn FnMut(&Phase) -> Result<(), String>) {
    super::even_if_interrupted(|| {
        for phase in &phased.on_failure {
            // Tidying up is best effort: a failed step is in the phase's own report.
            let _ = apply(phase);
        }
    });
}

/// Applies one phase through `connector`, each host bounded by the phase's own limit when it
/// has one: the hosts' reports, and why it did not apply on every host.
pub fn apply_phase(
    phase: &Phase,
    connector: &dyn Connector,
    limits: &Limits,
    events: &(dyn Fn(Event) + Sync),
) -> (Vec<HostReport>, Result<(), String>) {
    let limits = bounded(phase, limits);
    let reports = super::apply(&phase.plan, connector, &limits, events);
    let why = why(&reports);
    (reports, why.map_or(Ok(()), Err))
}

/// `limits` with the phase's own bound on each host, when it has one.
pub fn bounded(phase: &Phase, limits: &Limits) -> Limits {
    Limits {
        forks: limits.forks,
        host_timeout: phase
            .timeout_secs
            .map_or(limits.host_timeout, std::time::Duration::from_secs),
    }
}

/// Why a phase did not apply on every host (the first host that did not), or `None`: a lost
/// host names itself, a failed step says why in its own words (a wait's reason), else the host's
/// error.
pub fn why(reports: &[HostReport]) -> Option<String> {
    let r = reports
        .iter()
        .find(|r| !matches!(r.status, HostStatus::Ok | HostStatus::Changed))?;
    let step = r
        .steps
        .iter()
        .find(|s| s.result.status == StepStatus::Failed && !s.result.stderr.trim().is_empty());
    Some(match (r.status, &r.error, step) {
        (HostStatus::Unreachable | HostStatus::HostKeyRefused, Some(e), _) => {
            format!("lost the connection to {}: {e}", r.name)
        }
        (_, _, Some(s)) => s.result.stderr.trim().to_string(),
        (_, Some(e), None) => format!("{}: {e}", r.name),
        (status, None, None) => format!("{}: {status:?}", r.name),
    })
}

/// A command that reacts to a file on the other side of a wait, which its script would never
/// see changing (nor leave a pending marker for): refused before anything runs, never skipped.
fn split_reaction(hp: &HostPlan) -> Option<String> {
    let mut files: Vec<(&str, usize)> = Vec::new();
    let mut segment = 0;
    for step in &hp.steps {
        match step {
            Step::WaitUntil(_) => segment += 1,
            Step::File(f) => files.push((f.id.as_str(), segment)),
            _ => {}
        }
    }
    let mut segment = 0;
    for step in &hp.steps {
        match step {
            Step::WaitUntil(_) => segment += 1,
            Step::Command(c) => {
                if let crate::plan::When::Changed(ids) = &c.when {
                    if let Some((id, _)) = files
                        .iter()
                        .find(|(id, s)| ids.iter().any(|i| i == *id) && *s != segment)
                    {
                        return Some(format!(
                            "`{}` reacts to {id}, which is on the other side of a wait",
                            c.short()
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    //! Waits as steps of a plan, host-free: the executor runs the steps around a wait as scripts
    //! and polls the wait's probe, the host answered by a scripted connector.
    use super::super::record::{Log, ScriptedConnector};
    use super::super::{apply, ScriptOutput};
    use super::*;
    use crate::inventory::Host;
    use crate::plan::wait::{Reading, Stage, WaitStep};
    use crate::plan::{command, Plan, When};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    fn host() -> Host {
        Host {
            name: "node".into(),
            role: "hnode",
            host: "192.0.2.7".into(),
            port: 22,
        }
    }

    /// start; wait until the probe prints `up` (stages `warm`, `up`); then finish.
    fn plan(timeout_secs: u64) -> Plan {
        let wait = WaitStep {
            what: "the service".into(),
            setup: None,
            probe: "probe-service".into(),
            every_ms: 10,
            timeout_secs,
            reading: Reading::Stages {
                stages: vec![Stage::new("warm", "warming up"), Stage::new("up", "serving")],
                done: Some("up".into()),
                then_ssh: None,
                tools: vec![crate::local_tools::PING.into()],
            },
            timed_out: None,
        };
        Plan {
            title: "start the service".into(),
            hosts: vec![HostPlan {
                host: host(),
                exclusive: false,
                steps: vec![
                    command(&["start-service"], When::Always),
                    Step::WaitUntil(wait),
                    command(&["finish"], When::Always),
                ],
            }],
            confirm: true,
            redact: Vec::new(),
        }
    }

    /// The host: apply scripts succeed; the n-th probe (from 0) prints `probe(n)`.
    fn scripted(probe: fn(usize) -> &'static str) -> (ScriptedConnector, Log) {
        let log = Log::default();
        let rounds = Arc::new(AtomicUsize::new(0));
        let connector = ScriptedConnector {
            log: log.clone(),
            connect: Arc::new(|_| Ok(())),
            answer: Arc::new(move |_, script| {
                let output = if script.contains("rec() {") {
                    "@cloudctl 0 ok 0 - -\n".to_string()
                } else {
                    probe(rounds.fetch_add(1, Ordering::SeqCst)).to_string()
                };
                Ok(ScriptOutput { output, status: 0 })
            }),
        };
        (connector, log)
    }

    fn limits() -> Limits {
        Limits {
            forks: 1,
            host_timeout: Duration::from_secs(10),
        }
    }

    fn probes(log: &Log) -> usize {
        log.lock().unwrap().iter().filter(|(_, s)| s == "probe-service").count()
    }

    #[test]
    fn a_wait_that_is_done_after_some_rounds_lets_the_steps_after_it_run() {
        let (connector, log) = scripted(|n| match n {
            0 => "",
            1 | 2 => "warm\n",
            _ => "warm\nup\n",
        });
        let reports = apply(&plan(10), &connector, &limits(), &|_| {});
        let r = &reports[0];
        assert_eq!(r.status, HostStatus::Ok, "{r:?}");
        let statuses: Vec<_> = r.steps.iter().map(|s| s.result.status).collect();
        assert_eq!(statuses, [StepStatus::Ok; 3]);
        assert_eq!(r.steps[1].step, "wait for the service");
        assert_eq!(probes(&log), 4, "four rounds: nothing, warm, warm, up");
        // Start, the rounds, then finish: in that order, each script once.
        let log = log.lock().unwrap();
        assert!(log[0].1.contains("start-service") && log.last().unwrap().1.contains("finish"));
    }

    #[test]
    fn a_wait_that_times_out_names_the_last_stage_and_stops_the_host() {
        let (connector, log) = scripted(|n| if n == 0 { "" } else { "warm\n" });
        let reports = apply(&plan(1), &connector, &limits(), &|_| {});
        let r = &reports[0];
        assert_eq!(r.status, HostStatus::Failed);
        assert_eq!(
            r.steps[1].result.stderr,
            "gave up after 1 s waiting for: the service; last stage seen: warming up"
        );
        assert_eq!(r.steps[2].result.status, StepStatus::NotRun);
        assert!(probes(&log) >= 2, "it polled until the time ran out");
        assert!(log.lock().unwrap().iter().all(|(_, s)| !s.contains("finish")));
    }

    #[test]
    fn a_probe_that_fails_hard_ends_the_wait_at_once() {
        let (connector, log) = scripted(|_| "missing ping\n");
        let reports = apply(&plan(10), &connector, &limits(), &|_| {});
        let r = &reports[0];
        assert_eq!(r.status, HostStatus::Failed);
        let error = &r.steps[1].result.stderr;
        assert!(error.contains("node has no `ping` (package iputils-ping)"), "{error}");
        assert_eq!(probes(&log), 1, "no second round after a hard failure");
        assert_eq!(r.steps[2].result.status, StepStatus::NotRun);
    }

    #[test]
    fn a_reaction_to_a_file_not_in_the_plan_is_refused_naming_it_before_connecting() {
        let mut p = plan(10);
        let unknown = crate::plan::StepId::unchecked("cnof");
        p.hosts[0]
            .steps
            .push(command(&["reload"], When::Changed(vec![unknown])));
        let (connector, log) = scripted(|_| "up\n");
        let reports = apply(&p, &connector, &limits(), &|_| {});
        assert_eq!(reports[0].status, HostStatus::Failed);
        let error = reports[0].error.as_deref().unwrap();
        assert!(error.contains("`cnof`"), "{error}");
        assert!(log.lock().unwrap().is_empty(), "nothing ran");
    }

    #[test]
    fn a_reaction_to_a_file_across_a_wait_is_refused_before_anything_runs() {
        let mut p = plan(10);
        let steps = &mut p.hosts[0].steps;
        let mut built = crate::plan::Steps::new();
        let conf = built
            .file(crate::plan::config("conf", "/etc/service.conf", "x\n".into(), None).unwrap())
            .unwrap();
        steps.insert(0, built.build().unwrap().remove(0));
        steps.push(crate::plan::steps::on_change(&["reload"], &[&conf]));
        let (connector, log) = scripted(|_| "up\n");
        let reports = apply(&p, &connector, &limits(), &|_| {});
        assert_eq!(reports[0].status, HostStatus::Failed);
        let error = reports[0].error.as_deref().unwrap();
        assert!(error.contains("`reload` reacts to conf"), "{error}");
        assert!(log.lock().unwrap().is_empty(), "nothing ran");
    }

    #[test]
    fn a_dry_run_shows_the_wait_and_runs_no_probe() {
        let (connector, log) = scripted(|_| "warm\nup\n");
        let ctx = crate::commands::Context {
            dry_run: true,
            yes: false,
            forks: 1,
            ..crate::commands::Context::for_test(crate::ui::Ui::new(false, true, 0), None)
        };
        let exit = ctx.preview(&connector, &limits(), &plan(10)).unwrap();
        assert_eq!(exit, crate::error::Exit::Ok);
        assert!(log.lock().unwrap().is_empty(), "a dry run reaches no host");
        let shown = crate::ui::diff::host_preview(&plan(10).hosts[0], &[]);
        assert!(
            shown.contains("wait up to 10 s for the service (every 10 ms): warming up, then serving"),
            "{shown}"
        );
    }

    /// A phased plan on one host: `one`, `two`, `three` in turn, `tidy` on failure; the apply
    /// script holding `fails` fails.
    fn phased_run(fails: &'static str) -> (Result<(), PhaseFailed>, Vec<String>, Vec<String>) {
        use crate::plan::phased::{Phase, Phased};
        let phase = |name: &str| {
            let mut p = plan(10);
            // Exclusive: applied as a script, as a migration's phases are.
            p.hosts[0].exclusive = true;
            p.hosts[0].steps = vec![command(&[&format!("phase-{name}")], When::Always)];
            Phase::new(name, p)
        };
        let phased = Phased {
            phases: vec![
                phase("one"),
                phase("two").failing_as("two could not be done".into()),
                phase("three"),
            ],
            on_failure: vec![phase("tidy")],
        };
        let log = Log::default();
        let connector = ScriptedConnector {
            log: log.clone(),
            connect: Arc::new(|_| Ok(())),
            answer: Arc::new(move |_, script| {
                let fails = script.contains(&format!("phase-{fails}"));
                let output = if fails {
                    "@cloudctl 0 failed 1 - -\n"
                } else {
                    "@cloudctl 0 ok 0 - -\n"
                };
                Ok(ScriptOutput {
                    output: output.into(),
                    status: i32::from(fails),
                })
            }),
        };
        let mut applied = Vec::new();
        let mut heard = Vec::new();
        let got = run(
            &phased,
            &mut |p| {
                applied.push(p.name.clone());
                apply_phase(p, &connector, &limits(), &|_| {}).1
            },
            &mut |f| heard.push(format!("{}: {}", f.phase, f.why)),
        );
        let sent: Vec<String> = log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, s)| {
                let name = ["one", "two", "three", "tidy"]
                    .into_iter()
                    .find(|w| s.contains(&format!("phase-{w}")))?;
                Some(name.to_string())
            })
            .collect();
        assert_eq!(applied, sent, "each phase applied is what reached the host");
        assert_eq!(heard.len(), usize::from(got.is_err()));
        (got, applied, heard)
    }

    #[test]
    fn phases_run_in_order_and_on_failure_does_not_run_when_all_apply() {
        let (got, applied, _) = phased_run("nothing-fails");
        assert_eq!(got, Ok(()));
        assert_eq!(applied, ["one", "two", "three"]);
    }

    #[test]
    fn a_failed_phase_runs_on_failure_and_no_later_phase() {
        let (got, applied, heard) = phased_run("two");
        assert_eq!(
            got,
            Err(PhaseFailed {
                phase: "two".into(),
                why: "two could not be done".into()
            })
        );
        assert_eq!(applied, ["one", "two", "tidy"], "three never runs; tidy does");
        assert_eq!(heard, ["two: two could not be done"], "heard of before the tidying");
        // A phase without words of its own fails with its host's.
        let (got, applied, _) = phased_run("one");
        let why = got.unwrap_err().why;
        assert!(why.contains("node"), "{why}");
        assert_eq!(applied, ["one", "tidy"]);
    }
}
