//! A ConfigNode pair with no host at all: the inventory's checks, one plan converging both
//! alike (golden), the failover and VRRP files accepted by the real `dhcpd -t` and
//! `keepalived -t`, the status judgement, and `node add` refusing when a ConfigNode is down.

use crate::support::golden::assert_golden;
use crate::support::{cloudctl, text, write};
use cloudctl::inventory;
use cloudctl::plan::confignode::{self, Facts, Scope};
use cloudctl::plan::confignode_status::{self as status, NodeFacts};
use cloudctl::plan::{Plan, Step};
use cloudctl::templates::Templates;
use std::collections::BTreeSet;
use std::process::Command;

const EXAMPLE: &str = "examples/confignode-pair.toml";

fn example_text() -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(EXAMPLE)).unwrap()
}

fn pair() -> inventory::Inventory {
    inventory::parse(EXAMPLE, &example_text()).unwrap()
}

fn init_plan() -> Plan {
    confignode::plan(
        &pair(),
        &Templates::load(None).unwrap(),
        &Facts::default(),
        &Scope::Init,
    )
    .unwrap()
}

fn file<'a>(plan: &'a Plan, host: usize, id: &str) -> &'a [u8] {
    plan.hosts[host]
        .steps
        .iter()
        .find_map(|s| match s {
            Step::File(f) if f.id == id => Some(f.content.as_slice()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no file {id} on host {host}"))
}

#[test]
fn the_pair_is_two_confignode_hosts_by_name() {
    let inv = pair();
    let hosts = inv.select(&["confignode".into()]).unwrap();
    let shown: Vec<(String, String)> = hosts.iter().map(|h| (h.name.clone(), h.endpoint())).collect();
    assert_eq!(
        shown,
        [
            ("cn1".into(), "10.0.0.3:22".into()),
            ("cn2".into(), "10.0.0.4:22".into())
        ]
    );
    assert_eq!(
        inv.confignode.as_ref().unwrap().floating(),
        Some("10.0.0.2".parse().unwrap())
    );
    assert_eq!(confignode::next_server(inv.confignode.as_ref().unwrap()), "10.0.0.2");
}

#[test]
fn pair_inventory_errors_name_the_field_and_the_fix() {
    let good = example_text();
    let cases: &[(&str, String, &str)] = &[
        (
            "one node",
            good.replace("  { name = \"cn2\", ip = \"10.0.0.4\" },\n", ""),
            "exactly two ConfigNodes",
        ),
        (
            "same ip",
            good.replace("10.0.0.4\" }", "10.0.0.3\" }"),
            "exactly two ConfigNodes",
        ),
        (
            "floating with a port",
            good.replace("address = \"10.0.0.2\"", "address = \"10.0.0.2:22\""),
            "floating IPv4 address",
        ),
        (
            "floating by name",
            good.replace("address = \"10.0.0.2\"", "address = \"cn.example\""),
            "floating IPv4 address",
        ),
        (
            "floating outside",
            good.replace("address = \"10.0.0.2\"", "address = \"10.9.0.2\""),
            "inside subnet 10.0.0.0/24",
        ),
        (
            "floating in range",
            good.replace("address = \"10.0.0.2\"", "address = \"10.0.0.150\""),
            "dynamic_range",
        ),
        (
            "next_server elsewhere",
            good.replace(
                "tftp_root = \"/srv/tftp\"",
                "next_server = \"10.0.0.3\"\ntftp_root = \"/srv/tftp\"",
            ),
            "next_server must be the floating address 10.0.0.2",
        ),
        (
            "member is the floating",
            good.replace("10.0.0.4\" }", "10.0.0.2\" }"),
            "not the floating address",
        ),
        (
            "member named like a group",
            good.replace("\"cn2\"", "\"hnode\""),
            "already a group",
        ),
        (
            "member named like a node",
            good.replace("\"cn2\"", "\"hnode1\""),
            "already a group or a [[node]] name",
        ),
        (
            "node takes a member ip",
            good.replace("ip = \"10.0.0.31\"", "ip = \"10.0.0.4\""),
            "10.0.0.4 is a ConfigNode of the pair",
        ),
        (
            "vrrp id 0",
            good.replace("tftp_root = \"/srv/tftp\"", "vrrp_id = 0\ntftp_root = \"/srv/tftp\""),
            "vrrp_id must be 1-255",
        ),
        (
            "unknown member field",
            good.replace("ip = \"10.0.0.4\" }", "ip = \"10.0.0.4\", role = \"x\" }"),
            "unknown field",
        ),
    ];
    for (what, text, needle) in cases {
        assert_ne!(text, &good, "{what}: the case changes the example");
        let err = inventory::parse("cloud.toml", text)
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        let shown = err.to_string();
        assert!(shown.contains(needle), "{what}: expected {needle:?} in {shown}");
        assert!(shown.starts_with("cloud.toml:"), "{what}: located: {shown}");
    }
}

#[test]
fn one_plan_converges_both_alike_but_for_their_failover_and_vrrp_roles() {
    let plan = init_plan();
    assert_golden("config-init-pair.json", &serde_json::to_string_pretty(&plan).unwrap());
    assert_eq!(plan.hosts.len(), 2);
    let (a, b) = (&plan.hosts[0].steps, &plan.hosts[1].steps);
    assert_eq!(a.len(), b.len());
    let differ: BTreeSet<String> = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x != y)
        .map(|(x, _)| x.label())
        .collect();
    assert_eq!(
        differ,
        ["file /etc/dhcp/dhcpd.conf", "file /etc/keepalived/keepalived.conf"]
            .map(String::from)
            .into(),
        "every other step is the same on both"
    );
    let one = String::from_utf8_lossy(file(&plan, 0, "dhcpd.conf")).to_string();
    let two = String::from_utf8_lossy(file(&plan, 1, "dhcpd.conf")).to_string();
    assert!(
        one.contains("  primary;\n  address 10.0.0.3;") && one.contains("peer address 10.0.0.4;"),
        "{one}"
    );
    assert!(one.contains("mclt 3600;") && one.contains("split 128;"), "{one}");
    assert!(
        two.contains("  secondary;\n  address 10.0.0.4;") && two.contains("peer address 10.0.0.3;"),
        "{two}"
    );
    assert!(
        !two.contains("mclt") && !two.contains("split"),
        "only the primary sets mclt and split: {two}"
    );
    for conf in [&one, &two] {
        assert!(
            conf.contains("next-server 10.0.0.2;"),
            "the floating address is the next-server"
        );
        assert!(
            conf.contains("pool {\n    failover peer \"cloudctl\";\n    range 10.0.0.100 10.0.0.199;"),
            "{conf}"
        );
    }
    let ka = String::from_utf8_lossy(file(&plan, 0, "keepalived.conf")).to_string();
    assert!(
        ka.contains("priority 150") && ka.contains("unicast_src_ip 10.0.0.3") && ka.contains("10.0.0.2/24 dev eth0"),
        "{ka}"
    );
    let ka2 = String::from_utf8_lossy(file(&plan, 1, "keepalived.conf")).to_string();
    assert!(
        ka2.contains("priority 100") && ka2.contains("unicast_src_ip 10.0.0.4"),
        "{ka2}"
    );
    let json = serde_json::to_string(&plan).unwrap();
    assert!(json.contains("keepalived"), "keepalived is installed");
    // The floating address is taken last, once DHCP and TFTP are set up.
    let last = a.iter().rposition(|s| s.label().contains("keepalived")).unwrap();
    let tftpd = a.iter().rposition(|s| s.label().contains("tftpd-hpa")).unwrap();
    assert!(last > tftpd);
}

#[test]
fn node_changes_reach_both_and_a_single_confignode_is_unchanged() {
    let t = Templates::load(None).unwrap();
    let facts = Facts {
        initialised: true,
        sharded: true,
        ..Facts::default()
    };
    let add = confignode::plan(&pair(), &t, &facts, &Scope::nodes(["hnode1"])).unwrap();
    assert_eq!(add.hosts.len(), 2);
    assert_eq!(
        add.hosts[0].steps, add.hosts[1].steps,
        "node changes are the same on both"
    );
    assert!(!serde_json::to_string(&add).unwrap().contains("keepalived"));
    // One left out (down, --degraded): only the other is planned.
    let one = confignode::plan_each(&pair(), &t, &[None, Some(facts.clone())], &Scope::nodes(["hnode1"])).unwrap();
    assert_eq!(one.hosts.len(), 1);
    assert_eq!(one.hosts[0].host.name, "cn2");
    assert_eq!(one.hosts[0].steps, add.hosts[1].steps);
    // The seed's single ConfigNode plans as before: no failover, no keepalived.
    let seed =
        inventory::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed-lab.toml")).unwrap();
    let single = confignode::plan(&seed, &t, &Facts::default(), &Scope::Init).unwrap();
    let json = serde_json::to_string(&single).unwrap();
    assert!(!json.contains("failover") && !json.contains("keepalived"));
}

/// `dhcpd -t` on the rendered dhcpd.conf, its includes pointed at files the plan renders too
/// (the host entries of every shard, in one file).
fn dhcpd_accepts(plan: &Plan, host: usize, conf: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let entries: String = (0..confignode::HOST_SHARDS)
        .map(|k| String::from_utf8_lossy(file(plan, host, &format!("dhcpd-hosts-{k:02}"))).into_owned())
        .collect();
    let hosts = write(dir.path(), "hosts.conf", &entries);
    let local = write(dir.path(), "local.conf", "");
    let key = write(
        dir.path(),
        "omapi.key",
        "key cloudctl-omapi { algorithm hmac-sha256; secret \"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=\"; };\n",
    );
    let conf = conf
        .replace("/etc/dhcp/cloudctl-hosts.conf", &hosts.display().to_string())
        .replace("/etc/dhcp/dhcpd.local.conf", &local.display().to_string())
        .replace("/etc/dhcp/cloudctl-omapi.key", &key.display().to_string());
    let path = write(dir.path(), "dhcpd.conf", &conf);
    let lf = write(dir.path(), "leases", "");
    let out = Command::new("dhcpd")
        .args(["-t", "-q", "-cf"])
        .arg(&path)
        .arg("-lf")
        .arg(&lf)
        .output()
        .map_err(|e| format!("dhcpd: {e}"))?;
    out.status.success().then_some(()).ok_or_else(|| text(&out.stderr))
}

/// `keepalived -t` on `conf`, with the plan's PXE check script beside it (keepalived refuses a
/// configuration whose track script is missing, or writable by anyone but root).
fn keepalived_accepts(conf: &[u8]) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let check = write(
        dir.path(),
        "serves-pxe.sh",
        &String::from_utf8_lossy(file(&init_plan(), 0, "serves-pxe")),
    );
    std::fs::set_permissions(&check, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let conf =
        String::from_utf8_lossy(conf).replace("/etc/keepalived/cloudctl-serves-pxe.sh", &check.display().to_string());
    assert!(
        conf.contains(&check.display().to_string()),
        "the configuration tracks the check: {conf}"
    );
    let path = write(dir.path(), "keepalived.conf", &conf);
    let out = Command::new("keepalived")
        .args(["-t", "-f"])
        .arg(&path)
        .output()
        .map_err(|e| format!("keepalived: {e}"))?;
    out.status.success().then_some(()).ok_or_else(|| text(&out.stderr))
}

#[test]
fn dhcpd_and_keepalived_accept_both_sides_and_refuse_broken_ones() {
    let plan = init_plan();
    for host in 0..2 {
        let conf = String::from_utf8_lossy(file(&plan, host, "dhcpd.conf")).to_string();
        dhcpd_accepts(&plan, host, &conf).unwrap_or_else(|e| panic!("host {host}: dhcpd -t refused: {e}\n{conf}"));
        keepalived_accepts(file(&plan, host, "keepalived.conf")).unwrap_or_else(|e| panic!("host {host}: {e}"));
    }
    // The validators do check failover and VRRP: a primary without mclt, a secondary with a
    // split, a priority out of range are refused.
    let primary = String::from_utf8_lossy(file(&plan, 0, "dhcpd.conf")).to_string();
    assert!(dhcpd_accepts(&plan, 0, &primary.replace("  mclt 3600;\n", "")).is_err());
    let secondary = String::from_utf8_lossy(file(&plan, 1, "dhcpd.conf")).to_string();
    assert!(dhcpd_accepts(
        &plan,
        1,
        &secondary.replace("  peer port 647;\n", "  peer port 647;\n  split 128;\n")
    )
    .is_err());
    let ka = String::from_utf8_lossy(file(&plan, 0, "keepalived.conf")).replace("priority 150", "priority 300");
    assert!(keepalived_accepts(ka.as_bytes()).is_err());
}

fn good_facts(inv: &inventory::Inventory, holds: bool) -> NodeFacts {
    let sum = status::wanted_hosts_sha256(inv, &Templates::load(None).unwrap()).unwrap();
    NodeFacts {
        holds_floating: holds,
        dhcpd_running: true,
        tftpd_listening: true,
        keepalived_running: true,
        failover: Some(("normal".into(), "normal".into())),
        hosts_sha256: Some(sum),
        tree_sha256: Some("t1".into()),
    }
}

#[test]
fn status_says_who_holds_the_address_and_who_is_behind() {
    let inv = pair();
    let t = Templates::load(None).unwrap();
    let (one, two) = (good_facts(&inv, true), good_facts(&inv, false));
    let s = status::judge(
        &inv,
        &t,
        vec![("cn1".into(), Ok(one.clone())), ("cn2".into(), Ok(two.clone()))],
    )
    .unwrap();
    assert!(s.in_sync && s.problems.is_empty(), "{s:?}");
    assert_eq!(s.holder, ["cn1"]);
    assert_eq!(s.exit() as i32, 0);

    // cn2 missed a node change (--degraded) and its tree differs: behind, exit 1.
    let behind = NodeFacts {
        hosts_sha256: Some("old".into()),
        tree_sha256: Some("t0".into()),
        ..two.clone()
    };
    let s = status::judge(
        &inv,
        &t,
        vec![("cn1".into(), Ok(one.clone())), ("cn2".into(), Ok(behind))],
    )
    .unwrap();
    assert!(!s.in_sync);
    assert!(
        s.nodes[1].problems.iter().any(|p| p.contains("behind the inventory")),
        "{s:?}"
    );
    assert!(s.nodes[0].problems.is_empty());
    assert!(s.problems.iter().any(|p| p.contains("TFTP trees differ")));
    assert_eq!(s.exit() as i32, 1);

    // The primary is gone: the secondary holds the address, its failover state says so; exit 4.
    let alone = NodeFacts {
        holds_floating: true,
        failover: Some(("communications-interrupted".into(), "normal".into())),
        ..two.clone()
    };
    let s = status::judge(
        &inv,
        &t,
        vec![("cn1".into(), Err("no route".into())), ("cn2".into(), Ok(alone))],
    )
    .unwrap();
    assert_eq!(s.holder, ["cn2"]);
    assert!(s.nodes[1]
        .problems
        .iter()
        .any(|p| p.contains("communications-interrupted")));
    assert!(!s.in_sync);
    assert_eq!(
        s.exit() as i32,
        1,
        "a problem on the survivor outranks the unreachable one (exit order)"
    );

    // Both hold the address: split brain is named.
    let s = status::judge(
        &inv,
        &t,
        vec![("cn1".into(), Ok(one)), ("cn2".into(), Ok(good_facts(&inv, true)))],
    )
    .unwrap();
    assert!(s.problems.iter().any(|p| p.contains("both ConfigNodes hold")), "{s:?}");

    // A ConfigNode whose tftpd is gone is named, with the fix.
    let no_tftpd = NodeFacts {
        tftpd_listening: false,
        ..good_facts(&inv, false)
    };
    let s = status::judge(
        &inv,
        &t,
        vec![("cn1".into(), Ok(good_facts(&inv, true))), ("cn2".into(), Ok(no_tftpd))],
    )
    .unwrap();
    assert!(
        s.nodes[1]
            .problems
            .iter()
            .any(|p| p.contains("tftpd is not listening") && p.contains("config init")),
        "{s:?}"
    );
    assert!(s.nodes[0].problems.is_empty(), "{s:?}");

    // The probe's words parse back.
    let f = status::parse(
        "floating yes\ndhcpd running\ntftpd listening\nkeepalived running\nfailover partner-down communications-interrupted\nhosts abc\ntree def\n",
    );
    assert!(f.holds_floating && f.dhcpd_running && f.tftpd_listening && f.keepalived_running);
    assert!(!status::parse("dhcpd running\n").tftpd_listening);
    assert_eq!(
        f.failover,
        Some(("partner-down".into(), "communications-interrupted".into()))
    );
    assert_eq!(
        (f.hosts_sha256.as_deref(), f.tree_sha256.as_deref()),
        (Some("abc"), Some("def"))
    );
    assert!(status::script(&inv).unwrap().contains("' 10.0.0.2/'"));
}

/// Both ConfigNodes at loopback ports where nothing listens: `node add` is refused with exit 4,
/// naming them, and the inventory is not touched; `--degraded` does not help when none answers.
#[test]
fn node_add_with_no_confignode_answering_is_refused_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let closed = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (p1, p2) = (closed(), closed());
    let inv = example_text()
        .replace(
            "{ name = \"cn1\", ip = \"10.0.0.3\" }",
            &format!("{{ name = \"cn1\", ip = \"10.0.0.3\", address = \"127.0.0.1:{p1}\" }}"),
        )
        .replace(
            "{ name = \"cn2\", ip = \"10.0.0.4\" }",
            &format!("{{ name = \"cn2\", ip = \"10.0.0.4\", address = \"127.0.0.1:{p2}\" }}"),
        )
        .replace(
            "~/.config/cloudctl/known_hosts",
            &dir.path().join("known_hosts").display().to_string(),
        );
    let path = write(dir.path(), "cloud.toml", &inv);
    let p = path.display().to_string();
    for degraded in [false, true] {
        let mut args = vec![
            "-i",
            &p,
            "--yes",
            "--json",
            "node",
            "add",
            "new1",
            "--mac",
            "52:54:00:00:09:01",
        ];
        if degraded {
            args.push("--degraded");
        }
        let out = cloudctl(&args);
        assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let err = doc["error"].as_str().unwrap();
        assert!(err.contains("unreachable") && err.contains("127.0.0.1:"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            inv,
            "the inventory is untouched"
        );
    }
}
