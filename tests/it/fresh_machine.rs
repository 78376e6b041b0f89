//! What a new machine lacks is named, not timed out on: the preflight names each missing program
//! with its package, commands refuse (exit 2) without a local tool they need, a ConfigNode
//! without `ping` is named by `hnode boot --wait`; and lists on `--on` parse as people type them.

use crate::support::{cloudctl, require_lab, text, Lab, TFTPD};
use clap::Parser;
use std::path::Path;
use std::process::{Command, Stdio};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A folder holding only the named programs (links to the real ones), to run a script with a
/// PATH on which everything else is missing.
fn bin_dir_with(programs: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for p in programs {
        let real = which::which(p).unwrap_or_else(|_| panic!("{p} is installed"));
        std::os::unix::fs::symlink(real, dir.path().join(p)).unwrap();
    }
    dir
}

#[test]
fn preflight_names_each_missing_program_and_its_package() {
    let bin = bin_dir_with(&["bash", "dirname", "grep", "sort"]);
    let out = Command::new(which::which("bash").unwrap())
        .arg(root().join(".ci/preflight"))
        .env("PATH", bin.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for line in [
        "preflight: missing ping (package iputils-ping)",
        "preflight: missing qemu-system-x86_64 (package qemu-system-x86)",
        "preflight: missing socat (package socat)",
    ] {
        assert!(err.lines().any(|l| l == line), "no line {line:?} in:\n{err}");
    }
    assert!(err.contains("apt-get install") && err.contains("iputils-ping"), "{err}");
}

/// install-deps installs the package of every program the preflight checks (one table for both).
#[test]
fn install_deps_reads_the_preflight_table() {
    let deps = std::fs::read_to_string(root().join(".ci/install-deps")).unwrap();
    let run = std::fs::read_to_string(root().join(".ci/run")).unwrap();
    assert!(
        deps.contains("prerequisites"),
        "install-deps takes its packages from .ci/prerequisites"
    );
    let preflight = run.find(".ci/preflight").expect(".ci/run runs the preflight");
    assert!(
        run.find(".ci/install-deps").unwrap() < preflight && preflight < run.find("cargo test").unwrap(),
        "install-deps, then preflight, then the tests:\n{run}"
    );
}

#[test]
fn shell_files_pass_shellcheck() {
    let mut files = vec![
        root().join(".ci/run"),
        root().join(".ci/install-deps"),
        root().join(".ci/preflight"),
    ];
    // Every .sh file under examples/ and scripts/ (remote programs live in scripts/<noun>/).
    let mut dirs = vec![root().join("examples"), root().join("scripts")];
    while let Some(dir) = dirs.pop() {
        for path in std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
        {
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "sh") {
                files.push(path);
            }
        }
    }
    assert!(
        files.iter().any(|f| f.ends_with("scripts/confignode/dhcpd.sh")),
        "the walk finds the remote programs: {files:?}"
    );
    let shellcheck = which::which("shellcheck").expect("shellcheck is installed (.ci/install-deps installs it)");
    let out = Command::new(shellcheck).args(&files).output().unwrap();
    assert!(out.status.success(), "shellcheck:\n{}", text(&out.stdout));
}

#[test]
fn a_command_without_its_local_tool_refuses_naming_the_package() {
    let seed = root().join("examples/seed-lab.toml");
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(crate::support::bin())
        .args(["-i", seed.to_str().unwrap(), "--yes", "hnode", "boot", "hnode1"])
        .env("PATH", empty.path())
        .env_remove("CLOUDCTL_INVENTORY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("ssh-keygen (package openssh-client)") && err.contains("dropbearconvert (package dropbear-bin)"),
        "{err}"
    );
    assert!(err.contains("apt-get install openssh-client dropbear-bin"), "{err}");
}

#[test]
fn on_takes_lists_as_people_type_them() {
    let parse = |args: &[&str]| match cloudctl::cli::Cli::try_parse_from(args).expect("parses").command {
        cloudctl::cli::Command::Run(r) => r.on,
        other => panic!("{other:?}"),
    };
    let want = ["hnode1", "hnode2", "snode"];
    for args in [
        &["cloudctl", "run", "--on", "hnode1,hnode2,snode", "--", "true"][..],
        &["cloudctl", "run", "--on", "hnode1", "hnode2", "snode", "--", "true"],
        &[
            "cloudctl",
            "run",
            "--on",
            "hnode1",
            "--on",
            "hnode2,snode",
            "--",
            "true",
        ],
    ] {
        assert_eq!(parse(args), want, "{args:?}");
    }
    assert_eq!(parse(&["cloudctl", "run", "--", "true"]), ["all"]);
    // The names reach target selection one by one: the unknown one is named alone.
    let out = cloudctl(&[
        "-i",
        root().join("examples/seed-lab.toml").to_str().unwrap(),
        "run",
        "--on",
        "hnode1,nosuch",
        "--",
        "true",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("\"nosuch\"") && !err.contains("hnode1,nosuch"), "{err}");
}

/// A ConfigNode without `ping`: `hnode boot --wait` says so at once instead of timing out with
/// "last stage seen: …" for a node that may well be up.
#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn hnode_boot_wait_names_a_missing_ping_on_the_confignode() {
    require_lab(&[]);
    let _tftpd = TFTPD.lock().unwrap_or_else(|e| e.into_inner()); // config init starts tftpd
    let lab = Lab::up("tnoping", 1, 83);
    lab.append_inventory(
        "\n[[node]]\nname = \"vm1\"\nmac = \"52:54:00:12:34:83\"\nip = \"10.201.83.50\"\nrole = \"hnode\"\npower = \"none\"\n",
    );
    lab.sh_ok(0, "mkdir -p /srv/tftp/images/hnode && echo k > /srv/tftp/images/hnode/vmlinuz && echo i > /srv/tftp/images/hnode/initrd.img");
    let out = cloudctl(&["-i", &lab.inventory(), "--yes", "config", "init"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Only this host's mount namespace loses ping: an empty, non-executable file over it.
    lab.sh_ok(
        0,
        "p=$(command -v ping); : > /tmp/noping-83 && chmod 644 /tmp/noping-83 && mount --bind /tmp/noping-83 \"$p\"",
    );
    let started = std::time::Instant::now();
    let out = cloudctl(&["-i", &lab.inventory(), "--yes", "hnode", "boot", "vm1", "--wait", "60"]);
    let err = text(&out.stderr);
    let _ = std::fs::remove_file("/tmp/noping-83");
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("has no `ping` (package iputils-ping)"), "{err}");
    assert!(!err.contains("last stage seen"), "{err}");
    assert!(
        started.elapsed().as_secs() < 30,
        "named at once, not after the wait ran out"
    );
}
