//! Loopback sshd hosts for the benches: one `sshd -D` per host on 127.0.0.1, one client key,
//! one host key pinned in a known_hosts of their own, all removed when dropped.
//!
//! Every host logs in as root on this machine, so all of them share one home directory and one
//! `~/.bashrc`, which bash reads for every command run through sshd. Whatever that file locks is
//! then one lock for all the hosts, which separate machines never share: with pyenv's
//! `eval "$(pyenv init -)"` in it, each login takes `~/.pyenv/shims/.pyenv-shim` (`pyenv rehash`,
//! polling every 0.1 s for up to 60 s), and 200 logins at once queue on it. [`LoginRc::Skipped`]
//! keeps the hosts' shells from reading it (see login_rc/mod.rs).

use cloudctl::exec::known_hosts::host_pattern;
use cloudctl::inventory::Host;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub use super::login_rc::LoginRc;

pub const SSHD: &str = "/usr/sbin/sshd";

/// The sshd hosts and what a client needs to log in. Dropping it stops exactly the sshds it
/// started (through their `Child` handles, so by pid) and removes every file the bench wrote.
pub struct Lab {
    /// Holds the keys, the sshd config and logs; removed on drop.
    _dir: tempfile::TempDir,
    sshds: Vec<Child>,
    pub hosts: Vec<Host>,
    pub client_key: PathBuf,
    pub known_hosts: PathBuf,
}

impl Lab {
    pub fn start(count: usize, first_port: u16, rc: LoginRc) -> Lab {
        let dir = tempfile::Builder::new().prefix("cloudctl-bench.").tempdir();
        let dir = dir.expect("cannot create a temp dir");
        let root = dir.path().to_path_buf();
        // Built first, so that a panic part-way still stops the sshds already started.
        let mut lab = Lab {
            _dir: dir,
            sshds: Vec::new(),
            hosts: Vec::new(),
            client_key: root.join("client_key"),
            known_hosts: root.join("known_hosts"),
        };
        fs::create_dir_all("/run/sshd").expect("cannot create /run/sshd (sshd's privilege-separation dir)");
        keygen(&lab.client_key);
        fs::copy(root.join("client_key.pub"), root.join("authorized_keys")).expect("cannot write authorized_keys");
        // One host key and one config for all the sshds; each gets its port on the command line.
        keygen(&root.join("host_key"));
        let public = fs::read_to_string(root.join("host_key.pub")).expect("host key was written");
        let public: Vec<&str> = public.split_whitespace().take(2).collect();
        let config = root.join("sshd_config");
        fs::write(&config, sshd_config(&root, rc)).expect("cannot write sshd_config");
        let mut known = String::new();
        for i in 1..=count {
            let port = first_port + (i - 1) as u16;
            // A stale sshd on the port would answer in place of ours.
            if accepts(port) {
                panic!("port {port} is already in use (a bench left running?); free it or set BENCH_HOSTS lower");
            }
            known += &format!("{} {}\n", host_pattern("127.0.0.1", port), public.join(" "));
            let log = fs::File::create(root.join(format!("h{i}.log"))).expect("cannot create an sshd log");
            let listen = format!("ListenAddress=127.0.0.1:{port}");
            // -D keeps sshd in the foreground as our child: we hold its pid, and a Ctrl-C in the
            // terminal reaches it too.
            let mut sshd = Command::new(SSHD);
            sshd.args(["-D", "-e", "-o", &listen, "-f"]).arg(&config).stderr(log);
            lab.sshds.push(sshd.spawn().expect("cannot run sshd"));
            lab.hosts.push(Host {
                name: format!("h{i}"),
                role: "hnode",
                host: "127.0.0.1".into(),
                port,
            });
        }
        fs::write(&lab.known_hosts, known).expect("cannot write known_hosts");
        let deadline = Instant::now() + Duration::from_secs(10);
        for (h, sshd) in lab.hosts.iter().zip(&mut lab.sshds) {
            while !accepts(h.port) {
                if sshd.try_wait().expect("sshd status").is_some() || Instant::now() > deadline {
                    let log = fs::read_to_string(root.join(format!("{}.log", h.name))).unwrap_or_default();
                    let (name, port) = (&h.name, h.port);
                    panic!("host {name} (port {port}) does not accept connections; sshd: {log}");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        lab
    }

    /// The floor's client: `ssh` with the bench key and known_hosts, strict, never prompting.
    pub fn ssh(&self, h: &Host) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-i").arg(&self.client_key).arg("-o");
        cmd.arg(format!("UserKnownHostsFile={}", self.known_hosts.display()));
        let port = h.port.to_string();
        cmd.args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", &port]);
        cmd.arg(format!("root@{}", h.host));
        cmd
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for sshd in &mut self.sshds {
            let _ = sshd.kill();
            let _ = sshd.wait();
        }
    }
}

pub fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

fn sshd_config(root: &Path, rc: LoginRc) -> String {
    let root = root.display();
    let skip_rc = rc.sshd_config();
    // MaxStartups: every host's connection arrives at once; the default would drop some.
    format!(
        "HostKey {root}/host_key\nPidFile none\nAuthorizedKeysFile {root}/authorized_keys\n\
         PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nUseDNS no\nMaxStartups 1000\nLogLevel ERROR\n{skip_rc}"
    )
}

fn keygen(path: &Path) {
    let args = ["-q", "-t", "ed25519", "-N", "", "-C", "cloudctl-bench", "-f"];
    let status = Command::new("ssh-keygen").args(args).arg(path).status();
    assert!(status.is_ok_and(|s| s.success()), "ssh-keygen failed");
}
