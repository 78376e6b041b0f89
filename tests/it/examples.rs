//! Every inventory in examples/ loads, validates and goes through every pure planner that applies
//! to what it declares, with fixed facts and secrets (no host at all).
//!
//! Not covered here, because they need a host or non-test refactoring to call:
//! - `instance create`'s node readiness checks and allocation live in commands/instance/create.rs
//!   (they read live facts); the pure `create::plan` after them is covered.
//! - `hnode boot --wait` and `lamp deploy`'s fact gathering run over SSH; their plans are covered.
//! - Not in the table yet (their inputs are a node's probed guests and loads, not what an example
//!   declares; each has its own host-free test): `node poweroff` (poweroff_plan.rs), evacuate and
//!   rebalance, `image` plans, the status judges.

use cloudctl::inventory::{self, Host, Inventory, Node, Power, Role};
use cloudctl::plan::doctor::{self, Answer, CloudFacts};
use cloudctl::plan::instance::create::{self, CreateRequest, GuestSecrets, RootSource};
use cloudctl::plan::instance::migrate::{self, Channel, MigrateRequest};
use cloudctl::plan::instance::{self, remove};
use cloudctl::plan::placement::{self, Need};
use cloudctl::plan::{confignode, hnode, lamp, storage, Plan};
use cloudctl::templates::Templates;
use std::path::{Path, PathBuf};

/// Every example, by file name. A file in examples/ missing here fails `every_example_is_listed`.
const EXAMPLES: &[&str] = &["confignode-pair.toml", "lamp.toml", "one-box.toml", "seed-lab.toml"];

/// What a planner does with an inventory that lacks what it needs.
enum Otherwise {
    /// Refuses with a message naming this (the section it needs).
    Refuses(&'static str),
    /// Has nothing to plan (e.g. no node it could act on): not called.
    NotApplicable,
}

/// An example inventory: its text (for edits like `node remove`) and what it loads to.
struct Example {
    text: String,
    inv: Inventory,
}

struct Planner {
    name: &'static str,
    applies: fn(&Inventory) -> bool,
    otherwise: Otherwise,
    /// The plans it makes for this inventory, or the refusal's message.
    run: fn(&Example) -> Result<Vec<Plan>, String>,
}

/// Every pure planner. Add a row for a new one.
const PLANNERS: &[Planner] = &[
    Planner {
        name: "config init",
        applies: has_confignode,
        otherwise: Otherwise::Refuses("confignode"),
        run: config_init,
    },
    Planner {
        name: "node add",
        applies: has_confignode,
        otherwise: Otherwise::Refuses("confignode"),
        run: node_add,
    },
    Planner {
        name: "node remove",
        applies: has_confignode,
        // Without a ConfigNode the refusal is the one `node add` shows (lamp.toml's nodes are
        // all named by [lamp], so none gets as far as the planner).
        otherwise: Otherwise::NotApplicable,
        run: node_remove,
    },
    Planner {
        name: "hnode boot (overlay + PXE plan)",
        applies: |inv| has_confignode(inv) && !bootable(inv).is_empty(),
        otherwise: Otherwise::NotApplicable,
        run: hnode_boot,
    },
    Planner {
        name: "storage init",
        applies: |inv| inv.storage.is_some(),
        otherwise: Otherwise::Refuses("[storage]"),
        run: storage_init,
    },
    Planner {
        name: "lamp deploy",
        applies: |inv| inv.lamp.is_some(),
        otherwise: Otherwise::Refuses("[lamp]"),
        run: lamp_deploy,
    },
    Planner {
        name: "instance create/migrate/remove",
        // On the backend the first hardware node runs; without [instances] its defaults apply.
        applies: |inv| inv.network.is_some() && hnodes(inv).len() >= 2,
        otherwise: Otherwise::NotApplicable,
        run: instance_lifecycle,
    },
    Planner {
        name: "run",
        applies: |_| true,
        otherwise: Otherwise::NotApplicable,
        run: run_everywhere,
    },
    Planner {
        name: "doctor checks",
        applies: |_| true,
        otherwise: Otherwise::NotApplicable,
        run: doctor_checks,
    },
    Planner {
        name: "placement",
        applies: |inv| !hnodes(inv).is_empty(),
        otherwise: Otherwise::NotApplicable,
        run: place_a_guest,
    },
];

#[test]
fn every_example_goes_through_every_planner_that_applies() {
    let mut failures = Vec::new();
    for example in EXAMPLES {
        let ex = Example {
            text: std::fs::read_to_string(examples_dir().join(example)).unwrap(),
            inv: load(example),
        };
        for p in PLANNERS {
            let failure = match ((p.applies)(&ex.inv), &p.otherwise) {
                (true, _) => match (p.run)(&ex) {
                    Ok(plans) if plans.iter().all(|plan| !plan.hosts.is_empty()) => None,
                    Ok(_) => Some("a plan for no host".to_string()),
                    Err(e) => Some(format!("refused: {e}")),
                },
                (false, Otherwise::NotApplicable) => None,
                (false, Otherwise::Refuses(why)) => match (p.run)(&ex) {
                    Err(e) if e.contains(why) => None,
                    Err(e) => Some(format!("refused without naming {why}: {e}")),
                    Ok(_) => Some(format!("planned without {why}")),
                },
            };
            if let Some(f) = failure {
                failures.push(format!("{example} × {}: {f}", p.name));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_example_is_listed() {
    let mut found: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".toml"))
        .collect();
    found.sort();
    assert_eq!(found, EXAMPLES, "list every example in EXAMPLES (tests/it/examples.rs)");
}

#[test]
fn seed_lab_groups() {
    let inv = load("seed-lab.toml");
    let names = |sel: &str| {
        inv.select(&[sel.to_string()])
            .unwrap()
            .into_iter()
            .map(|h| h.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(names("confignode"), ["confignode"]);
    assert_eq!(names("snode"), ["snode1", "snode2"]);
    assert_eq!(names("hnode"), ["hnode1", "hnode2"]);
    assert_eq!(names("all").len(), 5);
    let both = inv.select(&["hnode2".into(), "hnode".into()]).unwrap();
    assert_eq!(both.len(), 2, "selectors are a union without duplicates");
    let over = inv.select(&["hnode2".into()]).unwrap();
    assert_eq!(
        (over[0].host.as_str(), over[0].port),
        ("hnode2.lab.example", 2222),
        "address overrides ip and port"
    );
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

fn load(example: &str) -> Inventory {
    inventory::load(&examples_dir().join(example)).unwrap_or_else(|e| panic!("{example}: {e}"))
}

fn templates() -> Templates {
    Templates::load(None).unwrap()
}

fn has_confignode(inv: &Inventory) -> bool {
    inv.confignode.is_some() && inv.network.is_some()
}

/// Nodes `hnode boot` can boot: they have both an address and a MAC.
fn bootable(inv: &Inventory) -> Vec<&Node> {
    inv.node.iter().filter(|n| n.ip.is_some() && n.mac.is_some()).collect()
}

fn hnodes(inv: &Inventory) -> Vec<Host> {
    instance::hnodes(inv)
}

fn host(inv: &Inventory, name: &str) -> Host {
    inv.select(&[name.to_string()]).unwrap().remove(0)
}

/// A ConfigNode `config init` already ran on, as the planner tests use.
fn initialised() -> confignode::Facts {
    confignode::Facts {
        initialised: true,
        sharded: true,
        ..Default::default()
    }
}

fn config_init(ex: &Example) -> Result<Vec<Plan>, String> {
    let inv = &ex.inv;
    let plan = confignode::plan(
        inv,
        &templates(),
        &confignode::Facts::default(),
        &confignode::Scope::Init,
    );
    Ok(vec![plan.map_err(|e| e.to_string())?])
}

fn node_add(ex: &Example) -> Result<Vec<Plan>, String> {
    let inv = &ex.inv;
    let names = inv.node.iter().map(|n| n.name.get_ref().to_string());
    let plan = confignode::plan(inv, &templates(), &initialised(), &confignode::Scope::nodes(names));
    Ok(vec![plan.map_err(|e| e.to_string())?])
}

/// Removes each node in turn from the inventory's text, as `node remove` does, and plans it. A
/// node another section still names (a storage node, an instance's host) is refused at load, as
/// `node remove` refuses it, with a message naming it.
fn node_remove(ex: &Example) -> Result<Vec<Plan>, String> {
    let mut plans = Vec::new();
    for node in &ex.inv.node {
        let name = node.name.get_ref().to_string();
        let after = cloudctl::inventory_file::remove_node(&ex.text, &name)
            .map_err(|e| e.to_string())?
            .ok_or(format!("{name} not found in the text"))?;
        let after = match inventory::parse("after.toml", &after) {
            Ok(after) => after,
            Err(e) if e.to_string().contains(&name) => continue,
            Err(e) => return Err(format!("without {name}, refused not naming it: {e}")),
        };
        let scope = confignode::Scope::Nodes {
            write: Default::default(),
            remove: node.mac.iter().map(|m| *m.get_ref()).collect(),
            forget: [name].into(),
        };
        plans.push(confignode::plan(&after, &templates(), &initialised(), &scope).map_err(|e| e.to_string())?);
    }
    match plans.is_empty() {
        true => Err("no node could be removed".into()),
        false => Ok(plans),
    }
}

fn node_secrets() -> hnode::NodeSecrets {
    hnode::NodeSecrets {
        host_key: b"PRIVATE".to_vec(),
        host_key_pub: b"ssh-ed25519 AAAA node".to_vec(),
        dropbear_key: b"DROPBEAR".to_vec(),
        authorized_keys: b"ssh-ed25519 AAAA admin".to_vec(),
        ipmi_password: None,
    }
}

fn hnode_boot(ex: &Example) -> Result<Vec<Plan>, String> {
    let inv = &ex.inv;
    let confignodes = confignode::hosts(inv).map_err(|e| e.to_string())?.len();
    let facts = vec![Some(initialised()); confignodes];
    let mut plans = Vec::new();
    for node in bootable(inv) {
        let name = node.name.get_ref();
        hnode::overlay(inv, &templates(), node, &node_secrets()).map_err(|e| format!("{name} overlay: {e}"))?;
        let plan = hnode::plan(inv, &templates(), &facts, node, Power::Wol, &node_secrets());
        plans.push(plan.map_err(|e| format!("{name}: {e}"))?);
    }
    Ok(plans)
}

fn storage_init(ex: &Example) -> Result<Vec<Plan>, String> {
    let inv = &ex.inv;
    let blank = storage::NodeFacts {
        disks: inv
            .storage
            .iter()
            .flat_map(|s| s.get_ref().disks.get_ref().iter())
            .map(|d| (d.to_string(), storage::Disk::Blank))
            .collect(),
        ..Default::default()
    };
    let plan = storage::plan(
        inv,
        &templates(),
        &[blank.clone(), blank],
        &Default::default(),
        "0123abcd",
        &[],
    );
    Ok(vec![plan.map_err(|e| e.to_string())?])
}

/// A first deploy: every web node's backing disk blank.
fn lamp_deploy(ex: &Example) -> Result<Vec<Plan>, String> {
    let inv = &ex.inv;
    let mut facts = lamp::Facts::default();
    for web in lamp::section(inv).map(|l| l.web.get_ref().clone()).unwrap_or_default() {
        let web = web.to_string();
        let fresh = lamp::WebFacts {
            disk_signatures: Some(vec![]),
            bind_source: true,
            hostname: Some(web.clone()),
            ..Default::default()
        };
        facts.web.insert(web, fresh);
    }
    let password = lamp::Secret::parse("TestOnlyNotARealPassword0123456789abcdef").unwrap();
    let plan = lamp::plan(inv, &templates(), &facts, &password);
    Ok(vec![plan.map_err(|e| e.to_string())?])
}

/// A new guest created on the first hardware node, migrated to the second, then removed.
fn instance_lifecycle(ex: &Example) -> Result<Vec<Plan>, String> {
    let inv = &ex.inv;
    let e = |e: cloudctl::error::Error| e.to_string();
    let nodes = hnodes(inv);
    let (source, target) = (&nodes[0], &nodes[1]);
    let req = instance::GuestRequest {
        name: "examplevm".parse().unwrap(),
        memory: Some(256),
        vcpus: Some(1),
        disk: Some("1G".parse().unwrap()),
        ip: free_ip(inv),
        mac: "52:54:00:00:0e:01".parse().unwrap(),
    };
    let guest = instance::guest(inv, &source.name, &req).map_err(e)?;
    let secrets = GuestSecrets {
        host_key: b"GUEST-PRIVATE-KEY".to_vec(),
        host_key_pub: b"ssh-ed25519 AAAAguest".to_vec(),
        authorized_keys: b"ssh-ed25519 AAAAadmin".to_vec(),
    };
    let debootstrap = RootSource::Debootstrap {
        suite: "bookworm".into(),
        arch: "amd64".into(),
    };
    let created = create::plan(
        inv,
        &templates(),
        &CreateRequest {
            guest: &guest,
            hnode: &host(inv, &source.name),
            source: debootstrap,
            secrets: &secrets,
            nonce: "0123456789abcdef",
        },
    )
    .map_err(e)?;
    let migration = migrate::plan(&MigrateRequest {
        guest: &guest,
        source,
        target,
        source_ip: None,
        ssh_user: "root",
        channel: Channel::Ssh {
            private_key: b"MIGRATION-PRIVATE-KEY".to_vec(),
            public_key: "ssh-ed25519 AAAAonetime".into(),
            target_known_host: "target ssh-ed25519 AAAAtarget".into(),
        },
        authorized_keys: None,
        max_downtime_ms: 300,
        max_bandwidth_mib: None,
        timeout_secs: 600,
    })
    .map_err(e)?;
    let removed = remove::plan(&guest, target, &remove::Disk::Delete, Some("0123456789abcdef"), 30);
    Ok(vec![
        created,
        migration.phase("prepare").clone(),
        migration.start().clone(),
        migration.finish,
        removed,
    ])
}

/// An address in the subnet no node or guest has.
fn free_ip(inv: &Inventory) -> std::net::Ipv4Addr {
    let taken = cloudctl::plan::node::reserved_ips(inv);
    cloudctl::plan::node::next_free(inv, &taken).expect("a free address")
}

fn run_everywhere(ex: &Example) -> Result<Vec<Plan>, String> {
    let inv = &ex.inv;
    let hosts = inv.select(&["all".into()]).map_err(|e| e.to_string())?;
    let plan = cloudctl::plan::run::plan(&hosts, &["true".into()]);
    match plan.hosts.len() == hosts.len() {
        true => Ok(vec![plan]),
        false => Err(format!("{} hosts planned for {}", plan.hosts.len(), hosts.len())),
    }
}

/// Doctor with every hardware node down: each is named in a finding.
fn doctor_checks(ex: &Example) -> Result<Vec<Plan>, String> {
    let inv = &ex.inv;
    let down: Vec<String> = inv
        .node
        .iter()
        .filter(|n| n.role == Role::Hnode)
        .map(|n| n.name.get_ref().to_string())
        .collect();
    let facts = CloudFacts {
        hnodes: down
            .iter()
            .map(|n| (n.clone(), Answer::Unreachable("test: down".into())))
            .collect(),
        ..Default::default()
    };
    let findings = doctor::check(inv, &facts);
    match down.iter().find(|n| !findings.iter().any(|f| &f.subject == *n)) {
        Some(n) => Err(format!("{n} is down and no finding names it: {findings:?}")),
        None => Ok(vec![]),
    }
}

/// A 256 MiB guest placed among the hardware nodes, each reporting 8 GiB free.
fn place_a_guest(ex: &Example) -> Result<Vec<Plan>, String> {
    let inv = &ex.inv;
    let answers: Vec<_> = hnodes(inv)
        .into_iter()
        .map(|h| (h.name, Some(placement::parse_memory("total 8192\navailable 8192\n"))))
        .collect();
    let need = Need {
        guest: "new",
        memory: 256,
        hypervisor: inv.cloud.hypervisor,
        leaving: None,
    };
    placement::place(&placement::loads(inv, &answers), &need).map_err(|e| e.to_string())?;
    Ok(vec![])
}
