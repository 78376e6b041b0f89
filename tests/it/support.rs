//! Shared test helpers: running the binary, temp inventories, and starting a lab (or skipping
//! loudly when its prerequisites are missing — never silently under CI=true).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cloudctl"))
}

/// Runs cloudctl with `args`, no stdin, no inherited inventory.
pub fn cloudctl(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("CLOUDCTL_INVENTORY")
        .stdin(Stdio::null())
        .output()
        .expect("run cloudctl")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

/// Whether lab tests can run here. Missing prerequisites fail under CI and skip loudly elsewhere.
pub fn lab_available() -> bool {
    let reason = cloudctl::lab::require_root()
        .err()
        .or_else(|| cloudctl::lab::check_tools().err());
    available(reason)
}

/// Like `lab_available`, and these files must exist too (e.g. QEMU, a kernel).
pub fn lab_with(files: &[&str]) -> bool {
    let missing: Vec<&str> = files.iter().copied().filter(|f| !Path::new(f).exists()).collect();
    let reason = cloudctl::lab::require_root()
        .err()
        .or_else(|| cloudctl::lab::check_tools().err());
    available(reason.or_else(|| {
        (!missing.is_empty()).then(|| format!("missing {} (run `.ci/install-deps` as root)", missing.join(", ")))
    }))
}

fn available(reason: Option<String>) -> bool {
    let Some(reason) = reason else { return true };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and a test prerequisite is missing: {reason}");
    }
    // Straight to the stderr handle: the harness swallows eprintln! output of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "\n!!!!!!!! SKIPPED: lab test needs root and its tools: {reason} !!!!!!!!\n"
    );
    false
}

/// Serialises tests that start tftpd: Debian's tftpd-hpa init script finds "its" daemon by
/// executable name machine-wide, and lab hosts share one process table.
pub static TFTPD: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Prints a figure even when the harness captures test output.
pub fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A running lab, taken down when dropped (also when a test fails).
pub struct Lab {
    pub state: cloudctl::lab::LabState,
    pub dir: tempfile::TempDir,
}

impl Lab {
    /// Starts lab `name` with `hosts` hosts on 10.201.`octet`.0/24 (unique per test).
    pub fn up(name: &str, hosts: u8, octet: u8) -> Lab {
        let _ = cloudctl::lab::down(name);
        let dir = tempfile::tempdir().unwrap();
        let req = cloudctl::lab::LabRequest {
            name: name.into(),
            hosts,
            subnet: format!("10.201.{octet}.0/24").parse().unwrap(),
            inventory: dir.path().join("cloud.toml"),
        };
        let templates = cloudctl::templates::Templates::load(None).unwrap();
        let state = cloudctl::lab::up(&req, &templates).expect("lab up");
        Lab { state, dir }
    }

    pub fn inventory(&self) -> String {
        self.state.inventory.display().to_string()
    }

    /// Runs a shell command inside lab host `idx` (its mount, UTS and network namespaces).
    pub fn sh(&self, idx: usize, script: &str) -> Output {
        let pid = self.state.hosts[idx].sshd_pid.to_string();
        Command::new("nsenter")
            .args(["-t", &pid, "-m", "-u", "-n", "sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs a shell command in lab host `idx` and returns its stdout, panicking on failure.
    pub fn sh_ok(&self, idx: usize, script: &str) -> String {
        let out = self.sh(idx, script);
        assert!(out.status.success(), "{script}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// Appends TOML to the lab's inventory (extra nodes for a test).
    pub fn append_inventory(&self, toml: &str) {
        let mut text = std::fs::read_to_string(&self.state.inventory).unwrap();
        text += toml;
        std::fs::write(&self.state.inventory, text).unwrap();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = cloudctl::lab::down(&self.state.name) {
            eprintln!("lab down {}: {e:#}", self.state.name);
        }
    }
}

/// A file inside an ext4 image, read with debugfs (no mount needed).
pub fn read_in_image(image: &str, path: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-R", &format!("cat {path}"), image])
        .output()
        .unwrap();
    text(&out.stdout)
}
