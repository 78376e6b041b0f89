//! `storage init`: golden plans for both storage nodes (every DRBD resource through the real
//! `drbdadm`), metadata created once, and on real test hosts the refusal of a member disk that
//! holds ext4 (a loop device), with nothing written to it.

use crate::support::golden::assert_golden;
use crate::support::{cloudctl, text, Lab};
use cloudctl::inventory;
use cloudctl::plan::storage::{self, Disk, NodeFacts};
use cloudctl::plan::{Plan, Step};
use cloudctl::templates::Templates;
use std::process::Command;

fn seed() -> inventory::Inventory {
    inventory::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed-lab.toml")).unwrap()
}

fn fresh() -> NodeFacts {
    NodeFacts {
        disks: [("/dev/sdb".into(), Disk::Blank), ("/dev/sdc".into(), Disk::Blank)].into(),
        ..NodeFacts::default()
    }
}

fn commands(plan: &Plan, host: usize) -> Vec<String> {
    plan.hosts[host]
        .steps
        .iter()
        .filter_map(|s| {
            if let Step::Command(c) = s {
                Some(c.display())
            } else {
                None
            }
        })
        .collect()
}

fn drbdadm_accepts(content: &[u8]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r0.res");
    std::fs::write(&path, content).unwrap();
    let out = Command::new("drbdadm")
        .arg("-t")
        .arg(&path)
        .arg("dump")
        .output()
        .map_err(|e| format!("drbdadm: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(text(&out.stderr))
    }
}

#[test]
fn storage_plans_for_both_nodes_and_drbdadm_accepts_the_resource() {
    let inv = seed();
    let plan = storage::plan(
        &inv,
        &Templates::load(None).unwrap(),
        &[fresh(), fresh()],
        &Default::default(),
        "0123abcd",
        &[],
    )
    .unwrap();
    let json = serde_json::to_string_pretty(&plan).unwrap();
    assert!(
        !json.contains("0123abcd"),
        "the shared secret never appears in a plan's output"
    );
    assert_golden("storage-init-seed-lab.json", &json);
    for (i, hp) in plan.hosts.iter().enumerate() {
        let res = hp
            .steps
            .iter()
            .find_map(|s| {
                if let Step::File(f) = s {
                    (f.id == "drbd.res").then_some(f)
                } else {
                    None
                }
            })
            .unwrap();
        assert_eq!(res.mode, 0o600);
        assert!(res.secret);
        let text = String::from_utf8_lossy(&res.content);
        for needle in [
            "allow-two-primaries yes",
            "after-sb-2pri disconnect",
            "protocol C",
            "fencing resource-and-stonith",
            "on snode1",
            "address 10.0.0.22:7789",
        ] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        if std::path::Path::new("/usr/sbin/drbdadm").exists() {
            drbdadm_accepts(&res.content).unwrap_or_else(|e| panic!("host {i}: drbdadm refused the resource: {e}"));
        } else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "drbdadm missing (drbd-utils)"
            );
        }
        let aoe = hp
            .steps
            .iter()
            .find_map(|s| {
                if let Step::File(f) = s {
                    (f.id == "aoe-default").then_some(f)
                } else {
                    None
                }
            })
            .unwrap();
        let aoe = String::from_utf8_lossy(&aoe.content);
        assert!(
            aoe.contains(&format!("SLOT={i}")) && aoe.contains("MACS='52:54:00:00:02:01,52:54:00:00:02:02'"),
            "{aoe}"
        );
    }
    let first = commands(&plan, 0);
    assert!(
        first.iter().any(|c| c.starts_with("sh -c 'drbdadm create-md")),
        "{first:?}"
    );
    assert!(
        first.iter().any(|c| c.contains("drbdadm primary --force")),
        "initial sync forced once, on the first node"
    );
    assert!(
        !commands(&plan, 1).iter().any(|c| c.contains("--force")),
        "never forced on the second node"
    );
    if std::path::Path::new("/usr/sbin/drbdadm").exists() {
        assert!(
            drbdadm_accepts(b"resource r0 { protocol Q; }").is_err(),
            "the validator rejects a broken resource"
        );
    }
}

#[test]
fn a_rerun_never_plans_metadata_or_a_forced_primary_again() {
    let done = NodeFacts {
        disks: [("/dev/sdb".into(), Disk::Ours), ("/dev/sdc".into(), Disk::Ours)].into(),
        md_active: true,
        drbd_metadata: true,
        sync_started: true,
        ..NodeFacts::default()
    };
    let plan = storage::plan(
        &seed(),
        &Templates::load(None).unwrap(),
        &[done.clone(), done],
        &Default::default(),
        "s",
        &[],
    )
    .unwrap();
    for host in 0..2 {
        let cmds = commands(&plan, host);
        assert!(
            !cmds
                .iter()
                .any(|c| c.contains("create-md") || c.contains("--force") || c.contains("mdadm --create")),
            "{cmds:?}"
        );
        assert!(
            cmds.iter().any(|c| c.contains("exec drbdadm primary \"$1\"")),
            "becomes primary (unforced) once data is UpToDate: {cmds:?}"
        );
    }
    // One node already has metadata: the resource is not fresh, so no forced primary anywhere.
    let mut half = fresh();
    half.drbd_metadata = true;
    let plan = storage::plan(
        &seed(),
        &Templates::load(None).unwrap(),
        &[fresh(), half],
        &Default::default(),
        "s",
        &[],
    )
    .unwrap();
    assert!(!commands(&plan, 0).iter().any(|c| c.contains("--force")));
}

/// The read-only probe is a valid `sh` program that names every member disk (here none is there),
/// run through a real shell: lab tests are otherwise its only runner.
#[test]
fn the_facts_probe_runs_in_sh_and_reports_each_disk() {
    let seed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seed-lab.toml")).unwrap();
    let seed = seed.replace(
        r#"disks = ["/dev/sdb", "/dev/sdc"]"#,
        r#"disks = ["/dev/cloudctl-absent-a", "/dev/cloudctl-absent-b"]"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = crate::support::write(dir.path(), "cloud.toml", &seed);
    let inv = inventory::load(&path).unwrap();
    let s = inv.storage.as_ref().unwrap().get_ref();
    let out = Command::new("sh")
        .arg("-c")
        .arg(storage::facts_script(s))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let facts = storage::parse_facts(&stdout, &storage::md_uuid(&inv, "snode1", "/dev/md0"));
    let host = Command::new("uname").arg("-n").output().unwrap();
    assert_eq!(facts.hostname, text(&host.stdout).trim(), "{stdout}");
    assert_eq!(
        facts.disks,
        [
            ("/dev/cloudctl-absent-a".into(), Disk::Missing),
            ("/dev/cloudctl-absent-b".into(), Disk::Missing)
        ]
        .into(),
        "{stdout}"
    );
}

/// `storage status`'s program runs in a real `sh` and says "absent" and "unknown" for what this
/// machine does not have, instead of failing.
#[test]
fn the_status_probe_runs_in_sh() {
    let inv = seed();
    let s = inv.storage.as_ref().unwrap().get_ref();
    let line = storage::status_script(s);
    assert!(
        line.starts_with("sh -c ") && line.ends_with(" sh /dev/md0 r0"),
        "{line}"
    );
    let out = Command::new("sh").arg("-c").arg(&line).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let keys: Vec<&str> = stdout.lines().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(
        keys,
        ["md", "drbd-role", "drbd-cstate", "drbd-dstate", "drbd-sync", "aoe"],
        "{stdout}"
    );
}

#[test]
fn disk_probe_results_decide_what_is_refused() {
    let inv = seed();
    let s = inv.storage.as_ref().unwrap().get_ref();
    let uuid = storage::md_uuid(&inv, "snode1", "/dev/md0");
    let plain: String = uuid.chars().filter(|c| *c != ':').collect();
    let member = format!(
        "{}-{}-{}-{}-{}",
        &plain[0..8],
        &plain[8..12],
        &plain[12..16],
        &plain[16..20],
        &plain[20..32]
    );
    let probe = format!(
        "hostname snode1\ndisk /dev/sdb present\nblkid /dev/sdb TYPE=ext4\nblkid /dev/sdb UUID=1234\ndisk /dev/sdc present\nblkid /dev/sdc UUID={member}\nblkid /dev/sdc TYPE=linux_raid_member\n@secret secret abc\n"
    );
    let facts = storage::parse_facts(&probe, &uuid);
    assert_eq!(
        facts.disks["/dev/sdc"],
        Disk::Ours,
        "our own array member is not foreign"
    );
    assert_eq!(facts.secret.as_deref(), Some("abc"));
    assert!(
        storage::facts_script(s).contains(&format!("{}secret ", cloudctl::plan::SECRET_FACT)),
        "the probe marks the shared secret's line, so a failed probe's message drops it"
    );
    let err = storage::check_disks("snode1", s, &facts, &[]).unwrap_err();
    assert!(
        err.contains("/dev/sdb") && err.contains("ext4") && err.contains("--force-wipe /dev/sdb"),
        "{err}"
    );
    assert_eq!(
        storage::check_disks("snode1", s, &facts, &["/dev/sdb".into()]).unwrap(),
        ["/dev/sdb"]
    );
    let pt = storage::parse_facts(
        "disk /dev/sdb present\nblkid /dev/sdb PTTYPE=gpt\ndisk /dev/sdc missing\n",
        &uuid,
    );
    assert!(storage::check_disks("snode1", s, &pt, &[])
        .unwrap_err()
        .contains("gpt partition table"));
    let missing = storage::parse_facts("disk /dev/sdb present\ndisk /dev/sdc missing\n", &uuid);
    assert!(storage::check_disks("snode1", s, &missing, &[])
        .unwrap_err()
        .contains("/dev/sdc is not a block device"));
}

/// Loop devices backed by files, detached when dropped.
struct Loops(Vec<String>);

impl Drop for Loops {
    fn drop(&mut self) {
        for l in &self.0 {
            let _ = Command::new("losetup").args(["-d", l]).output();
        }
    }
}

fn sha(dev: &str) -> String {
    text(&Command::new("sha256sum").arg(dev).output().unwrap().stdout)
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn storage_init_refuses_a_disk_holding_ext4_and_writes_nothing() {
    crate::support::require_lab(&["/usr/sbin/losetup", "/usr/sbin/mkfs.ext4", "/usr/sbin/blkid"]);
    let work = tempfile::tempdir().unwrap();
    let mut loops = Loops(Vec::new());
    for (i, ext4) in [(0, true), (1, false)] {
        let img = work.path().join(format!("disk{i}.img"));
        std::fs::write(&img, vec![0u8; 16 << 20]).unwrap();
        if ext4 {
            assert!(Command::new("mkfs.ext4")
                .args(["-q", "-F"])
                .arg(&img)
                .status()
                .unwrap()
                .success());
        }
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(&img)
            .output()
            .unwrap();
        assert!(out.status.success(), "losetup: {}", text(&out.stderr));
        loops.0.push(text(&out.stdout).trim().to_string());
    }
    let lab = Lab::up("tsto", 3, 72);
    // The two lab hosts become the storage nodes (their hostnames are their node names).
    let toml = std::fs::read_to_string(&lab.state.inventory)
        .unwrap()
        .replace("role = \"hnode\"", "role = \"snode\"");
    std::fs::write(&lab.state.inventory, toml).unwrap();
    lab.append_inventory(&format!(
        "\n[[node]]\nname = \"vm1\"\nmac = \"52:54:00:12:34:58\"\nip = \"10.201.72.50\"\nrole = \"hnode\"\n\n[storage]\nnodes = [\"hnode1\", \"hnode2\"]\ndisks = [\"{}\", \"{}\"]\n",
        loops.0[0], loops.0[1]
    ));
    let before = sha(&loops.0[0]);
    let out = cloudctl(&["-i", &lab.inventory(), "--yes", "storage", "init"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("refusing to touch {}", loops.0[0])) && err.contains("ext4"),
        "{err}"
    );
    assert_eq!(sha(&loops.0[0]), before, "the refused disk was written to");

    // Named with --force-wipe, the dry run plans the wipe, and still writes nothing.
    let out = cloudctl(&[
        "-i",
        &lab.inventory(),
        "-n",
        "storage",
        "init",
        "--force-wipe",
        &loops.0[0],
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!("run: wipefs -a {}", loops.0[0]))
            && err.contains("drbd.d/r0.res")
            && err.contains("secret"),
        "{err}"
    );
    assert_eq!(sha(&loops.0[0]), before);
    // storage status reads both nodes; nothing is set up here (no md/DRBD drivers), and it says
    // so: exit 1, naming what is missing.
    let out = cloudctl(&["-i", &lab.inventory(), "--json", "storage", "status"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nodes = doc["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(
        (
            nodes[0]["node"].as_str(),
            nodes[0]["md"].as_str(),
            nodes[0]["aoe"].as_str()
        ),
        (Some("hnode1"), Some("absent"), Some("stopped"))
    );
    assert_eq!(nodes[0]["healthy"], false);
    assert!(
        nodes[0]["problems"][0].as_str().unwrap().contains("md array is absent"),
        "{doc}"
    );
    // Without a TTY, a wipe needs --yes on top of --force-wipe.
    let out = cloudctl(&["-i", &lab.inventory(), "storage", "init", "--force-wipe", &loops.0[0]]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert_eq!(sha(&loops.0[0]), before);
}

/// md stopped, one member of this array survives and the other disk is blank (replaced): the
/// array is assembled degraded from the survivor and the blank disk added; `mdadm --create
/// --run` over the survivor (which destroys its data) is never planned.
#[test]
fn a_surviving_member_is_assembled_and_the_blank_disk_added_never_created_over() {
    let mixed = NodeFacts {
        disks: [("/dev/sdb".into(), Disk::Ours), ("/dev/sdc".into(), Disk::Blank)].into(),
        ..NodeFacts::default()
    };
    let plan = storage::plan(
        &seed(),
        &Templates::load(None).unwrap(),
        &[mixed.clone(), fresh()],
        &Default::default(),
        "s",
        &[],
    )
    .unwrap();
    let md_step = |host: usize| -> Vec<String> {
        plan.hosts[host]
            .steps
            .iter()
            .find_map(|s| match s {
                Step::Command(c) if c.argv.iter().any(|a| a.contains("mdadm")) && c.argv[0] != "env" => {
                    Some(c.argv.clone())
                }
                _ => None,
            })
            .unwrap()
    };
    let repair = md_step(0);
    assert_eq!(repair[2], storage::MD_REPAIR, "{repair:?}");
    assert_eq!(
        repair[6..],
        ["1", "/dev/sdb", "/dev/sdc"],
        "survivor first, then the blank disk"
    );
    assert!(!commands(&plan, 0).iter().any(|c| c.contains("--create")));
    // Both blank: a new array, created only after the disks are probed again.
    let create = md_step(1);
    assert_eq!(create[2], storage::MD_CREATE, "{create:?}");
}

/// The create and repair steps probe the disks again when they run (real `sh` and `blkid` on
/// files): a disk that gained a filesystem since the planning probe is refused, nothing written.
#[test]
fn md_steps_probe_the_disks_again_at_apply_time() {
    let dir = tempfile::tempdir().unwrap();
    let blank = dir.path().join("blank.img");
    let ext4 = dir.path().join("ext4.img");
    std::fs::write(&blank, vec![0u8; 8 << 20]).unwrap();
    std::fs::write(&ext4, vec![0u8; 8 << 20]).unwrap();
    let mkfs = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&ext4)
        .status()
        .unwrap();
    assert!(mkfs.success());
    let before = std::fs::read(&ext4).unwrap();
    let run = |script: &str, args: &[&std::path::Path], fixed: &[&str]| {
        let out = Command::new("sh")
            .args(["-c", script, "sh", "/dev/md-cloudctl-test"])
            .args(fixed)
            .args(args)
            .output()
            .unwrap();
        (out.status.code(), text(&out.stderr))
    };
    let (code, err) = run(storage::MD_CREATE, &[&blank, &ext4], &["1:2:3:4", "1", "2"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("{} changed since it was probed", ext4.display())),
        "{err}"
    );
    let (code, err) = run(storage::MD_REPAIR, &[&blank, &ext4], &["1:2:3:4", "1"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{} changed since it was probed: it is no longer a member",
            blank.display()
        )),
        "{err}"
    );
    assert_eq!(std::fs::read(&ext4).unwrap(), before, "the ext4 disk was written");
}

/// A node whose kernel has DRBD 8.4 (Debian's own) gets 8.4 syntax, which drbdadm-84 accepts.
#[test]
fn a_drbd_84_node_gets_a_resource_drbdadm_84_accepts() {
    let mut f = fresh();
    f.drbd_version = Some("8.4.11".into());
    let plan = storage::plan(
        &seed(),
        &Templates::load(None).unwrap(),
        &[f.clone(), f],
        &Default::default(),
        "0123abcd",
        &[],
    )
    .unwrap();
    let res = plan.hosts[0]
        .steps
        .iter()
        .find_map(|s| match s {
            Step::File(f) if f.id == "drbd.res" => Some(f.content.clone()),
            _ => None,
        })
        .unwrap();
    let res_text = text(&res);
    assert!(
        res_text.contains("disk {\n    fencing resource-and-stonith;") && !res_text.contains("node-id"),
        "{res_text}"
    );
    let drbdadm84 = "/usr/lib/drbd/drbdadm-84"; // drbd-utils
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r0.res");
    std::fs::write(&path, &res).unwrap();
    let out = Command::new(drbdadm84)
        .arg("-t")
        .arg(&path)
        .arg("dump")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// `storage init --dry-run` shows the DRBD resource as a diff with only the shared secret
/// masked, in the text and in the `--json` steps: the other lines are there, the secret (new or
/// the one the node holds now) never is.
#[test]
fn the_dry_run_shows_the_resource_with_only_its_secret_masked() {
    use cloudctl::exec::script::Probed;
    let secret = "0123abcd4567";
    let plan = storage::plan(
        &seed(),
        &Templates::load(None).unwrap(),
        &[fresh(), fresh()],
        &Default::default(),
        secret,
        &[],
    )
    .unwrap();
    let hp = &plan.hosts[0];
    let at = hp
        .steps
        .iter()
        .position(|s| matches!(s, Step::File(f) if f.id == "drbd.res"))
        .unwrap();
    let Step::File(res) = &hp.steps[at] else { unreachable!() };
    let new = String::from_utf8_lossy(&res.content).into_owned();
    // On the node now: an older version of the resource, with the same secret and another one
    // left in a comment by hand.
    let old = new.replace("cram-hmac-alg sha256;", "cram-hmac-alg sha1;")
        + "# shared-secret \"handwritten\"; was 0123abcd4567\n";
    let mut current = vec![None; hp.steps.len()];
    current[at] = Some(Probed {
        sha: Some("0".repeat(64)),
        meta: Some("600 root:root".into()),
        content: Some(old.into_bytes()),
    });
    let text = cloudctl::ui::diff::host_preview(hp, &current);
    let json = serde_json::to_string(&serde_json::json!({ "plan": text, "steps": hp.steps })).unwrap();
    for shown in [&text, &json] {
        assert!(!shown.contains(secret) && !shown.contains("handwritten"), "{shown}");
        assert!(
            shown.contains("shared-secret \\\"********\\\";") || shown.contains("shared-secret \"********\";"),
            "{shown}"
        );
        assert!(shown.contains("after-sb-2pri disconnect"), "{shown}");
    }
    assert!(
        json.contains("allow-two-primaries yes") && json.contains("protocol C;"),
        "{json}"
    );
    assert!(
        text.contains("-    cram-hmac-alg sha1;\n+    cram-hmac-alg sha256;\n     shared-secret \"********\";"),
        "{text}"
    );
    assert!(
        text.contains("secret values masked") && text.contains("+++ /etc/drbd.d/"),
        "{text}"
    );
    assert!(!text.contains("content not shown"), "{text}");

    // A fresh node: the whole resource as created, masked the same way.
    let created = cloudctl::ui::diff::host_preview(hp, &vec![None; hp.steps.len()]);
    assert!(
        created.contains("--- /dev/null") && created.contains("shared-secret \"********\";"),
        "{created}"
    );
    assert!(!created.contains(secret), "{created}");
}

/// A resource template overridden with other syntax for the secret: the fields would miss it, so
/// the file stays hidden whole rather than show it.
#[test]
fn an_overridden_template_the_mask_misses_keeps_the_resource_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let ours = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/storage-init/drbd.res.hbs"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("storage-init")).unwrap();
    std::fs::write(
        dir.path().join("storage-init/drbd.res.hbs"),
        ours.replace("shared-secret \"{{secret}}\";", "shared-secret   {{secret}} ;"),
    )
    .unwrap();
    let secret = "0123abcd4567";
    let plan = storage::plan(
        &seed(),
        &Templates::load(Some(dir.path())).unwrap(),
        &[fresh(), fresh()],
        &Default::default(),
        secret,
        &[],
    )
    .unwrap();
    let hp = &plan.hosts[0];
    let text = cloudctl::ui::diff::host_preview(hp, &vec![None; hp.steps.len()]);
    let json = serde_json::to_string(&hp.steps).unwrap();
    assert!(!text.contains(secret) && !json.contains(secret));
    assert!(text.contains("secret: content not shown"), "{text}");
}
