//! Values that would inject into a shell line stay literal: the real generated script is run by a
//! real `sh` (local transport) with hostile paths, contents and arguments.

use cloudctl::exec::local::LocalConnector;
use cloudctl::exec::{apply, HostStatus, Limits};
use cloudctl::inventory::Host;
use cloudctl::plan::{CommandStep, DirStep, FileStep, HostPlan, Plan, Step, When};
use std::time::Duration;

fn local_plan(steps: Vec<Step>) -> Plan {
    let host = Host {
        name: "local".into(),
        role: "hnode",
        host: "localhost".into(),
        port: 22,
    };
    Plan {
        title: "test".into(),
        confirm: false,
        redact: Vec::new(),
        hosts: vec![HostPlan {
            host,
            exclusive: false,
            steps,
        }],
    }
}

fn limits() -> Limits {
    Limits {
        forks: 1,
        host_timeout: Duration::from_secs(30),
    }
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "root test: the apply script keeps backups in /var/lib/cloudctl (needs root)"
)]
fn hostile_values_are_never_executed() {
    crate::support::require_lab(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().display().to_string();
    // Relative to the test's working directory: no '/' in the hostile value, so it stays one path component.
    let pwned = std::env::current_dir().unwrap().join("PWNED");
    let evil = "$(touch PWNED) `touch PWNED`; touch PWNED '\" \\".to_string();
    // Paths can no longer hold such values (RemotePath's alphabet, tests/it/hostile_input.rs), so
    // they are carried by the content and the arguments, which may hold anything.
    let dir = format!("{base}/d");
    let file = format!("{dir}/f");
    let out = format!("{base}/out");
    let mut content = format!("CLOUDCTL_EOF\n{evil}\nEOF\n").into_bytes();
    content.extend_from_slice(&[0, 159, 255, b'\n']);
    let steps = vec![
        Step::Dir(DirStep {
            path: dir.parse().unwrap(),
            mode: 0o750,
        }),
        Step::File(FileStep {
            id: "evil".into(),
            path: file.parse().unwrap(),
            content: content.clone(),
            mode: 0o600,
            owner: None,
            validate: Some(vec!["test".into(), "-s".into(), "{}".into()]),
            secret: false,
            masked: Vec::new(),
        }),
        Step::Command(CommandStep {
            argv: vec![
                "sh".into(),
                "-c".into(),
                "printf %s \"$1\" > \"$2\"".into(),
                "x".into(),
                evil.clone(),
                out.clone(),
            ],
            when: When::Changed(vec![cloudctl::plan::StepId::unchecked("evil")]),
        }),
    ];
    let plan = local_plan(steps);
    let reports = apply(&plan, &LocalConnector, &limits(), &|_| {});
    assert_eq!(reports[0].status, HostStatus::Changed, "{:?}", reports[0]);
    assert_eq!(std::fs::read(&file).unwrap(), content, "content arrives byte for byte");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        evil,
        "arguments arrive literally"
    );
    assert!(!pwned.exists(), "a hostile value was executed");

    let again = apply(&plan, &LocalConnector, &limits(), &|_| {});
    assert_eq!(
        again[0].status,
        HostStatus::Ok,
        "second identical apply changes nothing: {:?}",
        again[0]
    );
    assert!(!pwned.exists());
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "root test: the apply script keeps backups in /var/lib/cloudctl (needs root)"
)]
fn failed_validator_keeps_old_file_and_skips_dependents() {
    crate::support::require_lab(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("app.conf");
    let marker = tmp.path().join("restarted");
    std::fs::write(&target, "good = 1\n").unwrap();
    let steps = vec![
        Step::File(FileStep {
            id: "app.conf".into(),
            path: target.display().to_string().parse().unwrap(),
            content: b"bad\n".to_vec(),
            mode: 0o644,
            owner: None,
            validate: Some(vec!["grep".into(), "-q".into(), "good".into(), "{}".into()]),
            secret: false,
            masked: Vec::new(),
        }),
        Step::Command(CommandStep {
            argv: vec!["touch".into(), marker.display().to_string()],
            when: When::Changed(vec![cloudctl::plan::StepId::unchecked("app.conf")]),
        }),
    ];
    let reports = apply(&local_plan(steps), &LocalConnector, &limits(), &|_| {});
    assert_eq!(reports[0].status, HostStatus::Invalid, "{:?}", reports[0]);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "good = 1\n");
    assert!(
        !marker.exists(),
        "the service must not be restarted after a refused file"
    );
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temp file left beside the target: {leftovers:?}");
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "root test: the apply script keeps backups in /var/lib/cloudctl (needs root)"
)]
fn changed_file_keeps_a_backup_and_triggers_restart() {
    crate::support::require_lab(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("app.conf");
    let marker = tmp.path().join("restarted");
    std::fs::write(&target, "old\n").unwrap();
    let steps = vec![
        Step::File(FileStep {
            id: "app.conf".into(),
            path: target.display().to_string().parse().unwrap(),
            content: b"new\n".to_vec(),
            mode: 0o640,
            owner: None,
            validate: None,
            secret: true,
            masked: Vec::new(),
        }),
        Step::Command(CommandStep {
            argv: vec!["touch".into(), marker.display().to_string()],
            when: When::Changed(vec![cloudctl::plan::StepId::unchecked("app.conf")]),
        }),
    ];
    let reports = apply(&local_plan(steps), &LocalConnector, &limits(), &|_| {});
    assert_eq!(reports[0].status, HostStatus::Changed);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "new\n");
    assert_eq!(
        std::fs::read_to_string(format!("{}{}", cloudctl::exec::script::BACKUP_DIR, target.display())).unwrap(),
        "old\n"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o640);
    assert!(marker.exists());
}

/// A run of files in one folder is one batch: a validator sees the earlier files active (here
/// it reads one), the files after a refused one are not activated, and no staging folder stays.
#[test]
fn a_batch_activates_in_order_and_stops_at_a_refused_file() {
    let tmp = tempfile::tempdir().unwrap();
    let path = |n: &str| tmp.path().join(n).display().to_string();
    let file = |name: &str, content: &str, validate: Option<Vec<String>>| {
        Step::File(FileStep {
            id: name.into(),
            path: path(name).parse().unwrap(),
            content: content.as_bytes().to_vec(),
            mode: 0o644,
            owner: None,
            validate,
            secret: false,
            masked: Vec::new(),
        })
    };
    // b.conf is valid only if a.conf, written just before it, is already in place.
    let check = "grep -q a \"$1\" && grep -q b \"$2\"";
    let needs_a = ["sh", "-c", check, "sh", &path("a.conf"), "{}"]
        .map(String::from)
        .to_vec();
    let refuse = vec!["grep".into(), "-q".into(), "never".into(), "{}".into()];
    let steps = vec![
        file("a.conf", "a\n", None),
        file("b.conf", "b\n", Some(needs_a)),
        file("c.conf", "c\n", Some(refuse)),
        file("d.conf", "d\n", None),
    ];
    let reports = apply(&local_plan(steps), &LocalConnector, &limits(), &|_| {});
    let statuses: Vec<_> = reports[0].steps.iter().map(|s| s.result.status).collect();
    use cloudctl::exec::script::StepStatus::*;
    assert_eq!(statuses, [Changed, Changed, Invalid, NotRun], "{:?}", reports[0]);
    assert_eq!(std::fs::read_to_string(path("b.conf")).unwrap(), "b\n");
    assert!(!tmp.path().join("c.conf").exists() && !tmp.path().join("d.conf").exists());
    let mut left: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["a.conf", "b.conf"], "no staging folder left behind");
}
