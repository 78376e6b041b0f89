//! Local system helpers for the lab: running tools with a time limit, looking at and signalling
//! processes by pid, atomic file writes. Everything here acts on this machine.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest one tool run may take. `ip` and `ssh-keygen` finish in milliseconds; a run this long
/// means something is stuck, and failing beats hanging.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// A `Command` for a tool, by full path when we can find it.
pub fn command(name: &str) -> Command {
    Command::new(crate::local_tools::locate(name).unwrap_or_else(|| PathBuf::from(name)))
}

/// Runs `prog args` to completion and returns its stdout. The one way the lab runs a tool: an error
/// names the command line, its exit status and its stderr.
pub fn run(prog: &str, args: &[&str]) -> Result<String> {
    let shown = std::iter::once(prog)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = command(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{shown}`"))?;
    // Drain both pipes on threads so a chatty tool cannot block on a full pipe while we wait.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped")));
    let err = drain(Box::new(child.stderr.take().expect("piped")));
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait().with_context(|| format!("waiting for `{shown}`"))? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "`{shown}` did not finish within {} s and was killed",
                COMMAND_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    let (out, err) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    if !status.success() {
        bail!("`{shown}` failed ({status}): {}", err.trim());
    }
    Ok(out)
}

/// The command name of a live process, or None if it is gone or a zombie (a zombie no longer runs
/// anything, so for "is sshd running" it counts as gone).
pub fn live_comm(pid: u32) -> Option<String> {
    if pid == 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ...`; comm may itself contain ')' so split at the last one.
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let state = stat[close + 1..].trim_start().chars().next()?;
    (!matches!(state, 'Z' | 'X')).then(|| stat[open + 1..close].to_string())
}

/// True if `pid` lives in a network namespace other than ours. The lab's daemons always do; the
/// machine's own sshd does not, so a recycled pid can never make us kill the real one.
pub fn in_other_netns(pid: u32) -> bool {
    let ino = |p: String| std::fs::metadata(p).map(|m| (m.dev(), m.ino())).ok();
    match (ino(format!("/proc/{pid}/ns/net")), ino("/proc/self/ns/net".into())) {
        (Some(theirs), Some(ours)) => theirs != ours,
        _ => false,
    }
}

/// Stops processes: SIGTERM, up to `grace` for them to exit, then SIGKILL and up to one more
/// second. Returns the pids still alive after that.
pub fn stop(pids: &[u32], grace: Duration) -> Vec<u32> {
    let alive = |pid: &u32| {
        // Up and down in one process (as in tests) makes the daemons our children: reap them so
        // they do not linger as zombies. For anyone else's process this is a harmless ECHILD.
        // SAFETY: waitpid with WNOHANG and a null status pointer only reaps an exited child.
        unsafe { libc::waitpid(*pid as i32, std::ptr::null_mut(), libc::WNOHANG) };
        live_comm(*pid).is_some()
    };
    let wait_gone = |pids: Vec<u32>, limit: Duration| {
        let deadline = Instant::now() + limit;
        let mut left = pids;
        loop {
            left.retain(alive);
            if left.is_empty() || Instant::now() >= deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let signal = |pids: &[u32], sig| {
        for &pid in pids {
            // SAFETY: kill(2) has no memory effects; pid > 0 so it never targets a process group.
            unsafe { libc::kill(pid as i32, sig) };
        }
    };
    let pids: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|&p| p > 1 && p != std::process::id())
        .collect();
    signal(&pids, libc::SIGTERM);
    let left = wait_gone(pids, grace);
    signal(&left, libc::SIGKILL);
    wait_gone(left, Duration::from_secs(1))
}

/// Writes a file so readers see the old or the new content, never a partial one.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let fail = || format!("cannot write {}", path.display());
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(fail)?;
    tmp.write_all(data).with_context(fail)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(fail)?;
    tmp.as_file().sync_all().with_context(fail)?;
    tmp.persist(path).map_err(|e| e.error).with_context(fail)?;
    Ok(())
}

/// The last `n` lines of a log file, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(n)..].join("\n");
    // Name the file only: after a failed `up` the lab dir, log included, is already removed.
    let file = path.file_name().unwrap_or_default().to_string_lossy();
    if tail.trim().is_empty() {
        format!("{file} is empty")
    } else {
        format!("{file} ends with:\n{tail}")
    }
}

/// True if an SSH server answers at `addr` within `timeout`: it sends its `SSH-` banner. We answer
/// with our own identification before closing, because a bare connect-and-close makes sshd log an
/// error line per probe into the host's log.
pub fn ssh_answers(addr: std::net::SocketAddr, timeout: Duration) -> bool {
    let probe = || -> std::io::Result<bool> {
        let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        let mut banner = [0u8; 4];
        stream.read_exact(&mut banner)?;
        stream.write_all(b"SSH-2.0-cloudctl-lab-probe\r\n")?;
        Ok(&banner == b"SSH-")
    };
    probe().unwrap_or(false)
}

/// Kills a process at once (SIGKILL, as pulling a power plug) and waits up to `limit` for it to
/// be gone. True if it is gone.
pub fn stop_now(pid: u32, limit: Duration) -> bool {
    if pid <= 1 || pid == std::process::id() {
        return false;
    }
    // SAFETY: kill(2) has no memory effects; pid > 1 so it never targets a process group.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let deadline = Instant::now() + limit;
    loop {
        // SAFETY: as in `stop`: reaps the process only if it is our exited child.
        unsafe { libc::waitpid(pid as i32, std::ptr::null_mut(), libc::WNOHANG) };
        if live_comm(pid).is_none() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Running QEMUs whose command line names a path under `dir` (a lab's VMs), found in /proc so
/// that `lab down` finds them even without the lab's state file.
pub fn qemu_pids_under(dir: &Path) -> Vec<u32> {
    let needle = format!("{}/", dir.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&pid: &u32| {
            live_comm(pid).is_some_and(|c| c.starts_with("qemu-system"))
                && std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .collect();
    pids.sort_unstable();
    pids
}
