//! QEMU machines PXE-booting on a lab's bridge: the emulator and boot ROM tests need, the host's
//! kernel, a busybox initramfs and the packer for it, and `Vm`, killed when dropped.

use super::{text, Lab};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The emulator every VM test runs (TCG: no KVM needed).
pub const QEMU: &str = "/usr/bin/qemu-system-x86_64";
/// The iPXE ROM the VMs' e1000 network cards PXE-boot with.
pub const ROM: &str = "/usr/lib/ipxe/qemu/pxe-e1000.rom";

/// The host's newest /boot/vmlinuz-*, if any: the kernel VM tests boot.
pub fn kernel() -> Option<PathBuf> {
    let mut k: Vec<PathBuf> = std::fs::read_dir("/boot")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().contains("vmlinuz-"))
        .collect();
    k.sort();
    k.pop()
}

/// A gzip'd newc initramfs whose /init prints the kernel command line and powers off.
pub fn initramfs(dir: &Path) -> PathBuf {
    let root = dir.join("initramfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    let init = "#!/bin/busybox sh\n/bin/busybox mkdir -p /proc\n/bin/busybox mount -t proc proc /proc\n\
                echo \"CLOUDCTL-CMDLINE: $(/bin/busybox cat /proc/cmdline)\"\n/bin/busybox poweroff -f\n";
    std::fs::write(root.join("init"), init).unwrap();
    pack(&root, &dir.join("initrd.img"), &["init"])
}

/// Packs the tree `root` as a gzip'd newc cpio archive at `out`, making `executables` executable.
pub fn pack(root: &Path, out: &Path, executables: &[&str]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    for e in executables {
        std::fs::set_permissions(root.join(e), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let script = "cd \"$1\" && find . | cpio -o -H newc --quiet | gzip -1 > \"$2\"";
    let status = Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(root)
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success(), "packing {}", root.display());
    out.to_path_buf()
}

/// A QEMU VM on the lab bridge through a tap; killed and its tap removed when dropped.
pub struct Vm {
    child: Child,
    tap: String,
    log: PathBuf,
}

impl Vm {
    pub fn start(lab: &Lab, tap: &str, log: PathBuf, mac: &str) -> Vm {
        Vm::with_memory(lab, tap, log, mac, 256)
    }

    /// As `start`, with `mib` MiB of memory (a Xen dom0 and its guests need more than 256).
    pub fn with_memory(lab: &Lab, tap: &str, log: PathBuf, mac: &str, mib: u32) -> Vm {
        let _ = Command::new("ip").args(["link", "del", tap]).output();
        for args in [
            vec!["tuntap", "add", "dev", tap, "mode", "tap"],
            vec!["link", "set", tap, "master", &lab.state.bridge, "up"],
        ] {
            let out = Command::new("ip").args(&args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {}", text(&out.stderr));
        }
        let child = Command::new(QEMU)
            .args([
                "-accel",
                "tcg",
                "-m",
                &mib.to_string(),
                "-display",
                "none",
                "-no-reboot",
                "-serial",
            ])
            .arg(format!("file:{}", log.display()))
            .args(["-netdev", &format!("tap,id=n0,ifname={tap},script=no,downscript=no")])
            .args([
                "-device",
                &format!("e1000,netdev=n0,mac={mac},bootindex=1,romfile={ROM}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Vm {
            child,
            tap: tap.to_string(),
            log,
        }
    }

    /// Waits (bounded) for a serial console line containing `needle`.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> Option<String> {
        let start = Instant::now();
        while start.elapsed() < limit {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(line) = log.lines().find(|l| l.contains(needle)) {
                return Some(line.to_string());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        None
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("ip").args(["link", "del", &self.tap]).output();
    }
}
