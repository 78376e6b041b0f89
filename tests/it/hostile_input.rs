//! Hostile and wrong input refused before anything is touched, with no host (issue 19 items 3,
//! 8, 9, 14, 15): remote paths, system directories as mounts, `--` in names, addresses the
//! network already uses, interface and BMC user names, dry-run locks, CSV files, echoed values
//! and misplaced template overrides.

use crate::support::{cloudctl, text, write};

const BASE: &str = r#"
[cloud]
name = "t"

[ssh]
known_hosts = "KH"
identity = "ID"

[network]
subnet = "10.0.0.0/24"
gateway = "10.0.0.1"
dns = ["10.0.0.1"]
dynamic_range = "10.0.0.100-10.0.0.199"
interface = "eth0"

[confignode]
address = "10.0.0.2"
tftp_root = "/srv/tftp"

[profiles.hnode]
kernel = "/srv/tftp/images/vmlinuz"
initrd = "/srv/tftp/images/initrd.img"

[[node]]
name = "hnode1"
mac = "52:54:00:00:02:01"
ip = "10.0.0.31"
role = "hnode"
"#;

/// `host list` (no connection) against an inventory text: (exit code, stderr).
fn load(inventory: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let inv = write(dir.path(), "cloud.toml", inventory);
    let out = cloudctl(&["-i", inv.to_str().unwrap(), "host", "list"]);
    (out.status.code(), text(&out.stderr))
}

fn refused(what: &str, inventory: &str, needles: &[&str]) {
    let (code, err) = load(inventory);
    assert_eq!(code, Some(2), "{what}: {err}");
    for n in needles {
        assert!(err.contains(n), "{what}: expected {n:?} in:\n{err}");
    }
}

fn accepted(what: &str, inventory: &str) {
    let (code, err) = load(inventory);
    assert_eq!(code, Some(0), "{what}: {err}");
}

#[test]
fn hostile_remote_paths_are_refused_at_load_naming_file_line_and_field() {
    for hostile in [
        "/srv/\\\"q",
        "/srv/$(touch /tmp/pwn)",
        "/srv/`id`",
        "/srv/a b",
        "/srv/../etc",
        "/srv/./tftp",
        "/srv//tftp",
        "/srv/a;b",
        "/srv/a,b",
    ] {
        let inv = BASE.replace("tftp_root = \"/srv/tftp\"", &format!("tftp_root = \"{hostile}\""));
        refused(
            hostile,
            &inv,
            &["cloud.toml:18", "field [confignode] tftp_root", "invalid remote path"],
        );
        let inv = BASE.replace(
            "kernel = \"/srv/tftp/images/vmlinuz\"",
            &format!("kernel = \"{hostile}\""),
        );
        refused(
            hostile,
            &inv,
            &["cloud.toml:21", "field [profiles.hnode] kernel", "invalid remote path"],
        );
    }
    let storage = format!(
        "{BASE}\n[[node]]\nname = \"s1\"\nip = \"10.0.0.21\"\nrole = \"snode\"\n\n[[node]]\nname = \"s2\"\nip = \"10.0.0.22\"\nrole = \"snode\"\n\n[storage]\nnodes = [\"s1\", \"s2\"]\ndisks = [\"/dev/sdb\", \"/dev/$(reboot)\"]\n"
    );
    refused(
        "storage disk",
        &storage,
        &["field [storage] disks", "invalid remote path \"/dev/$(reboot)\""],
    );
    let instances = format!("{BASE}\n[instances]\nstore = \"/srv/cloud/`id`\"\n");
    refused(
        "instances store",
        &instances,
        &["field [instances] store", "invalid remote path"],
    );
}

#[test]
fn every_template_context_escapes_what_it_inserts() {
    use cloudctl::templates::Templates;
    use serde_json::json;
    let t = Templates::load(None).unwrap();
    let hostile = "/srv/a b\"$(touch /tmp/pwn)`id`'x";
    // Shell-sourced settings: sourcing the file gives back exactly the value.
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "config-init/tftpd-hpa",
            json!({ "tftp_root": hostile }),
            "TFTP_DIRECTORY",
        ),
        (
            "config-init/isc-dhcp-server",
            json!({ "interface": hostile }),
            "INTERFACESv4",
        ),
        (
            "storage-init/aoe.default",
            json!({ "shelf": 1, "slot": 0, "interface": "eth0", "device": hostile, "macs": "x" }),
            "DEVICE",
        ),
        (
            "lamp-deploy/pen-default",
            json!({ "cloud": "t", "port": 80, "timeout": 10, "backends": hostile }),
            "PEN_BACKENDS",
        ),
        (
            "lamp-deploy/o2cb-default",
            json!({ "cloud": "t", "cluster": hostile }),
            "O2CB_BOOTCLUSTER",
        ),
    ];
    for (name, data, var) in cases {
        let file = write(dir.path(), "settings", &t.render(name, &data).unwrap());
        let out = std::process::Command::new("sh")
            .args(["-c", &format!(". \"$1\"; printf %s \"${var}\""), "sh"])
            .arg(&file)
            .output()
            .unwrap();
        assert_eq!(text(&out.stdout), hostile, "{name}: {}", text(&out.stderr));
    }
    assert!(!std::path::Path::new("/tmp/pwn").exists());
    // Double-quoted contexts: Apache, DRBD and my.cnf get an escaped string.
    let site = t
        .render(
            "lamp-deploy/apache-site.conf",
            &json!({ "cloud": "t", "node": "w", "mount": "/srv/www", "port": 80, "docroot": hostile, "sessions": "/s" }),
        )
        .unwrap();
    assert!(
        site.contains("<Directory \"/srv/a b\\\"$(touch /tmp/pwn)`id`'x\">"),
        "{site}"
    );
    let cnf = t
        .render(
            "lamp-deploy/mariadb.cnf",
            &json!({ "cloud": "t", "bind": "0.0.0.0", "datadir": hostile }),
        )
        .unwrap();
    assert!(
        cnf.contains("datadir = \"/srv/a b\\\"$(touch /tmp/pwn)`id`'x\""),
        "{cnf}"
    );
}

fn lamp(mount: &str) -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/lamp.toml")).unwrap();
    text.replace("mount = \"/srv/www\"", &format!("mount = \"{mount}\""))
}

#[test]
fn the_lamp_mount_is_never_a_system_directory() {
    for (mount, why) in [
        ("/", "is a system directory"),
        ("/etc", "is a system directory"),
        ("/usr", "is a system directory"),
        ("/usr/share/www", "lies inside /usr"),
        ("/srv", "is a system directory"),
        ("/var", "is a system directory"),
        ("/var/lib", "is a system directory"),
        ("/boot/www", "lies inside /boot"),
    ] {
        refused(mount, &lamp(mount), &["cloud.toml:35", "[lamp] mount", why]);
    }
    for mount in ["/srv/..", "/.", "/srv/www/", "/srv//www"] {
        refused(mount, &lamp(mount), &["field [lamp] mount", "invalid remote path"]);
    }
    accepted("/srv/www", &lamp("/srv/www"));
    accepted("/var/www", &lamp("/var/www"));
    let bind = lamp("/srv/www").replace("storage = \"drbd-ocfs2\"", "storage = \"bind\"\nbind_source = \"/etc\"");
    let bind = match bind.find("[lamp.drbd]") {
        Some(i) => bind[..i].to_string(),
        None => bind,
    };
    refused(
        "bind_source /etc",
        &bind,
        &["[lamp] bind_source = \"/etc\": /etc is a system directory"],
    );
}

#[test]
fn names_with_a_double_dash_are_refused() {
    let inv = BASE.replace("name = \"hnode1\"", "name = \"db--migratedaway\"");
    refused(
        "node",
        &inv,
        &["cloud.toml:25", "\"--\" is reserved", "NAME--migratedaway"],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "cloud.toml", BASE);
    let out = cloudctl(&[
        "-i",
        path.to_str().unwrap(),
        "--yes",
        "instance",
        "create",
        "web--incoming",
        "--hnode",
        "hnode1",
        "--copy",
        "/srv/golden.img",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("\"--\" is reserved"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn addresses_the_network_uses_are_refused_naming_their_holder() {
    let ip = |v: &str| BASE.replace("ip = \"10.0.0.31\"", &format!("ip = \"{v}\""));
    refused(
        "node = gateway",
        &ip("10.0.0.1"),
        &["cloud.toml:27", "10.0.0.1 is the gateway ([network] gateway)"],
    );
    refused(
        "node = ConfigNode",
        &ip("10.0.0.2"),
        &["10.0.0.2 is the ConfigNode ([confignode] address)"],
    );
    refused(
        "gateway outside the subnet",
        &BASE.replace("gateway = \"10.0.0.1\"", "gateway = \"10.9.0.1\""),
        &[
            "cloud.toml:11",
            "[network] gateway 10.9.0.1 is not a host address of subnet 10.0.0.0/24",
        ],
    );
    let instance = |v: &str| {
        format!("{BASE}\n[[instance]]\nname = \"vm1\"\nhnode = \"hnode1\"\nmemory = 256\nvcpus = 1\ndisk = \"4G\"\nip = \"{v}\"\nmac = \"52:54:00:00:05:01\"\n")
    };
    refused(
        "instance in the dynamic range",
        &instance("10.0.0.150"),
        &["instance \"vm1\" field ip: 10.0.0.150 is inside the DHCP dynamic_range"],
    );
    refused(
        "instance = gateway",
        &instance("10.0.0.1"),
        &["10.0.0.1 is the gateway"],
    );
    accepted("instance outside the range", &instance("10.0.0.50"));

    // node add and instance create name who holds the address (checked before any connection).
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "cloud.toml", &instance("10.0.0.50"));
    let path = path.to_str().unwrap();
    for (ip, holder) in [
        ("10.0.0.1", "the gateway ([network] gateway)"),
        ("10.0.0.2", "the ConfigNode ([confignode] address)"),
        ("10.0.0.31", "node \"hnode1\""),
        ("10.0.0.50", "instance \"vm1\""),
    ] {
        let out = cloudctl(&[
            "-i",
            path,
            "--yes",
            "node",
            "add",
            "hnode9",
            "--mac",
            "52:54:00:00:02:09",
            "--ip",
            ip,
        ]);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            text(&out.stderr).contains(&format!("IP {ip} already belongs to {holder}")),
            "{}",
            text(&out.stderr)
        );
        let out = cloudctl(&[
            "-i",
            path,
            "--yes",
            "instance",
            "create",
            "vm2",
            "--hnode",
            "hnode1",
            "--copy",
            "/srv/g.img",
            "--ip",
            ip,
        ]);
        assert_eq!(out.status.code(), Some(2));
        assert!(
            text(&out.stderr).contains(&format!("--ip {ip} already belongs to {holder}")),
            "{}",
            text(&out.stderr)
        );
    }
    let out = cloudctl(&[
        "-i",
        path,
        "--yes",
        "node",
        "add",
        "hnode9",
        "--mac",
        "52:54:00:00:05:01",
    ]);
    assert!(
        text(&out.stderr).contains("MAC 52:54:00:00:05:01 already belongs to instance \"vm1\""),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn macs_ports_interfaces_and_bmc_users() {
    refused(
        "MAC with a sign",
        &BASE.replace("52:54:00:00:02:01", "+2:54:00:00:02:01"),
        &["invalid MAC \"+2:54:00:00:02:01\""],
    );
    let storage = format!(
        "{BASE}\n[[node]]\nname = \"s1\"\nip = \"10.0.0.21\"\nrole = \"snode\"\n\n[[node]]\nname = \"s2\"\nip = \"10.0.0.22\"\nrole = \"snode\"\n\n[storage]\nnodes = [\"s1\", \"s2\"]\ndisks = [\"/dev/sdb\", \"/dev/sdc\"]\ninterface = \"enp3s0f0.100\"\n"
    );
    accepted("storage", &storage);
    refused(
        "drbd_port 0",
        &format!("{storage}drbd_port = 0\n"),
        &["[storage] drbd_port must be 1-65535"],
    );
    for good in ["enp3s0f0.100", "br_lan", "abcdefghijklmno"] {
        accepted(
            good,
            &BASE.replace("interface = \"eth0\"", &format!("interface = \"{good}\"")),
        );
        accepted(good, &format!("{BASE}\n[instances]\nbridge = \"{good}\"\n"));
    }
    refused(
        "16 characters",
        &BASE.replace("interface = \"eth0\"", "interface = \"abcdefghijklmnop\""),
        &["field [network] interface", "invalid interface name", "1-15 characters"],
    );
    let ipmi = |user: &str| {
        BASE.replace(
            "role = \"hnode\"",
            &format!("role = \"hnode\"\npower = \"ipmi\"\nipmi = {{ address = \"10.0.9.31\", user = \"{user}\", password_file = \"/p\" }}"),
        )
    };
    for user in ["ADMIN", "Administrator", "USERID", "root"] {
        accepted(user, &ipmi(user));
    }
    refused("user with a space", &ipmi("a b"), &["invalid IPMI user"]);
}

#[test]
fn a_dry_run_takes_no_inventory_lock() {
    let dir = tempfile::tempdir().unwrap();
    // The ConfigNode is a closed loopback port: the dry run's read-only probe fails fast.
    let inv = BASE.replace("address = \"10.0.0.2\"", "address = \"127.0.0.1:1\"");
    let path = write(dir.path(), "cloud.toml", &inv);
    let lock = dir.path().join(".cloud.toml.lock");
    let args = [
        "-i",
        path.to_str().unwrap(),
        "-n",
        "node",
        "add",
        "hnode2",
        "--mac",
        "52:54:00:00:02:02",
    ];
    let out = cloudctl(&args);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert!(!lock.exists(), "a dry run created {}", lock.display());
    // Another run holds the lock: the dry run does not wait for it.
    let held = std::fs::File::create(&lock).unwrap();
    // SAFETY: flock on a descriptor we own, released when `held` closes.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&held), libc::LOCK_EX) },
        0
    );
    let mut child = std::process::Command::new(crate::support::bin())
        .args(args)
        .env_remove("CLOUDCTL_INVENTORY")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the dry run waited for the inventory lock");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(held);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        inv,
        "a dry run changed the inventory"
    );
}

#[test]
fn csv_files_as_spreadsheets_write_them() {
    use cloudctl::plan::node::parse_csv;
    let nodes = parse_csv(
        "rack.csv",
        "\u{feff}\"name\",\"mac\",\"ip\",\"role\",\"profile\"\r\n\"hnode3\",\"52:54:00:00:02:03\",\"\",\"hnode\",\"\"\r\n# spare\r\nhnode4 , 52-54-00-00-02-04 , 10.0.0.34 , snode\r\n",
    )
    .unwrap();
    assert_eq!(
        nodes
            .iter()
            .map(|n| (n.name.to_string(), n.mac.to_string()))
            .collect::<Vec<_>>(),
        [
            ("hnode3".to_string(), "52:54:00:00:02:03".to_string()),
            ("hnode4".to_string(), "52:54:00:00:02:04".to_string())
        ]
    );
    assert_eq!(nodes[1].ip, Some("10.0.0.34".parse().unwrap()));
    // A file that is no node list (here a shadow line): named by line, its content not echoed.
    let e = parse_csv("/etc/shadow", "root:$y$j9T$secrethash:19000:0:99999:7:::\n").unwrap_err();
    assert!(
        e.starts_with("/etc/shadow:1: expected name,mac,ip,role[,profile], found 1 field"),
        "{e}"
    );
    assert!(!e.contains("secrethash"), "{e}");
    let e = parse_csv("r.csv", "hnode3,52:54:00:00:02:03,,hnode,\"a,b,$(x)\",extra\n").unwrap_err();
    assert!(!e.contains("$(x)"), "{e}");
}

#[test]
fn echoed_values_are_cut_and_escaped() {
    let huge = "a".repeat(50 << 20);
    let (code, err) = load(&BASE.replace("name = \"hnode1\"", &format!("name = \"{huge}\"")));
    assert_eq!(code, Some(2));
    assert!(err.len() < 2000, "{} bytes of error", err.len());
    assert!(
        err.contains(&format!("({} characters)", 50 << 20)),
        "{}",
        &err[..err.len().min(500)]
    );
    let (code, err) = load(&BASE.replace("name = \"hnode1\"", "name = \"h\\u001b]0;pwned\\u0007\""));
    assert_eq!(code, Some(2));
    assert!(!err.contains('\u{1b}') && !err.contains('\u{7}'), "{err:?}");
    assert!(err.contains("\\u{1b}"), "{err}");
}

#[test]
fn misplaced_template_overrides_are_refused() {
    use cloudctl::templates::Templates;
    for (path, what) in [
        ("dhcpd.conf.hbs", "at the top"),
        ("config-init/dhcpd.conf", "no .hbs"),
        ("config-init/dhcp.conf.hbs", "a typo"),
        ("confg-init/dhcpd.conf.hbs", "a typo in the folder"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "x").unwrap();
        let Err(e) = Templates::load(Some(dir.path())) else {
            panic!("{what}: {path} was accepted");
        };
        let e = e.to_string();
        assert!(
            e.contains(path) && e.contains("overrides no built-in template"),
            "{what}: {e}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("config-init")).unwrap();
    std::fs::write(dir.path().join("config-init/dhcpd.conf.hbs"), "x").unwrap();
    std::fs::write(dir.path().join(".README.swp"), "x").unwrap();
    assert!(Templates::load(Some(dir.path())).is_ok());
}
