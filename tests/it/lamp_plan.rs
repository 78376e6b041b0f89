//! `lamp deploy` with no host at all: golden plans for the whole stack (DRBD/OCFS2 and the lab's
//! bind mount), the `[lamp]` inventory checks with their line numbers, the planner's refusals,
//! every rendered file run through its real validator, and mkfs/DRBD-metadata guards on file images.

use crate::support::fixtures::lamp_section;
use crate::support::golden::assert_golden;
use cloudctl::inventory;
use cloudctl::plan::lamp::{self, storage, Facts, Secret, WebFacts};
use cloudctl::plan::{Plan, Step, When};
use cloudctl::templates::Templates;
use std::path::Path;
use std::process::Command;

pub const TEST_PASSWORD: &str = "TestOnlyNotARealPassword0123456789abcdef";

fn example() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/lamp.toml")).unwrap()
}

fn parse(text: &str) -> inventory::Inventory {
    inventory::parse("cloud.toml", text).unwrap_or_else(|e| panic!("{e}"))
}

fn secret() -> Secret {
    Secret::parse(TEST_PASSWORD).unwrap()
}

/// Facts of two web nodes whose backing disks are blank (a first deploy).
fn fresh_disks() -> Facts {
    let mut f = Facts::default();
    for w in ["web1", "web2"] {
        f.web.insert(
            w.into(),
            WebFacts {
                disk_signatures: Some(vec![]),
                bind_source: false,
                hostname: Some(w.to_string()),
                ..Default::default()
            },
        );
    }
    f
}

fn plan(text: &str, facts: &Facts) -> Result<Plan, cloudctl::error::Error> {
    lamp::plan(&parse(text), &Templates::load(None).unwrap(), facts, &secret())
}

/// The lab's shape: a ConfigNode, then lb, two web nodes and the database; bind-mounted docroot.
pub fn lab_inventory(octet: u8, source: &str, timeout: u32) -> String {
    let mut s = String::from("[cloud]\nname = \"lamplab\"\n\n");
    for (i, n) in ["hnode1", "hnode2", "hnode3", "hnode4"].iter().enumerate() {
        s += &format!(
            "[[node]]\nname = \"{n}\"\nip = \"10.201.{octet}.{}\"\nrole = \"hnode\"\n\n",
            11 + i
        );
    }
    s + &lamp_section(source, timeout)
}

fn bind_facts() -> Facts {
    let mut f = Facts::default();
    for w in ["hnode2", "hnode3"] {
        f.web.insert(
            w.into(),
            WebFacts {
                disk_signatures: None,
                bind_source: true,
                hostname: None,
                ..Default::default()
            },
        );
    }
    f
}

#[test]
fn golden_plan_drbd_ocfs2_first_deploy() {
    let p = plan(&example(), &fresh_disks()).unwrap();
    let json = serde_json::to_string_pretty(&p).unwrap();
    assert!(
        !json.contains(TEST_PASSWORD),
        "a secret leaked into the serialised plan"
    );
    assert_golden("lamp-deploy-drbd.json", &json);
    let names: Vec<&str> = p.hosts.iter().map(|h| h.host.name.as_str()).collect();
    assert_eq!(names, ["lb1", "web1", "web2", "db1"]);
    let argv = |host: usize| -> Vec<String> {
        p.hosts[host]
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Command(c) => Some(c.display()),
                _ => None,
            })
            .collect()
    };
    let mkfs = |host: usize| argv(host).iter().filter(|a| a.contains("mkfs.ocfs2")).count();
    assert_eq!((mkfs(1), mkfs(2)), (1, 0), "mkfs.ocfs2 on the first web node only");
    assert!(
        argv(1).iter().any(|a| a.contains("--clear-bitmap")),
        "fresh pair: no initial sync"
    );
    assert!(json.contains("allow-two-primaries yes") && json.contains("after-sb-2pri disconnect"));
    assert!(json.contains("/dev/drbd0 /srv/www ocfs2 _netdev,defaults 0 0"));
}

#[test]
fn a_second_deploy_over_existing_drbd_metadata_does_not_reset_it() {
    let mut facts = fresh_disks();
    for w in facts.web.values_mut() {
        // The backing disk of a running pair shows DRBD's metadata and the OCFS2 inside.
        w.disk_signatures = Some(vec!["ocfs2".into(), "drbd".into()]);
    }
    let json = serde_json::to_string(&plan(&example(), &facts).unwrap()).unwrap();
    assert!(!json.contains("--clear-bitmap"), "only for a pair created in this run");
    assert!(json.contains("create-md"), "still guarded by its own check");
}

#[test]
fn golden_plan_lab_bind_mount() {
    let p = plan(&lab_inventory(70, "/tmp/lamp-www", 10), &bind_facts()).unwrap();
    let json = serde_json::to_string_pretty(&p).unwrap();
    assert!(!json.contains(TEST_PASSWORD));
    assert_golden("lamp-deploy-bind.json", &json);
    assert!(json.contains("/tmp/lamp-www /srv/www none bind 0 0"));
    assert!(!json.contains("drbd"), "the lab plan has no DRBD");
    // Restarts hang on the files they depend on.
    let lb = &p.hosts[0].steps;
    let restart = lb.iter().find_map(|s| match s {
        Step::Command(c) if c.argv == ["service", "cloudctl-pen", "restart"] => Some(c.when.clone()),
        _ => None,
    });
    assert_eq!(
        restart,
        Some(When::Changed(vec![
            cloudctl::plan::StepId::unchecked("pen-default"),
            cloudctl::plan::StepId::unchecked("pen-init")
        ]))
    );
    assert!(json.contains("PEN_TIMEOUT=10") && json.contains("PEN_BACKENDS='10.201.70.12:80 10.201.70.13:80'"));
}

#[test]
fn secrets_are_files_never_arguments() {
    let p = plan(&example(), &fresh_disks()).unwrap();
    for hp in &p.hosts {
        for s in &hp.steps {
            match s {
                Step::Command(c) => assert!(!c.display().contains(TEST_PASSWORD), "{}", c.display()),
                Step::File(f) if String::from_utf8_lossy(&f.content).contains(TEST_PASSWORD) => {
                    assert!(f.secret, "{} holds the password but is not secret", f.path);
                    assert!(f.mode & 0o007 == 0, "{} is readable by others", f.path);
                }
                _ => {}
            }
        }
    }
    assert!(format!("{:?}", secret()).contains("hidden"));
    assert!(Secret::parse("short").is_none() && Secret::parse(&format!("{TEST_PASSWORD}'")).is_none());
    let generated = Secret::from_random(&[7u8; 64]).unwrap();
    assert_eq!(generated.expose().len(), 40);
    assert!(
        Secret::from_random(&[250u8; 64]).is_none(),
        "biased bytes are skipped, not used"
    );
}

#[test]
fn planner_refusals_name_the_node_and_touch_nothing() {
    let mut facts = fresh_disks();
    facts.web.get_mut("web2").unwrap().disk_signatures = Some(vec!["ext4".into()]);
    let err = plan(&example(), &facts).unwrap_err().to_string();
    assert!(
        err.contains("/dev/sdb on web node web2 holds data (ext4)") && err.contains("wipefs -a"),
        "{err}"
    );
    facts.web.get_mut("web2").unwrap().disk_signatures = None;
    let err = plan(&example(), &facts).unwrap_err().to_string();
    assert!(err.contains("disk /dev/sdb does not exist on web node web2"), "{err}");
    let mut facts = fresh_disks();
    facts.web.get_mut("web2").unwrap().hostname = Some("www-b".into());
    let err = plan(&example(), &facts).unwrap_err().to_string();
    assert!(err.contains("web node web2 calls itself \"www-b\""), "{err}");
    let mut facts = bind_facts();
    facts.web.get_mut("hnode3").unwrap().bind_source = false;
    let err = plan(&lab_inventory(70, "/tmp/lamp-www", 10), &facts)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/tmp/lamp-www is not a directory on web node hnode3"),
        "{err}"
    );
}

#[test]
fn facts_parsing() {
    let text = lab_inventory(70, "/tmp/x", 10);
    let inv = parse(&text);
    let section = lamp::section(&inv).unwrap();
    let mut facts = Facts::default();
    let nodes = lamp::nodes(section);
    let db = &nodes[3];
    // The probe marks the line that carries the password, so a failed probe's message drops it.
    let marked = format!("{}password ", cloudctl::plan::SECRET_FACT);
    assert!(lamp::facts_script(section, &db.1).contains(&marked));
    lamp::parse_facts(&mut facts, &db.0, &db.1, &format!("{marked}{TEST_PASSWORD}\n"));
    assert_eq!(facts.db_password, Some(secret()));
    let shown = cloudctl::plan::without_secrets(&format!("hostname db1\n{marked}{TEST_PASSWORD}\nexit"));
    assert!(
        !shown.contains(TEST_PASSWORD) && shown.contains("hostname db1"),
        "{shown}"
    );
    let mut facts = Facts::default();
    lamp::parse_facts(&mut facts, &db.0, &db.1, "password bad'value\n");
    assert_eq!(facts.db_password, None, "a tampered password is not used");
    let web = storage::parse_facts("hostname web1\ndisk\nsignature ext4\nsignature dos\n");
    assert_eq!(web.disk_signatures, Some(vec!["ext4".to_string(), "dos".to_string()]));
    assert_eq!(web.hostname.as_deref(), Some("web1"));
}

/// (inventory text, what the error says, the line it names)
fn bad(lamp: &str) -> String {
    let base = example();
    let head = &base[..base.find("[lamp]").unwrap()];
    format!("{head}{lamp}")
}

#[test]
fn inventory_errors_name_the_line() {
    let drbd =
        "\n[lamp.drbd]\ndisk = \"/dev/sdb\"\n[lamp.drbd.address]\nweb1 = \"192.168.100.1\"\nweb2 = \"192.168.100.2\"\n";
    let cases: Vec<(String, &str, &str)> = vec![
        (bad(&format!("[lamp]\nbalancer = \"lb9\"\nweb = [\"web1\", \"web2\"]\ndatabase = \"db1\"\n{drbd}")), "no [[node]] named \"lb9\"", "balancer = \"lb9\""),
        (bad(&format!("[lamp]\nbalancer = \"lb1\"\nweb = [\"web1\"]\ndatabase = \"db1\"\n{drbd}")), "at least two web nodes", "web = [\"web1\"]"),
        (bad(&format!("[lamp]\nbalancer = \"web1\"\nweb = [\"web1\", \"web2\"]\ndatabase = \"db1\"\n{drbd}")), "also a web node", "balancer = \"web1\""),
        (bad(&format!("[lamp]\nbalancer = \"lb1\"\nweb = [\"web1\", \"web2\"]\ndatabase = [\"web1\", \"web2\"]\n{drbd}")), "no cluster-wide POSIX locks", "database = [\"web1\", \"web2\"]"),
        (bad(&format!("[lamp]\nbalancer = \"lb1\"\nweb = [\"web1\", \"web2\"]\ndatabase = [\"web1\", \"db1\"]\nallow_multiple_mysqld = true\n{drbd}")), "\"db1\" is not a web node", "database = [\"web1\", \"db1\"]"),
        (bad("[lamp]\nbalancer = \"lb1\"\nweb = [\"web1\", \"web2\"]\ndatabase = \"db1\"\n"), "needs a [lamp.drbd] section", "[lamp]"),
        (bad("[lamp]\nbalancer = \"lb1\"\nweb = [\"web1\", \"web2\"]\ndatabase = \"db1\"\n\n[lamp.drbd]\ndisk = \"/dev/sdb\"\n[lamp.drbd.address]\nweb1 = \"192.168.100.1\"\n"), "no cross-over address for web node \"web2\"", "[lamp.drbd.address]"),
        (bad("[lamp]\nbalancer = \"lb1\"\nweb = [\"web1\", \"web2\"]\ndatabase = \"db1\"\nstorage = \"bind\"\n"), "needs bind_source", "[lamp]"),
        (bad("[lamp]\nbalancer = \"lb1\"\nweb = [\"web1\", \"web2\"]\ndatabase = \"db1\"\nstorage = \"bind\"\nbind_source = \"/srv/a b\"\n"), "\" \" is not allowed in a path", "bind_source = \"/srv/a b\""),
        (bad(&format!("[lamp]\nbalancer = \"lb1\"\nweb = [\"web1\", \"web2\"]\ndatabase = \"db1\"\n{drbd}\n[lamp.ocfs2]\ncluster = \"a-very-long-cluster-name\"\n")), "at most 16 characters", "cluster = \"a-very-long-cluster-name\""),
        (bad(&format!("[lamp]\nbalancer = \"lb1\"\nweb = [\"web1\", \"web2\"]\ndatabase = \"db1\"\npen_timeout = 5\n{drbd}")), "unknown field `pen_timeout`", "pen_timeout = 5"),
        (bad(&format!("[lamp]\nbalancer = \"lb1\"\nweb = [\"web1\", \"web2\"]\ndatabase = \"db1\"\n{drbd}\n[lamp.pen]\ntimeout = \"ten\"\n")), "invalid type", "timeout = \"ten\""),
        (bad(&format!("[lamp]\nbalancer = \"lb1\"\nweb = [\"web1\", \"web2\"]\ndatabase = \"db1\"\n{}", drbd.replace("disk = \"/dev/sdb\"", "disk = \"/dev/sdb\"\ndevice = \"/dev/sdc\""))), "write /dev/drbdN", "device = \"/dev/sdc\""),
    ];
    for (text, needle, line) in cases {
        let err = inventory::parse("cloud.toml", &text).expect_err(needle).to_string();
        assert!(err.contains(needle), "expected {needle:?} in:\n{err}");
        let line_no = text.lines().position(|l| l.trim() == line).unwrap() + 1;
        assert!(
            err.starts_with(&format!("cloud.toml:{line_no}:")),
            "{needle}: expected line {line_no} ({line}) in:\n{err}"
        );
    }
}

#[test]
fn several_mysqld_only_when_asked_for_and_on_shared_storage() {
    let text = example().replace(
        "database = \"db1\"",
        "database = [\"web1\", \"web2\"]\nallow_multiple_mysqld = true",
    );
    let p = plan(&text, &fresh_disks()).unwrap();
    let names: Vec<&str> = p.hosts.iter().map(|h| h.host.name.as_str()).collect();
    assert_eq!(names, ["lb1", "web1", "web2"], "mysqld on both web nodes, none on db1");
    let json = serde_json::to_string(&p).unwrap();
    assert!(
        json.contains("datadir = \\\"/srv/www/mysql\\\""),
        "data directory on the shared filesystem"
    );
    let installs = json.matches("mariadb-install-db").count();
    assert_eq!(
        installs, 1,
        "the shared data directory is created once, by the first node"
    );
    assert!(cloudctl::inventory::lamp::MULTIPLE_MYSQLD_WARNING.contains("no cluster-wide POSIX locks"));
}

/// Every file of both golden plans, checked by the validator the plan names, run here for real:
/// apache2ctl, mariadbd, drbdadm, o2cb, php -l, sh -n, my_print_defaults.
#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn every_rendered_file_passes_its_real_validator() {
    crate::support::require_lab(&[
        "/usr/sbin/apache2ctl",
        "/usr/sbin/mariadbd",
        "/usr/sbin/drbdadm",
        "/usr/sbin/o2cb",
        "/usr/bin/php",
        "/usr/bin/my_print_defaults",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let mut checked = std::collections::BTreeSet::new();
    let plans = [
        plan(&example(), &fresh_disks()).unwrap(),
        plan(&lab_inventory(70, "/tmp/lamp-www", 10), &bind_facts()).unwrap(),
    ];
    for p in &plans {
        for hp in &p.hosts {
            for s in &hp.steps {
                let Step::File(f) = s else { continue };
                let Some(v) = &f.validate else { continue };
                let tmp = dir.path().join(format!(".{}.cloudctl-new", f.id));
                std::fs::write(&tmp, &f.content).unwrap();
                let argv: Vec<String> = v
                    .iter()
                    .map(|a| {
                        if a == "{}" {
                            tmp.display().to_string()
                        } else {
                            a.clone()
                        }
                    })
                    .collect();
                let out = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
                assert!(
                    out.status.success(),
                    "{} on {}: {argv:?} refused it:\n{}{}",
                    f.path,
                    hp.host.name,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                checked.insert(f.id.clone());
            }
        }
    }
    for id in [
        "pen-default",
        "pen-init",
        "apache-ports",
        "apache-site",
        "lamp-db",
        "index.php",
        "status.php",
        "mariadb-cnf",
        "db-credentials",
        "drbd-res",
        "ocfs2-cluster",
        "o2cb-default",
    ] {
        assert!(checked.contains(id), "{id} was not validated (checked: {checked:?})");
    }
}

/// The validators refuse broken files (a validator that accepts everything proves nothing).
#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn validators_refuse_broken_files() {
    crate::support::require_lab(&["/usr/sbin/apache2ctl", "/usr/sbin/mariadbd", "/usr/sbin/drbdadm"]);
    let dir = tempfile::tempdir().unwrap();
    let p = plan(&example(), &fresh_disks()).unwrap();
    let breakers: [(&str, &str, &str); 5] = [
        ("apache-site", "Require all granted", "Requir all granted"),
        ("apache-ports", "Listen 80", "Listen eighty"),
        ("mariadb-cnf", "delay-key-write = OFF", "delay-key-write = ALL"),
        ("mariadb-cnf", "external-locking", "externl-locking"),
        ("drbd-res", "protocol C;", "protocl C;"),
    ];
    for (id, from, to) in breakers {
        let f = p
            .hosts
            .iter()
            .flat_map(|h| &h.steps)
            .find_map(|s| match s {
                Step::File(f) if f.id == id => Some(f),
                _ => None,
            })
            .unwrap();
        let text = String::from_utf8_lossy(&f.content).replace(from, to);
        let tmp = dir.path().join(format!(".{id}.cloudctl-new"));
        std::fs::write(&tmp, text).unwrap();
        let v = f.validate.as_ref().unwrap();
        let argv: Vec<String> = v
            .iter()
            .map(|a| {
                if a == "{}" {
                    tmp.display().to_string()
                } else {
                    a.clone()
                }
            })
            .collect();
        let out = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
        assert!(!out.status.success(), "{id} with {to:?} was accepted");
    }
}

fn run_step(argv: &[String]) -> std::process::Output {
    Command::new(&argv[0]).args(&argv[1..]).output().unwrap()
}

/// mkfs.ocfs2 runs exactly once: on a blank image it formats, a second time it leaves the
/// filesystem alone, and an image holding another filesystem is refused and left intact.
#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn mkfs_ocfs2_exactly_once_and_never_over_data() {
    crate::support::require_lab(&["/usr/sbin/mkfs.ocfs2", "/usr/sbin/debugfs.ocfs2", "/usr/sbin/mkfs.ext4"]);
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("drbd0.img");
    let image = img.display().to_string();
    std::fs::File::create(&img).unwrap().set_len(64 << 20).unwrap();
    let argv: Vec<String> = ["sh", "-c", storage::MKFS_OCFS2, "sh", &image, "www", "www", "2"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(run_step(&argv).status.success());
    let stats = |p: &str| {
        let out = Command::new("debugfs.ocfs2").args(["-R", "stats", p]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = stats(&image);
    assert!(
        first.contains("Cluster name: www") && first.contains("Max Node Slots: 2"),
        "{first}"
    );
    let uuid = |s: &str| s.lines().find(|l| l.contains("UUID:")).unwrap_or_default().to_string();
    assert!(run_step(&argv).status.success(), "a formatted device is left as it is");
    assert_eq!(uuid(&stats(&image)), uuid(&first), "not formatted a second time");

    let ext4 = dir.path().join("data.img");
    std::fs::File::create(&ext4).unwrap().set_len(32 << 20).unwrap();
    let e = ext4.display().to_string();
    assert!(Command::new("mkfs.ext4").args(["-q", &e]).status().unwrap().success());
    let before = std::fs::read(&ext4).unwrap();
    let mut refused = argv.clone();
    refused[4] = e.clone();
    let out = run_step(&refused);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds a ext4 filesystem"));
    assert!(std::fs::read(&ext4).unwrap() == before, "the ext4 image is untouched");
}

/// The web nodes' probe finds what is on a backing disk, so a disk with data is refused before
/// anything runs; DRBD metadata counts as ours.
#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn the_disk_probe_sees_real_signatures() {
    crate::support::require_lab(&["/usr/sbin/mkfs.ext4", "/usr/sbin/drbdmeta", "/usr/sbin/wipefs"]);
    let dir = tempfile::tempdir().unwrap();
    let probe = |path: &Path| {
        let text = example().replace("/dev/sdb", &path.display().to_string());
        let inv = parse(&text);
        let script = lamp::facts_script(lamp::section(&inv).unwrap(), &[lamp::Role::Web]);
        let out = Command::new("sh").args(["-c", &script]).output().unwrap();
        storage::parse_facts(&String::from_utf8_lossy(&out.stdout)).disk_signatures
    };
    let blank = dir.path().join("blank.img");
    std::fs::File::create(&blank).unwrap().set_len(32 << 20).unwrap();
    assert_eq!(probe(&blank), Some(vec![]));
    assert_eq!(probe(&dir.path().join("missing.img")), None);
    let ext4 = dir.path().join("ext4.img");
    std::fs::File::create(&ext4).unwrap().set_len(32 << 20).unwrap();
    assert!(Command::new("mkfs.ext4")
        .args(["-q", &ext4.display().to_string()])
        .status()
        .unwrap()
        .success());
    assert_eq!(probe(&ext4), Some(vec!["ext4".to_string()]));
    let md = dir.path().join("md.img");
    std::fs::File::create(&md).unwrap().set_len(32 << 20).unwrap();
    let out = Command::new("drbdmeta")
        .args([
            "--force",
            "0",
            "v09",
            &md.display().to_string(),
            "internal",
            "create-md",
            "1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(probe(&md), Some(vec!["drbd".to_string()]));
}

/// The command line: the warning about several mysqld comes first, unreachable nodes are exit 4
/// (probes only go to loopback addresses where nothing listens), no [lamp] section is exit 2.
#[test]
fn cli_warns_about_several_mysqld_and_reports_unreachable_nodes() {
    use crate::support::{cloudctl, text, write};
    let dir = tempfile::tempdir().unwrap();
    let ssh = format!(
        "[ssh]\nport = 1\nconnect_timeout = 2\nknown_hosts = \"{0}/known_hosts\"\nidentity = \"{0}/id\"\n\n",
        dir.path().display()
    );
    let text_inv = lab_inventory(70, "/tmp/x", 10)
        .replace("10.201.70.", "127.0.0.")
        .replacen("[[node]]", &format!("{ssh}[[node]]"), 1)
        .replace(
            "database = \"hnode4\"",
            "database = [\"hnode2\", \"hnode3\"]\nallow_multiple_mysqld = true",
        );
    let inv = write(dir.path(), "cloud.toml", &text_inv);
    let inv = inv.to_str().unwrap();
    let out = cloudctl(&["-i", inv, "--yes", "lamp", "deploy"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("warning: more than one mysqld") && err.contains("no cluster-wide POSIX locks"),
        "{err}"
    );

    let out = cloudctl(&["-i", inv, "--json", "lamp", "status"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["healthy"], false);
    let nodes = doc["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3);
    assert!(nodes.iter().all(|n| n["error"].is_string()), "{doc}");
    assert_eq!(nodes[1]["roles"], serde_json::json!(["web", "database"]));

    let plain = write(dir.path(), "plain.toml", "[cloud]\nname = \"x\"\n");
    let out = cloudctl(&["-i", plain.to_str().unwrap(), "lamp", "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no [lamp] section"), "{}", text(&out.stderr));
}

/// `lamp status` reads pen's server list, the balancer's TCP checks, DRBD's state and MariaDB's
/// effective settings (outputs as the probes print them).
#[test]
fn status_parsing() {
    use cloudctl::plan::lamp::{status, Role};
    let lb = status::parse(
        "lb1",
        "10.0.0.40:22",
        &[Role::Balancer],
        "up pen running\n\
         pen 0 addr 10.0.0.41 port 80 conn 2 max 0 hard 0 weight 0 prio 0 sx 516 rx 2658\n\
         pen 1 addr 10.0.0.42 port 80 conn 0 max 0 hard 0 weight 0 prio 0 sx 0 rx 0\n\
         answers 10.0.0.41:80\nsilent 10.0.0.42:80\n",
    );
    assert_eq!(lb.backends.len(), 2);
    assert_eq!(
        (
            lb.backends[0].connections,
            lb.backends[0].sent,
            lb.backends[0].received,
            lb.backends[0].answers
        ),
        (2, 516, 2658, true)
    );
    assert!(!lb.backends[1].answers && !lb.healthy());

    let web = status::parse(
        "web1",
        "10.0.0.41:22",
        &[Role::Web],
        "up apache2 running\nup mount /srv/www mounted\nup docroot /srv/www/htdocs/status.php present\nup o2cb running\ndrbd Primary UpToDate Connected\n",
    );
    assert!(web.healthy(), "{web:?}");
    let drbd = web.components.iter().find(|c| c.name == "drbd").unwrap();
    assert_eq!(drbd.detail, "Primary UpToDate Connected");
    let web = status::parse(
        "web2",
        "x",
        &[Role::Web],
        "up apache2 running\ndrbd Secondary UpToDate Connected\n",
    );
    assert!(!web.healthy(), "a secondary cannot mount OCFS2: not up");
    // DRBD 8.4 prints the peer's role and disk too; a lost peer is not healthy.
    let web = status::parse(
        "web1",
        "x",
        &[Role::Web],
        "drbd Primary/Primary UpToDate/UpToDate Connected\n",
    );
    assert!(web.healthy(), "{web:?}");
    let web = status::parse(
        "web1",
        "x",
        &[Role::Web],
        "drbd Primary/Unknown UpToDate/DUnknown WFConnection\n",
    );
    assert!(!web.healthy(), "serving alone is not healthy: {web:?}");
    // The split-brain handler's record is named while the nodes stay apart, with the way out.
    let split = "drbd Primary/Unknown UpToDate/DUnknown StandAlone\nsplit-brain www 2026-12-07T17:00:00Z\n";
    let web = status::parse("web1", "x", &[Role::Web], split);
    let drbd = web.components.iter().find(|c| c.name == "drbd").unwrap();
    assert!(
        !drbd.up
            && drbd.detail.starts_with("SPLIT BRAIN (detected 2026-12-07T17:00:00Z)")
            && drbd.detail.contains("drbdadm connect --discard-my-data www")
            && drbd.detail.ends_with("(Primary/Unknown UpToDate/DUnknown StandAlone)"),
        "{drbd:?}"
    );
    let resolved = "drbd Primary/Primary UpToDate/UpToDate Connected\nsplit-brain www 2026-12-07T17:00:00Z\n";
    assert!(
        status::parse("web1", "x", &[Role::Web], resolved).healthy(),
        "connected again: resolved"
    );

    let db = status::parse(
        "db1",
        "x",
        &[Role::Database],
        "up mariadb running\nsettings 1 ON 0 InnoDB\n",
    );
    let settings = db.components.iter().find(|c| c.name == "mariadb-settings").unwrap();
    assert!(
        !settings.up && settings.detail.contains("1 ON 0 InnoDB"),
        "{settings:?}"
    );
    let db = status::parse("db1", "x", &[Role::Database], "down mariadb not running\nsettings \n");
    assert!(db.components.iter().all(|c| !c.up), "{db:?}");
}

/// A dry run shows the database settings, the grants and the web nodes' PHP config with only the
/// password masked (they were hidden whole), in the text and in the `--json` steps.
#[test]
fn the_dry_run_shows_the_credentials_files_with_only_the_password_masked() {
    let p = plan(&example(), &fresh_disks()).unwrap();
    let mut seen = Vec::new();
    for hp in &p.hosts {
        let text = cloudctl::ui::diff::host_preview(hp, &vec![None; hp.steps.len()]);
        let json = serde_json::to_string(&hp.steps).unwrap();
        assert!(!text.contains(TEST_PASSWORD) && !json.contains(TEST_PASSWORD), "{text}");
        for (file, line) in [
            ("/etc/mysql/cloudctl-lamp.cnf", "+password = ********\n"),
            ("/etc/mysql/cloudctl-lamp-grants.sql", "IDENTIFIED BY '********';"),
            ("/etc/cloudctl/lamp-db.php", "+    'password' => '********',\n"),
        ] {
            if text.contains(&format!("+++ {file}")) {
                assert!(
                    text.contains(line) && text.contains("secret values masked"),
                    "{file}: {text}"
                );
                seen.push(file);
            }
        }
        assert!(!text.contains("content not shown"), "{text}");
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "{seen:?}");
}
