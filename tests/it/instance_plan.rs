//! Golden plans for `instance create` and `instance migrate` on both backends (no hosts), the
//! Xen domU config read back field by field, and the migration pre-checks and cleanup verdicts.

use crate::support::golden::assert_golden;
use cloudctl::inventory::{self, Host, Hypervisor, Inventory};
use cloudctl::plan::instance::create::{self, CreateRequest, GuestSecrets, RootSource};
use cloudctl::plan::instance::migrate::{self, Channel, MigrateRequest, Verdict};
use cloudctl::plan::instance::probe::{GuestSeen, GuestState, NodeFacts};
use cloudctl::plan::instance::{self, Guest, GuestRequest};
use cloudctl::plan::{Plan, Step};
use cloudctl::templates::Templates;
use std::collections::BTreeMap;
use std::path::PathBuf;

fn seed_text() -> String {
    std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/seed-lab.toml")).unwrap()
}

/// The seed lab, optionally with hnode2 switched to KVM (the per-node override).
fn seed(kvm: bool) -> Inventory {
    let mut text = seed_text();
    if kvm {
        text = text.replace(
            "[cloud]\nname = \"lab\"\nhypervisor = \"xen\"",
            "[cloud]\nname = \"lab\"\nhypervisor = \"kvm\"",
        );
    }
    inventory::parse("seed-lab.toml", &text).unwrap()
}

fn host(inv: &Inventory, name: &str) -> Host {
    inv.select(&[name.to_string()]).unwrap().remove(0)
}

fn new_guest(inv: &Inventory) -> Guest {
    let req = GuestRequest {
        name: "web2".parse().unwrap(),
        memory: Some(256),
        vcpus: Some(2),
        disk: Some("2G".parse().unwrap()),
        ip: "10.0.0.51".parse().unwrap(),
        mac: "52:54:00:00:05:02".parse().unwrap(),
    };
    instance::guest(inv, "hnode1", &req).unwrap()
}

fn secrets() -> GuestSecrets {
    GuestSecrets {
        host_key: b"-----BEGIN OPENSSH PRIVATE KEY-----\nGUEST-PRIVATE-KEY\n-----END OPENSSH PRIVATE KEY-----\n"
            .to_vec(),
        host_key_pub: b"ssh-ed25519 AAAAguest root@web2\n".to_vec(),
        authorized_keys: b"ssh-ed25519 AAAAadmin admin@laptop\n".to_vec(),
    }
}

fn create_plan(inv: &Inventory, source: RootSource) -> Plan {
    let g = new_guest(inv);
    create::plan(
        inv,
        &Templates::load(None).unwrap(),
        &CreateRequest {
            guest: &g,
            hnode: &host(inv, "hnode1"),
            source,
            secrets: &secrets(),
            nonce: "0123456789abcdef",
        },
    )
    .unwrap()
}

fn json(p: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(p).unwrap()
}

fn file<'a>(p: &'a Plan, suffix: &str) -> &'a cloudctl::plan::FileStep {
    p.hosts[0]
        .steps
        .iter()
        .find_map(|s| match s {
            Step::File(f) if f.path.as_str().ends_with(suffix) => Some(f),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no file step for {suffix}"))
}

/// A small reader for xl.cfg (xl's `KEY = VALUE` lines: numbers, "strings", [ "lists" ]).
fn read_xl_cfg(text: &str) -> BTreeMap<String, XlValue> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not KEY = VALUE: {line}"));
        let value = value.trim();
        let parsed = if let Some(list) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            XlValue::List(
                list.split("\",")
                    .map(|i| unquote(i.trim().trim_end_matches(',')))
                    .filter(|i| !i.is_empty())
                    .collect(),
            )
        } else if value.starts_with('"') {
            XlValue::Str(unquote(value))
        } else {
            XlValue::Num(value.parse().unwrap_or_else(|_| panic!("bad number in {line}")))
        };
        assert!(
            out.insert(key.trim().to_string(), parsed).is_none(),
            "{key} given twice"
        );
    }
    out
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    let s = s.strip_prefix('"').unwrap_or(s);
    let s = s.strip_suffix('"').unwrap_or(s);
    assert!(!s.contains('"'), "stray quote in {s}");
    s.to_string()
}

#[derive(Debug, PartialEq)]
enum XlValue {
    Num(i64),
    Str(String),
    List(Vec<String>),
}

/// `a=b, c=d` specs (xl's disk and vif syntax) as a map.
fn spec(s: &str) -> BTreeMap<String, String> {
    s.split(", ")
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

#[test]
fn golden_xen_create_and_its_domu_config_read_back() {
    let inv = seed(false);
    let p = create_plan(
        &inv,
        RootSource::Debootstrap {
            suite: "bookworm".into(),
            arch: "amd64".into(),
        },
    );
    let text = json(&p);
    assert!(
        !text.contains("GUEST-PRIVATE-KEY"),
        "the guest's private key is in the plan output"
    );
    assert_golden("instance-create-xen.json", &text);

    let cfg = read_xl_cfg(std::str::from_utf8(&file(&p, "/web2/xl.cfg").content).unwrap());
    let s = |k: &str| match &cfg[k] {
        XlValue::Str(v) => v.clone(),
        other => panic!("{k} is {other:?}"),
    };
    assert_eq!(s("name"), "web2");
    assert_eq!(s("type"), "pv");
    assert_eq!(cfg["memory"], XlValue::Num(256));
    assert_eq!(cfg["maxmem"], XlValue::Num(256));
    assert_eq!(cfg["vcpus"], XlValue::Num(2));
    assert_eq!(s("kernel"), "/vmlinuz");
    assert_eq!(s("ramdisk"), "/initrd.img");
    assert_eq!(s("cmdline"), "root=/dev/xvda rw console=hvc0 net.ifnames=0");
    assert_eq!(s("on_poweroff"), "destroy");
    let XlValue::List(disks) = &cfg["disk"] else {
        panic!("disk is not a list")
    };
    assert_eq!(disks.len(), 1);
    let disk = spec(&disks[0]);
    assert_eq!(disk["target"], "/srv/cloud/instances/web2/disk.img");
    assert_eq!(
        (disk["format"].as_str(), disk["vdev"].as_str(), disk["access"].as_str()),
        ("raw", "xvda", "rw")
    );
    let XlValue::List(vifs) = &cfg["vif"] else {
        panic!("vif is not a list")
    };
    let vif = spec(&vifs[0]);
    assert_eq!(
        (vif["mac"].as_str(), vif["bridge"].as_str()),
        ("52:54:00:00:05:02", "br0")
    );

    // The guest's identity, staged for the disk: network and fstab name the Xen device.
    let interfaces = String::from_utf8(file(&p, "/interfaces").content.clone()).unwrap();
    assert!(
        interfaces.contains("address 10.0.0.51\n    netmask 255.255.255.0\n    gateway 10.0.0.1"),
        "{interfaces}"
    );
    assert!(std::str::from_utf8(&file(&p, "/fstab").content)
        .unwrap()
        .contains("/dev/xvda\t/\text4"));
    assert!(file(&p, "/ssh_host_ed25519_key").secret);
}

#[test]
fn golden_kvm_create_by_copy() {
    let inv = seed(true);
    let p = create_plan(
        &inv,
        RootSource::Copy {
            path: "/srv/images/golden.img".into(),
            size: 3 << 30,
        },
    );
    assert_golden("instance-create-kvm.json", &json(&p));
    let qemu = p.hosts[0]
        .steps
        .iter()
        .find_map(|s| match s {
            Step::Command(c) if c.argv[0] == "qemu-system-x86_64" => Some(c.argv.clone()),
            _ => None,
        })
        .expect("a QEMU step");
    let arg = |flag: &str| qemu[qemu.iter().position(|a| a == flag).unwrap() + 1].clone();
    assert_eq!(arg("-m"), "256");
    assert_eq!(
        arg("-drive"),
        "file=/srv/cloud/instances/web2/disk.img,format=raw,if=virtio,cache=none,file.auto-read-only=off"
    );
    // QEMU gives up root once its files are open.
    assert_eq!(arg("-runas"), "64200:64200");
    assert_eq!(arg("-append"), "root=/dev/vda rw console=ttyS0 net.ifnames=0");
    assert!(!qemu.contains(&"-incoming".to_string()));
    // A copy is never made smaller than its source: 3G beats the requested 2G.
    let build = p.hosts[0]
        .steps
        .iter()
        .find_map(|s| match s {
            Step::Command(c) if c.argv.get(4).map(String::as_str) == Some("copy") => Some(c.argv.clone()),
            _ => None,
        })
        .expect("the build step");
    assert_eq!(build[7], (3u64 << 30).to_string());
}

fn one_time() -> Channel {
    Channel::Ssh {
        private_key: b"-----BEGIN OPENSSH PRIVATE KEY-----\nMIGRATION-PRIVATE-KEY\n-----END OPENSSH PRIVATE KEY-----\n"
            .to_vec(),
        public_key: "ssh-ed25519 AAAAonetime".into(),
        target_known_host: "10.0.0.32 ssh-ed25519 AAAAtarget".into(),
    }
}

fn migration(inv: &Inventory, channel: Channel) -> Result<migrate::MigrationPlan, cloudctl::error::Error> {
    let g = instance::recorded(inv, instance::record(inv, "web1").unwrap()).unwrap();
    let (s, t) = (host(inv, "hnode1"), host(inv, "hnode2"));
    migrate::plan(&MigrateRequest {
        guest: &g,
        source: &s,
        target: &t,
        source_ip: Some("10.0.0.31".into()),
        ssh_user: "root",
        channel,
        authorized_keys: None,
        max_downtime_ms: 300,
        max_bandwidth_mib: Some(100),
        timeout_secs: 600,
    })
}

#[test]
fn golden_migrations_for_both_backends() {
    for (kvm, name) in [
        (false, "instance-migrate-xen.json"),
        (true, "instance-migrate-kvm.json"),
    ] {
        let p = migration(&seed(kvm), one_time()).unwrap();
        let text = json(&p);
        assert!(
            !text.contains("MIGRATION-PRIVATE-KEY"),
            "the one-time private key is in the plan output"
        );
        assert_golden(name, &text);
        // The one-time key only feeds the waiting hypervisor, only from the source's address.
        assert!(text.contains(r#"restrict,from=\"10.0.0.31\",command=\""#), "{name}");
        assert!(text.contains("StrictHostKeyChecking=yes"), "{name}");
        // Whatever happens, the keys go: abort tidies both ends too.
        for phase in [&p.finish, p.abort()] {
            let all = json(phase);
            assert!(
                all.contains("cloudctl-migrate-web1") && all.contains("migrate-key"),
                "{name}: {all}"
            );
        }
    }
    let plain = migration(&seed(true), Channel::Tcp { port: 49152 }).unwrap();
    assert!(
        json(plain.start()).contains(r#"\"uri\":\"tcp:hnode2.lab.example:49152\""#),
        "{}",
        json(plain.start())
    );
    assert!(
        migration(&seed(false), Channel::Tcp { port: 49152 }).is_err(),
        "xl has no plain-TCP migration"
    );
}

fn facts(version: &str, bridge: bool, mem: u64, disk: Option<(u64, u64)>, guests: &[(&str, GuestState)]) -> NodeFacts {
    NodeFacts {
        hypervisor_version: version.into(),
        mem_available_mib: Some(mem),
        bridge,
        disk,
        disk_readable: disk.is_some(),
        guests: guests
            .iter()
            .map(|(n, s)| GuestSeen {
                name: n.to_string(),
                state: *s,
            })
            .collect(),
        ..NodeFacts::default()
    }
}

#[test]
fn pre_checks_refuse_before_anything_moves() {
    let inv = seed(true);
    let g = instance::recorded(&inv, instance::record(&inv, "web1").unwrap()).unwrap();
    let disk = Some((8 << 30, 77));
    let src = facts("QEMU 7.2", true, 4000, disk, &[("web1", GuestState::Running)]);
    let good = facts("QEMU 7.2", true, 4000, disk, &[]);
    assert!(migrate::check(&g, "hnode2", Hypervisor::Kvm, &src, &good, None).is_empty());
    let cases: Vec<(NodeFacts, Option<u64>, &str)> = vec![
        (
            facts("QEMU 7.2", false, 4000, disk, &[]),
            None,
            "bridge br0 does not exist on hnode2",
        ),
        (
            facts("QEMU 7.2", true, 100, disk, &[]),
            None,
            "hnode2 has 100 MiB free for guests, web1 needs 512 MiB",
        ),
        (
            facts("QEMU 7.2", true, 4000, disk, &[]),
            Some(256),
            "hnode2 has 256 MiB free",
        ),
        (
            facts("QEMU 8.0", true, 4000, disk, &[]),
            None,
            "hypervisor versions differ",
        ),
        (
            facts("QEMU 7.2", true, 4000, None, &[]),
            None,
            "hnode2 does not see /srv/cloud/instances/web1/disk.img",
        ),
        (
            facts("QEMU 7.2", true, 4000, Some((8 << 30, 78)), &[]),
            None,
            "is not the same file on both nodes",
        ),
        (
            facts("QEMU 7.2", true, 4000, disk, &[("web1", GuestState::Incoming)]),
            None,
            "a copy of web1 is already on hnode2 (incoming)",
        ),
    ];
    for (dst, cap, expected) in cases {
        let problems = migrate::check(&g, "hnode2", Hypervisor::Kvm, &src, &dst, cap);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "expected {expected:?} in {problems:?}"
        );
    }
    let stopped = facts("QEMU 7.2", true, 4000, disk, &[]);
    let problems = migrate::check(&g, "hnode2", Hypervisor::Kvm, &stopped, &good, None);
    assert!(
        problems[0].contains("does not run on the node the inventory records"),
        "{problems:?}"
    );
    let problems = migrate::check(&g, "hnode2", Hypervisor::Xen, &src, &good, None);
    assert!(problems[0].contains("same hypervisor"), "{problems:?}");
}

#[test]
fn cleanup_stops_only_stale_copies_when_the_guest_runs_elsewhere() {
    let inv = seed(false);
    let g = instance::recorded(&inv, instance::record(&inv, "web1").unwrap()).unwrap();
    let (h1, h2) = (host(&inv, "hnode1"), host(&inv, "hnode2"));
    let seen = |a: Option<GuestState>, b: Option<GuestState>| {
        let s = |st: Option<GuestState>| {
            st.map(|state| GuestSeen {
                name: "web1".into(),
                state,
            })
        };
        vec![(h1.clone(), s(a)), (h2.clone(), s(b))]
    };
    let destroys = |p: &Plan, i: usize| json(&p.hosts[i].steps).contains("xl destroy");

    let (v, p) = migrate::cleanup(&g, &seen(Some(GuestState::MigratedAway), Some(GuestState::Running)), "");
    assert_eq!(v, Verdict::RunsOn("hnode2".into()));
    assert!(destroys(&p, 0) && !destroys(&p, 1));

    let (v, p) = migrate::cleanup(&g, &seen(Some(GuestState::Running), Some(GuestState::Incoming)), "");
    assert_eq!(v, Verdict::RunsOn("hnode1".into()));
    assert!(!destroys(&p, 0) && destroys(&p, 1));

    let (v, p) = migrate::cleanup(&g, &seen(Some(GuestState::Running), Some(GuestState::Running)), "");
    assert_eq!(v, Verdict::SplitBrain(vec!["hnode1".into(), "hnode2".into()]));
    assert!(!destroys(&p, 0) && !destroys(&p, 1), "split brain: nothing is stopped");

    let (v, p) = migrate::cleanup(&g, &seen(Some(GuestState::MigratedAway), None), "");
    assert_eq!(v, Verdict::Nowhere);
    assert!(!destroys(&p, 0), "no running copy: the paused one is kept");
    // The shared disk is never touched by a cleanup.
    assert!(!json(&p).contains("disk.img"));
}

/// Mirror and proxy credentials never reach a process argument, the plan (`--json`) or the dry
/// run's text: they travel in a secret 0600 file the debootstrap step reads.
#[test]
fn debootstrap_credentials_stay_out_of_argv_plans_and_previews() {
    let text = seed_text().replace(
        "mirror = \"http://deb.debian.org/debian\"",
        "mirror = \"http://mirroruser:MIRROR-PW@deb.example/debian\"\nhttp_proxy = \"http://proxyuser:PROXY-PW@proxy.example:3128\"",
    );
    let inv = inventory::parse("seed-lab.toml", &text).unwrap();
    let p = create_plan(
        &inv,
        RootSource::Debootstrap {
            suite: "bookworm".into(),
            arch: "amd64".into(),
        },
    );
    let shown = json(&p);
    let preview = cloudctl::ui::diff::host_preview(&p.hosts[0], &vec![None; p.hosts[0].steps.len()]);
    for secret in ["MIRROR-PW", "PROXY-PW"] {
        assert!(!shown.contains(secret), "{secret} in the plan:\n{shown}");
        assert!(!preview.contains(secret), "{secret} in the dry run:\n{preview}");
    }
    let urls = file(&p, "/debootstrap-urls");
    assert!(urls.secret && urls.mode == 0o600);
    assert_eq!(
        String::from_utf8_lossy(&urls.content),
        "http://mirroruser:MIRROR-PW@deb.example/debian\nhttp://proxyuser:PROXY-PW@proxy.example:3128\n"
    );
}

/// The debootstrap step itself (real debootstrap, run by a local `sh`) against a loopback HTTP
/// server that asks for a password: the mirror's credentials reach it through wget's netrc, the
/// URL debootstrap is given (and every message) carries none.
#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn debootstrap_gets_the_mirror_password_without_it_on_the_command_line() {
    crate::support::require_lab(&["/usr/sbin/debootstrap"]);
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Bounded: answers at most 20 requests, 401 without credentials and 404 with them.
    let server = std::thread::spawn(move || {
        let mut auth = Vec::new();
        for stream in listener.incoming().take(20) {
            let Ok(mut stream) = stream else { break };
            stream
                .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut given = None;
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                if let Some(v) = line.strip_prefix("Authorization: ") {
                    given = Some(v.trim().to_string());
                }
                line.clear();
            }
            let reply = if given.is_some() {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            } else {
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"m\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            };
            let _ = stream.write_all(reply.as_bytes());
            let done = given.is_some() && !auth.is_empty();
            auth.extend(given);
            if done {
                break;
            }
        }
        auth
    });
    let tmp = tempfile::tempdir().unwrap();
    let urls = tmp.path().join("urls");
    std::fs::write(
        &urls,
        format!("http://mirroruser:MIRROR-PW@127.0.0.1:{port}/debian\n\n"),
    )
    .unwrap();
    let tar = tmp.path().join("cache/root.tar");
    let out = std::process::Command::new("sh")
        .args(["-c", create::CACHE, "sh", "bookworm"])
        .arg(&tar)
        .args(["minbase", ""])
        .arg(&urls)
        .output()
        .unwrap();
    // Unblock the server if debootstrap gave up early.
    let _ = std::net::TcpStream::connect(("127.0.0.1", port));
    let auth = server.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("from http://127.0.0.1:{port}/debian failed")),
        "debootstrap got the URL without credentials: {stderr}"
    );
    assert!(!stderr.contains("MIRROR-PW"), "{stderr}");
    // "mirroruser:MIRROR-PW" in base64.
    assert!(
        auth.iter().any(|a| a == "Basic bWlycm9ydXNlcjpNSVJST1ItUFc="),
        "credentials delivered: {auth:?}"
    );
    assert!(!tar.exists());
}

/// After a migration, an end that could not be asked (an SSH error) is never taken as "absent":
/// the target's copy is stopped only when the source's copy verifiably runs, so a guest whose
/// migration completed (source paused) keeps running on exactly one node.
#[test]
fn an_end_that_does_not_answer_never_gets_the_only_running_copy_stopped() {
    use migrate::{after_migration, may_stop_target, After};
    let cut: migrate::Seen = Err("hnode2 (10.0.0.32:22): cannot connect: Connection refused".into());
    let running = Ok(Some(GuestState::Running));
    let paused = Ok(Some(GuestState::Paused));
    let moved = |t: &migrate::Seen, s: &migrate::Seen| after_migration("hnode2", t, "hnode1", s) == After::Moved;

    // Completed: target runs, source paused (QEMU's postmigrate) or gone.
    assert!(moved(&running, &paused));
    assert!(moved(&running, &Ok(None)));
    // SSH to the target cut during verification: not taken as moved, and the abort must not
    // stop the target, because the source is only paused.
    assert!(!moved(&cut, &paused));
    assert!(!may_stop_target(&paused));
    // SSH to the source cut: it might still run, so this is no success either, and the target
    // is left alone too (both ends unknown to be the only copy).
    assert!(!moved(&running, &cut));
    assert!(!may_stop_target(&cut));
    // A real failure (the migration was cancelled, the source runs on): stopping the target is safe.
    assert!(!moved(&Ok(Some(GuestState::Incoming)), &running));
    assert!(may_stop_target(&running));
    // Both running: split brain, never "moved".
    assert!(!moved(&running, &running));
    match after_migration("hnode2", &cut, "hnode1", &paused) {
        After::NotMoved(why) => assert!(
            why.contains("unknown (hnode2 (10.0.0.32:22): cannot connect") && why.contains("paused on hnode1"),
            "{why}"
        ),
        After::Moved => unreachable!(),
    }
}

/// The abort phase itself stops nothing: stopping the target's QEMU is a separate phase.
#[test]
fn the_abort_phase_stops_no_guest() {
    let inv = seed(true);
    let g = new_guest(&inv);
    let p = migrate::plan(&MigrateRequest {
        guest: &g,
        source: &host(&inv, "hnode1"),
        target: &host(&inv, "hnode2"),
        source_ip: Some("10.0.0.31".into()),
        ssh_user: "root",
        channel: Channel::Tcp { port: 49152 },
        authorized_keys: None,
        max_downtime_ms: 300,
        max_bandwidth_mib: None,
        timeout_secs: 600,
    })
    .unwrap();
    let abort = json(p.abort());
    assert!(!abort.contains("\"quit\"") && !abort.contains("kill -9"), "{abort}");
    let stop = json(&p.stop_target);
    assert!(stop.contains("kill -9") && stop.contains("hnode2"), "{stop}");
}

#[test]
fn golden_remove_plans_for_both_backends() {
    use cloudctl::plan::instance::remove::{self, Disk};
    let nonce = "0123456789abcdef0123456789abcdef";
    let mut plans = BTreeMap::new();
    for kvm in [true, false] {
        let inv = seed(kvm);
        let g = new_guest(&inv);
        let p = remove::plan(&g, &host(&inv, "hnode1"), &Disk::Delete, Some(nonce), 30);
        // The folder goes last, after the guest is stopped; the mark is a positional argument.
        let last = p.hosts[0].steps.last().unwrap();
        match last {
            Step::Command(c) => assert_eq!(&c.argv[4..], ["/srv/cloud/instances/web2", nonce]),
            other => panic!("{other:?}"),
        }
        plans.insert(if kvm { "kvm" } else { "xen" }, p);
    }
    assert_golden("instance-remove.json", &json(&plans));
}

/// A target whose SSH server is dropbear gets the one-time key without `from=` (dropbear refuses
/// the whole line over it); any other keeps the source's address on it.
#[test]
fn the_one_time_key_is_limited_to_the_source_where_the_target_can() {
    let source = Some("10.0.0.31".to_string());
    let openssh = NodeFacts::default();
    let dropbear = cloudctl::plan::instance::probe::parse_facts("version 4.17.7\nssh-server dropbear\n");
    assert!(dropbear.dropbear && !openssh.dropbear);
    assert_eq!(migrate::key_source(&openssh, source.clone()), source);
    assert_eq!(migrate::key_source(&dropbear, source), None);
}

/// xl's "Failed to enable logdirty" is explained (Xen without shadow paging), other failures not.
#[test]
fn a_xen_without_shadow_paging_is_named_as_the_cause() {
    let xl = "xc: info: Saving domain 2, type x86 PV\nxc: error: Failed to enable logdirty: 95,22,0 (22 = Invalid argument): Internal error\n";
    let cause = migrate::known_cause(xl).expect("explained");
    assert!(
        cause.contains("shadow paging") && cause.contains("kvm backend"),
        "{cause}"
    );
    assert_eq!(
        migrate::known_cause("root@10.0.0.32: Permission denied (publickey)."),
        None
    );
}
