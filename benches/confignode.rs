//! ConfigNode scale benchmark: the node commands with 50, 500 and 5,000 registered nodes, side by
//! side, on a real lab ConfigNode (a namespace host running sshd, dhcpd and tftpd).
//!
//! Run with `cargo bench --bench confignode` (root, the lab's tools, isc-dhcp-server and
//! tftpd-hpa; not part of CI; take /tmp/cloudctl-lab-heavy.lock around it on a shared machine).
//! `BENCH_NODES=50,500` picks other sizes. For each size a fresh one-host lab on 10.210.0.0/18
//! gets an inventory with that many `[[node]]`s, then the released `cloudctl` binary runs, timed
//! from the outside as a user would run it: `config init` on the bare host (first run), again
//! (no change, median of 3), `node add` of one node and `node remove` of it (median of 7 pairs
//! live, of 3 by the restart path),
//! `node add --from` a CSV of 1,000 new rows, `node list`, and a dry-run `node add`. The
//! baselines in the same run: the smallest size (growth = figure / figure at the smallest size);
//! `node add`/`node remove` by the restart path (the copy of the host entries dhcpd took removed,
//! so cloudctl falls back to restarting dhcpd, as it did before live changes) against the live OMAPI path; and Debian's
//! own `service isc-dhcp-server restart` timed alone on the same host.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

const LAB: &str = "bscale";
const SUBNET: &str = "10.210.0.0/18";
const DEFAULT_SIZES: [usize; 3] = [50, 500, 5_000];
const CSV_ROWS: usize = 1_000;
const ROUNDS: usize = 3;
/// The live node changes take about half a second, and one SSH handshake on a busy 2-core machine
/// varies by 0.2 s: their median is over more rounds.
const LIVE_ROUNDS: usize = 7;

/// (what, target at the largest size in seconds).
const OPS: [(&str, Option<f64>); 10] = [
    ("config init, first run", Some(5.0)),
    ("config init, no change", Some(2.0)),
    ("node add (one), live", Some(1.0)),
    ("node remove (one), live", Some(1.0)),
    ("node add (one), restart path", None),
    ("node remove (one), restart path", None),
    ("node add --from (1,000 rows)", Some(5.0)),
    ("node list", None),
    ("node add --dry-run (one)", None),
    ("dhcpd restart alone (floor)", None),
];

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || !Path::new("/usr/sbin/dhcpd").exists() {
        println!("confignode bench skipped: it starts a lab ConfigNode; run it as root with isc-dhcp-server and tftpd-hpa installed.");
        return;
    }
    if let Err(e) = cloudctl::lab::check_tools() {
        println!("confignode bench skipped: {e}");
        return;
    }
    let sizes: Vec<usize> = match std::env::var("BENCH_NODES") {
        Ok(v) => v
            .split(',')
            .map(|s| s.trim().parse().expect("BENCH_NODES: numbers like 50,500,5000"))
            .collect(),
        Err(_) => DEFAULT_SIZES.to_vec(),
    };
    assert!(
        sizes.iter().all(|&n| (1..=10_000).contains(&n)),
        "BENCH_NODES: sizes from 1 to 10000"
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "cloudctl ConfigNode bench: sizes {sizes:?}, lab {LAB} on {SUBNET}; load before: {}",
        load.trim()
    );
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_cloudctl"));
    let columns: Vec<Vec<f64>> = sizes.iter().map(|&n| measure(&bin, n)).collect();
    print_table(&sizes, &columns);
}

/// A lab for one size; taken down when dropped (also on a panic).
struct Lab {
    state: cloudctl::lab::LabState,
    _dir: tempfile::TempDir,
}

impl Lab {
    fn up() -> Lab {
        let _ = cloudctl::lab::down(LAB);
        let dir = tempfile::tempdir().expect("temp dir");
        let req = cloudctl::lab::LabRequest {
            name: LAB.into(),
            hosts: 1,
            subnet: SUBNET.parse().expect("subnet"),
            inventory: dir.path().join("cloud.toml"),
            vms: vec![],
            vm_disk_mib: 64,
            power_exe: None,
        };
        let templates = cloudctl::templates::Templates::load(None).expect("templates");
        let state = cloudctl::lab::up(&req, &templates).expect("lab up");
        Lab { state, _dir: dir }
    }

    /// A shell command inside the ConfigNode host's namespaces.
    fn sh(&self, script: &str) -> String {
        let pid = self.state.hosts[0].sshd_pid.to_string();
        let out = Command::new("nsenter")
            .args(["-t", &pid, "-m", "-u", "-n", "sh", "-c", script])
            .stdin(Stdio::null())
            .output()
            .expect("nsenter");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Err(e) = cloudctl::lab::down(LAB) {
            eprintln!("lab down {LAB}: {e:#}");
        }
    }
}

/// The n-th node (1-based): name, MAC, IP above the lab's dynamic range (.100-.199).
fn node(subnet: &cloudctl::types::Cidr, n: usize) -> (String, String, Ipv4Addr) {
    let [_, a, b, c] = (n as u32).to_be_bytes();
    let ip = subnet.nth(200 + n as u32).expect("the /18 has room");
    (format!("n{n:05}"), format!("52:54:01:{a:02x}:{b:02x}:{c:02x}"), ip)
}

fn run(bin: &Path, inv: &Path, args: &[&str]) -> (f64, Output) {
    let start = Instant::now();
    let out = Command::new(bin)
        .arg("-i")
        .arg(inv)
        .args(args)
        .env_remove("CLOUDCTL_INVENTORY")
        .stdin(Stdio::null())
        .output()
        .expect("run cloudctl");
    let secs = start.elapsed().as_secs_f64();
    let code = out.status.code();
    assert!(
        code == Some(0),
        "cloudctl {args:?} exited {code:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (secs, out)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Every figure of OPS for a ConfigNode with `n` nodes, in seconds.
fn measure(bin: &Path, n: usize) -> Vec<f64> {
    println!("\n--- {n} nodes");
    let lab = Lab::up();
    let inv = lab.state.inventory.clone();
    let subnet: cloudctl::types::Cidr = SUBNET.parse().expect("subnet");
    let mut text = std::fs::read_to_string(&inv).expect("lab inventory");
    for i in 1..=n {
        let (name, mac, ip) = node(&subnet, i);
        text += &format!("\n[[node]]\nname = \"{name}\"\nmac = \"{mac}\"\nip = \"{ip}\"\nrole = \"hnode\"\n");
    }
    std::fs::write(&inv, text).expect("write inventory");
    lab.sh("mkdir -p /srv/tftp/images/hnode && echo k > /srv/tftp/images/hnode/vmlinuz && echo i > /srv/tftp/images/hnode/initrd.img");
    let yes = |args: &[&str]| run(bin, &inv, &[&["--yes"], args].concat());

    let first = yes(&["config", "init"]).0;
    let count = lab.sh("ls /srv/tftp/pxelinux.cfg | grep -c '^01-'");
    assert_eq!(count.trim(), n.to_string(), "one PXE file per node");
    let pid = lab.sh("cat /run/dhcpd.pid");
    let no_change: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let (t, out) = yes(&["config", "init"]);
            assert!(String::from_utf8_lossy(&out.stderr).contains("no changes"));
            t
        })
        .collect();
    assert_eq!(lab.sh("cat /run/dhcpd.pid"), pid, "an unchanged run restarts nothing");
    println!("config init: first {first:.2} s, no change {:?}", no_change);

    let (extra, extra_mac, _) = node(&subnet, 9_000);
    let add_remove = |restart_path: bool, rounds: usize| {
        let (mut adds, mut removes) = (Vec::new(), Vec::new());
        let said = |out: &Output| String::from_utf8_lossy(&out.stderr).contains("restarted dhcpd instead");
        let force = || {
            if restart_path {
                lab.sh("rm -rf /var/lib/cloudctl/dhcpd/applied");
            }
        };
        for _ in 0..rounds {
            force();
            let (t, out) = yes(&["node", "add", &extra, "--mac", &extra_mac]);
            assert_eq!(said(&out), restart_path, "{}", String::from_utf8_lossy(&out.stderr));
            adds.push(t);
            let file = format!("/srv/tftp/pxelinux.cfg/01-{}", extra_mac.replace(':', "-"));
            lab.sh(&format!(
                "test -f {file} && grep -q 'host {extra} ' /etc/dhcp/cloudctl-hosts.d/*.conf"
            ));
            force();
            let (t, out) = yes(&["node", "remove", &extra]);
            assert_eq!(said(&out), restart_path, "{}", String::from_utf8_lossy(&out.stderr));
            removes.push(t);
            lab.sh(&format!("test ! -e {file}"));
        }
        (adds, removes)
    };
    let (adds, removes) = add_remove(false, LIVE_ROUNDS);
    assert_eq!(lab.sh("cat /run/dhcpd.pid"), pid, "live changes keep dhcpd's pid");
    println!("live: node add {adds:.2?}, node remove {removes:.2?}");
    // The restart path (what every change took before OMAPI, and the fallback now), forced by
    // removing the record of the hosts file dhcpd took: cloudctl then cannot know the live
    // difference and restarts (saying so).
    let (restart_adds, restart_removes) = add_remove(true, ROUNDS);
    println!("restart path: node add {restart_adds:.2?}, node remove {restart_removes:.2?}");
    let dry = run(bin, &inv, &["-n", "node", "add", &extra, "--mac", &extra_mac]).0;
    let list = run(bin, &inv, &["node", "list"]);
    assert_eq!(
        String::from_utf8_lossy(&list.1.stdout).lines().count(),
        n + 1,
        "a header and a line per node"
    );

    let csv = lab._dir.path().join("rack.csv");
    let mut rows = String::from("name,mac,ip,role\n");
    for i in 0..CSV_ROWS {
        let (name, mac, _) = node(&subnet, 10_000 + i);
        rows += &format!("{name},{mac},,hnode\n");
    }
    std::fs::write(&csv, rows).expect("write csv");
    let pid = lab.sh("cat /run/dhcpd.pid");
    let (from, out) = yes(&["node", "add", "--from", &csv.display().to_string()]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !said.contains("restarted dhcpd"),
        "the CSV's rows reach dhcpd live: {said}"
    );
    assert_eq!(lab.sh("cat /run/dhcpd.pid"), pid, "the CSV's rows keep dhcpd's pid");
    let count = lab.sh("ls /srv/tftp/pxelinux.cfg | grep -c '^01-'");
    assert_eq!(
        count.trim(),
        (n + CSV_ROWS).to_string(),
        "the CSV's nodes got their PXE files"
    );

    let restart: Vec<f64> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            lab.sh("service isc-dhcp-server restart >/dev/null");
            t.elapsed().as_secs_f64()
        })
        .collect();
    vec![
        first,
        median(no_change),
        median(adds),
        median(removes),
        median(restart_adds),
        median(restart_removes),
        from,
        list.0,
        dry,
        median(restart),
    ]
}

fn print_table(sizes: &[usize], columns: &[Vec<f64>]) {
    println!(
        "\n=== results (seconds, wall clock of the cloudctl command; growth against {} nodes) ===",
        sizes[0]
    );
    let mut header = format!("{:<32}", "");
    for n in sizes {
        header += &format!("{:>16}", format!("{n} nodes"));
    }
    println!("{header}   target at {}  result", sizes[sizes.len() - 1]);
    for (k, (op, target)) in OPS.iter().enumerate() {
        let mut line = format!("{op:<32}");
        let base = columns[0][k];
        for col in columns {
            line += &format!("{:>16}", format!("{:.2} ({:.1}x)", col[k], col[k] / base));
        }
        let last = columns[columns.len() - 1][k];
        match target {
            Some(t) => line += &format!("   <= {t:.1} s        {}", ["MISS", "PASS"][(last <= *t) as usize]),
            None => line += "   -",
        }
        println!("{line}");
    }
    let last = &columns[columns.len() - 1];
    let (add, remove, restart_add, restart_remove) = (last[2], last[3], last[4], last[5]);
    println!(
        "live OMAPI vs the restart path at {} nodes: node add {add:.2} s vs {restart_add:.2} s ({:.1}x faster), node remove {remove:.2} s vs {restart_remove:.2} s ({:.1}x faster)",
        sizes[sizes.len() - 1],
        restart_add / add,
        restart_remove / remove
    );
    if sizes.len() > 1 {
        let small = columns[0][2];
        let within = (add - small).abs() / small <= 0.2;
        println!(
            "node add at {} vs {} nodes: {:.2} s vs {small:.2} s, within 20 %: {}",
            sizes[sizes.len() - 1],
            sizes[0],
            add,
            ["NO", "YES"][within as usize]
        );
    }
}
