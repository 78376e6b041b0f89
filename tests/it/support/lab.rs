//! A lab for a test: started with `Lab::up*`, one at a time, taken down when dropped; what a
//! lab test checks first (`require_lab`), and running commands on its hosts and inventory.

use super::{bin, cloudctl, text};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The start of every lab test. Lab tests are marked `#[cfg_attr(not(lab_tests), ignore = …)]`:
/// build.rs compiles them as ignored (and says why in a build warning) on a machine that cannot
/// run them (not root, a program of `.ci/prerequisites` missing), and never under CI=true. A lab
/// test that runs anyway (CI=true, or `--ignored`) fails here, naming what is missing: it never
/// passes without having run.
pub fn require_lab(files: &[&str]) {
    let missing: Vec<&str> = files.iter().copied().filter(|f| !Path::new(f).exists()).collect();
    let reason = cloudctl::lab::require_root()
        .err()
        .or_else(|| cloudctl::lab::check_tools().err())
        .or_else(|| {
            (!missing.is_empty()).then(|| format!("missing {} (run `.ci/install-deps` as root)", missing.join(", ")))
        });
    if let Some(reason) = reason {
        panic!("this lab test cannot run here: {reason}");
    }
}

/// What every lab test with PXE-booted VMs needs: QEMU, its PXE ROM, the ConfigNode's DHCP and
/// TFTP servers, Wake-on-LAN and the nodes' dropbear. `require_vm_lab(extra)` adds the test's own.
const VM_LAB: [&str; 7] = [
    "/usr/bin/qemu-system-x86_64",
    "/usr/lib/ipxe/qemu/pxe-e1000.rom",
    "/usr/sbin/dhcpd",
    "/usr/sbin/in.tftpd",
    "/usr/bin/wakeonlan",
    "/usr/sbin/dropbear",
    "/usr/bin/dropbearconvert",
];

/// `require_lab` for a test with PXE-booted VMs: `VM_LAB` and `extra`.
pub fn require_vm_lab(extra: &[&str]) {
    require_lab(&[&VM_LAB[..], extra].concat());
}

/// Serialises tests that start tftpd: Debian's tftpd-hpa init script finds "its" daemon by
/// executable name machine-wide, and lab hosts share one process table.
pub static TFTPD: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A running lab, taken down when dropped (also when a test fails).
pub struct Lab {
    pub state: cloudctl::lab::LabState,
    pub dir: tempfile::TempDir,
    /// Held until the lab is down (fields drop after `Drop::drop`): one lab at a time. Two cores
    /// cannot run two labs' TCG guests and VMs at once without starving both (pings lost, md
    /// never idle), so the suite's parallel threads take turns here.
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

static ONE_LAB: std::sync::Mutex<()> = std::sync::Mutex::new(());

impl Lab {
    /// Starts lab `name` with `hosts` hosts on 10.201.`octet`.0/24 (unique per test).
    pub fn up(name: &str, hosts: u8, octet: u8) -> Lab {
        Lab::up_on(name, hosts, &format!("10.201.{octet}.0/24"))
    }

    /// Starts lab `name` on `subnet` (a /16 to /24, unique per test).
    pub fn up_on(name: &str, hosts: u8, subnet: &str) -> Lab {
        Lab::up_full(name, hosts, subnet, &[], 16)
    }

    /// Like `up`, plus VM machines of these roles (switched off; powered on by Wake-on-LAN).
    pub fn up_with_vms(name: &str, hosts: u8, octet: u8, vms: &[cloudctl::lab::VmRole], disk_mib: u64) -> Lab {
        Lab::up_full(name, hosts, &format!("10.201.{octet}.0/24"), vms, disk_mib)
    }

    fn up_full(name: &str, hosts: u8, subnet: &str, vms: &[cloudctl::lab::VmRole], disk_mib: u64) -> Lab {
        // A test that failed while holding it poisons it; the next one may still go.
        let turn = ONE_LAB.lock().unwrap_or_else(|e| e.into_inner());
        let _ = cloudctl::lab::down(name);
        let dir = tempfile::tempdir().unwrap();
        let req = cloudctl::lab::LabRequest {
            name: name.into(),
            hosts,
            subnet: subnet.parse().unwrap(),
            inventory: dir.path().join("cloud.toml"),
            vms: vms.to_vec(),
            vm_disk_mib: disk_mib,
            power_exe: Some(bin()),
        };
        let templates = cloudctl::templates::Templates::load(None).unwrap();
        let state = cloudctl::lab::up(&req, &templates).expect("lab up");
        Lab {
            state,
            dir,
            _one_at_a_time: turn,
        }
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

    /// The IP the lab's inventory records for node `name` (e.g. the one `node add` chose).
    pub fn node_ip(&self, name: &str) -> std::net::Ipv4Addr {
        let path = self.inventory();
        let inv = cloudctl::inventory::parse(&path, &std::fs::read_to_string(&path).unwrap()).unwrap();
        let node = inv.node.iter().find(|n| n.name.get_ref().as_str() == name);
        *node
            .and_then(|n| n.ip.as_ref())
            .unwrap_or_else(|| panic!("{path} records no IP for {name}"))
            .get_ref()
    }

    /// The pid of the ConfigNode host's running dhcpd (checked alive).
    pub fn dhcpd_pid(&self) -> String {
        self.dhcpd_pid_on(0)
    }

    /// The pid of lab host `idx`'s running dhcpd (checked alive).
    pub fn dhcpd_pid_on(&self, idx: usize) -> String {
        self.sh_ok(idx, "pid=$(cat /run/dhcpd.pid) && kill -0 $pid && echo $pid")
            .trim()
            .to_string()
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
        // For a developer looking into a failure: the lab stays up (take it down with
        // `cloudctl lab down --name NAME`).
        if std::env::var_os("CLOUDCTL_KEEP_LAB").is_some() {
            // The test's inventory lives in a temp folder that goes with the test.
            let kept = self.state.dir.join("cloud.toml");
            let _ = std::fs::copy(&self.state.inventory, &kept);
            eprintln!(
                "CLOUDCTL_KEEP_LAB: lab {} left up, its inventory at {}",
                self.state.name,
                kept.display()
            );
            return;
        }
        if let Err(e) = cloudctl::lab::down(&self.state.name) {
            eprintln!("lab down {}: {e:#}", self.state.name);
        }
    }
}

/// The last console lines of a VM, for failure messages.
pub fn console(lab: &Lab, vm: &str) -> String {
    let v = lab.state.vms.iter().find(|v| v.name == vm).unwrap();
    let log = std::fs::read_to_string(v.console()).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Runs `script` on inventory host `host` through `cloudctl run`; returns its stdout.
pub fn remote(inv: &str, host: &str, script: &str) -> String {
    let out = cloudctl(&["-i", inv, "--json", "run", "--on", host, "--", "sh", "-c", script]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("run on {host}: {}{}", text(&out.stdout), text(&out.stderr)));
    let h = &doc["hosts"][0];
    assert_eq!(h["exit_status"], 0, "{script} on {host}: {h}");
    h["stdout"].as_str().unwrap_or_default().to_string()
}
