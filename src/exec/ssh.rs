//! SSH transport (libssh2 through the ssh2 crate): one session per host, strict host keys from
//! cloudctl's own known_hosts, agent identities tried in turn, then the configured key.
//!
//! libssh2 traps handled here: a channel's exit status is only valid after EOF and `wait_close`,
//! so each script instead ends with a line carrying its status, in one long-lived `sh` per host;
//! stderr is merged into stdout remotely so one blocking read suffices; every blocking call has a
//! timeout; the host-key algorithm is restricted to the pinned key's type.

use super::effect::{self, LocalEffect, LocalStep, RealSystem, System};
use super::known_hosts::{host_pattern, HostKey, KnownHosts};
use super::{CommandOutput, Connector, HostError, ScriptOutput, Transport};
use crate::inventory::{expand_home, Host, HostKeyPolicy, Inventory};
use ssh2::{ErrorCode, MethodType, Session};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// libssh2's codes for a handshake that ran out of time, and for key exchanges that failed
/// (what a host no longer holding the pinned key type gives).
const LIBSSH2_ERROR_TIMEOUT: i32 = -9;
const LIBSSH2_KEY_EXCHANGE_FAILURES: [i32; 2] = [-5, -8];

fn is_key_exchange_failure(e: &ssh2::Error) -> bool {
    matches!(e.code(), ErrorCode::Session(c) if LIBSSH2_KEY_EXCHANGE_FAILURES.contains(&c))
}

/// Host-key algorithms we accept when none is pinned yet, strongest first.
const HOST_KEY_PREFS: &str =
    "ssh-ed25519,ecdsa-sha2-nistp256,ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,rsa-sha2-512,rsa-sha2-256,ssh-rsa";

pub struct SshConnector {
    pub user: String,
    pub identity: PathBuf,
    pub known_hosts: KnownHosts,
    pub policy: HostKeyPolicy,
    pub connect_timeout: Duration,
    /// Where an `accept-new` pin goes (the key is accepted for this run's connections either
    /// way): in a command's real run a system that holds it until the confirmation
    /// (`Context::connector`), under --dry-run one that only says it would pin.
    pub system: Arc<dyn System>,
}

/// What `host trust` shows: the pinned key (if any) and the one the host offers now.
pub struct OfferedKey {
    pub pattern: String,
    pub pinned: Option<HostKey>,
    pub offered: HostKey,
}

fn remaining(deadline: Instant) -> Result<Duration, HostError> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| HostError::Unreachable("per-host time limit reached".into()))
}

fn millis(d: Duration) -> u32 {
    d.as_millis().clamp(1, u32::MAX as u128) as u32
}

impl SshConnector {
    /// The connector an inventory's `[ssh]` section describes.
    pub fn from_inventory(inv: &Inventory) -> SshConnector {
        SshConnector {
            user: inv.ssh.user.clone(),
            identity: expand_home(&inv.ssh.identity),
            known_hosts: KnownHosts::new(expand_home(&inv.ssh.known_hosts)),
            policy: inv.ssh.host_key_policy,
            connect_timeout: Duration::from_secs(inv.ssh.connect_timeout.max(1)),
            system: Arc::new(RealSystem),
        }
    }

    /// TCP connect and SSH handshake, preferring `pinned`'s key type. No authentication.
    fn handshake(
        &self,
        host: &Host,
        pinned: Option<&HostKey>,
        deadline: Instant,
    ) -> Result<(Session, HostKey), HostError> {
        let endpoint = host.endpoint();
        let unreachable = |what: String| HostError::Unreachable(format!("{} ({endpoint}): {what}", host.name));
        let timeout = self.connect_timeout.min(remaining(deadline)?);
        let addr = (host.host.as_str(), host.port)
            .to_socket_addrs()
            .map_err(|e| unreachable(format!("cannot resolve: {e}")))?
            .next()
            .ok_or_else(|| unreachable("no address".into()))?;
        let tcp =
            TcpStream::connect_timeout(&addr, timeout).map_err(|e| unreachable(format!("cannot connect: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let mut sess = Session::new().map_err(|e| unreachable(e.to_string()))?;
        sess.set_tcp_stream(tcp);
        sess.set_timeout(millis(timeout));
        let prefs = match pinned.map(|k| k.key_type.as_str()) {
            Some("ssh-rsa") => "rsa-sha2-512,rsa-sha2-256,ssh-rsa",
            Some(t) => t,
            None => HOST_KEY_PREFS,
        };
        sess.method_pref(MethodType::HostKey, prefs)
            .map_err(|e| unreachable(e.to_string()))?;
        sess.handshake().map_err(|e| match pinned {
            // A host that answers TCP but never finishes the handshake (hung, overloaded) is
            // unreachable, not a changed key: only a failed key exchange points at the key.
            _ if e.code() == ErrorCode::Session(LIBSSH2_ERROR_TIMEOUT) => unreachable(format!(
                "SSH handshake timed out after {} s",
                timeout.as_secs_f64().ceil()
            )),
            Some(k) if is_key_exchange_failure(&e) => HostError::HostKey(format!(
                "{} ({endpoint}): SSH handshake failed while asking for the pinned {} key ({e}); the host may no longer have that key. If it was reinstalled, check and run `cloudctl host trust {}`",
                host.name, k.key_type, host.name
            )),
            _ => unreachable(format!("SSH handshake failed: {e}")),
        })?;
        let (blob, _) = sess
            .host_key()
            .ok_or_else(|| unreachable("no host key offered".into()))?;
        let offered = HostKey::from_blob(blob).ok_or_else(|| unreachable("malformed host key".into()))?;
        Ok((sess, offered))
    }

    fn lookup(&self, pattern: &str) -> Result<Option<HostKey>, HostError> {
        self.known_hosts
            .lookup(pattern)
            .map_err(|e| HostError::HostKey(format!("cannot read {}: {e}", self.known_hosts.path().display())))
    }

    /// The key a host offers now, next to the pinned one (for `host trust`).
    pub fn offered_key(&self, host: &Host, deadline: Instant) -> Result<OfferedKey, HostError> {
        let pattern = host_pattern(&host.host, host.port);
        let pinned = self.lookup(&pattern)?;
        let (_, offered) = self.handshake(host, None, deadline)?;
        Ok(OfferedKey {
            pattern,
            pinned,
            offered,
        })
    }

    /// Compares the offered key with the pinned one, pinning it first under `accept-new`.
    pub(crate) fn verify(
        &self,
        host: &Host,
        pattern: &str,
        pinned: Option<HostKey>,
        offered: &HostKey,
    ) -> Result<(), HostError> {
        let endpoint = host.endpoint();
        match pinned {
            Some(p) if p == *offered => Ok(()),
            Some(p) => Err(HostError::HostKey(format!(
                "HOST KEY CHANGED for {} ({endpoint}): pinned {} {}, now offered {} {}. Someone may be intercepting the connection, or the host was reinstalled. Nothing was done on it. If the change is expected, run `cloudctl host trust {}` to pin the new key.",
                host.name, p.key_type, p.fingerprint(), offered.key_type, offered.fingerprint(), host.name
            ))),
            None if self.policy == HostKeyPolicy::AcceptNew => {
                let fingerprint = offered.fingerprint();
                let step = LocalStep {
                    effect: LocalEffect::PinKey {
                        file: self.known_hosts.path().to_path_buf(),
                        pattern: pattern.to_string(),
                        key: offered.clone(),
                    },
                    // Pinning on first use says nothing, as OpenSSH's accept-new does.
                    done: None,
                    would: Some(format!(
                        "dry run: would pin {}'s key {fingerprint} (host_key_policy = \"accept-new\")",
                        host.name
                    )),
                };
                effect::apply(std::slice::from_ref(&step), self.system.as_ref(), &|m| eprintln!("{m}"))
                    .map_err(|e| HostError::HostKey(e.to_string()))
            }
            None => Err(HostError::HostKey(format!(
                "{} ({endpoint}) is not trusted yet: it offers {} {}. Check that fingerprint on the host (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then run `cloudctl host trust {}`, or set host_key_policy = \"accept-new\" in [ssh].",
                host.name, offered.key_type, offered.fingerprint(), host.name
            ))),
        }
    }

    fn authenticate(&self, sess: &Session, host: &Host) -> Result<(), HostError> {
        let mut tried = Vec::new();
        if let Ok(mut agent) = sess.agent() {
            if agent.connect().is_ok() && agent.list_identities().is_ok() {
                for id in agent.identities().unwrap_or_default() {
                    if agent.userauth(&self.user, &id).is_ok() && sess.authenticated() {
                        return Ok(());
                    }
                    tried.push(format!("agent key {:?}", id.comment()));
                }
            }
        }
        if self.identity.exists() {
            match sess.userauth_pubkey_file(&self.user, None, &self.identity, None) {
                Ok(()) if sess.authenticated() => return Ok(()),
                Ok(()) => tried.push(self.identity.display().to_string()),
                Err(e) => tried.push(format!("{} ({})", self.identity.display(), e.message())),
            }
        } else {
            tried.push(format!("{} (file not found)", self.identity.display()));
        }
        Err(HostError::Unreachable(format!(
            "{} ({}): authentication as {} failed; tried {}. Put the public key in the host's authorized_keys, load it into ssh-agent, or set [ssh] identity.",
            host.name,
            host.endpoint(),
            self.user,
            tried.join(", ")
        )))
    }
}

impl Connector for SshConnector {
    fn connect(&self, host: &Host, deadline: Instant) -> Result<Box<dyn Transport>, HostError> {
        let pattern = host_pattern(&host.host, host.port);
        let pinned = self.lookup(&pattern)?;
        let (sess, offered) = self.handshake(host, pinned.as_ref(), deadline)?;
        self.verify(host, &pattern, pinned, &offered)?;
        self.authenticate(&sess, host)?;
        Ok(Box::new(SshTransport {
            sess,
            name: host.name.clone(),
            shell: None,
            scripts: 0,
        }))
    }
}

/// One `sh` per host, started once: every script of the run goes through the same channel, so
/// the login shell (and its rc files) starts once per host, not once per script.
struct SshTransport {
    sess: Session,
    name: String,
    shell: Option<ssh2::Channel>,
    scripts: u64,
}

impl SshTransport {
    fn failed(&self, what: &str, e: &dyn std::fmt::Display) -> HostError {
        let text = e.to_string();
        if text.contains("imed out") || text.contains("Timeout") {
            HostError::Failed(format!(
                "{}: per-host time limit reached while {what}; the host may be partly changed",
                self.name
            ))
        } else {
            HostError::Failed(format!("{}: {what}: {text}", self.name))
        }
    }

    fn shell(&mut self) -> Result<&mut ssh2::Channel, HostError> {
        if self.shell.is_none() {
            let mut ch = self
                .sess
                .channel_session()
                .map_err(|e| self.failed("opening a channel", &e))?;
            // stderr is merged remotely: libssh2 cannot read both streams blocking at once.
            ch.exec("sh -s 2>&1").map_err(|e| self.failed("starting sh", &e))?;
            self.shell = Some(ch);
        }
        Ok(self.shell.as_mut().expect("just set"))
    }
}

impl Transport for SshTransport {
    fn run_script(&mut self, script: &str, deadline: Instant) -> Result<ScriptOutput, HostError> {
        self.sess.set_timeout(millis(remaining(deadline)?));
        self.scripts += 1;
        // The subshell keeps `exit` and traps inside one script; its stdin is /dev/null so no
        // command can swallow the next script. The end line carries the exit status.
        let end = format!("@cloudctl-end-{}-{}", std::process::id(), self.scripts);
        let framed = format!("(\n{script}\n) </dev/null\nprintf '\\n{end} %d\\n' $?\n");
        let write = self.shell()?.write_all(framed.as_bytes());
        write.map_err(|e| self.failed("sending the script", &e))?;
        let needle = format!("\n{end} ");
        let mut out: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 32 * 1024];
        loop {
            // libssh2's timeout applies to one blocking call: set what is left of the host's
            // deadline before every read, or a script that keeps printing would never stop.
            let Some(left) = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else {
                // The script may still run: this channel is not reused.
                self.shell = None;
                return Err(HostError::Failed(format!(
                    "{}: per-host time limit reached while the script ran; the host may be partly changed",
                    self.name
                )));
            };
            self.sess.set_timeout(millis(left));
            let read = self.shell()?.read(&mut chunk);
            let n = match read {
                Ok(n) => n,
                Err(e) => {
                    self.shell = None;
                    return Err(self.failed("reading the output", &e));
                }
            };
            if n == 0 {
                self.shell = None;
                return Err(HostError::Failed(format!(
                    "{}: the remote shell ended before the script finished: {}",
                    self.name,
                    String::from_utf8_lossy(&out).trim()
                )));
            }
            out.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&out);
            if let Some(pos) = text.find(&needle) {
                let rest = &text[pos + needle.len()..];
                if let Some(line_end) = rest.find('\n') {
                    let status = rest[..line_end].trim().parse().unwrap_or(-1);
                    return Ok(ScriptOutput {
                        output: text[..pos].to_string(),
                        status,
                    });
                }
            }
        }
    }

    fn run_command(&mut self, command: &str, deadline: Instant) -> Option<Result<CommandOutput, HostError>> {
        Some(self.command(command, deadline))
    }

    fn run_fed(&mut self, command: &str, feed: &mut super::Feed, deadline: Instant) -> Result<ScriptOutput, HostError> {
        self.sess.set_timeout(millis(remaining(deadline)?));
        let mut ch = self
            .sess
            .channel_session()
            .map_err(|e| self.failed("opening a channel", &e))?;
        ch.handle_extended_data(ssh2::ExtendedData::Merge)
            .map_err(|e| self.failed("merging stderr", &e))?;
        ch.exec(command).map_err(|e| self.failed("starting the receiver", &e))?;
        let fed = feed(&mut DeadlineWriter {
            sess: &self.sess,
            ch: &mut ch,
            deadline,
        });
        // The receiver may have stopped early (a full disk, a refusal): what it printed says why,
        // so it is read before a write error is reported, and returned when it failed.
        let out = self.finish_fed(&mut ch, deadline);
        match (fed, out) {
            (Ok(()), out) => out,
            (Err(_), Ok(out)) if out.status != 0 => Ok(out),
            (Err(e), _) => Err(self.failed("sending the data", &e)),
        }
    }
}

/// A channel's stdin that gives up at the host's deadline: libssh2's timeout covers one blocking
/// call, so it is set to what is left before every write.
struct DeadlineWriter<'a> {
    sess: &'a Session,
    ch: &'a mut ssh2::Channel,
    deadline: Instant,
}

impl super::FeedSink for DeadlineWriter<'_> {}

impl Write for DeadlineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let left =
            remaining(self.deadline).map_err(|e| std::io::Error::new(std::io::ErrorKind::TimedOut, e.to_string()))?;
        self.sess.set_timeout(millis(left));
        self.ch.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.ch.flush()
    }
}

impl SshTransport {
    /// After the input: everything the command printed, then its exit status (valid only once
    /// the channel is closed, see the module comment).
    fn finish_fed(&mut self, ch: &mut ssh2::Channel, deadline: Instant) -> Result<ScriptOutput, HostError> {
        let _ = ch.send_eof();
        let mut out = Vec::new();
        let mut chunk = [0u8; 32 * 1024];
        loop {
            self.sess.set_timeout(millis(remaining(deadline)?));
            match ch.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(self.failed("reading the output", &e)),
            }
        }
        self.sess.set_timeout(millis(remaining(deadline)?));
        ch.wait_close().map_err(|e| self.failed("closing the channel", &e))?;
        let status = ch
            .exit_status()
            .map_err(|e| self.failed("reading the exit status", &e))?;
        Ok(ScriptOutput {
            output: String::from_utf8_lossy(&out).into_owned(),
            status,
        })
    }
}

impl SshTransport {
    /// `run_command`: the channel is read without blocking so that stdout and stderr are both
    /// drained as they come (blocking on one while the other fills the window would stall).
    fn command(&mut self, command: &str, deadline: Instant) -> Result<CommandOutput, HostError> {
        self.sess.set_timeout(millis(remaining(deadline)?));
        let mut ch = self
            .sess
            .channel_session()
            .map_err(|e| self.failed("opening a channel", &e))?;
        ch.exec(command).map_err(|e| self.failed("starting the command", &e))?;
        ch.send_eof()
            .map_err(|e| self.failed("closing the command's input", &e))?;
        self.sess.set_blocking(false);
        let drained = self.drain(&mut ch, deadline);
        self.sess.set_blocking(true);
        let (stdout, stderr) = drained?;
        self.sess.set_timeout(millis(remaining(deadline)?));
        ch.wait_close().map_err(|e| self.failed("closing the channel", &e))?;
        let status = ch
            .exit_status()
            .map_err(|e| self.failed("reading the exit status", &e))?;
        Ok(CommandOutput {
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            status,
        })
    }

    fn drain(&self, ch: &mut ssh2::Channel, deadline: Instant) -> Result<(Vec<u8>, Vec<u8>), HostError> {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let mut chunk = [0u8; 32 * 1024];
        loop {
            let mut got = false;
            for (stream, buf) in [(0, &mut out), (1, &mut err)] {
                let read = if stream == 0 {
                    ch.read(&mut chunk)
                } else {
                    ch.stderr().read(&mut chunk)
                };
                match read {
                    Ok(n) => {
                        got |= n > 0;
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(self.failed("reading the output", &e)),
                }
            }
            // A read of 0 is not the end by itself (libssh2 also says 0 when a packet for the
            // other stream came in): the end is EOF with both streams drained.
            if got {
                continue;
            }
            if ch.eof() {
                return Ok((out, err));
            }
            let left = deadline
                .checked_duration_since(Instant::now())
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    HostError::Failed(format!(
                        "{}: per-host time limit reached while the command ran; it may still run",
                        self.name
                    ))
                })?;
            self.wait_socket(left.min(Duration::from_secs(1)));
        }
    }

    /// Waits until the session's socket can go on in the direction libssh2 is blocked on.
    fn wait_socket(&self, timeout: Duration) {
        use std::os::unix::io::AsRawFd;
        let events = match self.sess.block_directions() {
            ssh2::BlockDirections::Outbound => libc::POLLOUT,
            ssh2::BlockDirections::Both => libc::POLLIN | libc::POLLOUT,
            _ => libc::POLLIN,
        };
        let mut fd = libc::pollfd {
            fd: self.sess.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        unsafe { libc::poll(&mut fd, 1, timeout.as_millis() as libc::c_int) };
    }
}

impl Drop for SshTransport {
    fn drop(&mut self) {
        if let Some(mut ch) = self.shell.take() {
            // Best effort: let sh see EOF and exit; the session closes either way.
            let _ = ch.send_eof();
        }
    }
}

#[cfg(test)]
mod accept_new;
