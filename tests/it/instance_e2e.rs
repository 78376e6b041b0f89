//! End to end on a lab (kvm backend, QEMU under TCG): a guest created by copying a small bootable
//! image, live-migrated while a third host pings it every 100 ms, refused migrations, a target
//! killed midway, a target whose SSH hangs after the stream is up, and `--cleanup`.

use crate::support::guest::{bootable_image, found_running, ping_once, processes, qemus, where_runs, CONFIGNODE};
use crate::support::{cloudctl, json, read_in_image, report, text, Lab};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const HNODE1: usize = 1;
const HNODE2: usize = 2;
const HNODE3: usize = 3;

/// Each QEMU runs under its seccomp filter (-sandbox: mode 2 in the kernel's view) and as
/// cloudctl's unprivileged uid and gid (-runas), not as root.
fn assert_unprivileged(pids: &[u32]) {
    assert!(!pids.is_empty(), "no QEMU to check");
    for pid in pids {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(status.contains("Seccomp:\t2"), "QEMU {pid} runs without its sandbox");
        let ids = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert_eq!(ids("Uid:"), ["64200"; 4], "QEMU {pid} does not run as uid 64200");
        assert_eq!(ids("Gid:"), ["64200"; 4], "QEMU {pid} does not run as gid 64200");
        assert_eq!(
            ids("Groups:"),
            ["64200"],
            "QEMU {pid} keeps root's supplementary groups"
        );
    }
}

/// Stops a process (SIGSTOP) until dropped: its open connections go on, new ones hang.
struct Frozen(u32);

impl Frozen {
    fn new(pid: u32) -> Frozen {
        // SAFETY: kill(2) on a pid of our own lab (its sshd), resumed when the guard drops.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGSTOP) }, 0);
        Frozen(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::kill(self.0 as i32, libc::SIGCONT) };
    }
}

/// `instance migrate NAME --to TO` at 2 MiB/s, so a test can act while it runs.
fn slow_migration(inv: &str, name: &str, to: &str) -> Child {
    Command::new(crate::support::bin())
        .args([
            "-i",
            inv,
            "--yes",
            "instance",
            "migrate",
            name,
            "--to",
            to,
            "--max-bandwidth",
            "2",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits at most `secs` for `child` to exit (else fails with `hung`); its status and stderr.
fn exit_within(mut child: Child, secs: u64, hung: &str) -> (ExitStatus, String) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "{hung}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn guest_is_created_by_copy_and_live_migrated_without_losing_pings() {
    crate::support::require_lab(&[
        crate::support::vm::QEMU,
        "/vmlinuz",
        "/initrd.img",
        "/usr/bin/socat",
        "/sbin/mkfs.ext4",
        "/sbin/debugfs",
    ]);
    let lab = Lab::up("inst", 4, 81);
    let inv = lab.inventory();
    let store = lab.state.dir.join("store");
    let golden = store.join("golden.img");
    bootable_image(&golden, true);
    let golden = golden.display().to_string();

    // Create: --copy from the golden image, on hnode1.
    let t = Instant::now();
    let out = cloudctl(&[
        "-i",
        &inv,
        "--yes",
        "--json",
        "instance",
        "create",
        "vm1",
        "--hnode",
        "hnode1",
        "--copy",
        &golden,
        "--ip",
        "10.201.81.50",
        "--wait",
        "150",
    ]);
    assert!(
        out.status.success(),
        "create: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let err = text(&out.stderr);
    assert!(
        err.contains("vm1: answers ping from its hardware node")
            && err.contains("vm1: SSH answers with the pinned host key"),
        "--wait reports the stages: {err}"
    );
    let created = json(&out);
    let up_after = created["up_after_seconds"]
        .as_f64()
        .expect("--wait: up_after_seconds in the JSON");
    let fingerprint = created["host_key_fingerprint"].as_str().unwrap().to_string();
    let inventory = std::fs::read_to_string(&inv).unwrap();
    assert!(
        inventory.contains("[[instance]]\nname = \"vm1\"\nhnode = \"hnode1\""),
        "{inventory}"
    );
    assert!(
        ping_once(&lab, "10.201.81.50"),
        "up means it answers ping from elsewhere too"
    );
    assert_unprivileged(&qemus(&lab, HNODE1));
    report(&format!(
        "instance create --copy --wait: command {:.1} s, of which {up_after:.1} s until the guest answered SSH with its pinned key",
        t.elapsed().as_secs_f64(),
    ));

    // What create wrote into the guest's root filesystem.
    let disk = store.join("vm1/disk.img").display().to_string();
    assert_eq!(read_in_image(&disk, "/etc/hostname"), "vm1\n");
    let interfaces = read_in_image(&disk, "/etc/network/interfaces");
    assert!(
        interfaces.contains("address 10.201.81.50\n    netmask 255.255.255.0\n    gateway 10.201.81.1"),
        "{interfaces}"
    );
    assert!(read_in_image(&disk, "/etc/fstab").contains("/dev/vda\t/\text4"));
    let client_pub = std::fs::read_to_string(lab.state.client_key.with_extension("pub")).unwrap();
    assert_eq!(read_in_image(&disk, "/root/.ssh/authorized_keys"), client_pub);
    assert!(
        read_in_image(&disk, "/etc/shadow").starts_with("root:!$6$golden$hash:"),
        "root's password is not locked"
    );
    assert_eq!(
        read_in_image(&disk, "/etc/ssh/ssh_host_rsa_key"),
        "",
        "the golden image's host key survived"
    );
    let host_pub = read_in_image(&disk, "/etc/ssh/ssh_host_ed25519_key.pub");
    let mut keygen = Command::new("ssh-keygen")
        .args(["-l", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(keygen.stdin.as_mut().unwrap(), host_pub.as_bytes()).unwrap();
    let listed = text(&keygen.wait_with_output().unwrap().stdout);
    assert!(
        listed.contains(&fingerprint),
        "printed {fingerprint}, the guest holds {listed}"
    );
    let known = std::fs::read_to_string(&lab.state.known_hosts).unwrap();
    assert!(
        known.contains(&format!(
            "10.201.81.50 {}",
            host_pub.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
        )),
        "not pinned: {known}"
    );
    // The guest answers ping right after `ifup`, a moment before its init prints the line.
    let console = (0..50)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(200));
            std::fs::read_to_string(store.join("vm1/console.log")).unwrap()
        })
        .find(|c| c.contains("GUEST UP: vm1 "))
        .unwrap_or_default();
    assert!(
        console.contains("GUEST UP: vm1 ") && console.contains("inet 10.201.81.50/24"),
        "{console}"
    );

    // A failed create removes what it made, and nothing else: a source that is no filesystem.
    let inventory_before = std::fs::read_to_string(&inv).unwrap();
    let junk = store.join("junk.img");
    std::fs::write(&junk, vec![0u8; 4 << 20]).unwrap();
    let out = cloudctl(&[
        "-i",
        &inv,
        "--yes",
        "instance",
        "create",
        "bad1",
        "--hnode",
        "hnode1",
        "--copy",
        &junk.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("creating bad1 failed; removing what this run created"),
        "{}",
        text(&out.stderr)
    );
    assert!(!store.join("bad1").exists(), "a failed create left its folder behind");
    assert_eq!(
        std::fs::read_to_string(&inv).unwrap(),
        inventory_before,
        "a failed create changed the inventory"
    );
    // ... and a folder someone else made under the guest's name is refused and left alone.
    std::fs::create_dir(store.join("bad2")).unwrap();
    std::fs::write(store.join("bad2/keep.txt"), "not cloudctl's").unwrap();
    let out = cloudctl(&[
        "-i", &inv, "--yes", "instance", "create", "bad2", "--hnode", "hnode1", "--copy", &golden,
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("already exists on the shared storage"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(store.join("bad2/keep.txt")).unwrap(),
        "not cloudctl's"
    );
    assert!(qemus(&lab, HNODE1).len() == 1, "only vm1 runs on hnode1");

    // Live migration while the ConfigNode pings the guest every 100 ms (bounded: 200 pings).
    let pinger = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.state.hosts[CONFIGNODE].netns,
            "ping",
            "-i",
            "0.1",
            "-c",
            "200",
            "-W",
            "1",
            "10.201.81.50",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    let out = cloudctl(&[
        "-i", &inv, "--yes", "--json", "instance", "migrate", "vm1", "--to", "hnode2",
    ]);
    let wall = t.elapsed();
    assert!(
        out.status.success(),
        "migrate: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // Every finishing step ran, the target's announce-self included (QEMU refused none).
    assert!(
        !text(&out.stderr).contains("a finishing step failed"),
        "{}",
        text(&out.stderr)
    );
    let m = json(&out);
    let pings = text(&pinger.wait_with_output().unwrap().stdout);
    let summary = pings
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap()
        .to_string();
    let nums: Vec<u32> = summary
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let lost = nums[0] - nums[1];
    report(&format!(
        "instance migrate (ssh): downtime {} ms, migration {} ms, command {:.1} s; pings: {summary}",
        m["downtime_ms"],
        m["migration_ms"],
        wall.as_secs_f64()
    ));
    assert!(lost <= 1, "{lost} pings lost during the migration: {summary}");
    assert!(
        ping_once(&lab, "10.201.81.50"),
        "the guest does not answer after the migration"
    );
    assert!(qemus(&lab, HNODE1).is_empty(), "QEMU left on the source");
    assert_eq!(qemus(&lab, HNODE2).len(), 1);
    // The copy that received the guest gave up root too (-runas), yet could take over its disk.
    assert_unprivileged(&qemus(&lab, HNODE2));
    assert_eq!(where_runs(&inv, "vm1"), ("hnode2".into(), "hnode2".into()));
    let keys = std::fs::read_to_string(lab.state.dir.join("authorized_keys")).unwrap();
    assert!(!keys.contains("cloudctl-migrate"), "one-time key left behind: {keys}");

    // Refused before anything moves: no bridge on the target, then not enough memory.
    lab.sh_ok(
        HNODE3,
        "ip link set br0 down && ip link set br0 name br9 && ip link set br9 up",
    );
    let out = cloudctl(&["-i", &inv, "--yes", "instance", "migrate", "vm1", "--to", "hnode3"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("bridge br0 does not exist on hnode3"),
        "{}",
        text(&out.stderr)
    );
    lab.sh_ok(
        HNODE3,
        "ip link set br9 down && ip link set br9 name br0 && ip link set br0 up",
    );
    let with_cap = std::fs::read_to_string(&inv)
        .unwrap()
        .replace("name = \"hnode3\"\n", "name = \"hnode3\"\nmemory = 64\n");
    std::fs::write(&inv, with_cap).unwrap();
    let out = cloudctl(&["-i", &inv, "--yes", "instance", "migrate", "vm1", "--to", "hnode3"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("hnode3 has 64 MiB free for guests, vm1 needs 256 MiB"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        qemus(&lab, HNODE3).is_empty(),
        "a refused migration started QEMU on the target"
    );
    assert_eq!(where_runs(&inv, "vm1"), ("hnode2".into(), "hnode2".into()));

    // The target dies midway: the guest keeps running on the source, and --cleanup says so.
    let slow = slow_migration(&inv, "vm1", "hnode1");
    let deadline = Instant::now() + Duration::from_secs(30);
    while qemus(&lab, HNODE1).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    let target = qemus(&lab, HNODE1);
    assert_eq!(target.len(), 1, "no incoming QEMU on hnode1");
    // SAFETY: kill(2) on a pid we just saw running QEMU in our own lab namespace.
    unsafe { libc::kill(target[0] as i32, libc::SIGKILL) };
    let (status, stderr) = exit_within(slow, 60, "migrate did not give up after its target died");
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("vm1 stays on hnode2") && stderr.contains("vm1 on hnode2: running"),
        "{stderr}"
    );
    assert!(
        ping_once(&lab, "10.201.81.50"),
        "the guest stopped answering after the failed migration"
    );
    let out = cloudctl(&["-i", &inv, "--yes", "--json", "instance", "migrate", "vm1", "--cleanup"]);
    assert!(out.status.success(), "cleanup: {}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("vm1 runs on hnode2, as recorded"),
        "{}",
        text(&out.stderr)
    );
    assert!(qemus(&lab, HNODE1).is_empty());
    assert!(
        !lab.sh_ok(HNODE1, "ip -o link show").contains("cc-"),
        "the dead target's interface was left"
    );
    assert_eq!(where_runs(&inv, "vm1"), ("hnode2".into(), "hnode2".into()));
    let keys = std::fs::read_to_string(lab.state.dir.join("authorized_keys")).unwrap();
    assert!(!keys.contains("cloudctl-migrate"), "one-time key left behind: {keys}");

    // SSH to the target hangs once the stream is flowing (its sshd stopped: open sessions go on,
    // new ones time out), so the migration completes but cannot be verified. The copy on the
    // target is then the only one running and must be left running; --cleanup sorts it out.
    let plain = std::fs::read_to_string(&inv).unwrap();
    std::fs::write(&inv, plain.replace("[ssh]\n", "[ssh]\nconnect_timeout = 2\n")).unwrap();
    let cut = slow_migration(&inv, "vm1", "hnode1");
    // The target's end of the stream: the one-time key's forced command feeding QEMU.
    let deadline = Instant::now() + Duration::from_secs(60);
    while processes(&lab, HNODE1, |comm, line| {
        comm == "socat" && line.contains("vm1.migrate")
    })
    .is_empty()
    {
        assert!(Instant::now() < deadline, "the migration stream never reached hnode1");
        std::thread::sleep(Duration::from_millis(100));
    }
    let frozen = Frozen::new(lab.state.hosts[HNODE1].sshd_pid);
    let (status, stderr) = exit_within(cut, 180, "migrate hung on a target that stopped answering SSH");
    drop(frozen);
    std::fs::write(&inv, plain).unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("vm1 does not verifiably run on hnode2")
            && stderr.contains("its copy on hnode1 was left as it is")
            && stderr.contains("--cleanup"),
        "{stderr}"
    );
    assert!(ping_once(&lab, "10.201.81.50"), "the guest stopped answering: {stderr}");
    let (running, _) = found_running(&inv, "vm1");
    assert_eq!(running, ["hnode1"], "vm1 must run on exactly one node");
    let out = cloudctl(&["-i", &inv, "--yes", "instance", "migrate", "vm1", "--cleanup"]);
    assert!(out.status.success(), "cleanup: {}", text(&out.stderr));
    assert!(qemus(&lab, HNODE2).is_empty(), "the paused source copy was left");
    assert_eq!(where_runs(&inv, "vm1"), ("hnode1".into(), "hnode1".into()));
    let keys = std::fs::read_to_string(lab.state.dir.join("authorized_keys")).unwrap();
    assert!(!keys.contains("cloudctl-migrate"), "one-time key left behind: {keys}");

    // Stop, and start again where it is recorded.
    let out = cloudctl(&["-i", &inv, "--yes", "instance", "stop", "vm1", "--grace", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(qemus(&lab, HNODE1).is_empty());
    assert_eq!(where_runs(&inv, "vm1").0, "");
    let out = cloudctl(&["-i", &inv, "--yes", "instance", "start", "vm1", "--wait", "150"]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("vm1 is up: SSH answers with its pinned host key"),
        "start --wait: {err}"
    );
    assert_eq!(where_runs(&inv, "vm1").0, "hnode1");
    let out = cloudctl(&["-i", &inv, "--yes", "instance", "start", "vm1"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a second start must be refused: {}",
        text(&out.stderr)
    );

    // --wait on a guest whose network never comes up: it runs (and is recorded), but the wait
    // times out with exit 4 naming the last stage instead of reporting success.
    let silent = store.join("silent.img");
    bootable_image(&silent, false);
    let t = Instant::now();
    let out = cloudctl(&[
        "-i",
        &inv,
        "--yes",
        "instance",
        "create",
        "vm2",
        "--hnode",
        "hnode1",
        "--copy",
        &silent.display().to_string(),
        "--wait",
        "20",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("vm2 runs on hnode1")
            && err.contains("vm2 did not come up within 20 s; last stage seen: none (no sign of it on the network)"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(60), "the wait is bounded by --wait");
    let out = cloudctl(&["-i", &inv, "--yes", "instance", "stop", "vm2", "--grace", "0"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Ctrl-C while a create is failing still rolls it back (the interrupt used to stop the
/// rollback from starting): the run ends as interrupted (130) and leaves no guest folder.
#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn ctrl_c_during_a_failing_create_still_rolls_it_back() {
    crate::support::require_lab(&[crate::support::vm::QEMU, "/vmlinuz", "/usr/bin/socat"]);
    let lab = Lab::up("tintr", 2, 163);
    let inv = lab.inventory();
    let store = lab.state.dir.join("store");
    // Not a filesystem, and big enough that copying it takes a moment: the create fails at its
    // mount, after the guest folder was made.
    let junk = store.join("junk.img");
    std::fs::create_dir_all(&store).unwrap();
    std::fs::write(&junk, vec![0xffu8; 256 << 20]).unwrap();
    let folder = store.join("intr1");
    let child = Command::new(crate::support::bin())
        .args([
            "-i", &inv, "--yes", "instance", "create", "intr1", "--hnode", "hnode1", "--copy",
        ])
        .arg(&junk)
        .env_remove("CLOUDCTL_INVENTORY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !folder.exists() && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(folder.exists(), "the create never made its folder");
    let _ = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("roll back instance intr1"),
        "the rollback ran: {stderr}"
    );
    assert!(
        !folder.exists(),
        "Ctrl-C left the failed guest's folder behind: {stderr}"
    );
    let _ = std::fs::remove_file(&junk);
}
