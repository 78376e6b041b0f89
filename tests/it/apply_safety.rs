//! Failure safety of the apply script, run by a real local `sh` (as root: it keeps backups and
//! markers in /var/lib/cloudctl): secrets never readable by others
//! while uploaded, a failed restart rolled back to the previous files, a run cut off between
//! activating a file and restarting its daemon healed by the next run, backups kept out of the
//! target's folder.

use cloudctl::exec::local::LocalConnector;
use cloudctl::exec::script::{self, BACKUP_DIR};
use cloudctl::exec::{apply, HostReport, HostStatus, Limits};
use cloudctl::inventory::Host;
use cloudctl::plan::{CommandStep, FileStep, HostPlan, Plan, Step, When};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn run(steps: Vec<Step>) -> HostReport {
    run_redacting(steps, Vec::new())
}

fn run_redacting(steps: Vec<Step>, redact: Vec<String>) -> HostReport {
    let plan = Plan {
        title: "test".into(),
        confirm: false,
        redact,
        hosts: vec![HostPlan {
            host: Host {
                name: "local".into(),
                role: "hnode",
                host: "localhost".into(),
                port: 22,
            },
            exclusive: false,
            steps,
        }],
    };
    let limits = Limits {
        forks: 1,
        host_timeout: Duration::from_secs(60),
    };
    apply(&plan, &LocalConnector, &limits, &|_| {}).remove(0)
}

fn file(id: &str, path: &Path, content: &[u8], mode: u32, secret: bool) -> Step {
    Step::File(FileStep {
        id: id.into(),
        path: path.display().to_string().parse().unwrap(),
        content: content.to_vec(),
        mode,
        owner: None,
        validate: None,
        secret,
        masked: Vec::new(),
    })
}

fn sh(program: &str, when: When) -> Step {
    Step::Command(CommandStep {
        argv: vec!["sh".into(), "-c".into(), program.into()],
        when,
    })
}

/// Removes what a test left under the host's backup and pending folders (it ran on this machine).
struct Tidy(Vec<String>);
impl Drop for Tidy {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_dir_all(p);
            let _ = std::fs::remove_file(p);
        }
    }
}

fn backup_of(target: &Path) -> String {
    format!("{BACKUP_DIR}{}", target.display())
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "root test: the apply script keeps backups in /var/lib/cloudctl (needs root)"
)]
fn a_secret_is_never_readable_by_others_while_it_is_uploaded() {
    crate::support::require_lab(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let target = dir.join("drbd.secret");
    let _tidy = Tidy(vec![format!("{BACKUP_DIR}{}", dir.display())]);
    // Large enough that writing the temp file takes a while; the poll below watches every entry
    // of the folder (temp file and target) for a mode that lets group or others read it.
    let content = vec![b's'; 24 << 20];
    let done = AtomicBool::new(false);
    let (seen, polls) = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut bad = Vec::new();
            let mut polls = 0u64;
            while !done.load(Ordering::SeqCst) && polls < 50_000_000 {
                polls += 1;
                for e in std::fs::read_dir(&dir).unwrap().flatten() {
                    if let Ok(m) = e.metadata() {
                        if m.permissions().mode() & 0o077 != 0 {
                            bad.push((e.file_name(), m.permissions().mode() & 0o777));
                        }
                    }
                }
            }
            (bad, polls)
        });
        let report = run(vec![file("secret", &target, &content, 0o600, true)]);
        done.store(true, Ordering::SeqCst);
        assert_eq!(report.status, HostStatus::Changed, "{report:?}");
        watcher.join().unwrap()
    });
    assert!(polls > 10, "the poll must have run during the upload ({polls} rounds)");
    assert!(
        seen.is_empty(),
        "readable by others at some moment: {:?}",
        &seen[..seen.len().min(5)]
    );
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "root test: the apply script keeps backups in /var/lib/cloudctl (needs root)"
)]
fn a_failed_restart_restores_the_previous_file_and_restarts_again() {
    crate::support::require_lab(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("daemon.conf");
    let running = tmp.path().join("running");
    let _tidy = Tidy(vec![backup_of(tmp.path())]);
    // A "daemon" that starts only on a config saying "good": what it started with is recorded.
    let restart = format!(
        "grep -q good {c} || {{ echo 'daemon: cannot start with this config' >&2; rm -f {r}; exit 1; }}; cp {c} {r}",
        c = conf.display(),
        r = running.display()
    );
    let steps = |content: &str| {
        vec![
            file("daemon.conf", &conf, content.as_bytes(), 0o644, false),
            sh(
                &restart,
                When::Changed(vec![cloudctl::plan::StepId::unchecked("daemon.conf")]),
            ),
        ]
    };
    assert_eq!(run(steps("good 1\n")).status, HostStatus::Changed);
    assert_eq!(std::fs::read_to_string(&running).unwrap(), "good 1\n");

    let failed = run(steps("bad 2\n"));
    assert_eq!(failed.status, HostStatus::Failed, "{failed:?}");
    assert_eq!(
        cloudctl::error::Exit::from_reports(std::slice::from_ref(&failed)) as i32,
        1
    );
    let restart_step = &failed.steps[1].result;
    assert!(
        restart_step.stderr.contains("cannot start with this config")
            && restart_step
                .stderr
                .contains(&format!("restored the previous {}", conf.display()))
            && restart_step
                .stderr
                .contains("it succeeded, the previous configuration is running"),
        "names the failure and the rollback: {restart_step:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "good 1\n",
        "old file active again"
    );
    assert_eq!(
        std::fs::read_to_string(&running).unwrap(),
        "good 1\n",
        "daemon runs the old file"
    );

    // Nothing is left pending: the next run of the good config has nothing to do.
    assert_eq!(run(steps("good 1\n")).status, HostStatus::Ok);
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "root test: the apply script keeps backups in /var/lib/cloudctl (needs root)"
)]
fn a_run_cut_off_between_activation_and_restart_is_healed_by_the_next_run() {
    crate::support::require_lab(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("daemon.conf");
    let restarts = tmp.path().join("restarts");
    let restart = format!("echo restarted >> {}", restarts.display());
    let restart_step = sh(
        &restart,
        When::Changed(vec![cloudctl::plan::StepId::unchecked("daemon.conf")]),
    );
    let Step::Command(c) = &restart_step else {
        unreachable!()
    };
    let _tidy = Tidy(vec![backup_of(tmp.path()), script::pending_marker(c)]);
    let good = |content: &str| {
        vec![
            file("daemon.conf", &conf, content.as_bytes(), 0o644, false),
            restart_step.clone(),
        ]
    };
    assert_eq!(run(good("v1\n")).status, HostStatus::Changed);

    // The script is killed (as by a dropped connection or a reboot) right after the new file is
    // active and before its daemon is restarted.
    let cut = vec![
        file("daemon.conf", &conf, b"v2\n", 0o644, false),
        sh("kill -9 $PPID", When::Always),
        restart_step.clone(),
    ];
    assert_ne!(run(cut).status, HostStatus::Changed);
    assert_eq!(std::fs::read_to_string(&conf).unwrap(), "v2\n");
    assert_eq!(
        std::fs::read_to_string(&restarts).unwrap(),
        "restarted\n",
        "not restarted yet"
    );

    let healed = run(good("v2\n"));
    assert_eq!(
        healed.status,
        HostStatus::Changed,
        "the pending restart runs: {healed:?}"
    );
    assert_eq!(std::fs::read_to_string(&restarts).unwrap(), "restarted\nrestarted\n");
    assert_eq!(run(good("v2\n")).status, HostStatus::Ok, "and only once");
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "root test: the apply script keeps backups in /var/lib/cloudctl (needs root)"
)]
fn backups_are_kept_out_of_the_target_folder() {
    crate::support::require_lab(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let page = tmp.path().join("index.php");
    let _tidy = Tidy(vec![backup_of(tmp.path())]);
    std::fs::write(&page, "<?php $password = 'old';\n").unwrap();
    let report = run(vec![file("page", &page, b"<?php echo 1;\n", 0o644, false)]);
    assert_eq!(report.status, HostStatus::Changed, "{report:?}");
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["index.php"], "no backup or temp file in a served folder");
    let backup = backup_of(&page);
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), "<?php $password = 'old';\n");
    let top = std::fs::metadata(cloudctl::exec::script::STATE_DIR).unwrap();
    assert_eq!(top.permissions().mode() & 0o777, 0o700, "the state folder is private");
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "root test: the apply script keeps backups in /var/lib/cloudctl (needs root)"
)]
fn a_secret_a_remote_program_echoes_is_masked_in_the_report() {
    crate::support::require_lab(&[]);
    // What drbdadm prints when `adjust` fails: the drbdsetup command line, secret included.
    let secret = "0123456789abcdef0123456789abcdef0123456789abcdef";
    let failing = format!(
        "echo 'drbdsetup-84 net r0 ipv4:10.0.0.11:7789 ipv4:10.0.0.12:7789 --cram-hmac-alg=sha256 --shared-secret={secret} failed' >&2; echo 'out {secret}'; exit 10"
    );
    let report = run_redacting(vec![sh(&failing, When::Always)], vec![secret.into()]);
    assert_eq!(report.status, HostStatus::Failed, "{report:?}");
    let shown = serde_json::to_string(&report).unwrap();
    assert!(!shown.contains(secret), "the secret reaches the report: {shown}");
    assert!(
        shown.contains(&format!("--shared-secret={}", cloudctl::exec::REDACTED)),
        "the rest of the message is kept: {shown}"
    );
}
