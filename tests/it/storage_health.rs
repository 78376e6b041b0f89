//! `doctor`'s storage checks with no host: /proc/drbd and /proc/mdstat as the storage VMs of
//! tests/it/storage_vms.rs printed them (tests/fixtures/storage-health/, captured verbatim: a
//! storage node connected and in sync, resyncing, and with its peer killed; a RAID1 whole, with a
//! member failed by hand and rebuilding; a hardware node's md multipath whole and with a path
//! lost), parsed and judged. A split brain is judged on a StandAlone device built from them.

use cloudctl::inventory;
use cloudctl::plan::doctor::{self, Answer, CloudFacts};
use cloudctl::plan::storage_health::{self, DrbdDevice};
use std::path::PathBuf;

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/storage-health")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What the probe prints on a node with these two files (the markers around them).
fn probe_output(drbd: Option<&str>, mdstat: Option<&str>, split_brain_lines: u32) -> String {
    let mut out = String::new();
    if let Some(d) = drbd {
        out += &format!("--- drbd\n{d}");
    }
    if let Some(m) = mdstat {
        out += &format!("--- mdstat\n{m}");
    }
    out + &format!("--- end\nsplit-brain-lines {split_brain_lines}\n")
}

#[test]
fn a_storage_node_whose_peer_died_is_connected_to_nobody() {
    let d = storage_health::parse_drbd(&fixture("snode-peer-down.drbd"));
    assert_eq!(
        d,
        [DrbdDevice {
            minor: 0,
            cs: "WFConnection".into(),
            ro: "Primary/Unknown".into(),
            ds: "UpToDate/Outdated".into(),
            synced: None,
        }]
    );
    let (check, problem) = storage_health::drbd_problem(&d[0], false).unwrap();
    assert_eq!(check, "drbd_disconnected");
    assert!(
        problem.contains("WFConnection") && problem.contains("not replicated"),
        "{problem}"
    );
    // Had the kernel logged a split brain, WFConnection would still only be a lost peer: a split
    // brain leaves DRBD StandAlone.
    assert_eq!(
        storage_health::drbd_problem(&d[0], true).unwrap().0,
        "drbd_disconnected"
    );
    let standalone = DrbdDevice {
        cs: "StandAlone".into(),
        ..d[0].clone()
    };
    assert_eq!(
        storage_health::drbd_problem(&standalone, true).unwrap().0,
        "drbd_split_brain"
    );
    assert_eq!(
        storage_health::drbd_problem(&standalone, false).unwrap().0,
        "drbd_disconnected"
    );
}

#[test]
fn connected_in_sync_is_healthy_and_a_resync_is_degraded_with_its_progress() {
    let healthy = storage_health::parse_drbd(&fixture("snode-healthy.drbd"));
    assert_eq!(
        (healthy[0].cs.as_str(), healthy[0].ro.as_str(), healthy[0].ds.as_str()),
        ("Connected", "Primary/Primary", "UpToDate/UpToDate")
    );
    assert_eq!(storage_health::drbd_problem(&healthy[0], false), None);
    let syncing = storage_health::parse_drbd(&fixture("snode-resyncing.drbd"));
    assert_eq!(syncing.len(), 1, "the progress lines belong to device 0");
    assert_eq!(
        (syncing[0].cs.as_str(), syncing[0].synced.as_deref()),
        ("SyncSource", Some("25.0%"))
    );
    let (check, problem) = storage_health::drbd_problem(&syncing[0], false).unwrap();
    assert_eq!(check, "drbd_degraded");
    assert!(
        problem.contains("UpToDate/Inconsistent (resync 25.0% done)"),
        "{problem}"
    );
}

#[test]
fn md_arrays_whole_failed_rebuilding_and_down_a_path() {
    let whole = storage_health::parse_mdstat(&fixture("snode-raid1-whole.mdstat"));
    assert_eq!(whole.len(), 1);
    let a = &whole[0];
    assert_eq!(
        (a.name.as_str(), a.state.as_str(), a.level.as_str()),
        ("md0", "active", "raid1")
    );
    assert_eq!(a.members, [("vdb".to_string(), false), ("vda".to_string(), false)]);
    assert_eq!((a.wanted, a.working), (Some(2), Some(2)));
    assert_eq!(storage_health::md_problem(a), None);

    let failed = &storage_health::parse_mdstat(&fixture("snode-raid1-member-failed.mdstat"))[0];
    assert_eq!(failed.members[1], ("vdb".to_string(), true));
    assert_eq!(
        storage_health::md_problem(failed).unwrap(),
        "md array md0 (raid1) is degraded: 1 of its 2 members work, md marked vdb failed"
    );

    let rebuilding = &storage_health::parse_mdstat(&fixture("snode-raid1-recovering.mdstat"))[0];
    assert_eq!(rebuilding.rebuilding.as_deref(), Some("recovery 0.0%"));
    assert!(
        storage_health::md_problem(rebuilding)
            .unwrap()
            .ends_with("1 of its 2 members work (recovery 0.0% under way)"),
        "{:?}",
        storage_health::md_problem(rebuilding)
    );

    let paths = &storage_health::parse_mdstat(&fixture("hnode-multipath-whole.mdstat"))[0];
    assert_eq!((paths.name.as_str(), paths.level.as_str()), ("md127", "multipath"));
    assert_eq!(paths.members[0].0, "etherd/e1.1");
    assert_eq!(storage_health::md_problem(paths), None);
    let lost = &storage_health::parse_mdstat(&fixture("hnode-multipath-path-lost.mdstat"))[0];
    assert_eq!(
        storage_health::md_problem(lost).unwrap(),
        "md array md127 (multipath) is degraded: 1 of its 2 members work, md marked etherd/e1.1 failed"
    );
}

#[test]
fn doctor_names_each_storage_problem_with_its_fix() {
    let text =
        std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/seed-lab.toml")).unwrap();
    let inv = inventory::parse("seed-lab.toml", &text).unwrap();
    let storage = inv.storage.as_ref().unwrap().get_ref();
    let (s1, s2) = (
        storage.nodes.get_ref()[0].to_string(),
        storage.nodes.get_ref()[1].to_string(),
    );
    let facts = |a: &str, b: &str| CloudFacts {
        snodes: vec![
            (s1.clone(), Answer::Facts(storage_health::parse(a))),
            (s2.clone(), Answer::Facts(storage_health::parse(b))),
        ],
        ..CloudFacts::default()
    };
    let found = |f: &CloudFacts| -> Vec<(&'static str, String)> {
        doctor::check(&inv, f)
            .into_iter()
            .map(|f| (f.check, f.subject))
            .collect()
    };
    let peer_down = probe_output(
        Some(&fixture("snode-peer-down.drbd")),
        Some(&fixture("snode-raid1-whole.mdstat")),
        0,
    );
    let failed_disk = probe_output(
        Some(&fixture("snode-peer-down.drbd")),
        Some(&fixture("snode-raid1-member-failed.mdstat")),
        0,
    );
    // No /proc/drbd at all: the node came back and storage init has not run yet.
    let no_drbd = probe_output(None, Some(&fixture("snode-raid1-whole.mdstat")), 0);
    let f = facts(&peer_down, &no_drbd);
    assert_eq!(
        found(&f),
        [("drbd_disconnected", s1.clone()), ("drbd_down", s2.clone())]
    );
    let all = doctor::check(&inv, &f);
    let disconnected = all.iter().find(|f| f.check == "drbd_disconnected").unwrap();
    assert!(
        disconnected.fix.contains(&format!("cloudctl node boot {s2}")),
        "{}",
        disconnected.fix
    );
    let f = facts(&failed_disk, &no_drbd);
    let all = doctor::check(&inv, &f);
    let md = all.iter().find(|f| f.check == "md_degraded").unwrap();
    assert_eq!(md.subject, s1);
    assert!(md.fix.contains("mdadm --manage /dev/md0 --remove"), "{}", md.fix);
    // An unreachable storage node is said as such, not guessed at.
    let mut f = facts(&peer_down, &peer_down);
    f.snodes[1].1 = Answer::Unreachable("no route to host".into());
    assert_eq!(
        found(&f),
        [("drbd_disconnected", s1.clone()), ("unreachable", s2.clone())]
    );
    // A split brain: the node that detected it is StandAlone with the kernel's line; its peer,
    // which only saw the connection dropped, waits (WFConnection): both are the split brain,
    // with DRBD's recovery as the fix.
    // (/proc/drbd as a storage VM of tests/it/storage_vms.rs showed it after a real split brain;
    // its kernel logged "block drbd0: Split-Brain detected but unresolved, dropping connection!",
    // which the probe's grep counts.)
    let standalone = fixture("snode-split-brain.drbd");
    assert!(storage_health::PROBE.contains("grep -c 'Split-Brain detected'"));
    let split = probe_output(Some(&standalone), Some(&fixture("snode-raid1-whole.mdstat")), 1);
    let f = facts(&split, &peer_down);
    assert_eq!(
        found(&f),
        [("drbd_split_brain", s1.clone()), ("drbd_split_brain", s2.clone())]
    );
    let all = doctor::check(&inv, &f);
    assert!(
        all[1]
            .problem
            .contains(&format!("its peer {s1} detected a split brain")),
        "{}",
        all[1].problem
    );
    for f in &all {
        assert!(
            f.fix.contains("connect --discard-my-data") && f.fix.contains("service cloudctl-aoe stop"),
            "{}",
            f.fix
        );
    }
    // Both StandAlone, both logged it: each its own.
    let f = facts(&split, &split);
    assert_eq!(
        found(&f),
        [("drbd_split_brain", s1.clone()), ("drbd_split_brain", s2.clone())]
    );
    // The probe's own output is read back whole.
    let h = storage_health::parse(&probe_output(Some(&fixture("snode-peer-down.drbd")), None, 2));
    assert_eq!((h.drbd.map(|d| d.len()), h.md, h.split_brain_lines), (Some(1), None, 2));
}
