//! Bulk data to one host through the system OpenSSH client (`image push`): OpenSSH encrypts whole
//! packets with OpenSSL's vectorised ciphers, where libssh2 calls into OpenSSL once per 16-byte
//! block and needs twice the CPU per byte. The trust is the libssh2 transport's: strict host keys
//! from cloudctl's own known_hosts only, batch mode (no prompt), cloudctl's user and identity, no
//! ssh_config, nothing secret in argv.

use super::ssh::SshConnector;
use super::{HostError, ScriptOutput};
use crate::inventory::Host;
use std::ffi::OsString;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// OpenSSH's exit status for its own failures (connection, host key, authentication).
const SSH_FAILED: i32 = 255;

/// Whether an `ssh` client is on PATH.
pub fn available() -> bool {
    which::which("ssh").is_ok()
}

/// The `ssh` arguments that reach `host` as the connector does, before the remote command.
pub fn argv(c: &SshConnector, host: &Host) -> Vec<OsString> {
    let mut known_hosts = OsString::from("UserKnownHostsFile=");
    known_hosts.push(c.known_hosts.path());
    let timeout = format!("ConnectTimeout={}", c.connect_timeout.as_secs().max(1));
    // No ssh_config: what reaches the host is the inventory's [ssh] alone, as with libssh2.
    let mut a: Vec<OsString> = vec!["-F".into(), "/dev/null".into(), "-T".into()];
    for o in [
        "BatchMode=yes",
        "StrictHostKeyChecking=yes",
        "GlobalKnownHostsFile=/dev/null",
        "UpdateHostKeys=no",
        "Compression=no",
        "LogLevel=ERROR",
        &timeout,
    ] {
        a.push("-o".into());
        a.push(o.into());
    }
    a.push("-o".into());
    a.push(known_hosts);
    if let Some(ciphers) = bulk_ciphers() {
        a.push("-c".into());
        a.push(ciphers.into());
    }
    if c.identity.exists() {
        a.push("-i".into());
        a.push(c.identity.clone().into_os_string());
    }
    for x in ["-l", &c.user, "-p", &host.port.to_string(), "--", &host.host] {
        a.push(x.into());
    }
    a
}

/// OpenSSH's own cipher list with AES-GCM first, on a CPU with AES instructions: OpenSSL runs
/// AES-GCM there with vector instructions, while OpenSSH's default chacha20-poly1305 pays its
/// portable Poly1305 on every byte (measured: see the README's speed section). Elsewhere
/// OpenSSH's default order stands. The same ciphers are offered either way, only the order changes.
fn bulk_ciphers() -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    let aes = std::arch::is_x86_feature_detected!("aes") && std::arch::is_x86_feature_detected!("pclmulqdq");
    #[cfg(target_arch = "aarch64")]
    let aes = std::arch::is_aarch64_feature_detected!("aes") && std::arch::is_aarch64_feature_detected!("pmull");
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let aes = false;
    aes.then_some(
        "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr,aes192-ctr,aes256-ctr",
    )
}

/// Runs `command` on `host` with what `feed` writes as its stdin, like `Transport::run_fed`:
/// output (stderr after stdout) and exit status. The client is killed at `deadline`.
pub fn run_fed(
    c: &SshConnector,
    host: &Host,
    command: &str,
    feed: &mut super::Feed,
    deadline: Instant,
) -> Result<ScriptOutput, HostError> {
    Started::start(c, host, command)?.feed(feed, deadline)
}

/// A client already connecting (or connected) with `command` running on the far side, its stdin
/// not yet written: the connection is made while cloudctl does something else. The command must
/// change nothing until its first line of input arrives, since a `Started` that is dropped unfed
/// closes its stdin unwritten (and stops the client, by its handle).
pub struct Started {
    child: Option<Child>,
    host: Host,
}

impl Started {
    pub fn start(c: &SshConnector, host: &Host, command: &str) -> Result<Started, HostError> {
        let child = Command::new("ssh")
            .args(argv(c, host))
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| HostError::Failed(format!("{}: cannot run ssh: {e}", host.name)))?;
        Ok(Started {
            child: Some(child),
            host: host.clone(),
        })
    }

    /// The host it reaches.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Writes what `feed` writes to the command's stdin, then waits for it: output (stderr after
    /// stdout) and exit status. The client is killed at `deadline`.
    pub fn feed(mut self, feed: &mut super::Feed, deadline: Instant) -> Result<ScriptOutput, HostError> {
        let mut child = self.child.take().expect("fed once");
        let host = &self.host;
        let failed = |what: String| HostError::Failed(format!("{}: {what}", host.name));
        let mut stdin = child.stdin.take().expect("piped");
        widen_pipe(&stdin);
        let (mut stdout, mut stderr) = (child.stdout.take().expect("piped"), child.stderr.take().expect("piped"));
        let child = Mutex::new(child);
        let (fed, status, out, err, late) = std::thread::scope(|s| {
            let out = s.spawn(move || read_all(&mut stdout));
            let err = s.spawn(move || read_all(&mut stderr));
            // The only waiter: it kills the client (by its handle, so by pid) at the deadline.
            let watch = s.spawn(|| watch(&child, deadline));
            let fed = feed(&mut stdin);
            drop(stdin);
            let (status, late) = watch.join().expect("the watcher does not panic");
            let out = out.join().expect("the reader does not panic");
            let err = err.join().expect("the reader does not panic");
            (fed, status, out, err, late)
        });
        if late {
            return Err(HostError::Failed(format!(
                "{}: per-host time limit reached while sending the data; the far side discards what it got",
                host.name
            )));
        }
        let err_text = String::from_utf8_lossy(&err).trim().to_string();
        if status == SSH_FAILED && out.is_empty() {
            let why = format!("{} ({}): ssh: {err_text}", host.name, host.endpoint());
            return Err(
                if err_text.contains("Host key verification failed") || err_text.contains("HOST IDENTIFICATION") {
                    HostError::HostKey(format!(
                        "{why}; check the host, then run `cloudctl host trust {}`",
                        host.name
                    ))
                } else {
                    HostError::Unreachable(why)
                },
            );
        }
        let mut output = String::from_utf8_lossy(&out).into_owned();
        if !err_text.is_empty() {
            output.push('\n');
            output.push_str(&err_text);
        }
        // As with libssh2: a receiver that stopped early says why, so its output wins over a write error.
        match fed {
            Err(e) if status == 0 => Err(failed(format!("sending the data: {e}"))),
            _ => Ok(ScriptOutput { output, status }),
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Its stdin closes unwritten first, so the far side sees the end of its input.
            drop(child.stdin.take());
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Gives the client's stdin pipe 1 MiB instead of 64 KiB: the client reads it 32 KiB at a time,
/// and with four times the sender's chunk buffered the two wake each other far less often
/// (measured with the splicing sender, bench `push`). Best effort: a refusal (a user's pipe
/// quota) leaves the default, which works, slower.
fn widen_pipe(stdin: &std::process::ChildStdin) {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on a pipe descriptor this process owns; no memory is passed.
    let _ = unsafe { libc::fcntl(stdin.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
}

fn read_all(r: &mut dyn Read) -> Vec<u8> {
    let mut v = Vec::new();
    let _ = r.read_to_end(&mut v);
    v
}

/// Waits for the client to exit; kills it at `deadline`. Its exit status (-1 if killed by a
/// signal), and whether the deadline came first.
fn watch(child: &Mutex<Child>, deadline: Instant) -> (i32, bool) {
    let mut child = child.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return (s.code().unwrap_or(-1), false),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return (-1, true);
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => return (-1, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::known_hosts::KnownHosts;
    use crate::inventory::HostKeyPolicy;

    #[test]
    fn argv_is_strict_and_carries_no_secret() {
        let c = SshConnector {
            user: "root".into(),
            identity: "/nonexistent/key".into(),
            known_hosts: KnownHosts::new("/etc/cloudctl/known_hosts".into()),
            policy: HostKeyPolicy::Strict,
            connect_timeout: Duration::from_secs(7),
            system: std::sync::Arc::new(crate::exec::effect::RealSystem),
        };
        let h = Host {
            name: "h1".into(),
            role: "hnode",
            host: "10.0.0.5".into(),
            port: 2222,
        };
        let a: Vec<String> = argv(&c, &h).into_iter().map(|s| s.into_string().unwrap()).collect();
        let line = a.join(" ");
        for want in [
            "-F /dev/null",
            "StrictHostKeyChecking=yes",
            "BatchMode=yes",
            "UserKnownHostsFile=/etc/cloudctl/known_hosts",
            "GlobalKnownHostsFile=/dev/null",
            "ConnectTimeout=7",
            "-l root -p 2222 -- 10.0.0.5",
        ] {
            assert!(line.contains(want), "{want} missing from {line}");
        }
        // A missing identity is not named (ssh would refuse it); the destination comes last.
        assert!(!line.contains("-i "), "{line}");
        assert_eq!(a.last().unwrap(), "10.0.0.5");
    }

    #[test]
    fn the_cipher_order_changes_but_not_the_set_offered() {
        let Some(list) = bulk_ciphers() else { return };
        let mut ours: Vec<&str> = list.split(',').collect();
        assert!(ours[0].starts_with("aes128-gcm"), "{list}");
        ours.sort_unstable();
        // OpenSSH 9's default client list, sorted.
        let mut default = vec![
            "chacha20-poly1305@openssh.com",
            "aes128-ctr",
            "aes192-ctr",
            "aes256-ctr",
            "aes128-gcm@openssh.com",
            "aes256-gcm@openssh.com",
        ];
        default.sort_unstable();
        assert_eq!(ours, default);
    }
}
