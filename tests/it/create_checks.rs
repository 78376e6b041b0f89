//! The pure decisions behind `instance create` (plan::instance::allocate and readiness), host-free:
//! each refusal names its reason, allocation skips what is taken, a node ready for the guest passes.

use crate::support::fixtures::seed;
use cloudctl::error::Error;
use cloudctl::plan::image::CopySource;
use cloudctl::plan::instance::probe::NodeFacts;
use cloudctl::plan::instance::{self, allocate, readiness, Guest, GuestRequest};
use cloudctl::types::Name;
use std::net::Ipv4Addr;

fn name(s: &str) -> Name {
    s.parse().unwrap()
}

fn guest(memory: u32, vcpus: u8) -> Guest {
    let req = GuestRequest {
        name: name("web2"),
        memory: Some(memory),
        vcpus: Some(vcpus),
        disk: Some("2G".parse().unwrap()),
        ip: "10.0.0.51".parse().unwrap(),
        mac: "52:54:00:00:05:02".parse().unwrap(),
    };
    instance::guest(&seed(), "hnode1", &req).unwrap()
}

/// A node with everything the guest needs.
fn ready() -> NodeFacts {
    NodeFacts {
        hypervisor_version: "QEMU 7.2".into(),
        mem_available_mib: Some(4000),
        bridge: true,
        store_writable: true,
        arch: "amd64".into(),
        ..NodeFacts::default()
    }
}

fn refusal(r: Result<impl std::fmt::Debug, Error>) -> String {
    match r {
        Err(Error::Usage(m)) => m,
        other => panic!("expected a usage refusal, got {other:?}"),
    }
}

#[test]
fn a_recorded_name_is_refused_and_a_new_one_passes() {
    let inv = seed();
    assert_eq!(
        refusal(allocate::unrecorded(&inv, &name("web1"))),
        "instance web1 is already in the inventory; choose another name"
    );
    allocate::unrecorded(&inv, &name("web2")).unwrap();
}

#[test]
fn the_allocated_address_skips_every_address_in_use_and_the_dynamic_range() {
    let inv = seed();
    let taken = cloudctl::plan::node::reserved_ips(&inv);
    let ip = allocate::address(&inv, None).unwrap();
    assert!(!taken.contains(&ip), "{ip} is in use");
    assert!(cloudctl::inventory::addresses::holder(&inv, ip).is_none());
    // The lowest free one: every lower host address of the subnet is taken.
    for n in 1..u32::from(ip).saturating_sub(u32::from(Ipv4Addr::new(10, 0, 0, 0))) {
        let lower = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + n);
        assert!(taken.contains(&lower), "{lower} was free and below {ip}");
    }
    // Once the next address is held, allocation moves past it.
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seed-lab.toml"))
        .unwrap()
        .replace("ip = \"10.0.0.21\"", &format!("ip = \"{ip}\""));
    let moved = cloudctl::inventory::parse("seed-lab.toml", &text).unwrap();
    let next = allocate::address(&moved, None).unwrap();
    assert_ne!(next, ip);
}

#[test]
fn a_given_address_in_use_or_malformed_is_refused_with_its_holder() {
    let inv = seed();
    assert_eq!(
        refusal(allocate::address(&inv, Some("10.0.0.50"))),
        "--ip 10.0.0.50 already belongs to instance \"web1\""
    );
    assert!(refusal(allocate::address(&inv, Some("10.0.0.31"))).contains("hnode1"));
    assert!(refusal(allocate::address(&inv, Some("not-an-ip"))).contains("is not an IPv4 address"));
    assert_eq!(
        allocate::address(&inv, Some("10.0.0.60")).unwrap(),
        Ipv4Addr::new(10, 0, 0, 60)
    );
}

#[test]
fn a_mac_in_use_is_refused_and_the_derived_one_is_stable() {
    let inv = seed();
    assert_eq!(
        refusal(allocate::mac(&inv, &name("web2"), Some("52:54:00:00:02:01"))),
        "MAC 52:54:00:00:02:01 already belongs to node hnode1; pass another --mac"
    );
    assert_eq!(
        refusal(allocate::mac(&inv, &name("web2"), Some("52:54:00:00:05:01"))),
        "MAC 52:54:00:00:05:01 already belongs to instance web1; pass another --mac"
    );
    let derived = allocate::mac(&inv, &name("web2"), None).unwrap();
    assert_eq!(derived, allocate::mac(&inv, &name("web2"), None).unwrap());
    assert!(derived.to_string().starts_with("52:54:00:"));
}

#[test]
fn sizes_no_guest_boots_with_are_refused() {
    let why = "--memory is at least 16 (MiB) and --vcpus at least 1";
    assert_eq!(refusal(readiness::sane_size(&guest(8, 1))), why);
    assert_eq!(refusal(readiness::sane_size(&guest(256, 0))), why);
    readiness::sane_size(&guest(16, 1)).unwrap();
}

#[test]
fn a_ready_node_passes_and_each_missing_fact_names_its_reason() {
    let g = guest(256, 2);
    let check = |f: &NodeFacts| readiness::check(&g, "hnode1", f, None, None, "/srv/instances");
    check(&ready()).unwrap();
    let cases: Vec<(NodeFacts, String)> = vec![
        (
            NodeFacts {
                missing_tools: vec!["socat".into()],
                ..ready()
            },
            "hnode1 lacks socat; install them first".into(),
        ),
        (
            NodeFacts {
                bridge: false,
                ..ready()
            },
            format!("bridge {} does not exist on hnode1", g.bridge),
        ),
        (
            NodeFacts {
                store_writable: false,
                ..ready()
            },
            "/srv/instances is not a writable directory on hnode1".into(),
        ),
        (
            NodeFacts {
                dir_exists: true,
                ..ready()
            },
            format!("{} already exists on the shared storage", g.dir),
        ),
        (
            NodeFacts {
                mem_available_mib: Some(100),
                ..ready()
            },
            "hnode1 has 100 MiB available, the guest needs 256".into(),
        ),
    ];
    for (facts, reason) in cases {
        let m = refusal(check(&facts));
        assert!(
            m.starts_with("cannot create web2 on hnode1 (nothing was changed):\n  - "),
            "{m}"
        );
        assert!(m.contains(&reason), "{m:?} does not name {reason:?}");
    }
}

#[test]
fn every_problem_is_listed_at_once() {
    let g = guest(256, 2);
    let broken = NodeFacts {
        bridge: false,
        store_writable: false,
        mem_available_mib: Some(1),
        ..ready()
    };
    let m = refusal(readiness::check(&g, "hnode1", &broken, None, None, "/srv/instances"));
    assert_eq!(m.matches("\n  - ").count(), 3, "{m}");
}

#[test]
fn a_missing_copy_source_names_the_image_or_the_path() {
    let g = guest(256, 2);
    let image = CopySource::Image {
        name: "bookworm".parse().unwrap(),
        path: "/srv/instances/images/bookworm.img".into(),
    };
    let m = refusal(readiness::check(
        &g,
        "hnode1",
        &ready(),
        Some(&image),
        Some("/srv/instances/images/bookworm.img"),
        "/srv/instances",
    ));
    assert!(m.contains("there is no image bookworm in the store"), "{m}");
    let m = refusal(readiness::check(
        &g,
        "hnode1",
        &ready(),
        None,
        Some("/srv/golden.img"),
        "/srv/instances",
    ));
    assert!(m.contains("/srv/golden.img is not a file on hnode1"), "{m}");
    let found = NodeFacts {
        source_size: Some(1 << 30),
        ..ready()
    };
    readiness::check(&g, "hnode1", &found, None, Some("/srv/golden.img"), "/srv/instances").unwrap();
}

#[test]
fn a_guest_running_without_a_record_is_refused() {
    assert!(refusal(readiness::not_running(&name("web2"), &["hnode2".into()]))
        .starts_with("a guest named web2 already runs on a hardware node without a record"));
    readiness::not_running(&name("web2"), &[]).unwrap();
}

#[test]
fn a_copy_is_never_smaller_than_its_source() {
    let g = guest(256, 2);
    assert_eq!(readiness::disk_size(&g, None), g.disk_size);
    assert_eq!(readiness::disk_size(&g, Some(1 << 20)), g.disk_size);
    let big = readiness::disk_size(&g, Some(3 << 30));
    assert!(big.bytes() >= 3 << 30, "{big}");
}

#[test]
fn the_root_comes_from_debootstrap_first_then_the_copy_and_neither_is_refused() {
    use cloudctl::plan::instance::create::RootSource;
    use cloudctl::plan::instance::root_source;
    let f = NodeFacts {
        source_size: Some(42),
        ..ready()
    };
    assert_eq!(
        root_source::choose(Some("bookworm"), Some("/srv/a.img".into()), &f).unwrap(),
        RootSource::Debootstrap {
            suite: "bookworm".into(),
            arch: "amd64".into()
        }
    );
    assert_eq!(
        root_source::choose(None, Some("/srv/a.img".into()), &f).unwrap(),
        RootSource::Copy {
            path: "/srv/a.img".into(),
            size: 42
        }
    );
    assert!(refusal(root_source::choose(Some("Book$(x)"), None, &f)).starts_with("--debootstrap: "));
    assert_eq!(
        refusal(root_source::choose(None, None, &f)),
        "instance create needs --debootstrap SUITE or --copy SOURCE"
    );
}

#[test]
fn the_node_is_asked_for_the_tools_of_its_backend_and_source() {
    use cloudctl::inventory::Hypervisor;
    use cloudctl::plan::instance::root_source::needed_tools;
    assert!(needed_tools(Hypervisor::Kvm, false).contains(&"socat"));
    assert!(needed_tools(Hypervisor::Xen, false).contains(&"xl"));
    assert!(!needed_tools(Hypervisor::Xen, false).contains(&"debootstrap"));
    assert!(needed_tools(Hypervisor::Kvm, true).contains(&"debootstrap"));
}

#[test]
fn a_running_copy_source_is_refused_naming_its_node_and_state() {
    use cloudctl::plan::instance::probe::{GuestSeen, GuestState};
    let live = vec![(
        "hnode2".to_string(),
        GuestSeen {
            name: "web1".into(),
            state: GuestState::Running,
        },
    )];
    assert_eq!(
        refusal(readiness::copy_source_stopped("web1", &live)),
        "--copy web1: it is running on hnode2; stop it first (`cloudctl instance stop web1`) so its disk is consistent"
    );
    readiness::copy_source_stopped("web1", &[]).unwrap();
}

#[test]
fn auto_placement_asks_for_the_requested_or_default_memory_and_picks_the_roomiest_node() {
    use cloudctl::plan::placement;
    let inv = seed();
    let web2 = name("web2");
    let asked = allocate::need(&inv, &web2, Some(300));
    assert_eq!((asked.guest, asked.memory, asked.leaving), ("web2", 300, None));
    assert_eq!(asked.hypervisor, inv.cloud.hypervisor);
    assert_eq!(allocate::need(&inv, &web2, None).memory, inv.instances().memory);
    let answer = |node: &str, available: u64| {
        (
            node.to_string(),
            Some(placement::parse_memory(&format!("total 8192\navailable {available}\n"))),
        )
    };
    // Equal machines: hnode1 records web1, hnode2 records nothing, so hnode2 has more left.
    let loads = placement::loads(&inv, &[answer("hnode1", 8000), answer("hnode2", 8000)]);
    assert_eq!(placement::place(&loads, &asked).unwrap().node, "hnode2");
    // A node that did not answer is never chosen.
    let loads = placement::loads(&inv, &[answer("hnode1", 8000), ("hnode2".to_string(), None)]);
    assert_eq!(placement::place(&loads, &asked).unwrap().node, "hnode1");
}
