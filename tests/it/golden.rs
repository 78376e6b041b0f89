//! Golden plans and scripts: planners are pure, so their output is compared byte for byte with
//! files under tests/golden (regenerate with CLOUDCTL_BLESS=1 after an intended change).

use cloudctl::exec::script;
use cloudctl::inventory;
use cloudctl::plan::{self, CommandStep, DirStep, FileStep, HostPlan, Step, When};
use std::path::PathBuf;

pub fn assert_golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("CLOUDCTL_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with CLOUDCTL_BLESS=1 to create it)", path.display()));
    assert!(expected == actual, "{name} differs from the golden file; if intended, rerun with CLOUDCTL_BLESS=1\n--- expected\n{expected}\n--- actual\n{actual}");
}

fn seed() -> inventory::Inventory {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/seed-lab.toml");
    inventory::load(&path).unwrap()
}

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

/// A host plan exercising every step kind: file with validator and owner, directory, restart on change.
pub fn sample_host_plan() -> HostPlan {
    let host = seed().select(&["confignode".into()]).unwrap().remove(0);
    HostPlan {
        host,
        exclusive: true,
        steps: vec![
            Step::Dir(DirStep {
                path: "/etc/demo".parse().unwrap(),
                mode: 0o755,
            }),
            Step::File(FileStep {
                id: "demo.conf".into(),
                path: "/etc/demo/demo.conf".parse().unwrap(),
                content: b"option = 1\n".to_vec(),
                mode: 0o644,
                owner: Some("root:root".into()),
                validate: Some(vec!["grep".into(), "-q".into(), "option".into(), "{}".into()]),
                secret: false,
            }),
            Step::Command(CommandStep {
                argv: vec!["service".into(), "demo".into(), "restart".into()],
                when: When::Changed(vec!["demo.conf".into()]),
            }),
        ],
    }
}

#[test]
fn apply_script_first_run_and_no_change_run() {
    let hp = sample_host_plan();
    assert_golden("apply-first.sh", &script::apply_script(&hp, &[], 600));
    // When the probe saw the planned content, the file is not sent again.
    let sha = script::sha256_hex(b"option = 1\n");
    let second = script::apply_script(&hp, &[None, Some(sha.clone()), None], 600);
    assert!(
        !second.contains("CLOUDCTL_EOF"),
        "unchanged content must not be re-sent"
    );
    assert!(second.contains(&format!("= {sha} ] || {{ echo '@cloudctl stale'")));
    assert_golden("apply-unchanged.sh", &second);
}

#[test]
fn probe_script_and_parsing() {
    let s = script::probe_script(&["/etc/a b", "/etc/c"], true);
    assert_golden("probe.sh", &s);
    let parsed = script::parse_probe("@cloudctl probe 0 abc aGk=\n@cloudctl probe 1 - -\n", 2).unwrap();
    assert_eq!(parsed[0].sha.as_deref(), Some("abc"));
    assert_eq!(parsed[0].content.as_deref(), Some(&b"hi"[..]));
    assert_eq!(parsed[1], script::Probed::default());
    assert!(
        script::parse_probe("@cloudctl probe 0 abc -\n", 2).is_err(),
        "a missing path is an error, not a guess"
    );
}
