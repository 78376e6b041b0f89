//! End to end on a lab: `hnode evacuate` moves three guests off hnode1 while each is pinged
//! every 100 ms (at most one ping lost per guest), to where placement puts them; the inventory,
//! `instance list` and the nodes agree afterwards; `--hnode auto` then picks the node the rule
//! says; the evacuation's time is set against the same three migrations one by one; and with
//! all three back on one node, `cloud rebalance` spreads them to the score its plan promised.

use crate::support::guest::{bootable_image, lost, ping_once, pinger, qemus, where_runs, Pings};
use crate::support::{cloudctl, json, report, text, Lab};
use std::process::Child;
use std::time::{Duration, Instant};

const HNODE1: usize = 1;
const GUESTS: [(&str, &str); 3] = [
    ("ev1", "10.201.191.50"),
    ("ev2", "10.201.191.51"),
    ("ev3", "10.201.191.52"),
];

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn evacuate_moves_every_guest_off_without_losing_pings() {
    crate::support::require_lab(&[
        crate::support::vm::QEMU,
        "/vmlinuz",
        "/usr/bin/socat",
        "/sbin/mkfs.ext4",
    ]);
    let lab = Lab::up("td2evac", 4, 191);
    let inv = lab.inventory();
    let store = lab.state.dir.join("store");
    let golden = store.join("golden.img");
    bootable_image(&golden, true);
    let golden = golden.display().to_string();
    for (name, ip) in GUESTS {
        let out = cloudctl(&[
            "-i", &inv, "--yes", "instance", "create", name, "--hnode", "hnode1", "--copy", &golden, "--ip", ip,
            "--wait", "150",
        ]);
        assert!(out.status.success(), "create {name}: {}", text(&out.stderr));
    }
    assert_eq!(qemus(&lab, HNODE1).len(), 3);

    // The dry run says where each goes and changes nothing.
    let before = std::fs::read_to_string(&inv).unwrap();
    let out = cloudctl(&["-i", &inv, "-n", "--json", "hnode", "evacuate", "hnode1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let planned: Vec<(String, String)> = json(&out)["plan"]["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["guest"].as_str().unwrap().into(), m["to"].as_str().unwrap().into()))
        .collect();
    // Equal memory everywhere (lab hosts share one machine): ties go to the fewest guests, then the name.
    assert_eq!(
        planned,
        [
            ("ev1".into(), "hnode2".into()),
            ("ev2".into(), "hnode3".into()),
            ("ev3".into(), "hnode2".into())
        ]
    );
    assert_eq!(
        std::fs::read_to_string(&inv).unwrap(),
        before,
        "a dry run changed the inventory"
    );
    // Without --yes and no TTY: refused (exit 6, as every command that changes hosts), nothing
    // drained. hnode1 cannot be powered off with its guests: refused (exit 2), each named.
    let out = cloudctl(&["-i", &inv, "hnode", "evacuate", "hnode1"]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&inv).unwrap(), before);
    let out = cloudctl(&["-i", &inv, "--yes", "hnode", "poweroff", "hnode1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("guests recorded on it: ev1, ev2, ev3")
            && err.contains("guests running on it: ev1 (running), ev2 (running), ev3 (running)"),
        "{err}"
    );

    let pingers: Vec<Child> = GUESTS.iter().map(|(_, ip)| pinger(&lab, ip, 1200)).collect();
    std::thread::sleep(Duration::from_secs(2));
    let t = Instant::now();
    let out = cloudctl(&[
        "-i",
        &inv,
        "--yes",
        "--json",
        "hnode",
        "evacuate",
        "hnode1",
        "--parallel",
        "3",
    ]);
    let evacuation = t.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let losses: Vec<Pings> = pingers.into_iter().map(lost).collect();
    assert!(
        out.status.success(),
        "evacuate: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        !text(&out.stderr).contains("a finishing step failed"),
        "{}",
        text(&out.stderr)
    );
    let v = json(&out);
    let moved: Vec<(String, String)> = v["guests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            assert_eq!(g["outcome"], "moved", "{g}");
            (g["instance"].as_str().unwrap().into(), g["to"].as_str().unwrap().into())
        })
        .collect();
    assert_eq!(moved, planned, "the evacuation went where its plan said");
    for ((name, ip), p) in GUESTS.iter().zip(&losses) {
        report(&format!("hnode evacuate: {name} lost {} of {} pings", p.lost, p.sent));
        assert!(
            p.lost <= 1,
            "{name}: {} of {} pings lost (sequence numbers {}; evacuation began at about 20, took {evacuation:?}): {}",
            p.lost,
            p.sent,
            p.gaps,
            v["guests"]
        );
        assert!(ping_once(&lab, ip), "{name} does not answer after the evacuation");
    }
    assert!(qemus(&lab, HNODE1).is_empty(), "QEMU left on hnode1");
    for (name, to) in &moved {
        assert_eq!(
            where_runs(&inv, name),
            (to.clone(), to.clone()),
            "{name}: instance list and inventory"
        );
    }
    let after = std::fs::read_to_string(&inv).unwrap();
    assert!(
        after.contains("name = \"hnode1\"") && after.contains("drained = true"),
        "hnode1 is drained: {after}"
    );
    // Drained and empty now: `hnode poweroff` would go ahead (a dry run: a lab host cannot be
    // switched off, it shares this machine's kernel; tests/it/poweroff_e2e.rs switches off a VM).
    let out = cloudctl(&["-i", &inv, "-n", "hnode", "poweroff", "hnode1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("is drained and has no guest") && err.contains("by `poweroff` on it over SSH"),
        "{err}"
    );

    // --hnode auto: hnode1 drained, hnode2 holds two guests, hnode3 one: hnode3.
    let out = cloudctl(&[
        "-i",
        &inv,
        "-n",
        "instance",
        "create",
        "ev4",
        "--hnode",
        "auto",
        "--copy",
        &golden,
        "--ip",
        "10.201.191.53",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("placement: ev4 goes to hnode3") && err.contains("not hnode1: drained"),
        "{err}"
    );

    // The baseline: the same three migrations one at a time, back to hnode1.
    let out = cloudctl(&["-i", &inv, "--yes", "hnode", "undrain", "hnode1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!std::fs::read_to_string(&inv).unwrap().contains("drained = true"));
    let mut singles = Duration::ZERO;
    for (name, _) in GUESTS {
        let t = Instant::now();
        let out = cloudctl(&["-i", &inv, "--yes", "instance", "migrate", name, "--to", "hnode1"]);
        singles += t.elapsed();
        assert!(out.status.success(), "migrate {name}: {}", text(&out.stderr));
    }
    assert_eq!(qemus(&lab, HNODE1).len(), 3);
    report(&format!(
        "hnode evacuate of 3 guests (--parallel 3): {:.1} s; the same 3 migrations one by one: {:.1} s (ratio {:.2})",
        evacuation.as_secs_f64(),
        singles.as_secs_f64(),
        evacuation.as_secs_f64() / singles.as_secs_f64()
    ));

    // All three on hnode1 again: `cloud rebalance` plans to spread them, and gets the score it promised.
    let out = cloudctl(&["-i", &inv, "-n", "--json", "cloud", "rebalance"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let planned = json(&out)["plan"].clone();
    let moves: Vec<(String, String)> = planned["moves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["guest"].as_str().unwrap().into(), m["to"].as_str().unwrap().into()))
        .collect();
    assert_eq!(
        moves,
        [("ev1".into(), "hnode2".into()), ("ev2".into(), "hnode3".into())],
        "{planned}"
    );
    assert!(planned["score_before"].as_f64().unwrap() > 0.0);
    assert_eq!(planned["score_after"].as_f64(), Some(0.0));
    assert_eq!(qemus(&lab, HNODE1).len(), 3, "a dry run moved a guest");
    let out = cloudctl(&["-i", &inv, "--yes", "--json", "cloud", "rebalance"]);
    assert!(
        out.status.success(),
        "rebalance: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["score_measured"], planned["score_after"], "{v}");
    assert_eq!(qemus(&lab, HNODE1).len(), 1);
    assert_eq!(where_runs(&inv, "ev1"), ("hnode2".into(), "hnode2".into()));
    assert_eq!(where_runs(&inv, "ev2"), ("hnode3".into(), "hnode3".into()));
    let out = cloudctl(&["-i", &inv, "-n", "--json", "cloud", "rebalance"]);
    assert_eq!(
        json(&out)["plan"]["moves"].as_array().unwrap().len(),
        0,
        "balanced: no move left"
    );
    report(&format!(
        "cloud rebalance: score {} -> {} (promised {})",
        planned["score_before"], v["score_measured"], planned["score_after"]
    ));

    // A guest with nowhere to go stays running where it is, named, and the evacuation exits 1:
    // hnode2 and hnode3 now give guests 300 MiB each and already hold one of 256.
    let now = std::fs::read_to_string(&inv).unwrap();
    std::fs::write(
        &inv,
        now.replace("name = \"hnode2\"\n", "name = \"hnode2\"\nmemory = 300\n")
            .replace("name = \"hnode3\"\n", "name = \"hnode3\"\nmemory = 300\n"),
    )
    .unwrap();
    let out = cloudctl(&["-i", &inv, "--yes", "--json", "hnode", "evacuate", "hnode1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text_of(&out));
    let v = json(&out);
    let stayed = v["guests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["instance"] == "ev3")
        .unwrap()
        .clone();
    assert_eq!(
        (stayed["outcome"].as_str(), stayed["on"].as_str()),
        (Some("stayed"), Some("hnode1")),
        "{v}"
    );
    assert!(
        text(&out.stderr).contains("ev3 stays on hnode1: no hardware node can take ev3"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(qemus(&lab, HNODE1).len(), 1, "ev3 still runs on hnode1");
    assert!(ping_once(&lab, "10.201.191.52"));
}

fn text_of(out: &std::process::Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}
