//! A real (virtual) machine PXE-boots what `node add` registered: QEMU (TCG) on the lab bridge
//! gets its lease from the ConfigNode host's dhcpd, fetches pxelinux, the per-MAC file, the
//! kernel and a busybox initramfs over tftpd, and prints its /proc/cmdline on the serial console.

use crate::support::{cloudctl, report, text, Lab, TFTPD};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MAC: &str = "52:54:00:12:34:56";
pub const QEMU: &str = "/usr/bin/qemu-system-x86_64";
pub const ROM: &str = "/usr/lib/ipxe/qemu/pxe-e1000.rom";

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

/// Whether the lease file holds a dynamic lease for the VM's MAC (its `host` records, written by
/// live changes, name the MAC too, and do not count).
fn leased(leases: &str) -> bool {
    leases.split("\nlease ").skip(1).any(|b| {
        b.split('}')
            .next()
            .unwrap_or(b)
            .contains(&format!("hardware ethernet {MAC}"))
    })
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn a_registered_mac_pxe_boots_its_profile_and_stops_after_remove() {
    let kernel = kernel().expect("no kernel in /boot (package linux-image-amd64)");
    crate::support::require_lab(&[
        QEMU,
        ROM,
        "/bin/busybox",
        "/usr/bin/cpio",
        "/usr/sbin/dhcpd",
        "/usr/sbin/in.tftpd",
        "/usr/lib/PXELINUX/pxelinux.0",
    ]);
    let _tftpd = TFTPD.lock().unwrap_or_else(|e| e.into_inner());
    let lab = Lab::up("tpxe", 1, 67);
    let toml = std::fs::read_to_string(&lab.state.inventory).unwrap();
    let append = "append = \"console=ttyS0 panic=-1 cloudctl-pxe=booted-by-profile\"";
    std::fs::write(&lab.state.inventory, toml.replace("append = \"console=ttyS0\"", append)).unwrap();
    let inv = lab.inventory();
    let initrd = initramfs(lab.dir.path());
    lab.sh_ok(0, &format!("mkdir -p /srv/tftp/images/hnode && cp {} /srv/tftp/images/hnode/vmlinuz && cp {} /srv/tftp/images/hnode/initrd.img", kernel.display(), initrd.display()));
    let out = cloudctl(&["-i", &inv, "--yes", "config", "init"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let pid = lab.dhcpd_pid();

    let started = Instant::now();
    let out = cloudctl(&["-i", &inv, "--yes", "node", "add", "pxe1", "--mac", MAC]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let node_add = started.elapsed();
    assert_eq!(lab.dhcpd_pid(), pid, "node add changed dhcpd live (OMAPI), no restart");
    let ip = lab.node_ip("pxe1");
    let vm = Vm::start(&lab, "tpxe0", lab.dir.path().join("boot1.log"), MAC);
    let line = vm.wait_for("CLOUDCTL-CMDLINE:", Duration::from_secs(150));
    let booted = started.elapsed();
    drop(vm);
    let line = line.unwrap_or_else(|| {
        panic!(
            "no kernel command line on the serial console: {}",
            std::fs::read_to_string(lab.dir.path().join("boot1.log")).unwrap_or_default()
        )
    });
    assert!(
        line.contains("console=ttyS0 panic=-1 cloudctl-pxe=booted-by-profile"),
        "{line}"
    );
    assert!(line.contains("initrd=images/hnode/initrd.img"), "{line}");
    // pxelinux fetched its files from the address dhcpd gave it, the host entry added live: the
    // ConfigNode has a neighbour entry for that address (it may have gone FAILED since the VM
    // powered off), and dhcpd handed out no lease from the dynamic range to the MAC.
    let neighbours = lab.sh_ok(0, "ip neigh show");
    assert!(
        neighbours.lines().any(|l| l.starts_with(&format!("{ip} "))),
        "the VM used pxe1's fixed address {ip}: {neighbours}"
    );
    let leases = lab.sh_ok(0, "cat /var/lib/dhcp/dhcpd.leases 2>/dev/null");
    assert!(
        !leased(&leases),
        "pxe1 got a dynamic lease instead of its fixed address: {leases}"
    );
    report(&format!(
        "PXE: node add took {:.1} s; node add → kernel command line on the console: {:.1} s",
        node_add.as_secs_f64(),
        booted.as_secs_f64()
    ));

    let out = cloudctl(&["-i", &inv, "--yes", "node", "remove", "pxe1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let vm = Vm::start(&lab, "tpxe0", lab.dir.path().join("boot2.log"), MAC);
    // The VM does ask (it gets a dynamic lease) but no longer boots the profile.
    let asked = (0..300).any(|_| {
        std::thread::sleep(Duration::from_millis(200));
        leased(&lab.sh_ok(0, "cat /var/lib/dhcp/dhcpd.leases 2>/dev/null"))
    });
    assert!(asked, "the removed node's VM never asked dhcpd for an address");
    assert_eq!(
        vm.wait_for("CLOUDCTL-CMDLINE:", Duration::from_secs(25)),
        None,
        "a removed node still boots its profile"
    );
}
