//! Engine benchmark: cloudctl's executor against the OpenSSH floor, on loopback sshd hosts.
//!
//! Run with `cargo bench --bench engine` (needs root and OpenSSH server and client; not part of CI).
//! It starts `BENCH_HOSTS` (default 24) sshds on 127.0.0.1:42201.. and times the job of ANCHORS.md
//! ("Numbers to beat") on each: install a rendered ~1 KiB config (validated), upload 64 KiB, ensure a
//! directory, run a command, and restart a "service" only when the config changed. Each tool does a
//! first pass (nothing there) and a no-change pass; figures are medians of 3 rounds, alternating order:
//!
//! - the floor: one `ssh` process per host feeding one batched `sh` script, all hosts at once;
//! - cloudctl: `exec::apply` over `SshConnector`, forks = hosts (one session and one `sh` per host).
//!
//! It prints the ratios against the targets (first ≤ 1.5× floor, no change ≤ 1.0×), cloudctl's
//! per-host connect / probe / apply times, and the time to parse, select and plan a generated
//! 5,000-node inventory (target ≤ 1 s). The hosts share this machine's filesystem, so host `h<i>`
//! works under /tmp/cloudctl-bench/h<i>/.

mod login_rc;
mod loopback;

use base64::Engine as _;
use cloudctl::exec::known_hosts::KnownHosts;
use cloudctl::exec::ssh::SshConnector;
use cloudctl::exec::{self, Connector, HostError, HostReport, HostStatus, Limits, ScriptOutput, Transport};
use cloudctl::inventory::{self, Host, HostKeyPolicy};
use cloudctl::plan::{command, DirStep, FileStep, HostPlan, Plan, Step, When};
use loopback::{Lab, LoginRc, SSHD};
use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const FIRST_PORT: u16 = 42201;
const DEFAULT_HOSTS: usize = 24;
const REMOTE_ROOT: &str = "/tmp/cloudctl-bench";
const BLOB_LEN: usize = 64 * 1024;
const ROUNDS: usize = 3;
const TARGET_FIRST: f64 = 1.5;
const TARGET_NO_CHANGE: f64 = 1.0;
const INVENTORY_NODES: usize = 5_000;
const INVENTORY_TARGET_S: f64 = 1.0;
const PASSES: [&str; 2] = ["first run", "second run (no change)"];
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
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !Path::new(SSHD).exists() {
        println!("engine bench skipped: it starts sshd hosts on loopback; run it as root, with {SSHD} installed.");
        return;
    }
    let count = match std::env::var("BENCH_HOSTS").map(|v| v.trim().parse::<usize>()) {
        Err(_) => DEFAULT_HOSTS,
        Ok(Ok(n)) if (1..=1000).contains(&n) => n,
        Ok(_) => {
            eprintln!("BENCH_HOSTS: give a number of hosts from 1 to 1000");
            std::process::exit(2);
        }
    };
    let last = FIRST_PORT as usize + count - 1;
    println!("cloudctl engine bench: {count} loopback sshd hosts on 127.0.0.1:{FIRST_PORT}..{last}");
    // Other work on the machine skews both tools; say how busy it was.
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!("note: load average before the run: {}", load.join(" "));

    let rc = LoginRc::from_env(LoginRc::Machine);
    println!("note: {}", rc.describe());
    let lab = Lab::start(count, FIRST_PORT, rc);
    let (plan, scripts) = job(&lab.hosts);
    let connector = TimedConnector(SshConnector {
        user: "root".into(),
        identity: lab.client_key.clone(),
        known_hosts: KnownHosts::new(lab.known_hosts.clone()),
        policy: HostKeyPolicy::Strict,
        connect_timeout: Duration::from_secs(10),
        system: std::sync::Arc::new(cloudctl::exec::effect::RealSystem),
    });

    println!("\nwarm-up round (not counted)");
    run_floor_round(&lab, &scripts);
    run_cloudctl_round(&lab, &connector, &plan);

    // [tool][pass]: the samples of every round; tool 0 is the floor, 1 cloudctl.
    let mut samples: [[Vec<Sample>; 2]; 2] = Default::default();
    for round in 1..=ROUNDS {
        // Alternate who goes first, so neither always runs on the warmer machine.
        for tool in if round % 2 == 1 { [0, 1] } else { [1, 0] } {
            let [first, second] = match tool {
                0 => run_floor_round(&lab, &scripts),
                _ => run_cloudctl_round(&lab, &connector, &plan),
            };
            let (name, a, b) = (["floor", "cloudctl"][tool], first.wall, second.wall);
            println!("round {round}: {name:<8} first {a:.2} s, no change {b:.2} s");
            samples[tool][0].push(first);
            samples[tool][1].push(second);
        }
    }

    println!("\ncloudctl per host, median round (median / max s; probe includes starting the host's sh):");
    for (pass, name) in PASSES.iter().enumerate() {
        let phases = &median_sample(&samples[1][pass]).phases;
        let mut line = format!("  {name:<22}");
        for (k, phase) in PHASES.iter().enumerate() {
            let times: Vec<f64> = phases.iter().filter(|p| p.0 == k).map(|p| p.1).collect();
            let max = times.iter().copied().fold(0.0, f64::max);
            line += &format!("  {phase} {:.3} / {max:.3}", median(times));
        }
        println!("{line}");
    }

    let inventory = inventory_scale();
    drop(lab);
    reset();
    print_results(count, &samples, inventory);
}

/// The summary table against the targets, the ANCHORS figures and the inventory timing.
fn print_results(count: usize, samples: &[[Vec<Sample>; 2]; 2], inventory: f64) {
    println!("\n=== results: {count} hosts, median of {ROUNDS} rounds ===");
    println!("{:24}     floor   cloudctl      ratio   target  result", "");
    for (pass, target) in [TARGET_FIRST, TARGET_NO_CHANGE].into_iter().enumerate() {
        let [f, c] = [0, 1].map(|tool| median_sample(&samples[tool][pass]).wall);
        let ratio = c / f;
        let (name, result) = (PASSES[pass], verdict(ratio <= target));
        let target = format!("<={target:.1}");
        println!("{name:<24} {f:>7.2} s {c:>8.2} s {ratio:>9.2}x {target:>7}x {result:>7}");
    }
    println!("measured elsewhere (ANCHORS.md), same job, 24 hosts, first / second run:");
    for (tool, first, second) in ANCHORS {
        println!("  {tool:<48} {first:>5.1} s / {second:>4.1} s");
    }
    if count != 24 {
        println!("  (this run used {count} hosts; the ANCHORS figures are for 24)");
    }
    let result = verdict(inventory <= INVENTORY_TARGET_S);
    println!("inventory: {INVENTORY_NODES} nodes parse+validate+select(all)+plan {inventory:.3} s (median of 5), target <= {INVENTORY_TARGET_S:.0} s: {result}");
}

fn verdict(met: bool) -> &'static str {
    ["MISS", "PASS"][met as usize]
}

// ---------------------------------------------------------------------------------------------
// Loopback hosts

// ---------------------------------------------------------------------------------------------
// The job

/// The job for every host, both ways: cloudctl's plan and the floor's batched `sh` scripts.
fn job(hosts: &[Host]) -> (Plan, Vec<String>) {
    let mut hb = handlebars::Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    let parsed = hb.register_template_string("app.conf", CONFIG_TEMPLATE);
    parsed.expect("the config template parses");
    let blob = pseudo_random(BLOB_LEN);
    let encoded = base64::engine::general_purpose::STANDARD.encode(&blob);
    let mut blob_lines = String::new();
    for line in encoded.as_bytes().chunks(76) {
        blob_lines += &(String::from_utf8_lossy(line) + "\n");
    }
    let (mut plan, mut scripts) = (Vec::new(), Vec::new());
    for (i, h) in hosts.iter().enumerate() {
        let dir = remote_dir(h);
        let upstream = |k| serde_json::json!({ "name": format!("{}-up{k}", h.name), "address": format!("10.20.{}.{k}:8080", i + 1), "weight": k * 10 });
        let data = serde_json::json!({
            "name": h.name, "address": h.host, "port": h.port, "workers": 4,
            "dir": dir, "upstreams": (1..=6).map(upstream).collect::<Vec<_>>(),
        });
        let config = hb.render("app.conf", &data).expect("the config template renders");
        if i == 0 {
            let (c, b) = (config.len(), blob.len());
            println!("job per host: config {c} bytes (validated), upload {b} bytes, 1 directory, 1 command, restart on config change");
        }

        let file = |id: &str, name: &str, content: Vec<u8>, validate: Option<Vec<String>>| {
            let path = format!("{dir}/{name}").parse().expect("absolute path");
            Step::File(FileStep {
                id: id.into(),
                path,
                content,
                mode: 0o644,
                owner: None,
                validate,
                secret: false,
                masked: Vec::new(),
            })
        };
        let validate = ["grep", "-q", "^name", "{}"].map(String::from).to_vec();
        let restart = format!("date >> {dir}/restarts");
        plan.push(HostPlan {
            host: h.clone(),
            // The lock exists once per real host; here every "host" shares one kernel.
            exclusive: false,
            steps: vec![
                Step::Dir(DirStep {
                    path: dir.parse().expect("absolute path"),
                    mode: 0o755,
                }),
                file("cfg", "app.conf", config.clone().into_bytes(), Some(validate)),
                file("blob", "blob.bin", blob.clone(), None),
                command(&["uname", "-r"], When::Always),
                command(
                    &["sh", "-c", &restart],
                    When::Changed(vec![cloudctl::plan::StepId::unchecked("cfg")]),
                ),
            ],
        });

        let fits = config.ends_with('\n') && !config.contains("FLOOR_EOF");
        assert!(fits, "the config fits the floor's heredoc");
        scripts.push(format!(
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
             echo \"floor changed=$changed\"\n"
        ));
    }
    let plan = Plan {
        title: "engine bench job".into(),
        hosts: plan,
        confirm: true,
        redact: Vec::new(),
    };
    (plan, scripts)
}

/// Removes every host's remote dir, so a first pass starts from nothing.
fn reset() {
    match fs::remove_dir_all(REMOTE_ROOT) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("cannot remove {REMOTE_ROOT}: {e}"),
        _ => {}
    }
}

/// The restart ran exactly once per host since the reset: on the first pass, not the second.
fn check_restarts(hosts: &[Host], tool: &str, pass: usize) {
    for h in hosts {
        let lines = fs::read_to_string(format!("{}/restarts", remote_dir(h))).map_or(0, |t| t.lines().count());
        if lines != 1 {
            panic!(
                "{tool}, {}: host {} restarted {lines} times since the reset",
                PASSES[pass], h.name
            );
        }
    }
}

fn remote_dir(h: &Host) -> String {
    format!("{REMOTE_ROOT}/{}", h.name)
}

/// Deterministic incompressible bytes (xorshift64), so SSH compression cannot flatter anyone.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x.to_le_bytes()
    };
    (0..len.div_ceil(8)).flat_map(|_| next()).take(len).collect()
}

// ---------------------------------------------------------------------------------------------
// Running and measuring

/// One timed pass: wall seconds, and for cloudctl each host's phases as (index in PHASES, seconds).
#[derive(Clone, Default)]
struct Sample {
    wall: f64,
    phases: Vec<(usize, f64)>,
}

/// The floor's first and no-change passes: one `ssh` per host, all at once, each fed its script
/// by its own thread; the script says whether the config changed.
fn run_floor_round(lab: &Lab, scripts: &[String]) -> [Sample; 2] {
    reset();
    [(0, "changed=1"), (1, "changed=0")].map(|(pass, expect)| {
        let start = Instant::now();
        let outputs: Vec<Output> = std::thread::scope(|scope| {
            let threads: Vec<_> = (lab.hosts.iter().zip(scripts))
                .map(|(h, script)| scope.spawn(move || run_ssh(lab.ssh(h), script)))
                .collect();
            threads.into_iter().map(|t| t.join().expect("floor thread")).collect()
        });
        let wall = start.elapsed().as_secs_f64();
        for (h, out) in lab.hosts.iter().zip(outputs) {
            let text = |bytes| String::from_utf8_lossy(bytes).into_owned();
            let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
            let (pass, name, status) = (PASSES[pass], &h.name, out.status);
            if !status.success() || !stdout.contains(expect) {
                panic!("floor, {pass}, {name}: {status}; expected {expect:?}: {stdout}{stderr}");
            }
        }
        check_restarts(&lab.hosts, "floor", pass);
        Sample {
            wall,
            phases: Vec::new(),
        }
    })
}

fn run_ssh(mut ssh: Command, script: &str) -> Output {
    ssh.args(["sh", "-s"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = ssh.spawn().expect("cannot run ssh");
    // A failed write shows up as ssh's exit status.
    let _ = child.stdin.take().expect("piped stdin").write_all(script.as_bytes());
    child.wait_with_output().expect("ssh ran")
}

/// cloudctl's first pass (every host Changed) and no-change pass (every host Ok).
fn run_cloudctl_round(lab: &Lab, connector: &TimedConnector, plan: &Plan) -> [Sample; 2] {
    reset();
    let limits = Limits {
        forks: plan.hosts.len(),
        host_timeout: Duration::from_secs(120),
    };
    [(0, HostStatus::Changed), (1, HostStatus::Ok)].map(|(pass, expect)| {
        PHASE_LOG.lock().unwrap().clear();
        let start = Instant::now();
        let reports = exec::apply(plan, connector, &limits, &|_: exec::Event| {});
        let wall = start.elapsed().as_secs_f64();
        let wrong: Vec<&HostReport> = reports.iter().filter(|r| r.status != expect).collect();
        let (name, detail) = (PASSES[pass], serde_json::to_string_pretty(&wrong).unwrap_or_default());
        if !wrong.is_empty() {
            panic!("cloudctl, {name}: expected every host {expect:?}, got: {detail}");
        }
        check_restarts(&lab.hosts, "cloudctl", pass);
        Sample {
            wall,
            phases: PHASE_LOG.lock().unwrap().clone(),
        }
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// The sample with the median wall time (its phases go with it).
fn median_sample(samples: &[Sample]) -> Sample {
    let mut sorted = samples.to_vec();
    sorted.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    sorted[sorted.len() / 2].clone()
}

// ---------------------------------------------------------------------------------------------
// Phase timing: thin wrappers around cloudctl's own Connector and Transport

/// The engine runs two scripts per host: the probe, then the apply (a rare retry counts as apply).
const PHASES: [&str; 3] = ["connect", "probe", "apply"];

/// Every host's phases of the current pass: (index in PHASES, seconds).
static PHASE_LOG: Mutex<Vec<(usize, f64)>> = Mutex::new(Vec::new());

struct TimedConnector(SshConnector);

impl Connector for TimedConnector {
    fn connect(&self, host: &Host, deadline: Instant) -> Result<Box<dyn Transport>, HostError> {
        let start = Instant::now();
        let inner = self.0.connect(host, deadline)?;
        PHASE_LOG.lock().unwrap().push((0, start.elapsed().as_secs_f64()));
        Ok(Box::new(TimedTransport(inner, 0)))
    }
}

/// The engine's transport, and the number of scripts it has run.
struct TimedTransport(Box<dyn Transport>, usize);

impl Transport for TimedTransport {
    fn run_script(&mut self, script: &str, deadline: Instant) -> Result<ScriptOutput, HostError> {
        let start = Instant::now();
        let out = self.0.run_script(script, deadline);
        self.1 += 1;
        let phase = (self.1.min(2), start.elapsed().as_secs_f64());
        PHASE_LOG.lock().unwrap().push(phase);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Inventory scale

/// Parse, validate, select(all) and plan a generated 5,000-node inventory: the median of 5, s.
fn inventory_scale() -> f64 {
    let text = inventory_text(INVENTORY_NODES);
    let times = (0..5).map(|_| {
        let t = Instant::now();
        let inv = inventory::parse("generated.toml", &text).expect("the generated inventory is valid");
        let hosts = inv.select(&["all".into()]).expect("select all");
        let plan = cloudctl::plan::run::plan(&hosts, &["true".into()]);
        let planned = std::hint::black_box(plan).hosts.len();
        assert_eq!(planned, INVENTORY_NODES + 1, "every node and the ConfigNode");
        t.elapsed().as_secs_f64()
    });
    median(times.collect())
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
        let [_, a, b, c] = (n as u32).to_be_bytes();
        let mac = format!("52:54:00:{a:02x}:{b:02x}:{c:02x}");
        s += &format!("\n[[node]]\nname = \"node{n:05}\"\nmac = \"{mac}\"\nip = \"{ip}\"\nrole = \"{role}\"\n");
    }
    s
}
