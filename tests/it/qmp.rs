//! The one QMP helper (scripts/instance/qmp.sh): no other program carries the handshake, and every
//! program that talks to a guest's monitor works against a real QEMU's QMP socket.

use cloudctl::inventory::Hypervisor;
use cloudctl::plan::instance::{kvm, probe};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The capabilities handshake is written once: in qmp.sh, nowhere in src/ or another script.
#[test]
fn the_handshake_is_written_once() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("src"), root.join("scripts")];
    let mut holders = Vec::new();
    while let Some(dir) = dirs.pop() {
        for p in std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()) {
            if p.is_dir() {
                dirs.push(p);
            } else if std::fs::read_to_string(&p).is_ok_and(|t| t.contains("qmp_capabilities")) {
                holders.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    assert_eq!(holders, ["scripts/instance/qmp.sh"]);
    // And each program that talks QMP starts with it (the helper is defined before it is used).
    let helper = include_str!("../../scripts/instance/qmp.sh");
    let guests = probe::guests_in(Hypervisor::Kvm, "/run/x");
    for program in [kvm::QMP, kvm::QMP_CANCEL, kvm::QUERY_RUNNING, kvm::STOP] {
        assert!(program.starts_with(helper), "{program}");
    }
    assert!(guests.starts_with("sh -c '#!/bin/sh\n# The one QMP helper"), "{guests}");
}

fn sh(program: &str, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(program)
        .arg("sh")
        .args(args)
        .output()
        .unwrap()
}

/// A QEMU with no machine, only its monitor; killed when the test ends, however it ends.
struct Qemu {
    dir: tempfile::TempDir,
    pid: i32,
}

impl Qemu {
    fn start() -> Qemu {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let qmp = format!("unix:{},server=on,wait=off", d.join("vm.qmp").display());
        let st = Command::new(crate::support::vm::QEMU)
            .args([
                "-machine",
                "none",
                "-nodefaults",
                "-display",
                "none",
                "-daemonize",
                "-qmp",
                &qmp,
            ])
            .arg("-pidfile")
            .arg(d.join("vm.pid"))
            .status()
            .unwrap();
        assert!(st.success());
        let pid = std::fs::read_to_string(d.join("vm.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        Qemu { dir, pid }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn path(&self, name: &str) -> String {
        self.file(name).to_string_lossy().into_owned()
    }

    /// Running (a zombie left for init to reap counts as gone).
    fn alive(&self) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z'))
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        if self.alive() {
            let _ = Command::new("kill").args(["-9", &self.pid.to_string()]).status();
        }
    }
}

#[test]
#[cfg_attr(not(lab_tests), ignore = "lab test: starts a QEMU (root, qemu-system-x86_64, socat)")]
fn every_qmp_program_talks_to_a_real_qemu() {
    crate::support::require_lab(&[crate::support::vm::QEMU, "/usr/bin/socat"]);
    let vm = Qemu::start();
    let sock = vm.path("vm.qmp");
    let text = |o: &Output| format!("{}{}", crate::support::text(&o.stdout), crate::support::text(&o.stderr));

    let asked = sh(kvm::QMP, &[&sock, r#"{"execute":"query-status"}"#]);
    assert!(
        asked.status.success() && text(&asked).contains(r#""status": "running""#),
        "{}",
        text(&asked)
    );
    let refused = sh(kvm::QMP, &[&sock, r#"{"execute":"no-such-command"}"#]);
    assert!(
        !refused.status.success() && text(&refused).contains("CommandNotFound"),
        "{}",
        text(&refused)
    );
    let nowhere = sh(kvm::QMP, &[&vm.path("none.qmp"), r#"{"execute":"query-status"}"#]);
    assert!(!nowhere.status.success() && text(&nowhere).contains("cannot reach QEMU's monitor"));

    // One round of the wait until a guest runs (the executor polls it): it says so.
    let waited = sh(kvm::QUERY_RUNNING, &[&sock]);
    assert!(
        waited.status.success() && crate::support::text(&waited.stdout) == "running\n",
        "{}",
        text(&waited)
    );
    let listed = Command::new("sh")
        .arg("-c")
        .arg(probe::guests_in(Hypervisor::Kvm, &vm.path("")))
        .output()
        .unwrap();
    assert_eq!(
        crate::support::text(&listed.stdout),
        "guest vm qemu-running\n",
        "{}",
        text(&listed)
    );
    // No migration runs: cancel still succeeds and the guest keeps running.
    assert!(sh(kvm::QMP_CANCEL, &[&sock]).status.success());
    assert!(vm.alive());

    let stopped = sh(kvm::STOP, &[&sock, &vm.path("vm.pid"), "cloudctl-qmp-none", "0"]);
    assert!(stopped.status.success(), "{}", text(&stopped));
    assert!(!vm.alive() && !vm.file("vm.pid").exists() && !vm.file("vm.qmp").exists());
    // Gone: a round says nothing (the wait's timeout then says "not running after 30 s"; see
    // plan::instance::kvm's tests).
    let gone = sh(kvm::QUERY_RUNNING, &[&sock]);
    assert!(
        gone.status.success() && crate::support::text(&gone.stdout).is_empty(),
        "{}",
        text(&gone)
    );
}
