//! Lab VM machines: QEMU (TCG) processes on the lab bridge that boot by PXE from the ConfigNode
//! host like bare metal (no direct kernel boot), with virtio disks and a console log. Creates
//! their disks and taps, starts and kills their QEMU; acts on this machine.

use super::sys;
use anyhow::{bail, Context, Result};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// PXE boot ROM of QEMU's e1000 (package ipxe-qemu). virtio-net without it does not PXE-boot.
pub const PXE_ROM: &str = "/usr/lib/ipxe/qemu/pxe-e1000.rom";
pub const QEMU: &str = "qemu-system-x86_64";
/// Small on purpose: the machine has two cores for every VM of every lab (LAB.md). A hardware
/// node gets more: a Xen dom0 needs 384 MiB to run `xl` (256 MiB was measured too little), and
/// its guests need room beside it.
const SNODE_MEMORY_MIB: &str = "256";
const HNODE_MEMORY_MIB: &str = "768";
/// A web machine runs Apache with PHP, MariaDB, DRBD and the o2cb cluster at once.
const WEB_MEMORY_MIB: &str = "512";
/// The MTU of the VMs' taps and of the lab inventory's `[network] mtu` when the lab has VMs.
pub const JUMBO_MTU: u16 = 9000;
/// `comm` of a running QEMU (the kernel truncates it to 15 characters).
const QEMU_COMM: &str = "qemu-system-x86";

/// What a VM is for: a storage node (two member disks), a diskless hardware node, or a web
/// machine of the LAMP stack (two disks for md, a cross-over cable to the other web machine, and
/// this machine's Debian as its installed system, shared read-only over virtio-9p).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum VmRole {
    Snode,
    Hnode,
    Web,
}

impl VmRole {
    pub fn as_str(self) -> &'static str {
        match self {
            VmRole::Snode => "snode",
            VmRole::Hnode => "hnode",
            VmRole::Web => "web",
        }
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LabVm {
    pub name: String,
    pub role: VmRole,
    pub mac: String,
    pub ip: Ipv4Addr,
    pub tap: String,
    pub dir: PathBuf,
    pub disks: Vec<PathBuf>,
    /// A web machine's cross-over cable: QEMU's second NIC sends datagrams from the first
    /// socket (this VM's end) to the second (the other web machine's), and nothing else sees them.
    #[serde(default)]
    pub cable: Option<(PathBuf, PathBuf)>,
}

impl LabVm {
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("qemu.pid")
    }
    /// Serial console of every boot, appended.
    pub fn console(&self) -> PathBuf {
        self.dir.join("console.log")
    }
    /// QEMU's human monitor: how the lab presses the VM's power button.
    pub fn monitor(&self) -> PathBuf {
        self.dir.join("monitor.sock")
    }

    /// The pid of this VM's QEMU if it runs: the pid file's process, if it is a QEMU whose
    /// command line names this VM's directory (a recycled pid is never mistaken for it).
    pub fn pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.pid_file()).ok()?.trim().parse().ok()?;
        if sys::live_comm(pid).as_deref() != Some(QEMU_COMM) {
            return None;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let dir = self.dir.display().to_string();
        String::from_utf8_lossy(&cmdline).contains(&dir).then_some(pid)
    }

    /// QEMU's arguments: TCG (KVM hangs here), one vCPU, PXE from the e1000 first, the disks as
    /// virtio, the console appended to a file, the monitor on a socket (the power button). QEMU daemonizes once the machine is set up, so a
    /// bad argument fails the start instead of a later boot.
    fn qemu_args(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "-name",
            &self.name,
            "-accel",
            "tcg",
            "-m",
            match self.role {
                VmRole::Snode => SNODE_MEMORY_MIB,
                VmRole::Hnode => HNODE_MEMORY_MIB,
                VmRole::Web => WEB_MEMORY_MIB,
            },
            "-smp",
            "1",
            "-display",
            "none",
            "-daemonize",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push("-pidfile".into());
        args.push(self.pid_file().display().to_string());
        args.push("-chardev".into());
        args.push(format!("file,id=console,path={},append=on", self.console().display()));
        args.extend(["-serial".into(), "chardev:console".into()]);
        args.push("-monitor".into());
        args.push(format!("unix:{},server=on,wait=off", self.monitor().display()));
        args.push("-netdev".into());
        args.push(format!("tap,id=n0,ifname={},script=no,downscript=no", self.tap));
        args.push("-device".into());
        args.push(format!(
            "e1000,netdev=n0,mac={},bootindex=1,romfile={PXE_ROM}",
            self.mac
        ));
        for d in &self.disks {
            args.push("-drive".into());
            args.push(format!("file={},if=virtio,format=raw", d.display()));
        }
        if let Some((local, remote)) = &self.cable {
            args.push("-netdev".into());
            args.push(format!(
                "dgram,id=n1,local.type=unix,local.path={},remote.type=unix,remote.path={}",
                local.display(),
                remote.display()
            ));
            args.push("-device".into());
            args.push("virtio-net-pci,netdev=n1".into());
        }
        if self.role == VmRole::Web {
            // Read-only: the web machine's writes go to its RAM layer, never to this machine.
            args.push("-virtfs".into());
            args.push("local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap".into());
        }
        args
    }
}

/// Creates the VM's folder, its sparse disks and its tap (a port of the lab bridge that stays
/// when QEMU is off, as a switch port does).
pub fn create(vm: &LabVm, bridge: &str, disk_mib: u64) -> Result<()> {
    std::fs::create_dir(&vm.dir).with_context(|| format!("cannot create {}", vm.dir.display()))?;
    for d in &vm.disks {
        let f = std::fs::File::create(d).with_context(|| format!("cannot create disk {}", d.display()))?;
        f.set_len(disk_mib << 20)
            .with_context(|| format!("cannot size disk {}", d.display()))?;
    }
    sys::run("ip", &["tuntap", "add", "dev", &vm.tap, "mode", "tap"])?;
    // Jumbo frames, as the lab's inventory gives the VMs (`[network] mtu`): AoE through vblade
    // carries 8 KiB a frame instead of 1 KiB, which under TCG is 6-7 times the write rate.
    sys::run("ip", &["link", "set", &vm.tap, "mtu", &JUMBO_MTU.to_string()])?;
    sys::run("ip", &["link", "set", &vm.tap, "master", bridge])?;
    sys::run("ip", &["link", "set", &vm.tap, "up"])?;
    Ok(())
}

/// Switches the VM on: starts its QEMU, which PXE-boots. Returns QEMU's pid.
pub fn power_on(vm: &LabVm) -> Result<u32> {
    if let Some(pid) = vm.pid() {
        return Ok(pid);
    }
    // QEMU opens its tap by name in its own network namespace, and would create an unwired
    // one there: started from inside a lab host (a BMC's chassis control, say), refuse.
    let name = std::ffi::CString::new(vm.tap.as_str())?;
    // SAFETY: name is a valid NUL-terminated string.
    if unsafe { libc::if_nametoindex(name.as_ptr()) } == 0 {
        bail!(
            "VM {}: its tap {} is not in this network namespace: switch it on from the machine's own namespace (where the lab bridge is), not from inside a lab host",
            vm.name,
            vm.tap
        );
    }
    let args = vm.qemu_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sys::run(QEMU, &args).with_context(|| format!("cannot start VM {}", vm.name))?;
    match vm.pid() {
        Some(pid) => Ok(pid),
        None => bail!(
            "VM {}: QEMU started but its pid file {} names no running QEMU",
            vm.name,
            vm.pid_file().display()
        ),
    }
}

/// Pulls the plug: SIGKILL to QEMU, no shutdown inside the guest. True if it was on.
pub fn power_off(vm: &LabVm) -> Result<bool> {
    let Some(pid) = vm.pid() else { return Ok(false) };
    if !sys::stop_now(pid, Duration::from_secs(2)) {
        bail!("VM {}: QEMU (pid {pid}) would not die", vm.name);
    }
    let _ = std::fs::remove_file(vm.pid_file());
    Ok(true)
}

/// Presses the power button: `system_powerdown` on QEMU's monitor sends the ACPI power-button
/// event, and the VM's OS decides what to do (the lab's node image shuts down). Does not wait
/// for that. False if the VM was off.
pub fn power_button(vm: &LabVm) -> Result<bool> {
    use std::io::{Read, Write};
    let Some(pid) = vm.pid() else { return Ok(false) };
    let path = vm.monitor();
    let mut s = std::os::unix::net::UnixStream::connect(&path).with_context(|| {
        format!(
            "VM {} (QEMU pid {pid}): cannot reach its monitor {}",
            vm.name,
            path.display()
        )
    })?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"system_powerdown\n")?;
    // QEMU has run the command once it prints the next prompt (or within the timeout).
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
        seen.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&seen).matches("(qemu)").count() >= 2 {
            break;
        }
    }
    Ok(true)
}

/// The tap name of VM number `i` of lab `name` (15 characters at most).
pub fn tap_name(name: &str, i: usize) -> String {
    format!("cl{name}v{i}")
}

/// Whether the files a VM needs are installed; the error names the packages.
pub fn check_tools() -> Result<(), String> {
    let mut missing = Vec::new();
    if crate::local_tools::locate(QEMU).is_none() {
        missing.push("qemu-system-x86_64 (package qemu-system-x86)");
    }
    if !Path::new(PXE_ROM).exists() {
        missing.push("pxe-e1000.rom (package ipxe-qemu)");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "lab VMs need: {}; install them with apt-get install",
            missing.join(", ")
        ))
    }
}
