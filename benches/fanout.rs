//! Fan-out benchmark: `cloudctl run` on many loopback sshd hosts against the OpenSSH floor.
//!
//! Run with `cargo bench --bench fanout` (needs root and OpenSSH server and client; not part of
//! CI). It starts `BENCH_HOSTS` (default 200) sshds on 127.0.0.1:22601.., writes an inventory
//! naming each as a hardware node, and times, alternating who goes first, the median of 3 rounds:
//!
//! - cloudctl: the `cloudctl` binary, `--forks F run --on hnode -- uname -r`, wall clock of the
//!   whole process (inventory, connections, report);
//! - the floor: one `ssh HOST uname -r` process per host, at most F at a time (the same bound).
//!
//! for each F of `BENCH_FORKS` (default `32,200`: cloudctl's default and one per host). Target:
//! cloudctl ≤ 1.0× the floor. With `BENCH_BEFORE=PATH` (an older cloudctl binary) that binary is
//! timed too, in the same rounds, so a change is measured against what it replaces.
//!
//! The hosts' shells read no rc file by default (`BENCH_LOGIN_RC=machine` restores it): all the
//! hosts are root on this machine and would share its `~/.bashrc`, and what that file locks is one
//! lock for 200 hosts. With pyenv's init in it, every login waits for `pyenv rehash`'s lock (up to
//! 60 s); that queue, not cloudctl, was the 70 s measured at `--forks 200` (see loopback/mod.rs).

mod login_rc;
mod loopback;

use loopback::{Lab, LoginRc, SSHD};
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Below the kernel's ephemeral range (32768-60999 by default), so no outgoing connection holds one.
const FIRST_PORT: u16 = 22601;
const DEFAULT_HOSTS: usize = 200;
const ROUNDS: usize = 3;
const TARGET: f64 = 1.0;
const COMMAND: &str = "uname -r";

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !Path::new(SSHD).exists() {
        println!("fanout bench skipped: it starts sshd hosts on loopback; run it as root, with {SSHD} installed.");
        return;
    }
    let count = env_list("BENCH_HOSTS", &[DEFAULT_HOSTS])[0];
    let forks = env_list("BENCH_FORKS", &[32, 200]);
    let last = FIRST_PORT as usize + count - 1;
    println!(
        "cloudctl fan-out bench: `run -- {COMMAND}` on {count} loopback sshd hosts (127.0.0.1:{FIRST_PORT}..{last})"
    );
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!("note: load average before the run: {}", load.join(" "));

    let started = Instant::now();
    let rc = LoginRc::from_env(LoginRc::Skipped);
    println!("note: {}", rc.describe());
    let lab = Lab::start(count, FIRST_PORT, rc);
    println!("{count} sshds up in {:.1} s", started.elapsed().as_secs_f64());
    let dir = tempfile::tempdir().expect("temp dir");
    let inventory = dir.path().join("cloud.toml");
    fs::write(&inventory, inventory_text(&lab)).expect("write the inventory");

    let this = Path::new(env!("CARGO_BIN_EXE_cloudctl")).to_path_buf();
    let before = std::env::var_os("BENCH_BEFORE").map(std::path::PathBuf::from);
    if let Some(b) = &before {
        println!("before: {}", b.display());
    }

    println!("\nwarm-up round (not counted)");
    floor(&lab, forks[0]);
    cloudctl(&this, &inventory, forks[0], count);

    let mut results = Vec::new();
    for &f in &forks {
        let (mut fl, mut cc, mut bf) = (Vec::new(), Vec::new(), Vec::new());
        for round in 1..=ROUNDS {
            // Rotate who goes first, so no one always runs on the warmer machine.
            for k in 0..3 {
                match (round + k) % 3 {
                    0 => fl.push(floor(&lab, f)),
                    1 => cc.push(cloudctl(&this, &inventory, f, count)),
                    _ => {
                        if let Some(b) = &before {
                            bf.push(cloudctl(b, &inventory, f, count));
                        }
                    }
                }
            }
            let (a, b) = (fl[round - 1], cc[round - 1]);
            let old = bf.last().map(|t| format!(", before {t:.2} s")).unwrap_or_default();
            println!("forks {f:>4}, round {round}: floor {a:.2} s, cloudctl {b:.2} s{old}");
        }
        let bf = (!bf.is_empty()).then(|| median(bf));
        results.push((f, median(fl), median(cc), bf));
    }
    drop(lab);

    println!("\n=== results: {count} hosts, `run -- {COMMAND}`, median of {ROUNDS} rounds ===");
    println!(
        "{:10} {:>10} {:>10} {:>8}  target  result",
        "forks", "floor", "cloudctl", "ratio"
    );
    for (f, fl, cc, bf) in results {
        let ratio = cc / fl;
        let verdict = if ratio <= TARGET { "PASS" } else { "MISS" };
        let old = bf
            .map(|b| format!("   (before: {b:.2} s, {:.2}x)", b / fl))
            .unwrap_or_default();
        println!("{f:<10} {fl:>8.2} s {cc:>8.2} s {ratio:>7.2}x  <={TARGET:.1}x  {verdict}{old}");
    }
}

fn env_list(var: &str, default: &[usize]) -> Vec<usize> {
    let Ok(v) = std::env::var(var) else {
        return default.to_vec();
    };
    let parsed: Result<Vec<usize>, _> = v.split(',').map(|s| s.trim().parse::<usize>()).collect();
    match parsed {
        Ok(list) if !list.is_empty() && list.iter().all(|n| (1..=1000).contains(n)) => list,
        _ => {
            eprintln!("{var}: give numbers from 1 to 1000, separated by commas");
            std::process::exit(2);
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Every host is a hardware node at 127.0.0.1:PORT; the ConfigNode entry is never selected.
fn inventory_text(lab: &Lab) -> String {
    let mut s = format!(
        "[cloud]\nname = \"fanout\"\nhypervisor = \"kvm\"\n\n\
         [ssh]\nuser = \"root\"\nidentity = \"{}\"\nknown_hosts = \"{}\"\nhost_key_policy = \"strict\"\n\n\
         [network]\nsubnet = \"10.250.0.0/16\"\ngateway = \"10.250.0.1\"\ndns = [\"10.250.0.1\"]\n\
         dynamic_range = \"10.250.200.1-10.250.250.254\"\ninterface = \"eth0\"\n\n\
         [confignode]\naddress = \"127.0.0.1:{}\"\nnext_server = \"10.250.0.2\"\n",
        lab.client_key.display(),
        lab.known_hosts.display(),
        lab.hosts[0].port
    );
    for h in &lab.hosts {
        s += &format!(
            "\n[[node]]\nname = \"{}\"\nrole = \"hnode\"\naddress = \"127.0.0.1:{}\"\n",
            h.name, h.port
        );
    }
    s
}

/// One `ssh` per host, at most `forks` at a time; every one must print a line and exit 0.
fn floor(lab: &Lab, forks: usize) -> f64 {
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..forks.min(lab.hosts.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(h) = lab.hosts.get(i) else { break };
                let out = lab
                    .ssh(h)
                    .arg(COMMAND)
                    .env_remove("SSH_AUTH_SOCK")
                    .stdin(Stdio::null())
                    .output()
                    .expect("cannot run ssh");
                if !out.status.success() || out.stdout.is_empty() {
                    panic!(
                        "floor: ssh to {} failed: {}",
                        h.name,
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            });
        }
    });
    start.elapsed().as_secs_f64()
}

/// A cloudctl binary; every host must answer `exit 0`.
fn cloudctl(exe: &Path, inventory: &Path, forks: usize, count: usize) -> f64 {
    let start = Instant::now();
    let out = Command::new(exe)
        .arg("-i")
        .arg(inventory)
        .args(["--forks", &forks.to_string(), "run", "--on", "hnode", "--", COMMAND])
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .output()
        .expect("cannot run cloudctl");
    let wall = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ok = stderr.lines().filter(|l| l.ends_with("= exit 0")).count();
    if !out.status.success() || ok != count {
        panic!("cloudctl run: {} ({ok} of {count} hosts exit 0): {stderr}", out.status);
    }
    wall
}
