//! Round trips per host, counted with the recording transport: what goes over the wire.

use cloudctl::exec::record::{Log, RecordConnector};
use cloudctl::exec::script::sha256_hex;
use cloudctl::exec::{apply, HostStatus, Limits, ScriptOutput};
use cloudctl::plan::{HostPlan, Plan, Step, When};
use std::time::Duration;

fn run(hp: HostPlan, answers: Vec<&str>) -> (Vec<(String, String)>, HostStatus) {
    let log = Log::default();
    let connector = RecordConnector {
        log: log.clone(),
        answers: answers
            .into_iter()
            .map(|a| ScriptOutput {
                output: a.into(),
                status: 0,
            })
            .collect(),
    };
    let plan = Plan {
        title: "t".into(),
        confirm: false,
        redact: Vec::new(),
        hosts: vec![hp],
    };
    let reports = apply(
        &plan,
        &connector,
        &Limits {
            forks: 1,
            host_timeout: Duration::from_secs(5),
        },
        &|_| {},
    );
    let scripts = log.lock().unwrap().clone();
    (scripts, reports[0].status)
}

/// What the probe reports for the sample plan's file holding `sha`, with its planned mode and owner.
fn probed(sha: &str) -> String {
    format!("@cloudctl sha {sha}  /etc/demo/demo.conf\n@cloudctl meta 644 root:root /etc/demo/demo.conf\n@cloudctl probed\n")
}

#[test]
fn a_command_only_plan_is_one_round_trip() {
    let mut hp = crate::support::golden::sample_host_plan();
    hp.steps.retain(|s| matches!(s, Step::Command(_)));
    // Its restart reacted to the file just dropped, which the executor now refuses before
    // connecting: a command that is skipped by its own check stands in for it.
    for step in &mut hp.steps {
        if let Step::Command(c) = step {
            c.when = When::Unless(vec!["true".into()]);
        }
    }
    let (scripts, status) = run(hp, vec!["@cloudctl 0 skipped - - -\n"]);
    assert_eq!(scripts.len(), 1);
    assert_eq!(status, HostStatus::Ok);
}

#[test]
fn unchanged_files_cost_one_probe_and_are_not_resent() {
    let hp = crate::support::golden::sample_host_plan();
    let sha = sha256_hex(b"option = 1\n");
    let (scripts, status) = run(
        hp,
        vec![
            &probed(&sha),
            "@cloudctl 0 ok - - -\n@cloudctl 1 ok - - -\n@cloudctl 2 skipped - - -\n",
        ],
    );
    assert_eq!(scripts.len(), 2, "probe + apply");
    assert!(!scripts[1].1.contains("base64 -d"), "content not sent again");
    assert_eq!(status, HostStatus::Ok);
}

#[test]
fn a_stale_probe_is_retried_with_full_content() {
    let hp = crate::support::golden::sample_host_plan();
    let sha = sha256_hex(b"option = 1\n");
    let (scripts, status) = run(
        hp,
        vec![
            &probed(&sha),
            "@cloudctl stale\n",
            "@cloudctl 0 ok - - -\n@cloudctl 1 changed - - -\n@cloudctl 2 changed 0 - -\n",
        ],
    );
    assert_eq!(scripts.len(), 3);
    assert!(scripts[2].1.contains("base64 -d"), "the retry sends the content");
    assert_eq!(status, HostStatus::Changed);
}

#[test]
fn a_script_that_dies_without_reporting_is_a_failure() {
    let hp = crate::support::golden::sample_host_plan();
    let (_, status) = run(hp, vec!["@cloudctl probed\n", "sh: 3: Syntax error\n"]);
    assert_eq!(status, HostStatus::Failed);
}
