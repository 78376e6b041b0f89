//! The lab's power switch for its VM machines: a detached `cloudctl lab power-listen` process
//! that watches every frame on the lab bridge for Wake-on-LAN magic packets (anywhere in the
//! frame, as a NIC does) and starts the QEMU of the VM whose MAC a packet names. So `node boot`
//! powers a lab VM exactly as it powers a real machine: `wakeonlan` from the ConfigNode.
//! Acts on this machine.

use super::vm::{self, LabVm};
use super::{read_state, state_path, sys};
use anyhow::{anyhow, bail, Context, Result};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// The process name the listener runs under (the cloudctl binary).
const COMM: &str = "cloudctl";

/// The MAC of a lab VM as bytes.
pub fn mac_bytes(mac: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = mac
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    parts.try_into().ok()
}

/// Which of `macs` a frame wakes: a magic packet is six 0xff bytes then the MAC sixteen times,
/// anywhere in the frame (UDP to port 7 or 9, or raw EtherType 0x0842 alike). Pure.
pub fn woken(frame: &[u8], macs: &[[u8; 6]]) -> Option<usize> {
    const LEN: usize = 6 + 16 * 6;
    if frame.len() < LEN {
        return None;
    }
    (0..=frame.len() - LEN).find_map(|at| {
        let w = &frame[at..at + LEN];
        if w[..6] != [0xff; 6] {
            return None;
        }
        macs.iter().position(|m| w[6..].chunks(6).all(|c| c == m))
    })
}

fn pid_file(dir: &Path) -> std::path::PathBuf {
    dir.join("power.pid")
}

/// Starts the listener of lab `name` (detached, logging to power.log in the lab's folder) and
/// records its pid. `exe` is the cloudctl binary.
pub fn spawn(exe: &Path, name: &str, dir: &Path) -> Result<u32> {
    let log_path = dir.join("power.log");
    let log = std::fs::File::create(&log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let mut child = sys::command("setsid")
        .arg(exe)
        .args(["lab", "power-listen", "--name", name])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {} lab power-listen", exe.display()))?;
    // It is ready once it has bound its socket and says so.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "the lab's power listener exited at once ({status}); {}",
                sys::tail(&log_path, 10)
            );
        }
        if std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains("listening")
        {
            break;
        }
        if std::time::Instant::now() >= deadline {
            bail!(
                "the lab's power listener did not start within 10 s; {}",
                sys::tail(&log_path, 10)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = child.id();
    sys::write_atomic(&pid_file(dir), format!("{pid}\n").as_bytes(), 0o600)?;
    Ok(pid)
}

/// The listener's pid, if it still runs (a cloudctl process whose command line is ours).
pub fn running(name: &str, dir: &Path) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pid_file(dir)).ok()?.trim().parse().ok()?;
    if sys::live_comm(pid).as_deref() != Some(COMM) {
        return None;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let words: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let ours =
        words.windows(2).any(|w| w == [b"power-listen".as_slice(), b"--name"]) && words.contains(&name.as_bytes());
    ours.then_some(pid)
}

/// A raw packet socket on `bridge`, with a receive timeout so the loop can notice the lab going.
fn packet_socket(bridge: &str) -> Result<OwnedFd> {
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
    if fd < 0 {
        bail!("cannot open a packet socket: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let cname = std::ffi::CString::new(bridge)?;
    // SAFETY: cname is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        bail!("the lab bridge {bridge} does not exist");
    }
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid starting value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = proto;
    addr.sll_ifindex = index as i32;
    // SAFETY: addr is a valid sockaddr_ll of the size passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::addr_of!(addr).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        bail!("cannot listen on {bridge}: {}", std::io::Error::last_os_error());
    }
    let timeout = libc::timeval { tv_sec: 1, tv_usec: 0 };
    // SAFETY: timeout is a valid timeval of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::addr_of!(timeout).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    if rc != 0 {
        bail!("cannot set a receive timeout: {}", std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// The listener itself: runs until the lab's state file is gone or its bridge disappears.
pub fn listen(name: &str) -> Result<()> {
    let state = read_state(name)?.ok_or_else(|| anyhow!("there is no lab \"{name}\""))?;
    let vms: Vec<LabVm> = state.vms.clone();
    let macs: Vec<[u8; 6]> = vms
        .iter()
        .map(|v| mac_bytes(&v.mac).ok_or_else(|| anyhow!("VM {} has a bad MAC {}", v.name, v.mac)))
        .collect::<Result<_>>()?;
    let fd = packet_socket(&state.bridge)?;
    let say = |line: &str| {
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{} {line}", crate::ui::timestamp());
        let _ = out.flush();
    };
    say(&format!(
        "listening for Wake-on-LAN on {} for {} VM(s)",
        state.bridge,
        vms.len()
    ));
    let mut buf = vec![0u8; 65536];
    while state_path(name).exists() {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                _ => {
                    say(&format!("stopping: {e} (the lab bridge is gone)"));
                    return Ok(());
                }
            }
        }
        let Some(i) = woken(&buf[..n as usize], &macs) else {
            continue;
        };
        let vm = &vms[i];
        match vm.pid() {
            Some(pid) => say(&format!("magic packet for {}: already on (QEMU pid {pid})", vm.name)),
            None => match vm::power_on(vm) {
                Ok(pid) => say(&format!("magic packet for {}: powered on (QEMU pid {pid})", vm.name)),
                Err(e) => say(&format!("magic packet for {}: cannot power on: {e:#}", vm.name)),
            },
        }
    }
    say("stopping: the lab is gone");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_magic_packet_wakes_only_its_mac() {
        let a = mac_bytes("52:54:00:c2:b4:01").unwrap();
        let b = mac_bytes("52:54:00:c2:b4:02").unwrap();
        let mut frame = vec![0u8; 42]; // Ethernet + IP + UDP headers
        frame.extend([0xff; 6]);
        for _ in 0..16 {
            frame.extend(b);
        }
        assert_eq!(woken(&frame, &[a, b]), Some(1));
        assert_eq!(woken(&frame, &[a]), None);
        frame.truncate(frame.len() - 1);
        assert_eq!(woken(&frame, &[a, b]), None, "a cut packet wakes nobody");
        assert_eq!(mac_bytes("52:54:00:c2:b4"), None);
    }
}
