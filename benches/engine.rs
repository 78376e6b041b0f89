//! Engine benchmark: cloudctl's executor against the OpenSSH floor, on loopback sshd hosts.
//!
//! Run with `cargo bench --bench engine` (needs root and OpenSSH's sshd; not part of CI). It measures
//! the job of ANCHORS.md ("Numbers to beat") in one process and one run: per host, render and install
//! a ~1 KiB config file (validated), upload 64 KiB, ensure a directory, run a command, and restart a
//! "service" only when the config changed. Timed, each as the median of 3 rounds in alternating order:
//!
//! - cloudctl: `exec::apply` over `SshConnector` with forks = hosts, a first pass (files absent) and a
//!   no-change pass (every host must report ok);
//! - the floor: one `ssh` process per host feeding one batched `sh` script, all hosts at once.
//!
//! It prints the ratios against the targets (first ≤ 1.5× floor, no change ≤ 1.0× floor), where
//! cloudctl's time goes (connect = TCP + SSH handshake + auth, probe, apply; CPU busy), and the time to
//! parse, select and plan a generated 5,000-node inventory against its 1-second target.
//!
//! The hosts are sshd processes on 127.0.0.1:42201.. (`BENCH_HOSTS`, default 24) sharing this
//! machine's filesystem, so host `h<i>` works under /tmp/cloudctl-bench/h<i>/, and cloudctl's per-host
//! lock is off: it exists once per real host, and here every "host" shares one kernel.
//!
//! Diagnostics: `BENCH_SKIP_BASHRC=1` makes the hosts' login shell skip root's ~/.bashrc in SSH
//! sessions (sshd `SetEnv SHLVL=1`), to see the engine without the per-session startup cost of the
//! shell; `BENCH_WHATIF=1` also times the same plans over a prototype transport (in this file, not the
//! engine) that keeps one SSH session per host.

use base64::Engine as _;
use cloudctl::exec::known_hosts::{host_pattern, HostKey, KnownHosts};
use cloudctl::exec::ssh::SshConnector;
use cloudctl::exec::{self, Connector, HostError, HostReport, HostStatus, Limits, ScriptOutput, Transport};
use cloudctl::inventory::{self, Host, HostKeyPolicy};
use cloudctl::plan::{CommandStep, DirStep, FileStep, HostPlan, Plan, Step, When};
use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FIRST_PORT: u16 = 42201;
const DEFAULT_HOSTS: usize = 24;
const REMOTE_ROOT: &str = "/tmp/cloudctl-bench";
const SSHD: &str = "/usr/sbin/sshd";
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const BLOB_LEN: usize = 64 * 1024;
const ROUNDS: usize = 3;
const TARGET_FIRST: f64 = 1.5;
const TARGET_NO_CHANGE: f64 = 1.0;
const INVENTORY_NODES: usize = 5_000;
const INVENTORY_TARGET_S: f64 = 1.0;
/// ANCHORS.md, 24 hosts: (tool, first run s, second run s).
const ANCHORS: [(&str, f64, f64); 4] = [
    ("Ansible (forks 50, pipelining, ControlPersist)", 43.0, 34.0),
    ("Ansible + Mitogen", 10.5, 8.6),
    ("pyinfra", 28.5, 15.6),
    ("OpenSSH floor", 3.2, 3.6),
];

/// The service config every host gets (handlebars, strict mode); the validator wants `^name`.
const CONFIG_TEMPLATE: &str = r#"name = "{{name}}"
# Service configuration for {{name}}, written by the cloudctl engine bench.
# Rendered from a handlebars template; the service restarts only when this file changes.

[service]
listen = "{{address}}:{{port}}"
workers = {{workers}}
log_level = "info"
pid_file = "{{dir}}/app.pid"
state_dir = "{{dir}}/state"

[limits]
max_connections = 1024
request_timeout_ms = 30000
idle_timeout_ms = 120000
max_body_bytes = 1048576
{{#each upstreams}}

[[upstream]]
name = "{{this.name}}"
address = "{{this.address}}"
weight = {{this.weight}}
{{/each}}

[health]
path = "/healthz"
interval_ms = 5000
unhealthy_after = 3
"#;

fn main() {
    if let Some(why) = missing_requirement() {
        println!("engine bench skipped: {why}. It starts sshd hosts on loopback; run it as root on a machine with OpenSSH (server and client) installed.");
        return;
    }
    let count = match std::env::var("BENCH_HOSTS") {
        Err(_) => DEFAULT_HOSTS,
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                eprintln!("BENCH_HOSTS={v:?}: give a number of hosts from 1 to 1000");
                std::process::exit(2);
            }
        },
    };
    println!(
        "cloudctl engine bench: {count} loopback sshd hosts on 127.0.0.1:{FIRST_PORT}..{}",
        FIRST_PORT as usize + count - 1
    );
    println!("note: cloudctl's host lock is off (HostPlan.exclusive = false): the {count} hosts share one kernel, and the lock is per real host");
    println!(
        "note: machine load before the run: {} (other builds on this machine skew the figures)",
        load_average()
    );
    if std::env::var_os("SSH_AUTH_SOCK").is_some() {
        println!("note: SSH_AUTH_SOCK is set: cloudctl and ssh both try agent keys before the bench key");
    }

    let skip_bashrc = std::env::var("BENCH_SKIP_BASHRC").is_ok_and(|v| v == "1");
    if skip_bashrc {
        println!("note: BENCH_SKIP_BASHRC=1: the hosts' sshd sets SHLVL=1, so root's login shell skips ~/.bashrc in SSH sessions");
    }
    let lab = Lab::start(count, skip_bashrc);
    let job = Job::new(&lab.hosts);
    let plan = job.plan();
    let scripts = job.floor_scripts();
    let connector = TimedConnector::new(Box::new(SshConnector {
        user: "root".into(),
        identity: lab.keys.client_key.clone(),
        known_hosts: KnownHosts::new(lab.keys.known_hosts.clone()),
        policy: HostKeyPolicy::Strict,
        connect_timeout: Duration::from_secs(10),
    }));
    let what_if = std::env::var("BENCH_WHATIF").is_ok_and(|v| v == "1").then(|| {
        println!("note: BENCH_WHATIF=1: also timing cloudctl's plans over a prototype transport in this bench that keeps one SSH session per host (not the engine's)");
        TimedConnector::new(Box::new(OneSessionConnector {
            client_key: lab.keys.client_key.clone(),
            known_hosts: KnownHosts::new(lab.keys.known_hosts.clone()),
        }))
    });
    println!(
        "job per host: config {} bytes (validated), upload {} bytes, 1 directory, 1 command, restart on config change",
        job.configs[0].len(),
        job.blob.len()
    );

    connection_anatomy(&lab.keys, &connector, &job);

    println!("\nwarm-up round (not counted)");
    run_floor_round(&lab.keys, &job, &scripts);
    run_cloudctl_round(&job, &connector, &plan);

    let mut floor = Rounds::default();
    let mut cloud = Rounds::default();
    let mut one_session = Rounds::default();
    for round in 0..ROUNDS {
        let mut tools = vec!["floor", "cloudctl"];
        if what_if.is_some() {
            tools.push("what-if");
        }
        if round % 2 == 1 {
            tools.reverse();
        }
        for tool in tools {
            let (first, second, rounds) = match (tool, &what_if) {
                ("floor", _) => {
                    let (a, b) = run_floor_round(&lab.keys, &job, &scripts);
                    (a, b, &mut floor)
                }
                ("what-if", Some(c)) => {
                    let (a, b) = run_cloudctl_round(&job, c, &plan);
                    (a, b, &mut one_session)
                }
                _ => {
                    let (a, b) = run_cloudctl_round(&job, &connector, &plan);
                    (a, b, &mut cloud)
                }
            };
            println!(
                "round {}: {tool:<8} first {:.2} s, no change {:.2} s",
                round + 1,
                first.wall,
                second.wall
            );
            rounds.first.push(first);
            rounds.second.push(second);
        }
    }

    print_breakdown(count, &floor, &cloud, what_if.as_ref().map(|_| &one_session));

    let inventory = inventory_scale();
    drop(lab);

    print_results(count, &floor, &cloud, what_if.as_ref().map(|_| &one_session), inventory);
}

/// Where the time goes: wall, CPU, processes and sessions per host, and cloudctl's phases.
fn print_breakdown(count: usize, floor: &Rounds, cloud: &Rounds, what_if: Option<&Rounds>) {
    println!(
        "\nwhere the time goes ({count} hosts at once on {} cores; median round of each):",
        cores()
    );
    for (pass, f, c) in [
        ("first", &floor.first, &cloud.first),
        ("no-change", &floor.second, &cloud.second),
    ] {
        let (f, c) = (median_sample(f), median_sample(c));
        let sessions = c.phases.iter().filter(|p| p.what != "connect").count() as f64 / count as f64;
        println!(
            "  {pass}: floor {:.2} s wall, {:.2} s CPU busy ({:.2} s in the ssh clients), {:.0} processes/host, 1 session/host",
            f.wall,
            f.busy,
            f.client,
            f.forks as f64 / count as f64
        );
        println!(
            "  {:w$}  cloudctl {:.2} s wall, {:.2} s CPU busy ({:.2} s in cloudctl), {:.0} processes/host, {sessions:.0} sessions/host",
            "",
            c.wall,
            c.busy,
            c.client,
            c.forks as f64 / count as f64,
            w = pass.len()
        );
        print_phases(&c.phases);
        if let Some(one) = what_if {
            let w = median_sample(if pass == "first" { &one.first } else { &one.second });
            println!(
                "  {:w$}  what-if  {:.2} s wall, {:.2} s CPU busy ({:.2} s in cloudctl), {:.0} processes/host, 1 session/host",
                "",
                w.wall,
                w.busy,
                w.client,
                w.forks as f64 / count as f64,
                w = pass.len()
            );
        }
    }
}

/// The summary table against the targets, the ANCHORS figures and the inventory timing.
fn print_results(count: usize, floor: &Rounds, cloud: &Rounds, what_if: Option<&Rounds>, inventory: (f64, f64)) {
    println!("\n=== results: {count} hosts, median of {ROUNDS} rounds ===");
    println!(
        "{:<24} {:>9} {:>10} {:>10} {:>8} {:>7}",
        "", "floor", "cloudctl", "ratio", "target", "result"
    );
    for (pass, f, c, target) in [
        ("first run", &floor.first, &cloud.first, TARGET_FIRST),
        ("second run (no change)", &floor.second, &cloud.second, TARGET_NO_CHANGE),
    ] {
        let (f, c) = (median_sample(f).wall, median_sample(c).wall);
        let ratio = c / f;
        println!(
            "{pass:<24} {:>7.2} s {:>8.2} s {:>9.2}x {:>7}x {:>7}",
            f,
            c,
            ratio,
            format!("<={target:.1}"),
            if ratio <= target { "PASS" } else { "MISS" }
        );
    }
    if let Some(one_session) = what_if {
        println!("what-if, not the engine: the same plans and scripts over one SSH session per host (prototype transport in this bench):");
        for (pass, f, c) in [
            ("first run", &floor.first, &one_session.first),
            ("second run (no change)", &floor.second, &one_session.second),
        ] {
            let (f, c) = (median_sample(f).wall, median_sample(c).wall);
            println!("{pass:<24} {f:>7.2} s {c:>8.2} s {:>9.2}x", c / f);
        }
    }
    println!("measured elsewhere (ANCHORS.md), same job, 24 hosts, first / second run:");
    for (tool, first, second) in ANCHORS {
        println!("  {tool:<48} {first:>5.1} s / {second:>4.1} s");
    }
    if count != 24 {
        println!("  (this run used {count} hosts; the ANCHORS figures are for 24)");
    }
    let (parse, total) = inventory;
    println!(
        "inventory: {INVENTORY_NODES} nodes parse+validate {:.3} s, +select(all)+plan {:.3} s (median of 5), target <= {INVENTORY_TARGET_S:.0} s: {}",
        parse,
        total,
        if total <= INVENTORY_TARGET_S { "PASS" } else { "MISS" }
    );
}

// ---------------------------------------------------------------------------------------------
// Loopback hosts

/// The sshd hosts, their keys and known_hosts; stops the sshds and removes every file on drop.
struct Lab {
    dir: tempfile::TempDir,
    hosts: Vec<Host>,
    keys: Keys,
}

/// What a client needs to log in to the hosts.
struct Keys {
    client_key: PathBuf,
    known_hosts: PathBuf,
}

/// Pid files of the sshds this process started, and the temp dir; read by the Ctrl-C handler too.
static STARTED: Mutex<(Vec<PathBuf>, Option<PathBuf>)> = Mutex::new((Vec::new(), None));

impl Lab {
    fn start(count: usize, skip_bashrc: bool) -> Lab {
        let dir = tempfile::Builder::new()
            .prefix("cloudctl-bench.")
            .tempdir()
            .expect("cannot create a temp dir");
        STARTED.lock().unwrap().1 = Some(dir.path().to_path_buf());
        let _ = ctrlc::set_handler(|| {
            eprintln!("\ninterrupted: stopping the bench sshds");
            cleanup();
            std::process::exit(130);
        });
        let root = dir.path().to_path_buf();
        let mut lab = Lab {
            keys: Keys {
                client_key: root.join("client_key"),
                known_hosts: root.join("known_hosts"),
            },
            hosts: Vec::new(),
            dir,
        };
        fs::create_dir_all("/run/sshd").expect("cannot create /run/sshd (sshd's privilege-separation dir)");
        keygen(&lab.keys.client_key);
        fs::copy(root.join("client_key.pub"), root.join("authorized_keys")).expect("cannot write authorized_keys");
        let mut known = String::new();
        for i in 1..=count {
            let port = FIRST_PORT + (i - 1) as u16;
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                panic!("port {port} is already in use (a bench left running?); free ports {FIRST_PORT}..{} or set BENCH_HOSTS lower", FIRST_PORT as usize + count - 1);
            }
            let hdir = root.join(format!("h{i}"));
            fs::create_dir(&hdir).expect("cannot create a host dir");
            let key = hdir.join("ssh_host_ed25519_key");
            keygen(&key);
            let public = fs::read_to_string(hdir.join("ssh_host_ed25519_key.pub")).expect("host key was written");
            let mut fields = public.split_whitespace();
            let (kind, blob) = (fields.next().expect("key type"), fields.next().expect("key blob"));
            known += &format!("{} {kind} {blob}\n", host_pattern("127.0.0.1", port));
            let config = hdir.join("sshd_config");
            fs::write(&config, sshd_config(port, &hdir, &root, skip_bashrc)).expect("cannot write sshd_config");
            STARTED.lock().unwrap().0.push(hdir.join("sshd.pid"));
            // Without -D sshd forks into the background; the parent only checks the config first.
            let out = Command::new(SSHD)
                .arg("-f")
                .arg(&config)
                .arg("-E")
                .arg(hdir.join("sshd.log"))
                .stdin(Stdio::null())
                .output()
                .expect("cannot run sshd");
            if !out.status.success() {
                panic!(
                    "sshd for host h{i} did not start ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            lab.hosts.push(Host {
                name: format!("h{i}"),
                role: "hnode",
                host: "127.0.0.1".into(),
                port,
            });
        }
        fs::write(&lab.keys.known_hosts, known).expect("cannot write known_hosts");
        lab.wait_ready();
        lab
    }

    /// Waits until every sshd has written its pid file (it does so after binding) and accepts.
    fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        for (i, h) in self.hosts.iter().enumerate() {
            let hdir = self.dir.path().join(&h.name);
            loop {
                let written = fs::read_to_string(hdir.join("sshd.pid")).is_ok_and(|p| !p.trim().is_empty());
                let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, h.port));
                if written && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if Instant::now() > deadline {
                    let log = fs::read_to_string(hdir.join("sshd.log")).unwrap_or_default();
                    panic!(
                        "host {} (port {}) did not accept connections within {}s ({i} of {} hosts ready); sshd log: {}",
                        h.name,
                        h.port,
                        READY_TIMEOUT.as_secs(),
                        self.hosts.len(),
                        log.trim()
                    );
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        cleanup();
    }
}

/// Stops exactly the sshds this process started (pid from their pid files, checked against
/// /proc/PID/cmdline) and removes the hosts' remote dirs and the temp dir.
fn cleanup() {
    let mut started = STARTED.lock().unwrap_or_else(|e| e.into_inner());
    for pid_file in started.0.drain(..) {
        let Some(pid) = fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        else {
            continue;
        };
        let config = pid_file.with_file_name("sshd_config");
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if pid > 1 && String::from_utf8_lossy(&cmdline).contains(&*config.to_string_lossy()) {
            // SAFETY: kill(2) with a pid we verified is our sshd; no memory is involved.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
    }
    let _ = fs::remove_dir_all(REMOTE_ROOT);
    if let Some(dir) = started.1.take() {
        let _ = fs::remove_dir_all(dir);
    }
}

impl Keys {
    /// The floor's client: `ssh` with the bench key and known_hosts, strict, never prompting.
    fn ssh(&self, h: &Host) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-i")
            .arg(&self.client_key)
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", self.known_hosts.display()))
            .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p"])
            .arg(h.port.to_string())
            .arg(format!("root@{}", h.host));
        cmd
    }
}

/// `skip_bashrc`: bash sources ~/.bashrc when started by sshd as a top-level shell; SHLVL=1 in
/// its environment makes it a nested one.
fn sshd_config(port: u16, host_dir: &Path, root: &Path, skip_bashrc: bool) -> String {
    let (h, r) = (host_dir.display(), root.display());
    let set_env = if skip_bashrc { "SetEnv SHLVL=1\n" } else { "" };
    format!(
        "# cloudctl engine bench host\n\
         ListenAddress 127.0.0.1:{port}\n\
         HostKey {h}/ssh_host_ed25519_key\n\
         PidFile {h}/sshd.pid\n\
         AuthorizedKeysFile {r}/authorized_keys\n\
         PermitRootLogin prohibit-password\n\
         UsePAM no\n\
         StrictModes no\n\
         PasswordAuthentication no\n\
         KbdInteractiveAuthentication no\n\
         UseDNS no\n\
         MaxStartups 100\n\
         LogLevel ERROR\n\
         {set_env}"
    )
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "cloudctl-bench", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn missing_requirement() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root".into());
    }
    if !Path::new(SSHD).exists() {
        return Some(format!("{SSHD} not found (install openssh-server)"));
    }
    for tool in ["ssh", "ssh-keygen"] {
        let found = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
        if !found {
            return Some(format!("`{tool}` not found on PATH (install openssh-client)"));
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// The job

struct Job {
    hosts: Vec<Host>,
    configs: Vec<String>,
    blob: Vec<u8>,
}

impl Job {
    fn new(hosts: &[Host]) -> Job {
        let mut hb = handlebars::Handlebars::new();
        hb.set_strict_mode(true);
        hb.register_escape_fn(handlebars::no_escape);
        hb.register_template_string("app.conf", CONFIG_TEMPLATE)
            .expect("the config template parses");
        let configs = hosts
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let upstreams: Vec<_> = (1..=6)
                    .map(|k| serde_json::json!({ "name": format!("{}-up{k}", h.name), "address": format!("10.20.{}.{k}:8080", i + 1), "weight": k * 10 }))
                    .collect();
                let data = serde_json::json!({
                    "name": h.name, "address": h.host, "port": h.port, "workers": 4,
                    "dir": remote_dir(h), "upstreams": upstreams,
                });
                hb.render("app.conf", &data).expect("the config template renders")
            })
            .collect();
        Job {
            hosts: hosts.to_vec(),
            configs,
            blob: pseudo_random(BLOB_LEN),
        }
    }

    /// cloudctl's plan: directory, config (validated), blob, command, restart on config change.
    fn plan(&self) -> Plan {
        let hosts = self
            .hosts
            .iter()
            .zip(&self.configs)
            .map(|(h, config)| {
                let dir = remote_dir(h);
                let file = |id: &str, name: &str, content: Vec<u8>, validate: Option<Vec<String>>| {
                    Step::File(FileStep {
                        id: id.into(),
                        path: format!("{dir}/{name}").parse().expect("absolute path"),
                        content,
                        mode: 0o644,
                        owner: None,
                        validate,
                        secret: false,
                    })
                };
                HostPlan {
                    host: h.clone(),
                    exclusive: false,
                    steps: vec![
                        Step::Dir(DirStep {
                            path: dir.parse().expect("absolute path"),
                            mode: 0o755,
                        }),
                        file(
                            "cfg",
                            "app.conf",
                            config.clone().into_bytes(),
                            Some(argv(&["grep", "-q", "^name", "{}"])),
                        ),
                        file("blob", "blob.bin", self.blob.clone(), None),
                        Step::Command(CommandStep {
                            argv: argv(&["uname", "-r"]),
                            when: When::Always,
                        }),
                        Step::Command(CommandStep {
                            argv: argv(&["sh", "-c", &format!("date >> {dir}/restarts")]),
                            when: When::Changed(vec!["cfg".into()]),
                        }),
                    ],
                }
            })
            .collect();
        Plan {
            title: "engine bench job".into(),
            hosts,
            confirm: true,
        }
    }

    /// The floor's scripts: the same job as one batched `sh` script per host.
    fn floor_scripts(&self) -> Vec<String> {
        let encoded = base64::engine::general_purpose::STANDARD.encode(&self.blob);
        let mut blob_lines = String::with_capacity(encoded.len() + encoded.len() / 76 + 1);
        for chunk in encoded.as_bytes().chunks(76) {
            blob_lines += std::str::from_utf8(chunk).expect("base64 is ASCII");
            blob_lines.push('\n');
        }
        self.hosts
            .iter()
            .zip(&self.configs)
            .map(|(h, config)| {
                assert!(config.ends_with('\n') && !config.contains("FLOOR_EOF"), "config fits a heredoc");
                format!(
                    "set -e\n\
                     D='{dir}'\n\
                     mkdir -p \"$D\" && chmod 755 \"$D\"\n\
                     cat > \"$D/.app.conf.new\" <<'FLOOR_EOF'\n{config}FLOOR_EOF\n\
                     changed=0\n\
                     if cmp -s \"$D/.app.conf.new\" \"$D/app.conf\"; then rm -f \"$D/.app.conf.new\"\n\
                     else grep -q '^name' \"$D/.app.conf.new\"; chmod 644 \"$D/.app.conf.new\"; mv -f \"$D/.app.conf.new\" \"$D/app.conf\"; changed=1; fi\n\
                     base64 -d > \"$D/.blob.bin.new\" <<'FLOOR_EOF'\n{blob_lines}FLOOR_EOF\n\
                     if cmp -s \"$D/.blob.bin.new\" \"$D/blob.bin\"; then rm -f \"$D/.blob.bin.new\"\n\
                     else chmod 644 \"$D/.blob.bin.new\"; mv -f \"$D/.blob.bin.new\" \"$D/blob.bin\"; fi\n\
                     uname -r > /dev/null\n\
                     if [ $changed = 1 ]; then date >> \"$D/restarts\"; fi\n\
                     echo \"floor changed=$changed\"\n",
                    dir = remote_dir(h)
                )
            })
            .collect()
    }

    /// Removes every host's remote dir (the first pass starts from nothing).
    fn reset(&self) {
        match fs::remove_dir_all(REMOTE_ROOT) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("cannot remove {REMOTE_ROOT}: {e}"),
            _ => {}
        }
    }

    /// Checks the restart ran exactly once per host since the reset.
    fn check_restarts(&self, tool: &str, pass: &str) {
        for h in &self.hosts {
            let lines = fs::read_to_string(format!("{}/restarts", remote_dir(h))).map_or(0, |t| t.lines().count());
            assert_eq!(
                lines, 1,
                "{tool} {pass}: host {} restarted {lines} times since the reset, expected once",
                h.name
            );
        }
    }
}

fn remote_dir(h: &Host) -> String {
    format!("{REMOTE_ROOT}/{}", h.name)
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// Deterministic incompressible bytes (xorshift64).
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

// ---------------------------------------------------------------------------------------------
// Running and measuring

#[derive(Default)]
struct Rounds {
    first: Vec<Sample>,
    second: Vec<Sample>,
}

/// One timed pass: wall seconds, CPU seconds the whole machine was busy, CPU of our process and
/// its reaped children (cloudctl itself, or the `ssh` clients), and cloudctl's per-host phases.
#[derive(Clone, Default)]
struct Sample {
    wall: f64,
    busy: f64,
    client: f64,
    forks: u64,
    phases: Vec<Phase>,
}

fn timed<T>(f: impl FnOnce() -> T) -> (Sample, T) {
    let (busy0, own0, forks0) = (machine_busy(), own_cpu(), machine_forks());
    let start = Instant::now();
    let value = f();
    let wall = start.elapsed().as_secs_f64();
    let sample = Sample {
        wall,
        busy: machine_busy() - busy0,
        client: own_cpu() - own0,
        forks: machine_forks() - forks0,
        phases: Vec::new(),
    };
    (sample, value)
}

fn run_floor_round(keys: &Keys, job: &Job, scripts: &[String]) -> (Sample, Sample) {
    job.reset();
    let (first, outputs) = timed(|| run_floor(keys, &job.hosts, scripts));
    check_floor(&outputs, "first", "changed=1");
    job.check_restarts("floor", "first pass");
    let (second, outputs) = timed(|| run_floor(keys, &job.hosts, scripts));
    check_floor(&outputs, "no-change", "changed=0");
    job.check_restarts("floor", "no-change pass");
    (first, second)
}

/// One `ssh` per host, all spawned first, each fed its script on stdin by its own thread.
fn run_floor(keys: &Keys, hosts: &[Host], scripts: &[String]) -> Vec<(String, std::process::Output)> {
    let children: Vec<_> = hosts
        .iter()
        .map(|h| {
            keys.ssh(h)
                .args(["sh", "-s"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("cannot run ssh")
        })
        .collect();
    std::thread::scope(|scope| {
        let feeders: Vec<_> = children
            .into_iter()
            .zip(scripts)
            .zip(hosts)
            .map(|((mut child, script), h)| {
                scope.spawn(move || {
                    let mut stdin = child.stdin.take().expect("piped stdin");
                    // A failed write shows up as ssh's exit status.
                    let _ = stdin.write_all(script.as_bytes());
                    drop(stdin);
                    (h.name.clone(), child.wait_with_output().expect("ssh ran"))
                })
            })
            .collect();
        feeders.into_iter().map(|f| f.join().expect("feeder thread")).collect()
    })
}

fn check_floor(outputs: &[(String, std::process::Output)], pass: &str, expect: &str) {
    for (name, out) in outputs {
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(expect),
            "floor {pass} pass on {name}: {} (expected {expect:?}); stdout: {} stderr: {}",
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
}

fn run_cloudctl_round(job: &Job, connector: &TimedConnector, plan: &Plan) -> (Sample, Sample) {
    job.reset();
    let first = run_cloudctl(connector, plan, HostStatus::Changed, "first");
    job.check_restarts("cloudctl", "first pass");
    let second = run_cloudctl(connector, plan, HostStatus::Ok, "no-change");
    job.check_restarts("cloudctl", "no-change pass");
    (first, second)
}

fn run_cloudctl(connector: &TimedConnector, plan: &Plan, expect: HostStatus, pass: &str) -> Sample {
    let limits = Limits {
        forks: plan.hosts.len(),
        host_timeout: Duration::from_secs(120),
    };
    connector.reset();
    let (mut sample, reports) = timed(|| exec::apply(plan, connector, &limits, &|_: exec::Event| {}));
    check_reports(&reports, expect, pass);
    sample.phases = connector.phases();
    sample
}

fn check_reports(reports: &[HostReport], expect: HostStatus, pass: &str) {
    let wrong: Vec<String> = reports
        .iter()
        .filter(|r| r.status != expect)
        .map(|r| {
            let steps: Vec<String> = r
                .steps
                .iter()
                .map(|s| format!("{}: {:?} {}", s.step, s.result.status, s.result.stderr.trim()))
                .collect();
            format!(
                "{} {:?} {} [{}]",
                r.name,
                r.status,
                r.error.as_deref().unwrap_or(""),
                steps.join("; ")
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "cloudctl {pass} pass: expected every host {expect:?}, got:\n  {}",
        wrong.join("\n  ")
    );
}

/// Total CPU seconds all cores spent not idle (from /proc/stat).
fn machine_busy() -> f64 {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: f64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0.0) + fields.get(4).copied().unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    (total - idle) / hz
}

/// Processes started on the machine since boot (from /proc/stat).
fn machine_forks() -> u64 {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .find_map(|l| l.strip_prefix("processes "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// CPU seconds of this process and its reaped children.
fn own_cpu() -> f64 {
    let usage = |who| {
        // SAFETY: getrusage fills the zeroed struct we pass.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        unsafe { libc::getrusage(who, &mut u) };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        secs(u.ru_utime) + secs(u.ru_stime)
    };
    usage(libc::RUSAGE_SELF) + usage(libc::RUSAGE_CHILDREN)
}

fn login_shell() -> String {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find(|l| l.starts_with("root:"))
        .and_then(|l| l.rsplit(':').next())
        .unwrap_or("?")
        .to_string()
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The sample with the median wall time (its CPU and phases go with it).
fn median_sample(samples: &[Sample]) -> Sample {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    sorted[sorted.len() / 2].clone()
}

// ---------------------------------------------------------------------------------------------
// Phase timing: a Connector and Transport wrapped around cloudctl's own

/// One timed piece of one host's work, as offsets from the start of the pass.
#[derive(Clone)]
struct Phase {
    what: &'static str,
    from: Duration,
    to: Duration,
}

struct TimedConnector {
    inner: Box<dyn Connector>,
    start: Mutex<Instant>,
    log: Arc<Mutex<Vec<Phase>>>,
}

impl TimedConnector {
    fn new(inner: Box<dyn Connector>) -> Self {
        TimedConnector {
            inner,
            start: Mutex::new(Instant::now()),
            log: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn reset(&self) {
        *self.start.lock().unwrap() = Instant::now();
        self.log.lock().unwrap().clear();
    }

    fn phases(&self) -> Vec<Phase> {
        self.log.lock().unwrap().clone()
    }
}

impl Connector for TimedConnector {
    fn connect(&self, host: &Host, deadline: Instant) -> Result<Box<dyn Transport>, HostError> {
        let start = *self.start.lock().unwrap();
        let from = start.elapsed();
        let transport = self.inner.connect(host, deadline)?;
        self.log.lock().unwrap().push(Phase {
            what: "connect",
            from,
            to: start.elapsed(),
        });
        Ok(Box::new(TimedTransport {
            inner: transport,
            start,
            calls: 0,
            log: Arc::clone(&self.log),
        }))
    }
}

struct TimedTransport {
    inner: Box<dyn Transport>,
    start: Instant,
    calls: usize,
    log: Arc<Mutex<Vec<Phase>>>,
}

impl Transport for TimedTransport {
    fn run_script(&mut self, script: &str, deadline: Instant) -> Result<ScriptOutput, HostError> {
        let what = match self.calls {
            0 => "probe",
            1 => "apply",
            _ => "re-apply",
        };
        self.calls += 1;
        let from = self.start.elapsed();
        let out = self.inner.run_script(script, deadline);
        self.log.lock().unwrap().push(Phase {
            what,
            from,
            to: self.start.elapsed(),
        });
        out
    }
}

fn print_phases(phases: &[Phase]) {
    for what in ["connect", "probe", "apply", "re-apply"] {
        let mine: Vec<&Phase> = phases.iter().filter(|p| p.what == what).collect();
        if mine.is_empty() {
            continue;
        }
        let durations: Vec<f64> = mine.iter().map(|p| (p.to - p.from).as_secs_f64()).collect();
        let max = durations.iter().copied().fold(0.0, f64::max);
        let first_began = mine.iter().map(|p| p.from).min().unwrap_or_default().as_secs_f64();
        let last_ended = mine.iter().map(|p| p.to).max().unwrap_or_default().as_secs_f64();
        println!(
            "      {what:<8} per host median {:.3} s, max {:.3} s; first began at {:.3} s, last ended at {:.3} s",
            median(durations),
            max,
            first_began,
            last_ended
        );
    }
}

/// One host, nothing else running: where a single connection's time goes, with libssh2 driven the
/// way the engine drives it, next to one `ssh` process, and the job on one host each way.
fn connection_anatomy(keys: &Keys, connector: &TimedConnector, job: &Job) {
    let host = &job.hosts[0];
    let reps = 5;
    let mut parts: Vec<Vec<f64>> = vec![Vec::new(); 5];
    let mut methods = String::new();
    let mut session_forks = Vec::new();
    for _ in 0..reps {
        let t0 = Instant::now();
        let tcp = TcpStream::connect((host.host.as_str(), host.port)).expect("connect");
        let _ = tcp.set_nodelay(true);
        let t1 = Instant::now();
        let mut sess = ssh2::Session::new().expect("libssh2 session");
        sess.set_tcp_stream(tcp);
        sess.set_timeout(10_000);
        sess.method_pref(ssh2::MethodType::HostKey, "ssh-ed25519")
            .expect("host key pref");
        sess.handshake().expect("handshake");
        let t2 = Instant::now();
        if let Ok(mut agent) = sess.agent() {
            if agent.connect().is_ok() {
                let _ = agent.list_identities();
            }
        }
        let t3 = Instant::now();
        sess.userauth_pubkey_file("root", None, &keys.client_key, None)
            .expect("pubkey auth");
        let t4 = Instant::now();
        let forks0 = machine_forks();
        let mut ch = sess.channel_session().expect("channel");
        ch.exec("true").expect("exec");
        ch.send_eof().expect("eof");
        let mut sink = Vec::new();
        ch.read_to_end(&mut sink).expect("read");
        ch.wait_close().expect("close");
        let t5 = Instant::now();
        session_forks.push((machine_forks() - forks0) as f64);
        for (i, (a, b)) in [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5)]
            .into_iter()
            .enumerate()
        {
            parts[i].push((b - a).as_secs_f64() * 1e3);
        }
        if methods.is_empty() {
            let m = |t| sess.methods(t).unwrap_or("?").to_string();
            use ssh2::MethodType::*;
            methods = format!(
                "kex {}, host key {}, cipher {}, mac {}",
                m(Kex),
                m(HostKey),
                m(CryptCs),
                m(MacCs)
            );
        }
    }
    let ms = |i: usize| median(parts[i].clone());
    println!("\none connection to {} alone (median of {reps}, ms): TCP {:.1}, SSH handshake {:.1}, agent attempt {:.1}, pubkey auth {:.1}, one exec channel `true` {:.1}", host.name, ms(0), ms(1), ms(2), ms(3), ms(4));
    println!("  libssh2 negotiated: {methods}");
    let per_session = median(session_forks);
    println!(
        "  one SSH session (exec channel) starts {:.0} processes on the host: sshd's session child and root's login shell {} `-c`{}",
        per_session,
        login_shell(),
        if per_session > 20.0 { " (its startup files run programs; BENCH_SKIP_BASHRC=1 skips ~/.bashrc)" } else { "" }
    );

    let ssh_true: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            let status = keys
                .ssh(host)
                .arg("true")
                .stdin(Stdio::null())
                .status()
                .expect("ssh runs");
            assert!(status.success(), "ssh true failed: {status}");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    println!("  one `ssh ... true` process: {:.1} ms", median(ssh_true));

    // The whole job on this one host, each way (first pass, then no change).
    let one = Job {
        hosts: vec![host.clone()],
        configs: vec![job.configs[0].clone()],
        blob: job.blob.clone(),
    };
    let (plan, scripts) = (one.plan(), one.floor_scripts());
    let mut f = Rounds::default();
    let mut c = Rounds::default();
    for _ in 0..reps {
        let (a, b) = run_floor_round(keys, &one, &scripts);
        f.first.push(a);
        f.second.push(b);
        let (a, b) = run_cloudctl_round(&one, connector, &plan);
        c.first.push(a);
        c.second.push(b);
    }
    for (pass, fs_, cs) in [("first", &f.first, &c.first), ("no-change", &f.second, &c.second)] {
        let (fm, cm) = (median_sample(fs_), median_sample(cs));
        let phase = |what| {
            cm.phases
                .iter()
                .find(|p| p.what == what)
                .map_or(0.0, |p| (p.to - p.from).as_secs_f64() * 1e3)
        };
        println!(
            "  job on one host, {pass:<9}: floor {:.1} ms, cloudctl {:.1} ms (connect {:.1} + probe {:.1} + apply {:.1})",
            fm.wall * 1e3,
            cm.wall * 1e3,
            phase("connect"),
            phase("probe"),
            phase("apply")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Inventory scale

/// Parse+validate and parse+select(all)+plan of a generated 5,000-node inventory: medians of 5, s.
fn inventory_scale() -> (f64, f64) {
    let text = inventory_text(INVENTORY_NODES);
    let mut parse_times = Vec::new();
    let mut totals = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let inv = inventory::parse("generated.toml", &text).expect("the generated inventory is valid");
        parse_times.push(t.elapsed().as_secs_f64());
        let hosts = inv.select(&["all".into()]).expect("select all");
        let plan = cloudctl::plan::run::plan(&hosts, &["true".into()]);
        totals.push(t.elapsed().as_secs_f64());
        assert_eq!(
            std::hint::black_box(plan).hosts.len(),
            INVENTORY_NODES + 1,
            "every node and the ConfigNode"
        );
    }
    (median(parse_times), median(totals))
}

/// Unique names node00001.., MACs 52:54:00:xx:xx:xx and IPs from 10.10.1.1 up in 10.10.0.0/16,
/// with the DHCP dynamic range above them.
fn inventory_text(nodes: usize) -> String {
    assert!(nodes < 199 * 256, "node addresses must stay below the dynamic range");
    let mut s = String::with_capacity(nodes * 90 + 1024);
    s += "[cloud]\nname = \"scale\"\nhypervisor = \"xen\"\n\n\
          [ssh]\nuser = \"root\"\nhost_key_policy = \"strict\"\n\n\
          [network]\nsubnet = \"10.10.0.0/16\"\ngateway = \"10.10.0.1\"\ndns = [\"10.10.0.1\"]\n\
          dynamic_range = \"10.10.200.1-10.10.250.254\"\ninterface = \"eth0\"\n\n\
          [confignode]\naddress = \"10.10.0.2\"\nnext_server = \"10.10.0.2\"\n\n\
          [profiles.hnode]\nkernel = \"/srv/tftp/images/dom0/vmlinuz\"\ninitrd = \"/srv/tftp/images/dom0/initrd.img\"\n\
          xen = \"/srv/tftp/images/dom0/xen.gz\"\nappend = \"console=ttyS0\"\n\n\
          [profiles.snode]\nkernel = \"/srv/tftp/images/snode/vmlinuz\"\ninitrd = \"/srv/tftp/images/snode/initrd.img\"\n";
    let first = u32::from(Ipv4Addr::new(10, 10, 1, 1));
    for i in 0..nodes {
        let n = i + 1;
        let ip = Ipv4Addr::from(first + i as u32);
        let role = if i % 5 == 0 { "snode" } else { "hnode" };
        s += &format!(
            "\n[[node]]\nname = \"node{n:05}\"\nmac = \"52:54:00:{:02x}:{:02x}:{:02x}\"\nip = \"{ip}\"\nrole = \"{role}\"\n",
            (n >> 16) & 0xff,
            (n >> 8) & 0xff,
            n & 0xff
        );
    }
    s
}

// ---------------------------------------------------------------------------------------------
// What-if (BENCH_WHATIF=1): one SSH session per host

/// A prototype transport, not the engine's: one `sh -s` session per host for all of a host's
/// scripts (the engine opens one per script, and sshd starts the user's login shell for each).
/// Host key checked against the same known_hosts, bench key only.
struct OneSessionConnector {
    client_key: PathBuf,
    known_hosts: KnownHosts,
}

/// Ends each script's output; carries its exit status.
const END_MARK: &str = "@cloudctl-bench end";

impl Connector for OneSessionConnector {
    fn connect(&self, host: &Host, deadline: Instant) -> Result<Box<dyn Transport>, HostError> {
        let fail =
            |what: &str, e: &dyn std::fmt::Display| HostError::Unreachable(format!("{}: {what}: {e}", host.name));
        let tcp = TcpStream::connect((host.host.as_str(), host.port)).map_err(|e| fail("connect", &e))?;
        let _ = tcp.set_nodelay(true);
        let mut sess = ssh2::Session::new().map_err(|e| fail("session", &e))?;
        sess.set_tcp_stream(tcp);
        sess.set_timeout(
            deadline
                .saturating_duration_since(Instant::now())
                .as_millis()
                .clamp(1, u32::MAX as u128) as u32,
        );
        sess.method_pref(ssh2::MethodType::HostKey, "ssh-ed25519")
            .map_err(|e| fail("host key preference", &e))?;
        sess.handshake().map_err(|e| fail("handshake", &e))?;
        let offered = sess.host_key().and_then(|(blob, _)| HostKey::from_blob(blob));
        let pinned = self
            .known_hosts
            .lookup(&host_pattern(&host.host, host.port))
            .map_err(|e| fail("known_hosts", &e))?;
        if offered.is_none() || offered != pinned {
            return Err(HostError::HostKey(format!(
                "{}: host key does not match known_hosts",
                host.name
            )));
        }
        sess.userauth_pubkey_file("root", None, &self.client_key, None)
            .map_err(|e| fail("authentication", &e))?;
        let mut ch = sess.channel_session().map_err(|e| fail("channel", &e))?;
        ch.exec("sh -s 2>&1").map_err(|e| fail("starting sh", &e))?;
        Ok(Box::new(OneSession { _sess: sess, ch }))
    }
}

struct OneSession {
    _sess: ssh2::Session,
    ch: ssh2::Channel,
}

impl Transport for OneSession {
    /// Runs the script in a subshell of the session's shell, then reads up to its end mark.
    fn run_script(&mut self, script: &str, _deadline: Instant) -> Result<ScriptOutput, HostError> {
        let fail = |e: std::io::Error| HostError::Failed(format!("one-session transport: {e}"));
        let framed = format!("(\n{script}\n)\nprintf '\\n{END_MARK} %d\\n' $?\n");
        self.ch.write_all(framed.as_bytes()).map_err(fail)?;
        self.ch.flush().map_err(fail)?;
        let mark = format!("\n{END_MARK} ");
        let mut out = Vec::new();
        let mut buf = [0u8; 16384];
        loop {
            let n = self.ch.read(&mut buf).map_err(fail)?;
            if n == 0 {
                return Err(HostError::Failed(
                    "one-session transport: the remote shell ended early".into(),
                ));
            }
            out.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&out);
            if let Some(at) = text.rfind(&mark) {
                if let Some(status) = text[at + mark.len()..].strip_suffix('\n') {
                    let status = status.trim().parse().unwrap_or(-1);
                    return Ok(ScriptOutput {
                        output: text[..at].to_string(),
                        status,
                    });
                }
            }
        }
    }
}

impl Drop for OneSession {
    fn drop(&mut self) {
        let _ = self.ch.send_eof();
    }
}
