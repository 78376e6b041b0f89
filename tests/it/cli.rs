//! CLI behaviour with no host: help, usage and inventory errors, exit codes, nothing touched.

use crate::support::{cloudctl, text, write};

const GOOD: &str = r#"
[cloud]
name = "t"

[ssh]
known_hosts = "KH"
identity = "ID"

[network]
subnet = "10.0.0.0/24"
dynamic_range = "10.0.0.100-10.0.0.199"

[[node]]
name = "hnode1"
mac = "52:54:00:00:02:01"
ip = "10.0.0.31"
role = "hnode"
"#;

#[test]
fn help_documents_flags_groups_and_exit_codes() {
    let out = cloudctl(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for needle in [
        "--inventory",
        "--dry-run",
        "--yes",
        "--json",
        "--forks",
        "--templates",
        "CLOUDCTL_INVENTORY",
        "EXIT STATUS",
        "130",
        "run",
        "host",
        "lab",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
    let run_help = text(&cloudctl(&["run", "--help"]).stdout);
    assert!(run_help.contains("--on") && run_help.contains("pipes"), "{run_help}");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(cloudctl(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(cloudctl(&["run"]).status.code(), Some(2), "run without a command");
    assert_eq!(cloudctl(&["--forks", "0", "host", "list"]).status.code(), Some(2));
}

/// Runs `run` against an inventory text; returns (exit code, stderr).
fn run_with(inventory: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let inv = write(dir.path(), "cloud.toml", inventory);
    let out = cloudctl(&["-i", inv.to_str().unwrap(), "run", "--", "true"]);
    assert!(out.stdout.is_empty(), "nothing on stdout for an inventory error");
    (out.status.code(), text(&out.stderr))
}

#[test]
fn inventory_errors_name_file_line_and_fix() {
    let cases: &[(&str, &str, &[&str])] = &[
        ("malformed TOML", "[cloud\nname = 1", &["cloud.toml:1"]),
        ("unknown key", "[cloud]\nname = \"t\"\ncolour = \"red\"\n", &["cloud.toml:3", "colour", "unknown field"]),
        ("bad MAC", &GOOD.replace("52:54:00:00:02:01", "52:54:00:zz:02:01"), &["cloud.toml:15", "invalid MAC", "52:54:00:00:02:01"]),
        ("multicast MAC", &GOOD.replace("52:54:00:00:02:01", "01:00:5e:00:00:01"), &["multicast"]),
        ("bad IP", &GOOD.replace("10.0.0.31", "10.0.0.300"), &["cloud.toml:16", "10.0.0.300"]),
        ("IP outside subnet", &GOOD.replace("10.0.0.31", "10.9.0.31"), &["cloud.toml:16", "not a host address of [network] subnet 10.0.0.0/24"]),
        ("IP in dynamic range", &GOOD.replace("10.0.0.31", "10.0.0.150"), &["dynamic_range 10.0.0.100-10.0.0.199"]),
        ("name with space", &GOOD.replace("\"hnode1\"", "\"h node\""), &["cloud.toml:14", "invalid name \"h node\""]),
        ("name with quote", &GOOD.replace("\"hnode1\"", "'h\"x'"), &["invalid name"]),
        ("name with ;", &GOOD.replace("\"hnode1\"", "\"h;reboot\""), &["invalid name \"h;reboot\""]),
        ("name with $()", &GOOD.replace("\"hnode1\"", "\"$(id)\""), &["invalid name \"$(id)\""]),
        ("name with newline", &GOOD.replace("\"hnode1\"", "\"h\\nx\""), &["invalid name"]),
        ("reserved name", &GOOD.replace("\"hnode1\"", "\"all\""), &["reserved for a group"]),
        ("unknown role", &GOOD.replace("role = \"hnode\"", "role = \"boss\""), &["cloud.toml:17", "boss"]),
        (
            "duplicate name",
            &format!("{GOOD}\n[[node]]\nname = \"hnode1\"\nmac = \"52:54:00:00:02:02\"\nip = \"10.0.0.32\"\nrole = \"hnode\"\n"),
            &["duplicate node name \"hnode1\"", "first defined on line 14"],
        ),
        (
            "duplicate MAC",
            &format!("{GOOD}\n[[node]]\nname = \"hnode2\"\nmac = \"52-54-00-00-02-01\"\nip = \"10.0.0.32\"\nrole = \"hnode\"\n"),
            &["already belongs to node \"hnode1\""],
        ),
        (
            "duplicate IP",
            &format!("{GOOD}\n[[node]]\nname = \"hnode2\"\nmac = \"52:54:00:00:02:02\"\nip = \"10.0.0.31\"\nrole = \"hnode\"\n"),
            &["10.0.0.31 already belongs to node \"hnode1\""],
        ),
        ("address injection", &GOOD.replace("role = \"hnode\"", "role = \"hnode\"\naddress = \"h;rm -rf /\""), &["invalid address"]),
    ];
    for (what, inventory, needles) in cases {
        let (code, err) = run_with(inventory);
        assert_eq!(code, Some(2), "{what}: {err}");
        for n in *needles {
            assert!(err.contains(n), "{what}: expected {n:?} in:\n{err}");
        }
    }
}

#[test]
fn missing_inventory_says_where_it_looked() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(crate::support::bin())
        .args(["run", "--", "true"])
        .current_dir(dir.path())
        .env_remove("CLOUDCTL_INVENTORY")
        .env("XDG_CONFIG_HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("cloud.toml") && err.contains("-i FILE") && err.contains("lab up"),
        "{err}"
    );
}

#[test]
fn inventory_from_env_and_unknown_group() {
    let dir = tempfile::tempdir().unwrap();
    let inv = write(dir.path(), "cloud.toml", GOOD);
    let out = std::process::Command::new(crate::support::bin())
        .args(["run", "--on", "nosuch", "--", "true"])
        .env("CLOUDCTL_INVENTORY", &inv)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("no host or group named \"nosuch\"") && err.contains("hnode1"),
        "{err}"
    );
}

#[test]
fn json_errors_are_one_document_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let inv = write(dir.path(), "cloud.toml", "[cloud]\nname = \"t\"\nbogus = 1\n");
    let out = cloudctl(&["--json", "-i", inv.to_str().unwrap(), "host", "list"]);
    assert_eq!(out.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(doc["exit_code"], 2);
    assert_eq!(doc["ok"], false);
    assert!(doc["error"].as_str().unwrap().contains("bogus"));
}

#[test]
fn host_list_shows_unpinned_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let inv = write(
        dir.path(),
        "cloud.toml",
        &GOOD.replace("KH", dir.path().join("kh").to_str().unwrap()),
    );
    let out = cloudctl(&["-i", inv.to_str().unwrap(), "host", "list"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stdout).contains("not pinned: cloudctl host trust hnode1"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn run_dry_run_shows_commands_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let inv = write(dir.path(), "cloud.toml", GOOD);
    // 10.0.0.31 is never contacted: a dry run of `run` needs no connection.
    let out = cloudctl(&["-n", "-i", inv.to_str().unwrap(), "run", "--", "touch", "/tmp/x y"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("run: touch '/tmp/x y'") && err.contains("nothing was changed"),
        "{err}"
    );
}

#[test]
fn lab_needs_root_or_valid_arguments() {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let out = cloudctl(&["lab", "up", "--name", "Bad Name"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    if root {
        assert!(err.contains("Bad Name"), "{err}");
    } else {
        assert!(err.contains("needs root"), "{err}");
    }
}

/// A huge number of seconds is refused with exit 2 and one JSON document, naming the value, before
/// anything is touched (it used to overflow the clock: a panic, exit 101, no JSON).
#[test]
fn huge_time_limits_are_refused_with_exit_2_and_one_json_document() {
    let dir = tempfile::tempdir().unwrap();
    let huge_inv = GOOD.replace(
        "identity = \"ID\"",
        "identity = \"ID\"\nhost_timeout = 9223372036854775807",
    );
    let huge = write(dir.path(), "huge.toml", &huge_inv);
    let good = write(dir.path(), "good.toml", GOOD);
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "-i",
                good.to_str().unwrap(),
                "--yes",
                "instance",
                "start",
                "web",
                "--wait",
                "18446744073709551615",
            ],
            "--wait 18446744073709551615 is too long",
        ),
        (
            &[
                "-i",
                good.to_str().unwrap(),
                "--yes",
                "instance",
                "create",
                "web",
                "--hnode",
                "hnode1",
                "--copy",
                "/x.img",
                "--wait",
                "18446744073709551615",
            ],
            "--wait 18446744073709551615 is too long",
        ),
        (
            &["-i", huge.to_str().unwrap(), "run", "--on", "hnode1", "--", "true"],
            "host_timeout",
        ),
        (
            &[
                "-i",
                good.to_str().unwrap(),
                "--yes",
                "hnode",
                "boot",
                "hnode1",
                "--wait",
                "18446744073709551615",
            ],
            "--wait 18446744073709551615 is too long",
        ),
        (
            &[
                "-i",
                good.to_str().unwrap(),
                "--yes",
                "instance",
                "migrate",
                "web",
                "--to",
                "hnode1",
                "--timeout",
                "18446744073709551615",
            ],
            "--timeout 18446744073709551615 is too long",
        ),
    ];
    for (args, needle) in cases {
        let out = cloudctl(&[&["--json"], args].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("exactly one JSON document");
        assert_eq!(doc["exit_code"], 2);
        let error = doc["error"].as_str().unwrap();
        assert!(error.contains(needle) && error.contains("604800"), "{args:?}: {error}");
    }
}

#[test]
fn a_reader_that_closes_stdout_early_is_not_a_panic() {
    // Enough nodes that `node list --json` is far bigger than a pipe's buffer.
    let dir = tempfile::tempdir().unwrap();
    let mut inv = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/seed-lab.toml")).unwrap();
    inv = inv.replace("subnet = \"10.0.0.0/24\"", "subnet = \"10.0.0.0/16\"");
    for i in 0..3000u32 {
        let [_, _, a, b] = i.to_be_bytes();
        inv += &format!(
            "\n[[node]]\nname = \"many{i}\"\nmac = \"52:54:02:00:{a:02x}:{b:02x}\"\nip = \"10.0.{}.{}\"\nrole = \"hnode\"\n",
            1 + i / 200,
            1 + i % 200
        );
    }
    let path = write(dir.path(), "cloud.toml", &inv);
    let mut child = std::process::Command::new(crate::support::bin())
        .args(["-i", path.to_str().unwrap(), "node", "list", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // `| head -c1`: one byte read, then the pipe is closed.
    let mut first = [0u8; 1];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut first).unwrap();
    assert_eq!(&first, b"{");
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.code(),
        Some(141),
        "128 + SIGPIPE, as a Unix filter: {stderr}"
    );
}

/// `hnode drain` / `undrain` change only the inventory: atomically, keeping its comments; a dry
/// run, a missing --yes without a TTY, or a node that is no hardware node change nothing.
#[test]
fn drain_and_undrain_edit_only_the_drained_flag() {
    let dir = tempfile::tempdir().unwrap();
    let seed = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed-lab.toml"))
        .unwrap();
    let inv = write(dir.path(), "cloud.toml", &seed);
    let inv = inv.to_str().unwrap();
    let read = || std::fs::read_to_string(inv).unwrap();
    let out = cloudctl(&["-i", inv, "-n", "hnode", "drain", "hnode1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("would be marked drained"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(read(), seed);
    let out = cloudctl(&["-i", inv, "hnode", "drain", "hnode1"]);
    assert_eq!(out.status.code(), Some(6), "no TTY, no --yes: {}", text(&out.stderr));
    assert_eq!(read(), seed);
    let out = cloudctl(&["-i", inv, "--yes", "hnode", "drain", "snode1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no hardware node named"),
        "{}",
        text(&out.stderr)
    );
    let out = cloudctl(&["-i", inv, "--yes", "--json", "hnode", "drain", "hnode1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["drained"].as_bool(), v["changed"].as_bool()),
        (Some(true), Some(true))
    );
    let drained = read();
    assert!(drained.contains("name = \"hnode1\"") && drained.contains("drained = true"));
    assert_eq!(drained.replace("drained = true\n", ""), seed, "only the flag was added");
    let out = cloudctl(&["-i", inv, "--yes", "hnode", "drain", "hnode1"]);
    assert!(text(&out.stderr).contains("already drained: no changes"));
    let out = cloudctl(&["-i", inv, "--yes", "hnode", "undrain", "hnode1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(read(), seed);
}

/// A host that accepts the TCP connection but never speaks SSH (hung, or its sshd stopped) is
/// unreachable (exit 4) after connect_timeout, named as a timeout; it is not mistaken for a host
/// that lost its pinned key.
#[test]
fn a_host_that_never_finishes_the_handshake_is_unreachable_not_a_changed_key() {
    let listener = std::net::TcpListener::bind("127.0.0.31:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    // Any pinned key will do: the host never gets as far as offering one.
    let pinned = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPqIxu0wCQ2s16urOUUyF0BlTldjLAygyKp2D81Yymbv";
    let known = write(dir.path(), "known_hosts", &format!("[127.0.0.31]:{port} {pinned}\n"));
    let inv = GOOD
        .replace(
            "known_hosts = \"KH\"",
            &format!(
                "known_hosts = \"{}\"\nport = {port}\nconnect_timeout = 1",
                known.display()
            ),
        )
        .replace("10.0.0.", "127.0.0.");
    let inv = write(dir.path(), "cloud.toml", &inv);
    let started = std::time::Instant::now();
    let out = cloudctl(&["-i", inv.to_str().unwrap(), "run", "--on", "hnode1", "--", "true"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("SSH handshake timed out after 1 s"), "{err}");
    assert!(!err.contains("pinned"), "a hung host reported as a key problem: {err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    drop(listener);
}

/// A name, MAC, IPv4 address or size that cannot be one is refused by the command line itself:
/// exit 2 naming the value and why, before any inventory is read (here there is none), as one
/// JSON document with --json.
#[test]
fn typed_values_are_refused_by_the_command_line_naming_them() {
    let cases: [(&[&str], &str, &str); 7] = [
        (
            &["node", "add", "Bad_Name", "--mac", "52:54:00:00:02:09"],
            "Bad_Name",
            "invalid name",
        ),
        (&["node", "add", "hnode9", "--mac", "zz:zz"], "zz:zz", "invalid MAC"),
        (
            &[
                "node",
                "add",
                "hnode9",
                "--mac",
                "52:54:00:00:02:09",
                "--ip",
                "10.0.0.999",
            ],
            "10.0.0.999",
            "IPv4",
        ),
        (
            &["instance", "create", "We_b", "--hnode", "hnode1", "--copy", "/x"],
            "We_b",
            "invalid name",
        ),
        (
            &[
                "instance", "create", "web9", "--hnode", "hnode1", "--copy", "/x", "--disk", "12Q",
            ],
            "12Q",
            "invalid size",
        ),
        (
            &[
                "instance", "create", "web9", "--hnode", "hnode1", "--copy", "/x", "--ip", "1.2.3",
            ],
            "1.2.3",
            "IPv4",
        ),
        (
            &[
                "instance",
                "create",
                "web9",
                "--hnode",
                "hnode1",
                "--copy",
                "/x",
                "--mac",
                "01:00:5e:00:00:02",
            ],
            "01:00:5e:00:00:02",
            "multicast",
        ),
    ];
    refused_by_the_command_line(&["-i", "/nonexistent/cloud.toml"], &cases);
    // Good values still pass the command line (and then meet the missing inventory).
    let out = cloudctl(&[
        "-i",
        "/nonexistent/cloud.toml",
        "node",
        "add",
        "hnode9",
        "--mac",
        "52-54-00-00-02-09",
        "--ip",
        "10.0.0.40",
    ]);
    assert!(text(&out.stderr).contains("nonexistent"), "{}", text(&out.stderr));
}

/// Every other typed value is refused the same way: names in every verb (positional, --to,
/// --hnode, --via, --on, --profile, --debootstrap), a --force-wipe disk that is no path, and a
/// time limit over a week; exit 2 naming the value and why, before the inventory is read, and
/// exactly one JSON document with --json.
#[test]
fn typed_values_of_every_verb_are_refused_by_the_command_line() {
    let cases: [(&[&str], &str, &str); 16] = [
        (&["node", "remove", "Web_1"], "Web_1", "invalid name"),
        (&["hnode", "drain", "hnode 1"], "hnode 1", "invalid name"),
        (
            &["instance", "migrate", "web", "--to", "hn--1"],
            "hn--1",
            "\"--\" is reserved",
        ),
        (&["instance", "stop", "$(touch x)"], "$(touch x)", "invalid name"),
        (
            &[
                "instance",
                "create",
                "web9",
                "--hnode",
                "hnode1",
                "--debootstrap",
                "Bookworm",
            ],
            "Bookworm",
            "invalid name",
        ),
        (
            &["run", "--on", "hnode1,Hnode2", "--", "true"],
            "Hnode2",
            "invalid name",
        ),
        (&["image", "remove", "../golden"], "../golden", "invalid name"),
        (
            &["storage", "init", "--force-wipe", "sdb"],
            "sdb",
            "invalid remote path",
        ),
        (
            &["hnode", "poweroff", "hnode1", "--wait", "604801"],
            "604801",
            "at most 604800 seconds",
        ),
        (
            &["lab", "status", "--name", "Lab_1"],
            "Lab_1",
            "use 1-8 lowercase letters or digits",
        ),
        (
            &["lab", "down", "--name", "labnumber9"],
            "labnumber9",
            "use 1-8 lowercase letters or digits",
        ),
        (
            &["node", "add", "web2", "--mac", "52:54:00:00:09:09", "--role", "boss"],
            "boss",
            "unknown role \"boss\": use hnode or snode",
        ),
        (
            &["instance", "create", "web9", "--hnode", "hnode1", "--copy", "../golden"],
            "../golden",
            "--copy takes an absolute image path",
        ),
        (
            &[
                "instance",
                "create",
                "web9",
                "--hnode",
                "hnode1",
                "--copy",
                "/srv/$(id).img",
            ],
            "/srv/$(id).img",
            "invalid remote path",
        ),
        (
            &["instance", "stop", "web", "--grace", "604801"],
            "604801",
            "--grace 604801 is too long: at most 604800 seconds",
        ),
        (
            &["instance", "remove", "web", "--grace", "ten"],
            "ten",
            "write a whole number of seconds",
        ),
    ];
    refused_by_the_command_line(&["-i", "/nonexistent/cloud.toml", "--yes"], &cases);
    // Good values (`auto`, groups, a week exactly) still pass the command line.
    for args in [
        &["instance", "migrate", "web", "--to", "auto"][..],
        &["run", "--on", "hnode,hnode1", "--", "true"],
        &["hnode", "poweroff", "hnode1", "--wait", "604800"],
        &["instance", "stop", "web", "--grace", "604800"],
        &["instance", "create", "web9", "--hnode", "hnode1", "--copy", "golden"],
        &[
            "instance",
            "create",
            "web9",
            "--hnode",
            "hnode1",
            "--copy",
            "/srv/golden.img",
        ],
        &["node", "add", "web2", "--mac", "52:54:00:00:09:09", "--role", " snode "],
    ] {
        let out = cloudctl(&[&["-i", "/nonexistent/cloud.toml", "--yes"], args].concat());
        assert!(
            text(&out.stderr).contains("nonexistent"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

/// Each `(args, value, why)` is refused by the command line itself, before the inventory
/// (`global` names a missing one) is read: exit 2 naming the value and the type's reason, and
/// with `--json` exactly one JSON document saying the same.
fn refused_by_the_command_line(global: &[&str], cases: &[(&[&str], &str, &str)]) {
    for (args, value, why) in cases {
        let out = cloudctl(&[global, args].concat());
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(&format!("invalid value '{value}'")) && err.contains(why),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("nonexistent"),
            "refused before the inventory is read: {err}"
        );
        let json = cloudctl(&[&["--json"], global, args].concat());
        let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("exactly one JSON document");
        assert_eq!(doc["exit_code"], 2, "{doc}");
        assert!(doc["error"].as_str().unwrap().contains(value), "{doc}");
    }
}
