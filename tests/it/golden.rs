//! Golden plans and scripts: planners are pure, so their output is compared byte for byte with
//! files under tests/golden (regenerate with CLOUDCTL_BLESS=1 after an intended change).

use crate::support::fixtures::seed;
use crate::support::golden::{assert_golden, sample_host_plan};
use cloudctl::exec::{files, script};
use cloudctl::plan::{self, CommandStep, Step, When};

#[test]
fn run_plan_for_the_seed_lab() {
    let inv = seed();
    let hosts = inv.select(&["snode".into(), "hnode1".into()]).unwrap();
    let p = plan::run::plan(&hosts, &["df -h | tail -1".into()]);
    assert_golden("run-seed-lab.json", &serde_json::to_string_pretty(&p).unwrap());
    let argv = plan::run::plan(&hosts, &["touch".into(), "a b".into()]);
    assert_eq!(
        argv.hosts[0].steps,
        vec![Step::Command(CommandStep {
            argv: vec!["touch".into(), "a b".into()],
            when: When::Always
        })]
    );
}

#[test]
fn apply_script_first_run_and_no_change_run() {
    let hp = sample_host_plan();
    assert_golden("apply-first.sh", &script::apply_script(&hp, &[], 600));
    // When the probe saw the planned content, the file is not sent again.
    let sha = script::sha256_hex(b"option = 1\n");
    let seen = script::Probed {
        sha: Some(sha.clone()),
        meta: Some("644 root:root".into()),
        content: None,
    };
    let second = script::apply_script(&hp, &[None, Some(seen), None], 600);
    assert!(!second.contains("base64 -d"), "unchanged content must not be re-sent");
    assert!(
        second.contains(&format!("{sha}  /etc/demo/demo.conf")),
        "the stale guard checks it"
    );
    assert!(second.contains("rec 1 ok"), "mode and owner match: nothing to do");
    assert_golden("apply-unchanged.sh", &second);
}

#[test]
fn probe_script_and_parsing() {
    let s = files::probe_script(&["/etc/a b", "/etc/c", "/etc/back\\slash"]);
    assert_golden("probe.sh", &s);
    let sha = "ab".repeat(32);
    let out = format!(
        "@cloudctl sha {sha}  /etc/a b\n@cloudctl meta 600 root:adm /etc/a b\n\
         @cloudctl sha \\{sha}  /etc/back\\\\slash\n@cloudctl probed\n"
    );
    let parsed = files::parse_probe(&out, &["/etc/a b", "/etc/c", "/etc/back\\slash"]).unwrap();
    assert_eq!(parsed[0].sha.as_deref(), Some(sha.as_str()));
    assert_eq!(parsed[0].meta.as_deref(), Some("600 root:adm"));
    assert_eq!(parsed[1], script::Probed::default(), "absent");
    assert_eq!(
        parsed[2].sha.as_deref(),
        Some(sha.as_str()),
        "sha256sum's escaped name is read back"
    );
    assert!(
        files::parse_probe(&format!("@cloudctl sha {sha}  /etc/a b\n"), &["/etc/a b"]).is_err(),
        "a probe that did not finish is an error, not a guess"
    );
}
