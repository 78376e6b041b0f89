//! Placement (`--hnode auto`, `--to auto`, evacuations) from an inventory and the nodes'
//! reported memory, in three set-ups, with no host: the rule picks the node README says.

use cloudctl::inventory;
use cloudctl::inventory::Hypervisor;
use cloudctl::plan::placement::{self, Need};
use std::path::PathBuf;

/// examples/one-box.toml plus a third hardware node and `extra` TOML (its first keys, before
/// any table header, belong to hnode3).
fn inventory(extra: &str) -> inventory::Inventory {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/one-box.toml");
    let mut text = std::fs::read_to_string(path).unwrap();
    text += "\n[[node]]\nname = \"hnode3\"\nmac = \"52:54:00:c1:00:04\"\nip = \"10.201.0.13\"\nrole = \"hnode\"\n";
    text += extra;
    inventory::parse("one-box.toml", &text).unwrap()
}

fn guest(name: &str, node: &str, ip: &str, mac: &str, memory: u32) -> String {
    format!("\n[[instance]]\nname = \"{name}\"\nhnode = \"{node}\"\nmemory = {memory}\nvcpus = 1\ndisk = \"1G\"\nip = \"{ip}\"\nmac = \"{mac}\"\n")
}

/// What `placement::memory_script` prints on a node with `total` and `available` MiB.
fn answer(node: &str, total: u64, available: u64) -> (String, Option<placement::Reported>) {
    (
        node.into(),
        Some(placement::parse_memory(&format!(
            "total {total}\navailable {available}\n"
        ))),
    )
}

fn need(memory: u32) -> Need<'static> {
    Need {
        guest: "new",
        memory,
        hypervisor: Hypervisor::Kvm,
        leaving: None,
    }
}

#[test]
fn the_node_with_most_memory_left_after_its_recorded_guests() {
    // Equal machines; hnode1 records a 2 GiB guest, hnode2 two of 512 MiB: hnode2 has more left
    // (the running guests' real use does not matter, the records do), hnode3 has a smaller cap.
    let inv = inventory(&format!(
        "memory = 2500\n{}{}{}",
        guest("a", "hnode1", "10.201.0.50", "52:54:00:00:05:01", 2048),
        guest("b", "hnode2", "10.201.0.51", "52:54:00:00:05:02", 512),
        guest("c", "hnode2", "10.201.0.52", "52:54:00:00:05:03", 512),
    ));
    let loads = placement::loads(
        &inv,
        &[
            answer("hnode1", 8192, 6000),
            answer("hnode2", 8192, 7000),
            answer("hnode3", 8192, 8000),
        ],
    );
    let c = placement::place(&loads, &need(256)).unwrap();
    assert_eq!(c.node, "hnode2", "{c:?}");
    assert_eq!(c.ranking[0], ("hnode2".into(), 7168, 2));
    assert_eq!(c.ranking[1], ("hnode1".into(), 6144, 1));
    assert_eq!(c.ranking[2], ("hnode3".into(), 2500, 0));
}

#[test]
fn ties_go_to_the_fewest_guests_and_drained_nodes_get_none() {
    let inv = inventory(&format!(
        "drained = true\n{}{}{}",
        guest("a", "hnode1", "10.201.0.50", "52:54:00:00:05:01", 256),
        guest("b", "hnode1", "10.201.0.51", "52:54:00:00:05:02", 256),
        guest("c", "hnode2", "10.201.0.52", "52:54:00:00:05:03", 512),
    ));
    let all = [
        answer("hnode1", 8192, 8192),
        answer("hnode2", 8192, 8192),
        answer("hnode3", 8192, 8192),
    ];
    let c = placement::place(&placement::loads(&inv, &all), &need(256)).unwrap();
    // hnode1 and hnode2 both have 7680 MiB left; hnode2 has one guest, hnode1 two. hnode3 (the
    // emptiest) is drained.
    assert_eq!(c.node, "hnode2", "{c:?}");
    assert!(c.why.contains("fewest guests"), "{}", c.why);
    assert!(c
        .skipped
        .iter()
        .any(|s| s.node == "hnode3" && s.why.contains("drained")));
}

#[test]
fn down_and_other_hypervisor_nodes_are_skipped_and_no_room_names_each_reason() {
    // hnode2 runs Xen (a per-node override), hnode3 does not answer: only hnode1 remains.
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/one-box.toml");
    let text = std::fs::read_to_string(path).unwrap().replace(
        "ip = \"10.201.0.12\"\nrole = \"hnode\"",
        "ip = \"10.201.0.12\"\nrole = \"hnode\"\nhypervisor = \"xen\"",
    )
        + "\n[[node]]\nname = \"hnode3\"\nmac = \"52:54:00:c1:00:04\"\nip = \"10.201.0.13\"\nrole = \"hnode\"\n";
    let mixed = inventory::parse("one-box.toml", &text).unwrap();
    let answers = [
        answer("hnode1", 4096, 4096),
        answer("hnode2", 65536, 65536),
        ("hnode3".to_string(), None),
    ];
    let loads = placement::loads(&mixed, &answers);
    assert_eq!(placement::place(&loads, &need(1024)).unwrap().node, "hnode1");
    let err = placement::place(&loads, &need(8192)).unwrap_err().to_string();
    assert!(err.contains("hnode1: 4096 MiB left for guests"), "{err}");
    assert!(err.contains("hnode2: runs xen, the guest needs kvm"), "{err}");
    assert!(err.contains("hnode3: down"), "{err}");
    // A migration never picks the node the guest leaves.
    let leaving = Need {
        leaving: Some("hnode1"),
        ..need(1024)
    };
    assert!(placement::place(&loads, &leaving).is_err());
}

#[test]
fn golden_evacuation_and_rebalance_plans() {
    use cloudctl::plan::evacuate::{self, OnNode};
    use cloudctl::plan::instance::probe::GuestState;
    use cloudctl::plan::rebalance;
    let inv = inventory(&format!(
        "{}{}{}",
        guest("a", "hnode1", "10.201.0.50", "52:54:00:00:05:01", 1024),
        guest("b", "hnode1", "10.201.0.51", "52:54:00:00:05:02", 512),
        guest("c", "hnode1", "10.201.0.52", "52:54:00:00:05:03", 256),
    ));
    let all = [
        answer("hnode1", 8192, 6000),
        answer("hnode2", 4096, 4096),
        answer("hnode3", 4096, 4096),
    ];
    let on: Vec<OnNode> = [("a", 1024), ("b", 512), ("c", 256)]
        .iter()
        .map(|(n, m)| OnNode {
            name: n.to_string(),
            memory: *m,
            hypervisor: Hypervisor::Kvm,
            state: Some(GuestState::Running),
        })
        .collect();
    let e = evacuate::plan("hnode1", &on, &[], &placement::loads(&inv, &all));
    let nodes: Vec<rebalance::Node> = placement::loads(&inv, &all)
        .into_iter()
        .map(|l| rebalance::Node {
            name: l.name.clone(),
            hypervisor: l.hypervisor,
            eligible: l.up && !l.drained,
            capacity_mib: l.capacity_mib.unwrap_or(0),
            cpus: 4,
            guests: l
                .guests
                .iter()
                .map(|(g, m)| rebalance::Guest {
                    name: g.clone(),
                    memory: *m,
                    vcpus: 1,
                })
                .collect(),
        })
        .collect();
    let r = rebalance::plan(&nodes, 10);
    let doc = serde_json::json!({ "evacuate hnode1": e, "rebalance": r });
    crate::support::golden::assert_golden("day2-plans.json", &serde_json::to_string_pretty(&doc).unwrap());
}
