//! Image push benchmark: `cloudctl image push` of a sparse 1 GiB file to a lab host, against
//! `scp` and `rsync --sparse` of the same file to the same host, in the same run.
//!
//! Run with `cargo bench --bench push` (root, a lab: iproute2, sshd, scp, rsync; not part of
//! CI; take the machine's lab lock: `flock /tmp/cloudctl-lab-heavy.lock cargo bench --bench push`).
//! It starts lab `tpushb` (`BENCH_LAB` names another; 10.201.172.0/24, or `BENCH_SUBNET`: a
//! ConfigNode and one hardware node), writes a file of `BENCH_MIB` MiB (default 1024) in which
//! every other 8 MiB is a hole (half data, random and so incompressible), and pushes it 3 times
//! (`BENCH_ROUNDS`) with each tool, alternating the order, into the lab's instance store through
//! the hardware node. It prints each tool's median wall time and throughput on the data bytes it
//! sent (cloudctl sends only the data, scp and rsync the whole file; cloudctl's time includes the
//! sha256 check on the far side; scp is OpenSSH 9's default, over SFTP), and checks cloudctl's
//! result after each push (outside the clock): it reports the sha256 of the data it sent, the
//! image in the store, read by the bench, has the file's sha256, and its holes stayed holes.
//! Beside each wall time it prints the machine's CPU time over the same interval (every process
//! of a push, the lab node's included, runs on this machine).
//! Targets: cloudctl's data throughput ≥ 0.9× scp's, and less wall time than scp. With
//! `BENCH_BEFORE=PATH[:PATH...]` (other cloudctl builds) those push too, in the same rounds.
//!
//! The hardware node's shells read no rc file by default (`BENCH_LOGIN_RC=machine` restores it;
//! see login_rc/mod.rs): the lab's hosts are root on this machine and would run its `~/.bashrc`
//! on every login, pyenv's init included, a cost no real node has. It is the host's condition,
//! so scp, rsync and cloudctl all log in under it.

mod login_rc;

use login_rc::LoginRc;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LAB: &str = "tpushb";
const SUBNET: &str = "10.201.172.0/24";
/// Rounds counted (`BENCH_ROUNDS` changes it), after one warm-up round.
const ROUNDS: usize = 3;
const STRIPE: u64 = 8 << 20;
const TARGET_RATE: f64 = 0.9;

/// Takes the lab down however the bench ends.
struct LabGuard(cloudctl::lab::LabState);

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Err(e) = cloudctl::lab::down(&self.0.name) {
            eprintln!("lab down {}: {e:#}", self.0.name);
        }
    }
}

fn main() {
    if let Err(why) = cloudctl::lab::require_root().and_then(|_| cloudctl::lab::check_tools()) {
        println!("push bench skipped: {why}");
        return;
    }
    for tool in ["scp", "rsync"] {
        if which::which(tool).is_err() {
            println!("push bench skipped: {tool} is not installed (apt-get install openssh-client rsync)");
            return;
        }
    }
    let mib: u64 = std::env::var("BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let size = mib << 20;
    let work = tempfile::Builder::new()
        .prefix("cloudctl-pushb.")
        .tempdir_in("/var/tmp")
        .expect("temp dir");
    let file = work.path().join("golden.img");
    let sums = Sums {
        whole: make_sparse(&file, size),
        data: data_sha256(&file),
    };
    let alloc = fs::metadata(&file).unwrap().blocks() * 512;
    println!(
        "file: {} MiB, {} MiB of data (every other 8 MiB a hole), sha256 {}, data sha256 {}",
        size >> 20,
        alloc >> 20,
        sums.whole,
        sums.data
    );

    // Another name when a lab of the default one is running already.
    let lab_name = std::env::var("BENCH_LAB").unwrap_or_else(|_| LAB.into());
    let _ = cloudctl::lab::down(&lab_name);
    let inv = work.path().join("cloud.toml");
    let templates = cloudctl::templates::Templates::load(None).expect("templates");
    let req = cloudctl::lab::LabRequest {
        name: lab_name.clone(),
        hosts: 2,
        // Another subnet when the default one is taken by a lab already running.
        subnet: std::env::var("BENCH_SUBNET")
            .unwrap_or_else(|_| SUBNET.into())
            .parse()
            .expect("BENCH_SUBNET: a /24 such as 10.201.240.0/24"),
        inventory: inv.clone(),
        vms: Vec::new(),
        vm_disk_mib: 16,
        power_exe: None,
    };
    let lab = LabGuard(cloudctl::lab::up(&req, &templates).expect("lab up"));
    let hnode = &lab.0.hosts[1];
    let store = lab.0.dir.join("store");
    let ssh_opts = format!(
        "-i {} -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o BatchMode=yes",
        lab.0.client_key.display(),
        lab.0.known_hosts.display()
    );
    let rc = LoginRc::from_env(LoginRc::Skipped);
    set_login_rc(&lab.0, 2, rc, &ssh_opts);
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    println!(
        "note: {}; load average before the run: {}",
        rc.describe(),
        load.join(" ")
    );
    println!(
        "lab {lab_name}: pushing to {} ({}), store {}",
        hnode.name,
        hnode.ip,
        store.display()
    );

    let this = Path::new(env!("CARGO_BIN_EXE_cloudctl")).to_path_buf();
    // Other builds to compare in the same rounds, `:`-separated, shown by their file names.
    let before: Vec<std::path::PathBuf> = std::env::var_os("BENCH_BEFORE")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    let mut tools: Vec<String> = ["cloudctl", "scp", "rsync --sparse"].map(String::from).into();
    for b in &before {
        tools.push(format!("{}", b.file_name().unwrap_or_default().to_string_lossy()));
    }
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(ROUNDS);
    let n = tools.len();
    let mut walls: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut cpus: Vec<Vec<f64>> = vec![Vec::new(); n];
    let mut sent = 0u64;
    for round in 0..=rounds {
        for k in 0..n {
            let t = (k + round) % n;
            clean(&store);
            let cpu0 = machine_cpu();
            let start = Instant::now();
            let mut pushed = None;
            match t {
                0 => pushed = Some(cloudctl_push(&this, &inv, &file)),
                1 => run(Command::new("scp")
                    .args(ssh_opts.split(' '))
                    .arg("-q")
                    .arg(&file)
                    .arg(format!("root@{}:{}/scp.img", hnode.ip, store.display()))),
                2 => run(Command::new("rsync")
                    .args(["--sparse", "-q", "-e"])
                    .arg(format!("ssh {ssh_opts}"))
                    .arg(&file)
                    .arg(format!("root@{}:{}/rsync.img", hnode.ip, store.display()))),
                _ => pushed = Some(cloudctl_push(&before[t - 3], &inv, &file)),
            }
            let wall = start.elapsed().as_secs_f64();
            let cpu = machine_cpu() - cpu0;
            // Checked after the clock stopped: the bench reads the image itself.
            if let Some(out) = pushed {
                let got = check_pushed(out, &sums, &store);
                if t == 0 {
                    sent = got;
                }
                assert_eq!(got, sent, "{} sent other bytes than cloudctl", tools[t]);
            }
            if round == 0 {
                println!("warm-up: {} {wall:.2} s", tools[t]);
            } else {
                println!("round {round}: {:<15} {wall:.2} s, machine CPU {cpu:.2} s", tools[t]);
                walls[t].push(wall);
                cpus[t].push(cpu);
            }
        }
    }
    clean(&store);

    let med: Vec<f64> = walls.iter().map(|w| median(w.clone())).collect();
    let med_cpu: Vec<f64> = cpus.iter().map(|c| median(c.clone())).collect();
    let data: Vec<u64> = (0..n).map(|t| if t == 1 || t == 2 { size } else { sent }).collect();
    let rate: Vec<f64> = (0..n).map(|t| data[t] as f64 / med[t] / (1 << 20) as f64).collect();
    println!(
        "\n=== results: {} MiB file, half holes, median of {rounds} rounds ===",
        size >> 20
    );
    println!(
        "{:16} {:>9} {:>14} {:>16} {:>13}",
        "tool", "wall", "data sent", "data throughput", "machine CPU"
    );
    for t in 0..n {
        println!(
            "{:16} {:>7.2} s {:>10} MiB {:>11.0} MiB/s {:>11.2} s",
            tools[t],
            med[t],
            data[t] >> 20,
            rate[t],
            med_cpu[t]
        );
    }
    let r = rate[0] / rate[1];
    let verdict = |ok: bool| if ok { "PASS" } else { "MISS" };
    println!(
        "cloudctl data throughput / scp: {r:.2}x (target >= {TARGET_RATE}x): {}",
        verdict(r >= TARGET_RATE)
    );
    println!(
        "cloudctl wall / scp wall: {:.2}x (target < 1.0x): {}",
        med[0] / med[1],
        verdict(med[0] < med[1])
    );
    println!("cloudctl wall / rsync --sparse wall: {:.2}x", med[0] / med[2]);
    for t in 3..n {
        println!("{}: data throughput / scp {:.2}x", tools[t], rate[t] / rate[1]);
    }
}

/// Gives lab host `h<i>` the login condition `rc`: its sshd_config gets the lines, and a SIGHUP
/// (to the sshd this bench's lab started, by its pid) makes sshd re-execute itself with them.
/// Waits until a login shows the condition: bash's SHLVL is 2 when sshd set it to 1, else 1.
fn set_login_rc(lab: &cloudctl::lab::LabState, i: usize, rc: LoginRc, ssh_opts: &str) {
    let host = &lab.hosts[i - 1];
    let want = if rc == LoginRc::Skipped { "2" } else { "1" };
    let config = lab.dir.join(format!("h{i}/sshd_config"));
    let mut text = fs::read_to_string(&config).expect("the host's sshd_config");
    text += rc.sshd_config();
    fs::write(&config, text).expect("write the host's sshd_config");
    // SAFETY: kill(2) on the pid of the sshd this bench's lab started; no memory effects.
    assert_eq!(
        unsafe { libc::kill(host.sshd_pid as i32, libc::SIGHUP) },
        0,
        "SIGHUP sshd"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let out = Command::new("ssh")
            .args(ssh_opts.split(' '))
            .arg(format!("root@{}", host.ip))
            .arg("echo $SHLVL")
            .stdin(Stdio::null())
            .output()
            .expect("run ssh");
        if String::from_utf8_lossy(&out.stdout).trim() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{}: the login condition did not take",
            host.name
        );
    }
}

/// A file of `size` bytes whose every other 8 MiB stripe is a hole; the rest pseudo-random.
/// Returns its sha256 (holes as zeros).
fn make_sparse(path: &Path, size: u64) -> String {
    let mut f = File::create(path).expect("create the file");
    f.set_len(size).unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; STRIPE as usize];
    let mut hash = Sha256::new();
    let zeros = vec![0u8; STRIPE as usize];
    let mut at = 0;
    while at < size {
        let n = STRIPE.min(size - at) as usize;
        if (at / STRIPE) % 2 == 0 {
            for c in block[..n].chunks_mut(8) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                c.copy_from_slice(&x.to_le_bytes()[..c.len()]);
            }
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&block[..n]).unwrap();
            hash.update(&block[..n]);
        } else {
            hash.update(&zeros[..n]);
        }
        at += n as u64;
    }
    f.sync_all().unwrap();
    cloudctl::digest::hex(&hash.finalize())
}

fn clean(store: &Path) {
    for name in [".images", "scp.img", "rsync.img"] {
        let p = store.join(name);
        let _ = fs::remove_dir_all(&p).or_else(|_| fs::remove_file(&p));
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.stdin(Stdio::null()).output().expect("run the tool");
    if !out.status.success() {
        panic!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

/// Pushes with the cloudctl binary.
fn cloudctl_push(exe: &Path, inv: &Path, file: &Path) -> std::process::Output {
    Command::new(exe)
        .arg("-i")
        .arg(inv)
        .args(["--json", "--yes", "image", "push"])
        .arg(file)
        .arg("golden")
        .env_remove("SSH_AUTH_SOCK")
        .stdin(Stdio::null())
        .output()
        .expect("run cloudctl")
}

/// The sums a push of the file must report: the whole file's (holes as zeros), which builds from
/// before the far side checked only the data report as `sha256`, and the data's as the receiver
/// hashes it (each extent's `d OFFSET LENGTH` line and its bytes), `data_sha256`.
struct Sums {
    whole: String,
    data: String,
}

fn data_sha256(path: &Path) -> String {
    let file = File::open(path).unwrap();
    let extents = cloudctl::exec::push::data_extents(&file, file.metadata().unwrap().len()).unwrap();
    let mut hash = Sha256::new();
    for e in extents {
        hash.update(format!("d {} {}\n", e.offset, e.len).as_bytes());
        let mut data = vec![0u8; e.len as usize];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut data, e.offset).unwrap();
        hash.update(&data);
    }
    cloudctl::digest::hex(&hash.finalize())
}

/// Checks a push: cloudctl's one JSON document says it succeeded, sent only data and reports the
/// data's sha256 (or, from an older build, the whole file's), and the image in the store (read
/// here, holes included) is the file and kept its holes. Returns the data bytes sent.
fn check_pushed(out: std::process::Output, sums: &Sums, store: &Path) -> u64 {
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "cloudctl image push: {} ({e}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success(), "cloudctl image push failed: {doc}");
    match doc.get("data_sha256") {
        Some(data) => assert_eq!(data, &sums.data, "cloudctl reports the data's sha256"),
        None => assert_eq!(doc["sha256"], sums.whole, "an older build reports the file's sha256"),
    }
    let sent = doc["sent_bytes"].as_u64().expect("sent_bytes");
    let size = doc["size"].as_u64().expect("size");
    assert!(sent < size, "holes were sent: {doc}");
    let image = fs::metadata(store.join(".images/golden")).expect("the image is in the store");
    assert!(image.blocks() * 512 < size, "the image lost its holes");
    let mut hash = Sha256::new();
    std::io::copy(&mut File::open(store.join(".images/golden")).unwrap(), &mut hash).unwrap();
    let got = cloudctl::digest::hex(&hash.finalize());
    assert_eq!(got, sums.whole, "the image in the store is the file");
    sent
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// CPU seconds the whole machine spent busy so far (all cores, from /proc/stat's first line):
/// every process of a push runs on this machine, the lab's node included.
fn machine_cpu() -> f64 {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .enumerate()
        // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
        .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}
