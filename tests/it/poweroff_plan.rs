//! `hnode poweroff` with no host: when it refuses (a guest recorded or running there, a node not
//! drained) and what it runs (IPMI from the ConfigNode with the password kept out of argv and
//! out of the shown plan, or `poweroff` over SSH on the node), and how the wait's answer reads.

use cloudctl::inventory;
use cloudctl::plan::instance::probe::{GuestSeen, GuestState};
use cloudctl::plan::poweroff::{self, Method, Waited};
use cloudctl::plan::Step;
use std::path::PathBuf;

fn inventory(hnode1_extra: &str) -> inventory::Inventory {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/one-box.toml");
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("name = \"hnode1\"\n", &format!("name = \"hnode1\"\n{hnode1_extra}"));
    inventory::parse("one-box.toml", &text).unwrap()
}

fn seen(name: &str, state: GuestState) -> GuestSeen {
    GuestSeen {
        name: name.into(),
        state,
    }
}

#[test]
fn refuses_while_a_guest_is_recorded_or_running_or_the_node_is_not_drained() {
    let why = poweroff::refusal("hnode1", true, &["web1".into(), "web2".into()], &[]).unwrap();
    assert!(why.contains("guests recorded on it: web1, web2"), "{why}");
    assert!(why.contains("cloudctl hnode evacuate hnode1"), "{why}");
    // A guest the inventory does not know, and one paused mid-migration: both hold memory.
    let why = poweroff::refusal(
        "hnode1",
        true,
        &[],
        &[seen("stray", GuestState::Running), seen("moving", GuestState::Paused)],
    )
    .unwrap();
    assert!(
        why.contains("guests running on it: moving (paused), stray (running)"),
        "{why}"
    );
    let why = poweroff::refusal("hnode1", false, &[], &[]).unwrap();
    assert!(
        why.contains("not drained") && why.contains("cloudctl hnode drain hnode1"),
        "{why}"
    );
    // Drained and empty: a QEMU pid file left by a guest that is gone holds nothing.
    assert_eq!(
        poweroff::refusal("hnode1", true, &[], &[seen("old", GuestState::Dead)]),
        None
    );
    assert_eq!(poweroff::refusal("hnode1", true, &[], &[]), None);
}

#[test]
fn without_a_bmc_it_runs_poweroff_on_the_node_over_ssh() {
    let inv = inventory("");
    let node = &inv.node[0];
    assert_eq!(poweroff::method(node), Method::Ssh);
    let target = inv.select(&["hnode1".into()]).unwrap().remove(0);
    let cn = inv.select(&["confignode".into()]).unwrap().remove(0);
    let plan = poweroff::plan(node, &target, &cn, Method::Ssh, None).unwrap();
    assert_eq!(plan.hosts.len(), 1);
    assert_eq!(plan.hosts[0].host.name, "hnode1");
    let [Step::Command(c)] = plan.hosts[0].steps.as_slice() else {
        panic!("{:?}", plan.hosts[0].steps)
    };
    assert_eq!(c.argv, ["sh", "-c", poweroff::SSH_POWEROFF]);
    // Detached, so the SSH session that sent it ends before the node goes down.
    assert!(poweroff::SSH_POWEROFF.ends_with('&') && poweroff::SSH_POWEROFF.contains("poweroff"));
    assert!(plan.title.contains("poweroff over SSH"), "{}", plan.title);
}

#[test]
fn with_a_bmc_it_asks_it_from_the_confignode_and_keeps_the_password_out_of_sight() {
    let inv =
        inventory("power = \"ipmi\"\nipmi = { address = \"10.0.9.31\", user = \"admin\", password_file = \"/p\" }\n");
    let node = &inv.node[0];
    assert_eq!(poweroff::method(node), Method::Ipmi);
    let target = inv.select(&["hnode1".into()]).unwrap().remove(0);
    let cn = inv.select(&["confignode".into()]).unwrap().remove(0);
    let secret = b"s3cr3t-bmc".to_vec();
    let plan = poweroff::plan(node, &target, &cn, Method::Ipmi, Some(secret.clone())).unwrap();
    assert_eq!(plan.hosts[0].host.name, "confignode");
    let steps = &plan.hosts[0].steps;
    let file = steps
        .iter()
        .find_map(|s| match s {
            Step::File(f) => Some(f),
            _ => None,
        })
        .unwrap();
    assert_eq!((file.content.clone(), file.mode, file.secret), (secret, 0o600, true));
    let Some(Step::Command(c)) = steps.last() else {
        panic!("{steps:?}")
    };
    assert!(
        c.argv[2].contains("chassis power soft") && c.argv[2].contains(" -E "),
        "{c:?}"
    );
    assert_eq!(&c.argv[4..], ["/etc/cloudctl/ipmi/hnode1", "10.0.9.31", "admin"]);
    let shown = serde_json::to_string(&plan).unwrap();
    assert!(!shown.contains("s3cr3t"), "{shown}");
    assert!(c.argv.iter().all(|a| !a.contains("s3cr3t")));
    // No password read: refused before anything is planned.
    assert!(poweroff::plan(node, &target, &cn, Method::Ipmi, None).is_err());
}

#[test]
fn the_wait_reads_off_answering_or_no_ping() {
    assert_eq!(poweroff::parse_wait("off\n"), Waited::Off);
    assert_eq!(poweroff::parse_wait("answering\n"), Waited::StillAnswering);
    assert_eq!(poweroff::parse_wait("no-ping\n"), Waited::NoPing);
    assert_eq!(poweroff::parse_wait(""), Waited::StillAnswering);
    // One round of the wait, on the ConfigNode; the executor polls it until the limit.
    let line = poweroff::wait_script("10.0.0.31");
    assert!(line.ends_with(" sh 10.0.0.31\n"), "{line}");
    let step = poweroff::wait_step("hnode1", "10.0.0.31", 120);
    assert_eq!((step.probe.as_str(), step.timeout_secs), (line.as_str(), 120));
    assert_eq!(step.reading.outcome_at_timeout(), Some("answering"));
}
