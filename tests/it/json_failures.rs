//! `--json` prints exactly one JSON document on every path of every command, failures included,
//! with no host: a broken inventory, a mistyped option, and every host unreachable (loopback
//! addresses on a closed port). The same outcome, every host unreachable, gives the same exit code
//! (4) through every command that connects, and `--dry-run` of each changes no local file.

use crate::support::{bin, text, write};
use clap::CommandFactory;
use std::path::Path;
use std::process::{Command, Stdio};

/// A loopback port nothing listens on: bound, then let go.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// An example inventory with every host on 127.0.0.x at `port`, a 1 s connect timeout, and its
/// key files in `dir` (so nothing outside the test's folder is read or written).
fn unreachable(dir: &Path, example: &str, port: u16) -> String {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(example)).unwrap();
    let ssh = format!(
        "[ssh]\nport = {port}\nconnect_timeout = 1\nidentity = \"{0}/id\"\nknown_hosts = \"{0}/known_hosts\"\n",
        dir.display()
    );
    let mut out = String::new();
    let mut in_ssh = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_ssh = line.trim() == "[ssh]";
            if in_ssh {
                out += &ssh;
                continue;
            }
        }
        // An `address = "name:port"` would send a DNS query; the node's ip is used instead.
        let by_name = line.starts_with("address = \"") && line[11..].starts_with(|c: char| c.is_ascii_alphabetic());
        if (in_ssh
            && ["port", "identity", "known_hosts", "connect_timeout"]
                .iter()
                .any(|k| line.starts_with(k)))
            || by_name
        {
            continue;
        }
        out += &line.replace("10.0.0.", "127.0.0.");
        out += "\n";
    }
    out
}

/// Runs cloudctl with `--json --yes` and returns its exit code and the one document it printed
/// (the test fails on none, two, or anything after the document).
fn one_document(args: &[&str]) -> (i32, serde_json::Value) {
    let out = Command::new(bin())
        .args(["--json", "--yes"])
        .args(args)
        .env_remove("CLOUDCTL_INVENTORY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}): {}", text(&out.stdout)));
    assert_eq!(
        docs.len(),
        1,
        "{args:?}: {} documents on stdout: {}",
        docs.len(),
        text(&out.stdout)
    );
    let code = out
        .status
        .code()
        .unwrap_or_else(|| panic!("{args:?}: killed by a signal"));
    let doc = docs.into_iter().next().unwrap();
    assert_eq!(
        doc["exit_code"], code,
        "{args:?}: the document's exit_code is not the exit status: {doc}"
    );
    (code, doc)
}

/// Every leaf command, as `noun verb` (or `noun`).
fn every_command() -> Vec<String> {
    fn leaves(c: &clap::Command, prefix: &str, out: &mut Vec<String>) {
        let subs: Vec<_> = c.get_subcommands().filter(|s| s.get_name() != "help").collect();
        if subs.is_empty() {
            out.push(prefix.trim().to_string());
        }
        for s in subs {
            leaves(s, &format!("{prefix} {}", s.get_name()), out);
        }
    }
    let mut out = Vec::new();
    leaves(&cloudctl::cli::Cli::command(), "", &mut out);
    out
}

/// One failing invocation per command: (arguments after the command, exit code), for the seed
/// lab (`S`) or the LAMP example (`L`) with every host unreachable, or no inventory (`-`).
const CASES: &[(&str, char, &[&str], i32)] = &[
    ("run", 'S', &["--on", "all", "--", "true"], 4),
    ("config init", 'S', &[], 4),
    ("config status", 'S', &[], 4),
    (
        "node add",
        'S',
        &["newnode", "--mac", "52:54:00:00:09:09", "--role", "hnode"],
        4,
    ),
    ("node remove", 'S', &["hnode2"], 4),
    ("node list", 'S', &[], 0),
    ("node boot", 'S', &["hnode1"], 4),
    ("storage init", 'S', &[], 4),
    ("storage status", 'S', &[], 4),
    ("hnode boot", 'S', &["hnode1"], 4),
    ("hnode drain", 'S', &["nosuch"], 2),
    ("hnode undrain", 'S', &["nosuch"], 2),
    ("hnode evacuate", 'S', &["hnode1"], 4),
    ("hnode poweroff", 'S', &["hnode1"], 4),
    (
        "instance create",
        'S',
        &["vmx", "--hnode", "hnode1", "--copy", "base"],
        4,
    ),
    ("instance list", 'S', &[], 4),
    ("instance start", 'S', &["web1"], 4),
    ("instance stop", 'S', &["web1"], 4),
    ("instance migrate", 'S', &["web1", "--to", "hnode2"], 4),
    ("instance remove", 'S', &["web1"], 4),
    ("image push", 'S', &["IMAGE"], 4),
    ("image list", 'S', &[], 4),
    ("image remove", 'S', &["nosuch"], 4),
    ("lamp deploy", 'L', &[], 4),
    ("lamp status", 'L', &[], 4),
    ("host trust", 'S', &["all"], 4),
    ("host list", 'S', &[], 0),
    // A doctor's findings are its report: exit 1 when it found any (the man page says so).
    ("doctor", 'S', &[], 1),
    // Planned from the inventory alone: one guest, nothing to move (success is one document too).
    ("cloud rebalance", 'S', &[], 0),
    ("lab up", '-', &["--name", "Bad Name"], 2),
    ("lab status", '-', &["--name", "Bad Name"], 2),
    ("lab power-off", '-', &["--name", "Bad Name", "vm"], 2),
    ("lab power-on", '-', &["--name", "Bad Name", "vm"], 2),
    ("lab power-button", '-', &["--name", "Bad Name", "vm"], 2),
    ("lab bmc-chassis", '-', &["--name", "Bad Name", "vm", "get", "power"], 2),
    ("lab down", '-', &["--name", "Bad Name"], 2),
];

/// Never run here: it serves Wake-on-LAN packets until killed (a lab's own process).
const NOT_HERE: &[&str] = &["lab power-listen"];

#[test]
fn every_failure_of_every_command_is_one_json_document() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    // The identity's public half goes into node files; no connection gets as far as the key.
    write(dir.path(), "id", "not a key: no host is reached\n");
    write(
        dir.path(),
        "id.pub",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPqIxu0wCQ2s16urOUUyF0BlTldjLAygyKp2D81Yymbv test\n",
    );
    let seed = write(dir.path(), "seed.toml", &unreachable(dir.path(), "seed-lab.toml", port));
    let lamp = write(dir.path(), "lamp.toml", &unreachable(dir.path(), "lamp.toml", port));
    let image = write(dir.path(), "base.img", "not really a disk\n");
    let commands = every_command();
    for c in &commands {
        assert!(
            CASES.iter().any(|(n, ..)| n == c) || NOT_HERE.contains(&c.as_str()),
            "`{c}` has no case here: add one (its failure must print one JSON document)"
        );
    }
    let mut codes = Vec::new();
    for (command, inventory, args, want) in CASES {
        assert!(commands.contains(&command.to_string()), "no command `{command}`");
        let mut argv: Vec<&str> = match inventory {
            'S' => vec!["-i", seed.to_str().unwrap()],
            'L' => vec!["-i", lamp.to_str().unwrap()],
            _ => vec![],
        };
        argv.extend(command.split(' '));
        argv.extend(
            args.iter()
                .map(|a| if *a == "IMAGE" { image.to_str().unwrap() } else { a }),
        );
        let started = std::time::Instant::now();
        let (code, doc) = one_document(&argv);
        assert!(started.elapsed().as_secs() < 30, "{command}: {:?}", started.elapsed());
        codes.push(format!("{command}: {code}"));
        assert_eq!(code, *want, "{command}: {doc}");
        if code != 0 {
            assert_eq!(doc["ok"], false, "{command}: {doc}");
        }
    }
    crate::support::report(&format!("exit codes with every host unreachable: {}", codes.join(", ")));
}

/// A broken inventory: exit 2 and one document naming the bad key, for every command that reads one.
#[test]
fn a_broken_inventory_is_one_json_document_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "cloud.toml", "[cloud]\nname = \"t\"\nbogus = 1\n");
    let image = write(dir.path(), "base.img", "x\n");
    for (command, inventory, args, _) in CASES.iter().filter(|(_, i, ..)| *i != '-') {
        let mut argv = vec!["-i", bad.to_str().unwrap()];
        argv.extend(command.split(' '));
        argv.extend(
            args.iter()
                .map(|a| if *a == "IMAGE" { image.to_str().unwrap() } else { a }),
        );
        let (code, doc) = one_document(&argv);
        assert_eq!(code, 2, "{command} ({inventory}): {doc}");
        assert!(
            doc["error"].as_str().is_some_and(|e| e.contains("bogus")),
            "{command}: {doc}"
        );
    }
}

/// A mistyped option is a usage error (exit 2) and, under `--json`, one document like any other
/// error, for every command; after `--` the word `--json` is the remote command's.
#[test]
fn a_usage_error_is_one_json_document_for_every_command() {
    for c in every_command() {
        let mut argv: Vec<&str> = c.split(' ').collect();
        argv.push("--no-such-option");
        let (code, doc) = one_document(&argv);
        assert_eq!(code, 2, "{c}: {doc}");
        assert!(
            doc["error"].as_str().is_some_and(|e| e.contains("--no-such-option")),
            "{c}: {doc}"
        );
    }
    let out = crate::support::cloudctl(&["run", "--", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}

/// Every file and folder under `root` with its content's digest.
fn snapshot(root: &Path) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if p.is_dir() {
                out.insert(rel, "folder".into());
                dirs.push(p);
            } else {
                out.insert(rel, cloudctl::digest::sha256_hex(&std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

/// `--dry-run` of every command, with every host unreachable, under both host-key policies,
/// leaves the inventory, known_hosts, the hostkeys folder and every other file of its folder
/// byte-identical (with no host reachable, nothing remote is there to change or pin).
#[test]
fn a_dry_run_changes_no_local_file_under_either_host_key_policy() {
    let dir = tempfile::tempdir().unwrap();
    let port = closed_port();
    write(dir.path(), "id", "not a key: no host is reached\n");
    write(
        dir.path(),
        "id.pub",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPqIxu0wCQ2s16urOUUyF0BlTldjLAygyKp2D81Yymbv test\n",
    );
    write(dir.path(), "known_hosts", "");
    std::fs::create_dir(dir.path().join("hostkeys")).unwrap();
    let image = write(dir.path(), "base.img", "not really a disk\n");
    for policy in ["strict", "accept-new"] {
        let with_policy = |example: &str| {
            let text: String = unreachable(dir.path(), example, port)
                .lines()
                .filter(|l| !l.starts_with("host_key_policy"))
                .map(|l| format!("{l}\n"))
                .collect();
            text.replacen("[ssh]\n", &format!("[ssh]\nhost_key_policy = \"{policy}\"\n"), 1)
        };
        let seed = write(dir.path(), "seed.toml", &with_policy("seed-lab.toml"));
        let lamp = write(dir.path(), "lamp.toml", &with_policy("lamp.toml"));
        for (command, inventory, args, _) in CASES.iter().filter(|(_, i, ..)| *i != '-') {
            let mut argv = vec!["--dry-run", "-i"];
            argv.push(if *inventory == 'L' {
                lamp.to_str().unwrap()
            } else {
                seed.to_str().unwrap()
            });
            argv.extend(command.split(' '));
            argv.extend(
                args.iter()
                    .map(|a| if *a == "IMAGE" { image.to_str().unwrap() } else { a }),
            );
            let before = snapshot(dir.path());
            let (code, doc) = one_document(&argv);
            assert_eq!(
                snapshot(dir.path()),
                before,
                "{policy}: `{command} --dry-run` (exit {code}) changed a file: {doc}"
            );
        }
    }
}
