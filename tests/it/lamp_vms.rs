//! The seed's LAMP lab for real: two web VMs PXE-booted from the ConfigNode host (their installed
//! system is this machine's Debian, shared read-only over virtio-9p; each has two disks and a
//! cross-over cable to the other), `lamp deploy` with `storage = "drbd-ocfs2"` building md RAID1,
//! DRBD primary/primary over the cable, the o2cb cluster and OCFS2 on them, Apache/PHP with the
//! docroot and sessions on OCFS2, MariaDB on web1 with its data there too, and pen on a namespace
//! host. Requests come from the root namespace and two lab hosts, bounded in count and time, to
//! lab addresses only. One web VM is switched off under load, boots again and rejoins by a second
//! deploy.

use crate::support::lab::{console, remote};
use crate::support::storage::{boot, boot_image};
use crate::support::web::{client, nodes, requests};
use crate::support::{cloudctl, ok, report, text, Lab, TFTPD};
use cloudctl::lab::VmRole;
use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const LAB: &str = "lampvm";
const OCTET: u8 = 231;
const LB: &str = "10.201.231.11";
const WEB: [(&str, &str); 2] = [("web1", "10.201.231.201"), ("web2", "10.201.231.202")];

/// The inventory's `[lamp]`: pen on hnode1, MariaDB on web1 with its data on the shared
/// filesystem, md RAID1 of the VMs' two disks under DRBD, the cross-over cable's addresses.
const SECTION: &str = r#"
[lamp]
balancer = "hnode1"
web = ["web1", "web2"]
database = "web1"
storage = "drbd-ocfs2"

[lamp.pen]
timeout = 10

[lamp.drbd]
disk = "/dev/md0"
md = ["/dev/vda", "/dev/vdb"]

[lamp.drbd.address]
web1 = "192.168.100.201"
web2 = "192.168.100.202"

[lamp.mysql]
datadir = "/srv/www/mysql"
"#;

/// Requests per second `ab` measured from `on`: `count` requests, `concurrency` at a time.
fn rate(lab: &Lab, on: Option<usize>, url: &str, count: u32, concurrency: u32) -> f64 {
    let out = client(
        lab,
        on,
        &format!("ab -q -s 10 -n {count} -c {concurrency} {url}/status.php"),
    );
    let shown = text(&out.stdout);
    assert!(out.status.success(), "ab: {shown}{}", text(&out.stderr));
    assert!(shown.contains("Failed requests:        0"), "{shown}");
    shown
        .lines()
        .find_map(|l| l.strip_prefix("Requests per second:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no rate in: {shown}"))
}

/// Requests/s from the root namespace and hnode2 at once (pen keeps each client on one node).
fn combined_rate(lab: &Lab, url: &str) -> f64 {
    std::thread::scope(|s| {
        let other = s.spawn(|| rate(lab, Some(2), url, 60, 3));
        rate(lab, None, url, 60, 3) + other.join().unwrap()
    })
}

fn deploy(inv: &str, outputs: &mut String) -> (Output, Duration) {
    let started = Instant::now();
    let out = cloudctl(&["-i", inv, "--yes", "-v", "lamp", "deploy"]);
    *outputs += &text(&out.stderr);
    (out, started.elapsed())
}

fn deployed(lab: &Lab, out: &Output, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {}\nweb1:\n{}\nweb2:\n{}",
        text(&out.stderr),
        console(lab, "web1"),
        console(lab, "web2")
    );
}

/// The shared filesystem's state on a web node: md, DRBD, the mount, OCFS2's UUID.
fn storage_state(inv: &str, web: &str) -> String {
    remote(
        inv,
        web,
        "grep -A1 '^md0' /proc/mdstat | tr -s ' \\n' ' '; echo; sed -n 's/^ *0: //p' /proc/drbd | cut -d' ' -f1-3; findmnt -n -r -o FSTYPE,SOURCE /srv/www; blkid -s UUID -o value /dev/drbd0",
    )
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn lamp_on_web_vms_with_md_drbd_and_ocfs2() {
    crate::support::lab::require_vm_lab(&[
        "/usr/sbin/drbdadm",
        "/usr/sbin/mdadm",
        "/usr/sbin/mkfs.ocfs2",
        "/usr/sbin/apache2",
        "/usr/sbin/mariadbd",
        "/usr/bin/pen",
        "/usr/bin/curl",
        "/usr/bin/ab",
        "/usr/bin/php",
    ]);
    let _tftpd = TFTPD.lock().unwrap_or_else(|e| e.into_inner());
    let (kernel, initrd) = boot_image();
    // confignode, hnode1 (pen), hnode2 (a client)
    let lab = Lab::up_with_vms(LAB, 3, OCTET, &[VmRole::Web, VmRole::Web], 128);
    let inv = lab.inventory();
    lab.sh_ok(0, &format!("mkdir -p /srv/tftp/images/web && cp {kernel} /srv/tftp/images/web/vmlinuz && cp {initrd} /srv/tftp/images/web/initrd.img"));
    ok(&cloudctl(&["-i", &inv, "--yes", "config", "init"]), "config init");
    lab.append_inventory(SECTION);
    for (web, _) in WEB {
        let (out, took) = boot(&inv, web, "wol");
        let err = ok(&out, &format!("node boot {web}"));
        assert!(err.contains(&format!("{web}: hypervisor none: ok")), "{err}");
        report(&format!(
            "lamp VMs: {web} Wake-on-LAN → SSH with the pinned key in {:.1} s",
            took.as_secs_f64()
        ));
    }

    // First deploy: the whole stack on blank disks.
    let mut outputs = String::new();
    let (out, first) = deploy(&inv, &mut outputs);
    deployed(&lab, &out, "first deploy");
    report(&format!(
        "lamp VMs: first deploy of the whole stack (md, DRBD, o2cb, OCFS2, Apache, MariaDB, pen) took {:.1} s",
        first.as_secs_f64()
    ));
    let mut uuid = String::new();
    for (web, _) in WEB {
        let state = storage_state(&inv, web);
        let lines: Vec<&str> = state.lines().collect();
        assert!(
            lines.len() == 4
                && lines[0].contains("active raid1")
                && lines[0].contains("[UU]")
                && lines[1] == "cs:Connected ro:Primary/Primary ds:UpToDate/UpToDate"
                && lines[2] == "ocfs2 /dev/drbd0",
            "{web}: {state}"
        );
        assert!(uuid.is_empty() || uuid == lines[3], "one filesystem on both: {state}");
        uuid = lines[3].to_string();
    }

    // Same OCFS2, really mounted on both: a file written on web1 is served by web2.
    let token = format!("written-on-web1-{}", std::process::id());
    remote(
        &inv,
        "web1",
        &format!("echo {token} > /srv/www/htdocs/probe.txt && sync"),
    );
    let served = client(&lab, None, &format!("curl -sS -m 10 http://{}/probe.txt", WEB[1].1));
    assert_eq!(text(&served.stdout).trim(), token, "{}", text(&served.stderr));

    // The running MariaDB has the seed's settings (asked of the server) and its data on OCFS2.
    let settings = remote(
        &inv,
        "web1",
        "mariadb -N -B -e 'select @@skip_external_locking, @@delay_key_write, @@query_cache_size, @@default_storage_engine, @@datadir'",
    );
    assert_eq!(
        settings.split_whitespace().collect::<Vec<_>>(),
        ["0", "OFF", "0", "MyISAM", "/srv/www/mysql/"],
        "{settings}"
    );

    // Requests through pen from three clients: all answered with the database reachable, and
    // both web nodes serve.
    let clients = [("root namespace", None), ("confignode", Some(0)), ("hnode2", Some(2))];
    let pen = format!("http://{LB}");
    let mut answered = BTreeSet::new();
    for (name, on) in clients {
        let lines = requests(&lab, on, &pen, 20, None);
        assert!(
            lines.len() == 20 && !lines.iter().any(|l| l.starts_with("FAILED")),
            "{name}: {lines:?}"
        );
        answered.extend(nodes(&lines).into_iter().map(str::to_string));
    }
    assert_eq!(answered.len(), 2, "both web nodes answer through pen: {answered:?}");

    // A PHP session started on one web node continues on the other (sessions on OCFS2).
    let jar = lab.dir.path().join("cookies").display().to_string();
    let mut session = Vec::new();
    for (_, on) in clients {
        session.extend(requests(&lab, on, &pen, 1, Some(&jar)));
    }
    let hits: Vec<&str> = session.iter().map(|l| l.rsplit(' ').next().unwrap()).collect();
    assert_eq!(hits, ["1", "2", "3"], "{session:?}");
    let session_nodes: BTreeSet<&str> = nodes(&session).into_iter().collect();
    assert_eq!(
        session_nodes.len(),
        2,
        "the session moved between web nodes: {session:?}"
    );

    // Throughput: through pen (two clients, each kept on its node) vs web1 alone.
    let through_pen = combined_rate(&lab, &pen);
    let alone = combined_rate(&lab, &format!("http://{}", WEB[0].1));
    report(&format!(
        "lamp VMs: {through_pen:.1} requests/s through pen vs {alone:.1} on web1 alone (2 clients x 60 requests, 3 at a time; both VMs share this machine's 2 cores)"
    ));

    // lamp status: healthy.
    let status = cloudctl(&["-i", &inv, "lamp", "status"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stdout));

    // web2 switched off abruptly under load: requests fail only until the cluster has declared
    // it dead and pen has moved its clients; from then on none fails.
    let log = lab.dir.path().join("failover.log").display().to_string();
    let load = format!(
        "end=$(($(date +%s) + 100)); while [ $(date +%s) -lt $end ]; do t=$(date +%s.%N); out=$(curl -sS -m 5 {pen}/status.php 2>&1) && n=$(printf '%s\\n' \"$out\" | sed -n 's/^node: //p') || n=FAILED; echo \"$t ${{n:-FAILED}}\" >> {log}; sleep 0.2; done"
    );
    let mut loader = Command::new("sh").args(["-c", &load]).spawn().unwrap();
    std::thread::sleep(Duration::from_secs(10));
    let off_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    ok(
        &cloudctl(&["lab", "power-off", "--name", LAB, "web2"]),
        "power-off web2",
    );
    // lamp status says so: web2 down or unreachable (exit 1 or 4), not healthy.
    let during = cloudctl(&["-i", &inv, "lamp", "status"]);
    let said = text(&during.stdout) + &text(&during.stderr);
    assert!(
        matches!(during.status.code(), Some(1) | Some(4)) && said.contains("web2"),
        "{said}"
    );
    loader.wait().unwrap();
    let lines: Vec<(f64, String)> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (t, n) = l.split_once(' ')?;
            Some((t.parse().ok()?, n.to_string()))
        })
        .collect();
    let before: Vec<&(f64, String)> = lines.iter().filter(|(t, _)| *t < off_at).collect();
    assert!(
        !before.is_empty() && before.iter().all(|(_, n)| n != "FAILED"),
        "{lines:?}"
    );
    let last_failure = lines
        .iter()
        .filter(|(t, n)| *t >= off_at && n == "FAILED")
        .map(|(t, _)| *t)
        .fold(off_at, f64::max);
    let after: Vec<&(f64, String)> = lines.iter().filter(|(t, _)| *t > last_failure).collect();
    let failed = lines.iter().filter(|(_, n)| n == "FAILED").count();
    // A failed request took up to 5 s: the outage ends when the last failed request ended.
    let outage = last_failure + 5.0 - off_at;
    assert!(outage < 60.0, "requests failed for {outage:.1} s: {lines:?}");
    assert!(
        after.len() >= 50 && after.iter().all(|(_, n)| n == "web1"),
        "after the last failure only web1 answers, for the rest of the run: {lines:?}"
    );
    report(&format!(
        "lamp VMs: web2 switched off under load: {failed} of {} requests failed, none after {outage:.1} s (the cluster declaring it dead and pen moving its clients); {} answered by web1 after that",
        lines.len(),
        after.len()
    ));

    // web2 boots again and rejoins by a second deploy: DRBD resyncs, OCFS2 mounts (the same
    // filesystem: nothing reformatted), Apache serves; lamp status healthy.
    let (out, took) = boot(&inv, "web2", "wol");
    ok(&out, "node boot web2 again");
    let (out, rejoin) = deploy(&inv, &mut outputs);
    deployed(&lab, &out, "deploy after web2 came back");
    for (web, _) in WEB {
        let state = storage_state(&inv, web);
        assert!(
            state.contains("cs:Connected ro:Primary/Primary ds:UpToDate/UpToDate")
                && state.contains("ocfs2 /dev/drbd0")
                && state.trim_end().ends_with(&uuid),
            "{web}: {state}"
        );
    }
    let served = client(&lab, None, &format!("curl -sS -m 10 http://{}/probe.txt", WEB[1].1));
    assert_eq!(text(&served.stdout).trim(), token, "{}", text(&served.stderr));
    for (web, ip) in WEB {
        let lines = requests(&lab, None, &format!("http://{ip}"), 3, None);
        assert!(
            lines.len() == 3 && nodes(&lines).iter().all(|n| *n == web),
            "{web}: {lines:?}"
        );
    }
    let status = cloudctl(&["-i", &inv, "lamp", "status"]);
    assert_eq!(status.status.code(), Some(0), "{}", text(&status.stdout));
    report(&format!(
        "lamp VMs: web2 back: boot {:.1} s, rejoining deploy {:.1} s (DRBD resynced, same OCFS2)",
        took.as_secs_f64(),
        rejoin.as_secs_f64()
    ));
    let password = remote(&inv, "web1", "sed -n 's/^password = //p' /etc/mysql/cloudctl-lamp.cnf");
    assert!(
        password.trim().len() == 40 && !outputs.contains(password.trim()),
        "the database password stays out of cloudctl's output"
    );
}
