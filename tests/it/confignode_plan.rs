//! Golden plans for the ConfigNode and the checks `node add` makes, with no host at all.

use crate::support::golden::assert_golden;
use cloudctl::inventory;
use cloudctl::plan::confignode::{self, Facts, Scope};
use cloudctl::plan::node;
use cloudctl::templates::Templates;

fn seed() -> inventory::Inventory {
    inventory::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed-lab.toml")).unwrap()
}

fn initialised(stale: &[&str]) -> Facts {
    Facts {
        mac_files: stale.iter().map(|s| s.to_string()).collect(),
        initialised: true,
        sharded: true,
        ..Facts::default()
    }
}

fn all_nodes() -> Scope {
    Scope::nodes(seed().node.iter().map(|n| n.name.get_ref().to_string()))
}

#[test]
fn config_init_plan_for_the_seed_lab() {
    let plan = confignode::plan(
        &seed(),
        &Templates::load(None).unwrap(),
        &Facts::default(),
        &Scope::Init,
    )
    .unwrap();
    assert_golden(
        "config-init-seed-lab.json",
        &serde_json::to_string_pretty(&plan).unwrap(),
    );
}

#[test]
fn config_init_removes_only_stale_per_mac_files() {
    let facts = initialised(&[
        "01-52-54-00-00-02-01",
        "01-52-54-00-99-99-99",
        "01-not-a-mac",
        "default",
    ]);
    let plan = confignode::plan(&seed(), &Templates::load(None).unwrap(), &facts, &Scope::Init).unwrap();
    let json = serde_json::to_string(&plan).unwrap();
    assert!(json.contains("\"kind\":\"absent\",\"path\":\"/srv/tftp/pxelinux.cfg/01-52-54-00-99-99-99\""));
    assert!(
        !json.contains("01-not-a-mac"),
        "a file cloudctl would not write is never removed"
    );
    assert!(
        !json.contains("/srv/tftp/pxelinux.cfg/01-52-54-00-00-02-01\"}"),
        "a node's file is kept"
    );
}

/// Node changes touch the key server's address map, the one file of host entries that holds the
/// changed node's and its PXE file, nothing else.
#[test]
fn node_plans_touch_only_the_changed_node() {
    let t = Templates::load(None).unwrap();
    let facts = initialised(&["01-52-54-00-00-02-01", "01-52-54-00-99-99-99"]);
    let add = confignode::plan(&seed(), &t, &facts, &Scope::nodes(["hnode1"])).unwrap();
    assert_golden(
        "node-converge-seed-lab.json",
        &serde_json::to_string_pretty(&add).unwrap(),
    );
    let files: Vec<String> = add.hosts[0].steps.iter().map(|s| s.label()).collect();
    assert_eq!(
        files
            .iter()
            .filter(|l| l.starts_with("file ") || l.starts_with("remove "))
            .collect::<Vec<_>>(),
        [
            "file /var/lib/cloudctl/node-keys/addresses",
            &format!(
                "file /etc/dhcp/cloudctl-hosts.d/{:02}.conf",
                confignode::shard_of("hnode1")
            ),
            "file /srv/tftp/pxelinux.cfg/01-52-54-00-00-02-01"
        ],
        "no other node's file, no stale-file sweep"
    );
    assert!(
        !serde_json::to_string(&add).unwrap().contains("apt-get"),
        "node changes do not install packages"
    );

    let mac: cloudctl::types::Mac = "52:54:00:99:99:99".parse().unwrap();
    let remove = Scope::Nodes {
        write: Default::default(),
        remove: vec![mac, "52:54:00:00:02:01".parse().unwrap()],
        forget: Default::default(),
    };
    let plan = confignode::plan(&seed(), &t, &facts, &remove).unwrap();
    let labels: Vec<String> = plan.hosts[0].steps.iter().map(|s| s.label()).collect();
    assert!(
        labels.contains(&"remove /srv/tftp/pxelinux.cfg/01-52-54-00-99-99-99".to_string()),
        "{labels:?}"
    );
    assert!(
        !labels.iter().any(|l| l.contains("01-52-54-00-00-02-01")),
        "a MAC another node still has keeps its file: {labels:?}"
    );
    assert!(confignode::facts_script(&seed(), &Scope::nodes(["hnode1"]))
        .unwrap()
        .contains("nodes/hnode1/overlay.img"));
    assert!(!confignode::facts_script(&seed(), &Scope::nodes(["hnode1"]))
        .unwrap()
        .contains("ls -1"));
}

/// The file of host entries a node change writes holds about 1/32 of the nodes: with 5,000 nodes
/// it is a few KiB, not the 570 KB of every entry; `config init` writes every file, and the hosts
/// file dhcpd.conf includes names each of them.
#[test]
fn a_node_change_renders_one_small_file_of_host_entries() {
    // The seed lab in a /18, with 5,000 more nodes above its dynamic range.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed-lab.toml");
    let mut text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("subnet = \"10.0.0.0/24\"", "subnet = \"10.0.0.0/18\"");
    for i in 1..=5_000u32 {
        let [_, _, a, b] = i.to_be_bytes();
        let ip = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 0, 1, 0)) + i);
        text += &format!(
            "\n[[node]]\nname = \"n{i:05}\"\nmac = \"52:54:01:00:{a:02x}:{b:02x}\"\nip = \"{ip}\"\nrole = \"hnode\"\n"
        );
    }
    let inv = inventory::parse("big.toml", &text).unwrap();
    let t = Templates::load(None).unwrap();
    let plan = confignode::plan(&inv, &t, &initialised(&[]), &Scope::nodes(["hnode1"])).unwrap();
    let shards: Vec<&cloudctl::plan::FileStep> = plan.hosts[0]
        .steps
        .iter()
        .filter_map(|s| match s {
            cloudctl::plan::Step::File(f) if f.path.as_str().starts_with("/etc/dhcp/") => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(shards.len(), 1, "one file of host entries");
    let content = String::from_utf8(shards[0].content.clone()).unwrap();
    let text = content;
    assert!(text.contains("host hnode1 {"), "{text}");
    let entries = text.matches("\nhost ").count();
    // 5,004 entries over 32 files: about 156 a file (the hash spreads them within a few dozen).
    assert!((100..220).contains(&entries), "{entries} entries in the file: {text}");
    assert!(text.len() < 25_000, "{} bytes", text.len());

    let init = confignode::plan(&seed(), &t, &Facts::default(), &Scope::Init).unwrap();
    let json = serde_json::to_string(&init).unwrap();
    for k in [0, confignode::HOST_SHARDS - 1] {
        assert!(
            json.contains(&format!("include \\\"/etc/dhcp/cloudctl-hosts.d/{k:02}.conf\\\";")),
            "{json}"
        );
    }
    let every = init.hosts[0]
        .steps
        .iter()
        .filter(|s| s.label().starts_with("file /etc/dhcp/cloudctl-hosts.d/"))
        .count();
    assert_eq!(every, confignode::HOST_SHARDS);
}

/// A ConfigNode whose hosts file still holds every entry (an older cloudctl's) gets no node
/// change until `config init` moved the entries into their files.
#[test]
fn node_changes_on_the_old_single_hosts_file_ask_for_config_init() {
    let facts = Facts {
        initialised: true,
        ..Facts::default()
    };
    let err = confignode::plan(&seed(), &Templates::load(None).unwrap(), &facts, &all_nodes()).unwrap_err();
    assert!(
        err.to_string().contains("run `cloudctl config init` once") && err.to_string().contains("cloudctl-hosts.d"),
        "{err}"
    );
}

#[test]
fn node_changes_need_config_init_first() {
    let err = confignode::plan(
        &seed(),
        &Templates::load(None).unwrap(),
        &Facts::default(),
        &all_nodes(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("cloudctl config init"), "{err}");
}

#[test]
fn xen_profiles_boot_through_mboot_and_paths_are_tftp_relative() {
    let plan = confignode::plan(
        &seed(),
        &Templates::load(None).unwrap(),
        &initialised(&[]),
        &all_nodes(),
    )
    .unwrap();
    let json = serde_json::to_value(&plan).unwrap();
    let hnode1 = json["hosts"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "01-52-54-00-00-02-01")
        .unwrap();
    let text = hnode1["content"].as_str().unwrap();
    assert!(text.contains("KERNEL mboot.c32"), "{text}");
    assert!(
        text.contains(
            "APPEND images/dom0/xen.gz dom0_mem=1024M --- images/dom0/vmlinuz console=ttyS0 --- images/dom0/initrd.img"
        ),
        "{text}"
    );
    let snode1 = json["hosts"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "01-52-54-00-00-01-01")
        .unwrap();
    assert!(snode1["content"]
        .as_str()
        .unwrap()
        .contains("APPEND initrd=images/snode/initrd.img console=ttyS0"));
}

#[test]
fn a_profile_outside_the_tftp_root_is_refused() {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed-lab.toml"))
        .unwrap();
    let inv = inventory::parse(
        "x.toml",
        &text.replace("/srv/tftp/images/snode/vmlinuz", "/boot/vmlinuz"),
    )
    .unwrap();
    let err = confignode::plan(&inv, &Templates::load(None).unwrap(), &initialised(&[]), &all_nodes())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("[profiles.snode] kernel") && err.contains("outside tftp_root"),
        "{err}"
    );
}

fn add(inv: &inventory::Inventory, name: &str, mac: &str, ip: Option<&str>) -> Result<Vec<String>, String> {
    let r = node::request(name, mac, ip, None, None)?;
    Ok(node::resolve(inv, &[r])?
        .into_iter()
        .map(|n| format!("{} {} {}", n.name, n.mac, n.ip))
        .collect())
}

#[test]
fn node_add_checks_name_every_conflict() {
    let inv = seed();
    assert_eq!(
        add(&inv, "hnode3", "5254.0000.0203", None).unwrap(),
        ["hnode3 52:54:00:00:02:03 10.0.0.3"],
        "MAC canonicalised, first free IP"
    );
    assert_eq!(
        add(&inv, "hnode1", "52:54:00:00:02:01", Some("10.0.0.31")).unwrap(),
        Vec::<String>::new(),
        "identical node: nothing to add"
    );
    let refusals = [
        (
            "hnode1",
            "52:54:00:00:02:09",
            None,
            "hnode1 is already in the inventory",
        ),
        (
            "hnode3",
            "52-54-00-00-02-01",
            None,
            "already belongs to node \"hnode1\"",
        ),
        (
            "hnode3",
            "52:54:00:00:02:03",
            Some("10.0.0.31"),
            "10.0.0.31 already belongs to node \"hnode1\"",
        ),
        (
            "hnode3",
            "52:54:00:00:02:03",
            Some("10.9.0.5"),
            "not a host address of [network] subnet 10.0.0.0/24",
        ),
        (
            "hnode3",
            "52:54:00:00:02:03",
            Some("10.0.0.150"),
            "inside the DHCP dynamic_range",
        ),
        ("hnode3", "52:54:00:00:02:03", Some("10.0.0.1"), "gateway"),
        ("hnode3", "01:00:5e:00:00:01", None, "multicast"),
        ("hnode3", "00:00:00:00:00:00", None, "all-zero"),
        ("h;x", "52:54:00:00:02:03", None, "invalid name"),
    ];
    for (name, mac, ip, needle) in refusals {
        let err = add(&inv, name, mac, ip).unwrap_err();
        assert!(err.contains(needle), "{name} {mac} {ip:?}: {err}");
    }
    let err = node::request("x", "52:54:00:00:02:03", None, Some("boss"), None).unwrap_err();
    assert!(err.contains("unknown role \"boss\""), "{err}");
    let r = node::request("x", "52:54:00:00:02:03", None, None, Some("nope")).unwrap();
    assert!(node::resolve(&inv, &[r])
        .unwrap_err()
        .contains("unknown profile \"nope\""));
}

#[test]
fn csv_rack_import() {
    let csv = "name,mac,ip,role,profile\n# rack 2\nhnode3,52:54:00:00:02:03,,hnode\nsnode3,52-54-00-00-01-03,10.0.0.23,snode,snode\n";
    let reqs = node::parse_csv("rack.csv", csv).unwrap();
    let new = node::resolve(&seed(), &reqs).unwrap();
    assert_eq!(new.len(), 2);
    assert_eq!(
        (new[0].ip.as_str(), new[1].mac.as_str()),
        ("10.0.0.3", "52:54:00:00:01:03")
    );
    let err = node::parse_csv("rack.csv", "a,52:54:00:00:02:03\n").unwrap_err();
    assert!(err.contains("rack.csv:1") && err.contains("name,mac,ip,role"), "{err}");
    let err = node::parse_csv("rack.csv", "ok,52:54:00:00:02:03,,hnode\nbad,zz,,hnode\n").unwrap_err();
    assert!(err.contains("rack.csv:2") && err.contains("invalid MAC"), "{err}");
    let dup = node::parse_csv("r", "a,52:54:00:00:02:03,,\nb,52:54:00:00:02:03,,\n").unwrap();
    assert!(node::resolve(&seed(), &dup)
        .unwrap_err()
        .contains("MAC 52:54:00:00:02:03 is given to both a and b"));
}

/// `node add` joins the appended `[[node]]` tables to the inventory it already parsed instead of
/// parsing the whole file again; the result, spans included, and every refusal are those of a
/// full parse, and an inventory that assigns `node` inline is parsed in full.
#[test]
fn appended_nodes_give_what_a_full_parse_gives() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed-lab.toml");
    let old = std::fs::read_to_string(&path).unwrap() + "# café, a comment with a two-byte letter\n";
    let inv = inventory::parse("cloud.toml", &old).unwrap();
    let new = cloudctl::inventory_file::add_nodes(
        &old,
        &node::resolve(
            &inv,
            &[node::request("hnode9", "52:54:00:00:09:09", None, None, None).unwrap()],
        )
        .unwrap(),
    )
    .unwrap();
    let joined = inventory::with_appended_nodes("cloud.toml", inv, &old, &new).unwrap();
    let full = inventory::parse("cloud.toml", &new).unwrap();
    assert_eq!(format!("{joined:?}"), format!("{full:?}"), "same values and spans");
    assert_eq!(
        joined.node.last().unwrap().name.span(),
        full.node.last().unwrap().name.span()
    );

    // Appended tables that a full parse refuses are refused with the same words.
    let dup = new.clone() + "\n[[node]]\nname = \"hnode9\"\nrole = \"hnode\"\n";
    let inv = inventory::parse("cloud.toml", &new).unwrap();
    let joined = inventory::with_appended_nodes("cloud.toml", inv, &new, &dup).unwrap_err();
    assert_eq!(
        joined.to_string(),
        inventory::parse("cloud.toml", &dup).unwrap_err().to_string()
    );
    assert!(
        joined.to_string().contains("duplicate node name \"hnode9\""),
        "{joined}"
    );

    // `node = [...]` inline: appending `[[node]]` is not valid TOML, which only a full parse sees.
    let inline = "node = [{ name = \"a\", role = \"hnode\" }]\n[cloud]\nname = \"c\"\n";
    let inv = inventory::parse("cloud.toml", inline).unwrap();
    let appended = format!("{inline}\n[[node]]\nname = \"b\"\nrole = \"hnode\"\n");
    assert!(inventory::parse("cloud.toml", &appended).is_err());
    assert!(inventory::with_appended_nodes("cloud.toml", inv, inline, &appended).is_err());
}
