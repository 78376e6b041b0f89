//! One lab host's sshd: its config, starting it inside the host's namespaces, and waiting until it
//! answers. Starts processes on this machine.

use super::sys;
use anyhow::{bail, Context, Result};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// How long one host's sshd may take to answer; it normally needs well under a second.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// scripts/lab/host.sh (its arguments and what it does are described there).
const HOST_SCRIPT: &str = include_str!("../../scripts/lab/host.sh");

/// The sshd_config of a host: key-only root login for the lab's client key, logs to stderr.
pub fn config(ip: Ipv4Addr, host_dir: &Path, lab_dir: &Path) -> String {
    let (h, l) = (host_dir.display(), lab_dir.display());
    format!(
        "# written by cloudctl lab up\n\
         Port 22\n\
         ListenAddress {ip}\n\
         HostKey {h}/ssh_host_ed25519_key\n\
         PidFile {h}/sshd.pid\n\
         AuthorizedKeysFile {l}/authorized_keys\n\
         PermitRootLogin prohibit-password\n\
         UsePAM no\n\
         StrictModes no\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UseDNS no\n\
         Subsystem sftp internal-sftp\n\
         LogLevel ERROR\n"
    )
}

/// Starts the host: `ip netns exec` and `unshare` exec rather than fork and the script ends in
/// `exec sshd`, so the child we spawn becomes sshd itself. `setsid` detaches it from our terminal
/// so a Ctrl-C there does not take the lab down.
pub fn start(host: &str, netns: &str, host_dir: &Path) -> Result<Child> {
    let log_path = host_dir.join("sshd.log");
    let log = std::fs::File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let ip = crate::local_tools::locate("ip").unwrap_or_else(|| "ip".into());
    let unshare = crate::local_tools::locate("unshare").unwrap_or_else(|| "unshare".into());
    sys::command("setsid")
        .arg(ip)
        .args(["netns", "exec", netns])
        .arg(unshare)
        .args([
            "-m",
            "-u",
            "--propagation",
            "private",
            "sh",
            "-c",
            HOST_SCRIPT,
            "cloudctl-lab-host",
            host,
        ])
        .arg(host_dir)
        .arg(host_dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start host {host} (setsid ip netns exec {netns} unshare ... sshd)"))
}

/// Waits until the host's sshd answers on ip:22, then checks the child really is sshd and
/// returns its pid. On failure the error carries the end of sshd.log.
pub fn wait_ready(child: &mut Child, host: &str, ip: Ipv4Addr, host_dir: &Path) -> Result<u32> {
    let addr = SocketAddr::from((ip, 22));
    let log = host_dir.join("sshd.log");
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "sshd of host {host} exited while starting ({status}); {}",
                sys::tail(&log, 20)
            );
        }
        if sys::ssh_answers(addr, Duration::from_millis(500)) {
            break;
        }
        if Instant::now() >= deadline {
            bail!(
                "sshd of host {host} did not answer on {addr} within {} s; {}",
                READY_TIMEOUT.as_secs(),
                sys::tail(&log, 20)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id();
    match sys::live_comm(pid) {
        Some(comm) if comm == "sshd" => Ok(pid),
        other => bail!(
            "host {host}: process {pid} should have become sshd but is {other:?}; {}",
            sys::tail(&log, 20)
        ),
    }
}
