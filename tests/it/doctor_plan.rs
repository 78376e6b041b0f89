//! `doctor`'s checks with no host: a clean cloud gives no finding, each planted problem its own
//! finding with a fix; and the probes' output parsed as the hosts print it.

use cloudctl::inventory;
use cloudctl::plan::doctor::{self, Answer, ClockReading, CloudFacts, ConfigNodeFacts, HnodeFacts};
use cloudctl::plan::instance::probe::{GuestSeen, GuestState};
use std::path::PathBuf;

fn inventory(extra: &str) -> inventory::Inventory {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/one-box.toml");
    let text = std::fs::read_to_string(path).unwrap() + extra;
    inventory::parse("one-box.toml", &text).unwrap()
}

const VM1: &str = "\n[[instance]]\nname = \"vm1\"\nhnode = \"hnode1\"\nmemory = 256\nvcpus = 1\ndisk = \"1G\"\nip = \"10.201.0.50\"\nmac = \"52:54:00:00:05:01\"\n";

fn running(names: &[&str]) -> HnodeFacts {
    HnodeFacts {
        guests: names
            .iter()
            .map(|n| GuestSeen {
                name: n.to_string(),
                state: GuestState::Running,
            })
            .collect(),
        total_mib: Some(8192),
        ..HnodeFacts::default()
    }
}

fn clean_confignode() -> ConfigNodeFacts {
    ConfigNodeFacts {
        missing: vec![],
        initialised: true,
        fixed: vec![("hnode1".into(), "10.201.0.11".parse().unwrap())],
        ranges: vec![("10.201.0.100".parse().unwrap(), "10.201.0.199".parse().unwrap())],
        dhcp_servers: vec!["10.201.0.10".parse().unwrap()],
        dhcp_unchecked: None,
        booted: Some(vec![]),
    }
}

fn facts(h1: HnodeFacts, h2: HnodeFacts) -> CloudFacts {
    CloudFacts {
        confignode: Some(Answer::Facts(clean_confignode())),
        hnodes: vec![
            ("hnode1".into(), Answer::Facts(h1)),
            ("hnode2".into(), Answer::Facts(h2)),
        ],
        snodes: vec![],
        others: vec![],
        clocks: vec![],
    }
}

fn checks(inv: &inventory::Inventory, f: &CloudFacts) -> Vec<&'static str> {
    doctor::check(inv, f).iter().map(|f| f.check).collect()
}

#[test]
fn a_clean_cloud_has_no_findings() {
    let inv = inventory(VM1);
    assert_eq!(doctor::check(&inv, &facts(running(&["vm1"]), running(&[]))), vec![]);
}

#[test]
fn each_planted_problem_is_found_with_its_fix() {
    let inv = inventory(VM1);
    // A guest running where the inventory does not say, and on two nodes at once.
    assert_eq!(
        checks(&inv, &facts(running(&[]), running(&["vm1"]))),
        ["guest_elsewhere"]
    );
    let f = doctor::check(&inv, &facts(running(&["vm1"]), running(&["vm1"])));
    assert_eq!(f[0].check, "split_brain");
    assert!(f[0].fix.contains("--cleanup"), "{f:?}");
    // Running without a record.
    assert_eq!(
        checks(&inv, &facts(running(&["vm1"]), running(&["ghost"]))),
        ["unrecorded_guest"]
    );
    // Leftover one-time keys.
    let mut keys = running(&["vm1"]);
    keys.keys_in_authorized = vec!["vm1".into()];
    assert_eq!(checks(&inv, &facts(keys, running(&[]))), ["leftover_one_time_key"]);
    // Memory over-commit: hnode1 gives guests 128 MiB, vm1 needs 256.
    let text = std::fs::read_to_string(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/one-box.toml"))
        .unwrap()
        .replace(
            "ip = \"10.201.0.11\"\nrole = \"hnode\"",
            "ip = \"10.201.0.11\"\nrole = \"hnode\"\nmemory = 128",
        )
        + VM1;
    let over = inventory::parse("x.toml", &text).unwrap();
    assert_eq!(
        checks(&over, &facts(running(&["vm1"]), running(&[]))),
        ["memory_overcommit"]
    );
    // A drained node with a guest.
    let drained = inventory::parse("x.toml", &text.replace("memory = 128", "drained = true")).unwrap();
    assert_eq!(
        checks(&drained, &facts(running(&["vm1"]), running(&[]))),
        ["guest_on_drained_node"]
    );
    // A missing boot file, and a fixed address moved into the dynamic range.
    let mut cn = clean_confignode();
    cn.missing = vec!["/srv/tftp/pxelinux.0".into()];
    cn.fixed = vec![("hnode1".into(), "10.201.0.150".parse().unwrap())];
    let mut f = facts(running(&["vm1"]), running(&[]));
    f.confignode = Some(Answer::Facts(cn));
    let found = doctor::check(&inv, &f);
    assert_eq!(
        found.iter().map(|f| f.check).collect::<Vec<_>>(),
        ["ip_in_dynamic_range", "missing_boot_file"]
    );
    assert!(
        found[0].fix.contains("the inventory says 10.201.0.11"),
        "{}",
        found[0].fix
    );
    assert!(found[1].fix.contains("config init"), "{}", found[1].fix);
    // A second DHCP server answering beside the ConfigNode (10.201.0.10).
    let mut cn = clean_confignode();
    cn.dhcp_servers.push("10.201.0.13".parse().unwrap());
    let mut f = facts(running(&["vm1"]), running(&[]));
    f.confignode = Some(Answer::Facts(cn));
    let found = doctor::check(&inv, &f);
    assert_eq!(
        (found.len(), found[0].check, found[0].subject.as_str()),
        (1, "rogue_dhcp", "10.201.0.13")
    );
    // A changed host key, and a node that does not answer.
    let mut f = facts(running(&["vm1"]), running(&[]));
    f.hnodes[1].1 = Answer::HostKey("hnode2's host key changed".into());
    f.confignode = Some(Answer::Unreachable("timed out".into()));
    assert_eq!(checks(&inv, &f), ["host_key", "unreachable"]);
}

#[test]
fn a_registered_node_that_is_down_and_never_asked_for_its_address_is_named() {
    let inv = inventory(VM1);
    let mut f = facts(running(&["vm1"]), running(&[]));
    f.hnodes[1].1 = Answer::Unreachable("no route to host".into());
    // Nobody ever got an address: hnode1 answers (it is up), hnode2 does not.
    let found = doctor::check(&inv, &f);
    assert_eq!(
        found.iter().map(|f| (f.check, f.subject.as_str())).collect::<Vec<_>>(),
        [("never_booted", "hnode2"), ("unreachable", "hnode2")]
    );
    assert!(found[0].problem.contains("52:54:00:c1:00:03"), "{}", found[0].problem);
    assert!(found[0].fix.contains("cloudctl hnode boot hnode2"), "{}", found[0].fix);
    // hnode2's MAC was given an address once (as dhcpd's hook names it): it is only down.
    let mut cn = clean_confignode();
    cn.booted = Some(vec![doctor::dhcpd_mac("52:54:0:c1:0:3").unwrap()]);
    f.confignode = Some(Answer::Facts(cn));
    assert_eq!(checks(&inv, &f), ["unreachable"]);
    // A ConfigNode set up before the record existed: said once, not guessed per node.
    let mut cn = clean_confignode();
    cn.booted = None;
    f.confignode = Some(Answer::Facts(cn));
    assert_eq!(checks(&inv, &f), ["boots_unrecorded", "unreachable"]);
}

#[test]
fn probe_output_parses() {
    let cn = doctor::parse_confignode(
        "missing /srv/tftp/pxelinux.0\ninitialised\nfixed hnode1 10.201.0.11\nrange 10.201.0.100 10.201.0.199\ndhcp-server 10.201.0.13\n",
    );
    assert_eq!(cn.dhcp_servers, ["10.201.0.13".parse::<std::net::Ipv4Addr>().unwrap()]);
    assert_eq!(cn.missing, ["/srv/tftp/pxelinux.0"]);
    assert!(cn.initialised);
    assert_eq!(cn.fixed, [("hnode1".to_string(), "10.201.0.11".parse().unwrap())]);
    assert_eq!(cn.ranges.len(), 1);
    assert_eq!(cn.booted, None, "no record folder");
    let cn = doctor::parse_confignode(
        "booted-recorded\nbooted 52:54:0:c1:0:2\nbooted 52:54:0:c1:0\nbooted zz:54:0:c1:0:2\n",
    );
    assert_eq!(
        cn.booted,
        Some(vec![[0x52, 0x54, 0, 0xc1, 0, 2]]),
        "malformed names are skipped"
    );
    assert_eq!(doctor::parse_confignode("booted-recorded\n").booted, Some(vec![]));
    let h = doctor::parse_hnode("guest vm1 qemu-running\ntotal 8000\navailable 7000\nauthkey vm2\nkeyfile vm3\n");
    assert_eq!(h.total_mib, Some(8000));
    assert_eq!(
        (h.keys_in_authorized.as_slice(), h.key_files.as_slice()),
        (&["vm2".to_string()][..], &["vm3".to_string()][..])
    );
}

#[test]
fn a_clock_off_by_more_than_the_question_took_is_found() {
    let inv = inventory(VM1);
    let at = |host: &str, printed: f64, resolution: f64| {
        (
            host.to_string(),
            ClockReading {
                printed,
                resolution,
                asked_between: (1000.0, 1000.5),
            },
        )
    };
    let mut f = facts(running(&["vm1"]), running(&[]));
    f.clocks = vec![at("hnode1", 1000.2, 0.0), at("hnode2", 1001.0, 0.0)];
    assert_eq!(checks(&inv, &f), Vec::<&str>::new());
    f.clocks[0] = at("hnode1", 1003.0, 0.0);
    let found = doctor::check(&inv, &f);
    assert_eq!((found[0].check, found[0].subject.as_str()), ("clock_skew", "hnode1"));
    assert!(found[0].problem.contains("2.5 s ahead of"), "{}", found[0].problem);
    assert!(found[0].problem.contains("live migration"), "{}", found[0].problem);
    f.clocks[0] = at("hnode1", 990.0, 0.0);
    assert!(doctor::check(&inv, &f)[0].problem.contains("10.0 s behind"));
    // Whole seconds (busybox date): the clock may have been up to 1 s later than printed.
    f.clocks[0] = at("hnode1", 997.5, 1.0);
    assert_eq!(checks(&inv, &f), Vec::<&str>::new());
    f.clocks[0] = at("hnode1", 997.0, 1.0);
    assert_eq!(checks(&inv, &f), Vec::<&str>::new(), "2.0 s at most: within the limit");
    f.clocks[0] = at("hnode1", 996.0, 1.0);
    assert!(doctor::check(&inv, &f)[0].problem.contains("3.0 s behind"));
    // Any host counts, not only hardware nodes: a storage node, the ConfigNode.
    f.clocks = vec![at("confignode", 1120.0, 1.0), at("snode9", 880.0, 0.0)];
    let found = doctor::check(&inv, &f);
    let named: Vec<(&str, &str)> = found.iter().map(|f| (f.check, f.subject.as_str())).collect();
    assert_eq!(named, [("clock_skew", "confignode"), ("clock_skew", "snode9")]);
    assert!(found[1].problem.contains("120.0 s behind"), "{}", found[1].problem);
    assert!(
        found[1].problem.contains("logs no longer line up"),
        "{}",
        found[1].problem
    );
    assert!(found[1].fix.contains("NTP client"), "{}", found[1].fix);
}

#[test]
fn the_clock_line_is_read_as_gnu_and_busybox_date_print_it() {
    assert_eq!(
        doctor::parse_clock("x\nclock 1796220579.25\n"),
        Some((1796220579.25, 0.0))
    );
    assert_eq!(doctor::parse_clock("clock 1796220579.%N\n"), Some((1796220579.0, 1.0)));
    assert_eq!(doctor::parse_clock("clock later\n"), None);
    assert_eq!(doctor::parse_clock("no clock here\n"), None);
    assert!(doctor::CLOCK_PROBE.contains("date +%s.%N"));
}

/// Of a ConfigNode pair, the first that answers is judged and one that does not is named: with
/// cn1 down, cn2's boot service is still checked (here: a deleted boot file) and cn1 is reported.
#[test]
fn a_pair_with_its_primary_down_names_it_and_checks_the_other() {
    let inv = inventory("");
    let mut f = facts(running(&[]), running(&[]));
    f.confignode = None;
    let mut cn2 = clean_confignode();
    cn2.missing = vec!["/srv/tftp/pxelinux.0".into()];
    f.add_confignode("cn1", Answer::Unreachable("no route to host".into()), true);
    f.add_confignode("cn2", Answer::Facts(cn2), true);
    let found = doctor::check(&inv, &f);
    let pairs: Vec<(&str, &str)> = found.iter().map(|f| (f.check, f.subject.as_str())).collect();
    assert!(pairs.contains(&("unreachable", "cn1")), "{pairs:?}");
    assert!(
        pairs.iter().any(|(c, _)| c.starts_with("missing_boot_file")),
        "{pairs:?}"
    );
    // The first that answered is the one judged, whichever order they come in.
    let mut g = facts(running(&[]), running(&[]));
    g.confignode = None;
    g.add_confignode("cn1", Answer::Facts(clean_confignode()), true);
    g.add_confignode("cn2", Answer::HostKey("changed".into()), true);
    let found = doctor::check(&inv, &g);
    let pairs: Vec<(&str, &str)> = found.iter().map(|f| (f.check, f.subject.as_str())).collect();
    assert_eq!(pairs, [("host_key", "cn2")]);
    // A node booted from either one has booted: their commit records are joined.
    let mut h = facts(running(&[]), running(&[]));
    h.confignode = None;
    let booted = |mac: [u8; 6]| ConfigNodeFacts {
        booted: Some(vec![mac]),
        ..clean_confignode()
    };
    h.add_confignode("cn1", Answer::Facts(booted([0x52, 0x54, 0, 0xc1, 0, 2])), true);
    h.add_confignode("cn2", Answer::Facts(booted([0x52, 0x54, 0, 0xc1, 0, 3])), true);
    let Some(Answer::Facts(judged)) = &h.confignode else {
        panic!("{h:?}")
    };
    assert_eq!(
        judged.booted,
        Some(vec![[0x52, 0x54, 0, 0xc1, 0, 2], [0x52, 0x54, 0, 0xc1, 0, 3]])
    );
}
