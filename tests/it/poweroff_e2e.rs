//! End to end on a lab: `hnode poweroff` switches off a real machine. The lab's namespace hosts
//! cannot be switched off (they share this machine's kernel: `poweroff` there would be this
//! machine's), so the hardware node is a lab VM, PXE-booted from the ConfigNode host by
//! `node boot`, and `poweroff` runs inside it over SSH: its init shuts down, the kernel powers
//! the virtual machine off and QEMU exits. Before that: refused while not drained and while a
//! guest is recorded there; a dry run and a missing --yes leave it running. Afterwards `doctor`
//! reports it down, and not as never booted: the ConfigNode's dhcpd recorded its PXE request.
//! Then the same VM gets a BMC, OpenIPMI's `ipmi_sim` answering IPMI over LAN on a lab address,
//! its chassis control the VM's power (`cloudctl lab bmc-chassis`): `node boot --power ipmi`
//! switches it on through ipmitool on the ConfigNode, and `hnode poweroff` (the node has a BMC
//! in the inventory now) sends `chassis power soft`: the BMC presses the VM's power button, its
//! OS shuts down and QEMU exits. The BMC password is never on a command line or in the output.

use crate::support::{bin, cloudctl, report, text, Lab, TFTPD};
use cloudctl::lab::VmRole;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LAB: &str = "tpoff";
const OCTET: u8 = 225;

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn poweroff_switches_a_drained_empty_vm_node_off() {
    crate::support::lab::require_vm_lab(&["/usr/bin/ipmitool", "/usr/bin/ipmi_sim"]);
    let _tftpd = TFTPD.lock().unwrap_or_else(|e| e.into_inner());
    let (kernel, initrd) = crate::support::storage::boot_image();
    let lab = Lab::up_with_vms(LAB, 1, OCTET, &[VmRole::Hnode], 64);
    let inv = lab.inventory();
    lab.sh_ok(0, &format!("mkdir -p /srv/tftp/images/hnode && cp {kernel} /srv/tftp/images/hnode/vmlinuz && cp {initrd} /srv/tftp/images/hnode/initrd.img"));
    let out = cloudctl(&["-i", &inv, "--yes", "config", "init"]);
    assert!(out.status.success(), "config init: {}", text(&out.stderr));
    // Up with its pinned key (its TCG VM has no /dev/kvm: the hypervisor check fails, as said).
    let out = cloudctl(&["-i", &inv, "--yes", "node", "boot", "hvm1", "--wait", "240"]);
    let err = text(&out.stderr);
    assert!(err.contains("hvm1: SSH answers with the pinned host key"), "{err}");
    let vm = lab.state.vms.iter().find(|v| v.name == "hvm1").unwrap();
    assert!(vm.pid().is_some());

    let out = cloudctl(&["-i", &inv, "--yes", "hnode", "poweroff", "hvm1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cloudctl hnode drain hvm1"),
        "{}",
        text(&out.stderr)
    );
    let out = cloudctl(&["-i", &inv, "--yes", "hnode", "drain", "hvm1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A guest recorded there (stopped or not): refused, naming it.
    let drained = std::fs::read_to_string(&inv).unwrap();
    std::fs::write(
        &inv,
        format!("{drained}\n[[instance]]\nname = \"pvm1\"\nhnode = \"hvm1\"\nmemory = 64\nvcpus = 1\ndisk = \"1G\"\nip = \"10.201.{OCTET}.50\"\nmac = \"52:54:00:00:e1:01\"\n"),
    )
    .unwrap();
    let out = cloudctl(&["-i", &inv, "--yes", "hnode", "poweroff", "hvm1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("guests recorded on it: pvm1"),
        "{}",
        text(&out.stderr)
    );
    std::fs::write(&inv, &drained).unwrap();

    // A dry run and a missing --yes change nothing: the VM stays on.
    let out = cloudctl(&["-i", &inv, "-n", "hnode", "poweroff", "hvm1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("dry run: nothing was changed"),
        "{}",
        text(&out.stderr)
    );
    let out = cloudctl(&["-i", &inv, "hnode", "poweroff", "hvm1"]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert!(vm.pid().is_some(), "still on");

    let started = Instant::now();
    let out = cloudctl(&[
        "-i", &inv, "--yes", "--json", "hnode", "poweroff", "hvm1", "--wait", "120",
    ]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (doc["method"].as_str(), doc["off"].as_bool()),
        (Some("ssh"), Some(true)),
        "{doc}"
    );
    assert_eq!(vm.pid(), None, "QEMU exited: the VM powered itself off");
    let console = std::fs::read_to_string(vm.console()).unwrap_or_default();
    assert!(
        console.contains("reboot: Power down"),
        "the kernel powered off: {console}"
    );
    // The ConfigNode's dhcpd recorded the VM's PXE DHCP exchange: doctor says it is down, not
    // that it never booted.
    let out = cloudctl(&["-i", &inv, "--json", "doctor"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let found: Vec<(&str, &str)> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["check"].as_str().unwrap(), f["subject"].as_str().unwrap()))
        .collect();
    assert!(found.contains(&("unreachable", "hvm1")), "{doc}");
    assert!(
        !found
            .iter()
            .any(|(c, _)| *c == "never_booted" || *c == "boots_unrecorded"),
        "{doc}"
    );
    let marks = lab.sh_ok(0, "ls /var/lib/cloudctl/booted");
    assert!(
        marks.contains(&format!("52:54:0:c2:{OCTET:x}:1")),
        "dhcpd's record: {marks}"
    );
    report(&format!(
        "hnode poweroff hvm1 (TCG VM, poweroff over SSH): off, seen from the ConfigNode, after {:.1} s",
        took.as_secs_f64()
    ));

    ipmi_poweroff(&lab, &inv);
}

/// The BMC's address: outside the lab's hosts, VMs and dynamic range.
const BMC_IP: &str = "10.201.225.240";

/// ipmi_sim, killed (by its pid) when dropped.
struct Bmc(Child);

impl Drop for Bmc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the lab BMC of `vm`: ipmi_sim in the ConfigNode host's network namespace, on a second
/// address of its lab interface, lanplus user `admin` with `password`, chassis control by
/// `cloudctl lab bmc-chassis` in this process's network namespace (where the VM's tap is: QEMU
/// started inside the lab host would not find it). Returns once it listens.
fn start_bmc(lab: &Lab, vm: &str, password: &str) -> Bmc {
    let cn = lab.state.hosts[0].ip;
    let dev = lab.sh_ok(
        0,
        &format!("ip -o -4 addr show | awk '$4 ~ /^{cn}\\// {{ print $2; exit }}'"),
    );
    let dev = dev.trim();
    assert!(!dev.is_empty(), "no interface holds {cn} on the ConfigNode host");
    lab.sh_ok(0, &format!("ip addr add {BMC_IP}/24 dev {dev}"));
    let dir = lab.state.dir.join("bmc");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let conf = format!(
        "name \"lab-{vm}\"\nset_working_mc 0x20\n  startlan 1\n    addr {BMC_IP} 623\n    priv_limit admin\n    allowed_auths_callback none\n    allowed_auths_user md5\n    allowed_auths_operator md5\n    allowed_auths_admin md5\n    guid a1b2c3d4e5f60718293a4b5c6d7e8f90\n  endlan\n  chassis_control \"nsenter -t {} -n {} lab bmc-chassis --name {LAB} {vm}\"\n  user 2 true \"admin\" \"{password}\" admin 4 md5\n",
        std::process::id(),
        bin().display()
    );
    let conf_path = dir.join("lan.conf");
    std::fs::write(&conf_path, conf).unwrap();
    std::fs::set_permissions(&conf_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let emu = dir.join("bmc.emu");
    std::fs::write(
        &emu,
        "mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nmc_enable 0x20\n",
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("ipmi_sim.log")).unwrap();
    let pid = lab.state.hosts[0].sshd_pid.to_string();
    let child = Command::new("nsenter")
        .args(["-t", &pid, "-n", "ipmi_sim", "-n", "-p", "-c"])
        .arg(&conf_path)
        .arg("-f")
        .arg(&emu)
        .arg("-s")
        .arg(dir.join("state"))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let bmc = Bmc(child);
    let started = Instant::now();
    while !lab.sh_ok(0, "ss -Huln 'sport = :623'").contains(BMC_IP) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "ipmi_sim does not listen on {BMC_IP}:623: {}",
            std::fs::read_to_string(dir.join("ipmi_sim.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    bmc
}

/// Every ipmitool command line seen while `f` runs (sampled every 20 ms from /proc).
fn ipmitool_argvs<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
                    if comm.trim() == "ipmitool" {
                        let argv = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
                        let argv = String::from_utf8_lossy(&argv).replace('\0', " ");
                        if !argv.is_empty() && !seen.contains(&argv) {
                            seen.push(argv);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            seen
        })
    };
    let out = f();
    stop.store(true, Ordering::Relaxed);
    (out, sampler.join().unwrap())
}

/// The VM, switched off over SSH above, gets a BMC: on through IPMI, then `hnode poweroff` by
/// IPMI's soft power-off (the power button), with the password kept off every command line.
fn ipmi_poweroff(lab: &Lab, inv: &str) {
    let vm = lab.state.vms.iter().find(|v| v.name == "hvm1").unwrap();
    assert_eq!(vm.pid(), None, "off after the SSH poweroff");
    // IPMI 2.0 passwords are at most 20 bytes.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let password = format!("lab{:012x}", nanos & 0xffff_ffff_ffff);
    let _bmc = start_bmc(lab, "hvm1", &password);
    let password_file = lab.state.dir.join("bmc").join("hvm1.password");
    std::fs::write(&password_file, &password).unwrap();
    std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let toml = std::fs::read_to_string(inv).unwrap();
    let entry = "name = \"hvm1\"\n";
    assert!(toml.contains(entry), "{toml}");
    std::fs::write(
        inv,
        toml.replacen(
            entry,
            &format!(
                "{entry}ipmi = {{ address = \"{BMC_IP}\", user = \"admin\", password_file = \"{}\" }}\n",
                password_file.display()
            ),
            1,
        ),
    )
    .unwrap();
    let powered_down = |c: &str| c.matches("reboot: Power down").count();
    let downs = powered_down(&std::fs::read_to_string(vm.console()).unwrap_or_default());

    let started = Instant::now();
    let (on, on_argvs) = ipmitool_argvs(|| {
        cloudctl(&[
            "-i", inv, "--yes", "-v", "node", "boot", "hvm1", "--power", "ipmi", "--wait", "240",
        ])
    });
    let boot_took = started.elapsed();
    let err = text(&on.stderr);
    assert!(err.contains("hvm1: SSH answers with the pinned host key"), "{err}");
    assert!(vm.pid().is_some(), "on through its BMC");

    let started = Instant::now();
    let (off, off_argvs) = ipmitool_argvs(|| {
        cloudctl(&[
            "-i", inv, "--yes", "--json", "-v", "hnode", "poweroff", "hvm1", "--wait", "120",
        ])
    });
    let off_took = started.elapsed();
    assert_eq!(off.status.code(), Some(0), "{}", text(&off.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&off.stdout).unwrap();
    assert_eq!(
        (doc["method"].as_str(), doc["off"].as_bool()),
        (Some("ipmi"), Some(true)),
        "{doc}"
    );
    assert_eq!(vm.pid(), None, "QEMU exited");
    let console = std::fs::read_to_string(vm.console()).unwrap_or_default();
    assert_eq!(
        powered_down(&console),
        downs + 1,
        "the OS shut down and powered the VM off: {}",
        &console[console.len().saturating_sub(2000)..]
    );
    let bmc_log = std::fs::read_to_string(lab.state.dir.join("bmc-hvm1.log")).unwrap_or_default();
    assert!(bmc_log.contains("set power 1 -> ok"), "{bmc_log}");
    assert!(bmc_log.contains("set shutdown 1 -> ok"), "{bmc_log}");

    // The password: never an argument of ipmitool (sampled while it ran), never in the output.
    let argvs: Vec<&String> = on_argvs.iter().chain(&off_argvs).collect();
    assert!(argvs.iter().any(|a| a.contains("chassis power on")), "{argvs:?}");
    assert!(argvs.iter().any(|a| a.contains("chassis power soft")), "{argvs:?}");
    for a in &argvs {
        assert!(!a.contains(&password), "the password on a command line: {a}");
        assert!(a.contains(" -E "), "{a}");
    }
    for (what, out) in [("node boot", &on), ("hnode poweroff", &off)] {
        let all = text(&out.stdout) + &text(&out.stderr);
        assert!(!all.contains(&password), "{what} printed the password: {all}");
    }
    assert!(!bmc_log.contains(&password));
    assert_eq!(lab.sh_ok(0, "stat -c %a /etc/cloudctl/ipmi/hvm1").trim(), "600");
    report(&format!(
        "IPMI for real (ipmitool on the ConfigNode → ipmi_sim → lab VM): node boot --power ipmi → SSH {:.1} s; hnode poweroff by chassis power soft → power button → clean poweroff, seen off {:.1} s; ipmitool command lines seen: {}",
        boot_took.as_secs_f64(),
        off_took.as_secs_f64(),
        argvs.len()
    ));
}
