//! End to end against real lab hosts (network namespaces running sshd): `run`, host keys,
//! unreachable hosts, file activation with validators, idempotence and the remote lock.

use crate::support::{cloudctl, text, Lab};
use cloudctl::exec::ssh::SshConnector;
use cloudctl::exec::{apply, HostReport, HostStatus, Limits};
use cloudctl::inventory;
use cloudctl::plan::{CommandStep, DirStep, FileStep, HostPlan, Plan, Step, When};
use std::time::Duration;

fn apply_to_lab(lab: &Lab, build: impl Fn(&cloudctl::inventory::Host) -> Vec<Step>) -> Vec<HostReport> {
    let inv = inventory::load(&lab.state.inventory).unwrap();
    let hosts = inv.select(&["all".into()]).unwrap();
    let plan = Plan {
        title: "test".into(),
        confirm: false,
        redact: Vec::new(),
        hosts: hosts
            .iter()
            .map(|h| HostPlan {
                host: h.clone(),
                exclusive: true,
                steps: build(h),
            })
            .collect(),
    };
    apply(
        &plan,
        &SshConnector::from_inventory(&inv),
        &Limits {
            forks: 8,
            host_timeout: Duration::from_secs(60),
        },
        &|_| {},
    )
}

fn app_steps(content: &str) -> Vec<Step> {
    vec![
        Step::Dir(DirStep {
            path: "/srv/app".parse().unwrap(),
            mode: 0o755,
        }),
        Step::File(FileStep {
            id: "app.conf".into(),
            path: "/srv/app/app.conf".parse().unwrap(),
            content: content.as_bytes().to_vec(),
            mode: 0o644,
            owner: Some("root:root".into()),
            validate: Some(vec!["grep".into(), "-q".into(), "^ok".into(), "{}".into()]),
            secret: false,
            masked: Vec::new(),
        }),
        Step::Command(CommandStep {
            argv: vec!["sh".into(), "-c".into(), "echo restarted >> /srv/app/restarts".into()],
            when: When::Changed(vec![cloudctl::plan::StepId::unchecked("app.conf")]),
        }),
        Step::Command(CommandStep {
            argv: vec!["true".into()],
            when: When::Always,
        }),
    ]
}

fn statuses(reports: &[HostReport]) -> Vec<HostStatus> {
    reports.iter().map(|r| r.status).collect()
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn run_reaches_every_host_and_reports_the_unreachable_one() {
    crate::support::require_lab(&[]);
    let lab = Lab::up("trun", 3, 61);
    let inv = lab.inventory();
    let out = cloudctl(&["-i", &inv, "run", "--", "hostname"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for name in ["confignode", "hnode1", "hnode2"] {
        assert!(
            stdout.lines().any(|l| l.split(" | ").map(str::trim).eq([name, name])),
            "{name} missing:\n{stdout}"
        );
    }
    let failing = cloudctl(&[
        "-i",
        &inv,
        "run",
        "--on",
        "hnode1",
        "--",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(failing.status.code(), Some(1));
    assert!(
        text(&failing.stderr).contains("hnode1 ! err") && text(&failing.stderr).contains("hnode1 = exit 3"),
        "{}",
        text(&failing.stderr)
    );

    // A node whose address answers nothing, among reachable ones.
    lab.append_inventory(&format!(
        "\n[[node]]\nname = \"ghost\"\nrole = \"hnode\"\naddress = \"{}:2222\"\n",
        lab.state.hosts[0].ip
    ));
    let out = cloudctl(&["--json", "-i", &inv, "run", "--", "hostname"]);
    assert_eq!(out.status.code(), Some(4), "unreachable exit code");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hosts = doc["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 4);
    for h in hosts {
        let name = h["name"].as_str().unwrap();
        if name == "ghost" {
            assert_eq!(h["status"], "unreachable");
            assert!(h["error"].as_str().unwrap().contains("2222"));
        } else {
            assert_eq!(h["status"], "ok", "{h}");
            assert_eq!(h["stdout"].as_str().unwrap().trim(), name);
            assert_eq!(h["exit_status"], 0);
        }
    }
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn ctrl_c_finishes_hosts_in_flight_and_starts_no_more() {
    crate::support::require_lab(&[]);
    let lab = Lab::up("tint", 3, 65);
    let child = std::process::Command::new(crate::support::bin())
        .args([
            "-i",
            &lab.inventory(),
            "--forks",
            "1",
            "run",
            "--",
            "sleep 1; echo slept",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: signalling the child we spawned, by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let err = text(&out.stderr);
    assert!(
        text(&out.stdout).contains("confignode | slept"),
        "the host in flight finished"
    );
    for name in ["hnode1", "hnode2"] {
        assert!(
            err.lines().any(|l| l.starts_with(name) && l.contains("= not started")),
            "{name}: {err}"
        );
    }
}

/// Writes a copy of the lab inventory with another known_hosts file and policy.
fn inventory_with(lab: &Lab, known_hosts: &str, policy: &str) -> String {
    let text = std::fs::read_to_string(&lab.state.inventory).unwrap();
    let text = text
        .replace(
            &format!("known_hosts = \"{}\"", lab.state.known_hosts.display()),
            &format!("known_hosts = \"{known_hosts}\""),
        )
        .replace(
            "host_key_policy = \"strict\"",
            &format!("host_key_policy = \"{policy}\""),
        );
    assert!(text.contains(known_hosts), "the lab inventory names its known_hosts");
    let path = lab.dir.path().join(format!("{policy}.toml"));
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn host_keys_strict_accept_new_trust_and_changed() {
    crate::support::require_lab(&[]);
    let lab = Lab::up("tkeys", 2, 62);
    let hnode = &lab.state.hosts[1];
    let kh = lab.dir.path().join("kh-empty").display().to_string();

    // strict + unknown: refused with the fingerprint and the command that trusts it.
    let strict = inventory_with(&lab, &kh, "strict");
    let out = cloudctl(&["-i", &strict, "run", "--", "true"]);
    assert_eq!(out.status.code(), Some(5));
    let err = text(&out.stderr);
    assert!(
        err.contains(&hnode.fingerprint) && err.contains("cloudctl host trust hnode1"),
        "{err}"
    );
    assert!(!std::path::Path::new(&kh).exists(), "strict never pins");

    // host trust without a TTY needs --yes; with it, pins and shows fingerprints.
    let out = cloudctl(&["-i", &strict, "host", "trust", "all"]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    let out = cloudctl(&["-i", &strict, "--yes", "host", "trust", "all"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&hnode.fingerprint));
    assert_eq!(cloudctl(&["-i", &strict, "run", "--", "true"]).status.code(), Some(0));

    // accept-new pins on first use.
    let kh2 = lab.dir.path().join("kh-new").display().to_string();
    let accept = inventory_with(&lab, &kh2, "accept-new");
    assert_eq!(cloudctl(&["-i", &accept, "run", "--", "true"]).status.code(), Some(0));
    let pinned = std::fs::read_to_string(&kh2).unwrap();
    assert_eq!(pinned.lines().count(), 2, "{pinned}");

    // The host gets a new key: refused under both policies, naming old and new fingerprints.
    let key = hnode.host_key.display().to_string();
    let rekey = format!(
        "rm -f {key} {key}.pub && ssh-keygen -q -t ed25519 -N '' -f {key} && kill -HUP {}",
        hnode.sshd_pid
    );
    let out = std::process::Command::new("sh").args(["-c", &rekey]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let new_fp = text(
        &std::process::Command::new("ssh-keygen")
            .args(["-lf", &format!("{key}.pub")])
            .output()
            .unwrap()
            .stdout,
    )
    .split_whitespace()
    .nth(1)
    .unwrap()
    .to_string();
    let mut last = None;
    for _ in 0..50 {
        let out = cloudctl(&["-i", &accept, "run", "--", "hostname"]);
        if out.status.code() == Some(5) {
            last = Some(out);
            break;
        }
        std::thread::sleep(Duration::from_millis(100)); // sshd re-executing after SIGHUP
    }
    let out = last.expect("changed key refused within 5 s");
    let err = text(&out.stderr);
    assert!(
        err.contains("HOST KEY CHANGED") && err.contains(&hnode.fingerprint) && err.contains(&new_fp),
        "{err}"
    );
    assert!(
        text(&out.stdout).contains("confignode | confignode"),
        "the other host still ran"
    );
    assert_eq!(
        std::fs::read_to_string(&kh2).unwrap(),
        pinned,
        "a changed key is never re-pinned silently"
    );
    assert_eq!(cloudctl(&["-i", &strict, "run", "--", "true"]).status.code(), Some(5));

    // An expected change is accepted explicitly.
    let out = cloudctl(&["-i", &accept, "--yes", "host", "trust", "hnode1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("CHANGED"));
    assert_eq!(cloudctl(&["-i", &accept, "run", "--", "true"]).status.code(), Some(0));
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn files_are_validated_activated_once_and_restart_only_on_change() {
    crate::support::require_lab(&[]);
    let lab = Lab::up("tfile", 3, 63);
    let first = apply_to_lab(&lab, |_| app_steps("ok = 1\n"));
    assert_eq!(statuses(&first), [HostStatus::Changed; 3], "{first:?}");
    let second = apply_to_lab(&lab, |_| app_steps("ok = 1\n"));
    assert_eq!(
        statuses(&second),
        [HostStatus::Ok; 3],
        "second identical apply: {second:?}"
    );

    let refused = apply_to_lab(&lab, |_| app_steps("broken\n"));
    assert_eq!(statuses(&refused), [HostStatus::Invalid; 3]);
    assert_eq!(cloudctl::error::Exit::from_reports(&refused) as i32, 3);
    for i in 0..3 {
        let out = lab.sh(i, "cat /srv/app/app.conf; cat /srv/app/restarts; ls -A /srv/app");
        assert_eq!(
            text(&out.stdout),
            "ok = 1\nrestarted\napp.conf\nrestarts\n",
            "host {i}: old file kept, one restart, no temp file"
        );
    }

    let changed = apply_to_lab(&lab, |_| app_steps("ok = 2\n"));
    assert_eq!(statuses(&changed), [HostStatus::Changed; 3]);
    let out = lab.sh(
        1,
        "cat /srv/app/app.conf /var/lib/cloudctl/backups/srv/app/app.conf; wc -l < /srv/app/restarts; ls -A /srv/app",
    );
    assert_eq!(
        text(&out.stdout),
        "ok = 2\nok = 1\n2\napp.conf\nrestarts\n",
        "new file, backup of the old (outside the folder), second restart"
    );
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn concurrent_runs_on_one_host_serialise() {
    crate::support::require_lab(&[]);
    let lab = Lab::up("tlock", 1, 64);
    let big = |fill: u8| {
        let mut v = vec![fill; 1 << 20];
        v.push(b'\n');
        v
    };
    let steps = |fill: u8| {
        vec![
            Step::File(FileStep {
                id: "big".into(),
                path: "/srv/big".parse().unwrap(),
                content: big(fill),
                mode: 0o644,
                owner: None,
                validate: None,
                secret: false,
                masked: Vec::new(),
            }),
            Step::Command(CommandStep {
                argv: vec![
                    "sh".into(),
                    "-c".into(),
                    "echo start >> /srv/log; sleep 1; echo end >> /srv/log".into(),
                ],
                when: When::Always,
            }),
        ]
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| apply_to_lab(&lab, |_| steps(b'a')));
        let b = s.spawn(|| apply_to_lab(&lab, |_| steps(b'b')));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(statuses(&a), [HostStatus::Changed]);
    assert_eq!(statuses(&b), [HostStatus::Changed]);
    let out = lab.sh(0, "cat /srv/log; sha256sum < /srv/big | cut -c1-64");
    let text = text(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(
        lines.by_ref().take(4).collect::<Vec<_>>(),
        ["start", "end", "start", "end"],
        "runs overlapped"
    );
    let sha = lines.next().unwrap();
    let whole = [
        cloudctl::exec::script::sha256_hex(&big(b'a')),
        cloudctl::exec::script::sha256_hex(&big(b'b')),
    ];
    assert!(whole.contains(&sha.to_string()), "torn file");
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn the_remote_lock_is_in_a_private_folder_and_planted_links_are_refused() {
    crate::support::require_lab(&[]);
    let lab = Lab::up("tlockdir", 1, 161);
    // World-writable /run/lock: a planted symlink there must not make root create its target.
    lab.sh_ok(0, "mkdir -p /run/lock && ln -s /srv/victim /run/lock/cloudctl.lock");
    let first = apply_to_lab(&lab, |_| app_steps("ok = 1\n"));
    assert_eq!(statuses(&first), [HostStatus::Changed], "{first:?}");
    assert_eq!(
        lab.sh_ok(
            0,
            "test -e /srv/victim && echo followed; stat -c '%a %U' /run/cloudctl /var/lib/cloudctl"
        ),
        "700 root\n700 root\n"
    );
    // A lock or state folder that is a symlink, or that others may write, is refused before
    // anything changes.
    for plant in [
        "rm -rf /run/cloudctl && mkdir -p /srv/elsewhere && ln -s /srv/elsewhere /run/cloudctl",
        "rm -rf /run/cloudctl && mkdir -m 1777 /run/cloudctl",
        "rm -rf /run/cloudctl /var/lib/cloudctl && ln -s /srv/elsewhere /var/lib/cloudctl",
    ] {
        lab.sh_ok(0, plant);
        let refused = apply_to_lab(&lab, |_| app_steps("ok = 2\n"));
        assert_eq!(statuses(&refused), [HostStatus::Failed], "{plant}: {refused:?}");
        let error = refused[0].error.clone().unwrap_or_default();
        assert!(error.contains("refusing /"), "{plant}: {error}");
        assert_eq!(
            lab.sh_ok(0, "cat /srv/app/app.conf"),
            "ok = 1\n",
            "{plant}: nothing changed"
        );
    }
}

/// The per-host time limit bounds a whole job, not each read: a job whose steps each report
/// within the limit is still cut off when their sum exceeds it (each read used to restart it).
#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn the_per_host_time_limit_covers_the_whole_job() {
    crate::support::require_lab(&[]);
    let lab = Lab::up("tdeadln", 1, 162);
    let inv = inventory::load(&lab.state.inventory).unwrap();
    let host = inv.select(&["all".into()]).unwrap().remove(0);
    let step = Step::Command(CommandStep {
        argv: vec!["sleep".into(), "1".into()],
        when: When::Always,
    });
    let plan = Plan {
        title: "test".into(),
        confirm: false,
        redact: Vec::new(),
        hosts: vec![HostPlan {
            host,
            exclusive: true,
            steps: vec![step; 10],
        }],
    };
    let limits = Limits {
        forks: 1,
        host_timeout: Duration::from_secs(3),
    };
    let reports = apply(&plan, &SshConnector::from_inventory(&inv), &limits, &|_| {});
    assert_eq!(statuses(&reports), [HostStatus::Failed], "{reports:?}");
    let error = reports[0].error.clone().unwrap_or_default();
    assert!(error.contains("time limit"), "names the limit: {error}");
    assert!(
        reports[0].elapsed_ms < 6000,
        "stopped near the limit: {} ms",
        reports[0].elapsed_ms
    );
}
