//! Read-only facts about a hardware node for guest commands: hypervisor version, memory, bridge,
//! tools, the shared disk as this node sees it, and the guests running there. Script text and
//! parsing only; pure.

use super::Guest;
use crate::error::Error;
use crate::inventory::{Host, Hypervisor, Inventory};
use crate::plan::fact::Fact;
use crate::shell::Script;
use serde::Serialize;

/// A guest's state as the hypervisor reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestState {
    Running,
    Paused,
    /// Waiting for or receiving an incoming migration (Xen: `NAME--incoming`).
    Incoming,
    /// Left behind by a finished migration (Xen: `NAME--migratedaway`); not running.
    MigratedAway,
    /// Shut down or crashed but still known to the hypervisor.
    Stopped,
    /// A pid file whose QEMU is gone.
    Dead,
    Unknown,
}

impl GuestState {
    pub fn as_str(&self) -> &'static str {
        match self {
            GuestState::Running => "running",
            GuestState::Paused => "paused",
            GuestState::Incoming => "incoming",
            GuestState::MigratedAway => "migrated-away",
            GuestState::Stopped => "stopped",
            GuestState::Dead => "dead",
            GuestState::Unknown => "unknown",
        }
    }
    /// A copy that holds the guest's memory (whether or not its CPUs run).
    pub fn is_live(&self) -> bool {
        matches!(
            self,
            GuestState::Running
                | GuestState::Paused
                | GuestState::Incoming
                | GuestState::MigratedAway
                | GuestState::Unknown
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GuestSeen {
    pub name: String,
    pub state: GuestState,
}

/// What a node told us.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeFacts {
    pub hypervisor_version: String,
    pub mem_available_mib: Option<u64>,
    pub bridge: bool,
    pub missing_tools: Vec<String>,
    pub arch: String,
    /// Size and inode of the guest's disk as this node sees it.
    pub disk: Option<(u64, u64)>,
    pub disk_readable: bool,
    pub dir_exists: bool,
    pub source_size: Option<u64>,
    pub store_writable: bool,
    /// The node's SSH server is dropbear (no OpenSSH sshd runs): it refuses an authorized_keys
    /// line with `from=`.
    pub dropbear: bool,
    pub guests: Vec<GuestSeen>,
}

impl NodeFacts {
    pub fn guest(&self, name: &str) -> Option<&GuestSeen> {
        self.guests.iter().find(|s| s.name == name)
    }
}

/// `scripts/instance/guests.sh kvm RUN_DIR | xen` (what it prints is described there).
const GUESTS: &str = super::kvm::with_qmp!("../../../scripts/instance/guests.sh");

/// `scripts/instance/node-facts.sh HYPERVISOR BRIDGE DISK DIR STORE SOURCE TOOL...`.
const NODE_FACTS: &str = include_str!("../../../scripts/instance/node-facts.sh");

fn hypervisor_word(h: Hypervisor) -> &'static str {
    match h {
        Hypervisor::Kvm => "kvm",
        Hypervisor::Xen => "xen",
    }
}

/// Lists the guests on a node as `guest NAME STATE` lines (one command line).
pub fn guests_script(h: Hypervisor) -> String {
    guests_in(h, super::RUN_DIR)
}

/// The same, as a part of a larger probe.
pub fn guests(h: Hypervisor) -> Script {
    guests_call(h, super::RUN_DIR)
}

/// The same, with KVM's pid files and QMP sockets in `run_dir`.
pub fn guests_in(h: Hypervisor, run_dir: &str) -> String {
    guests_call(h, run_dir).build()
}

fn guests_call(h: Hypervisor, run_dir: &str) -> Script {
    let mut s = Script::new();
    match h {
        Hypervisor::Kvm => s.sh_c(GUESTS, &["kvm", run_dir]),
        Hypervisor::Xen => s.sh_c(GUESTS, &["xen"]),
    };
    s
}

/// Node facts for guest `g` (copy source: `source`), for the node's hypervisor, then its guests.
/// Every value is a positional argument of the two programs.
pub fn facts_script(g: &Guest, store: &str, source: Option<&str>, need: &[&str]) -> String {
    let disk = g.disk();
    let mut args = vec![
        hypervisor_word(g.hypervisor),
        g.bridge.as_str(),
        &disk,
        &g.dir,
        store,
        source.unwrap_or(""),
    ];
    args.extend(need);
    crate::shell::sh_c(NODE_FACTS, &args) + "\n" + &guests_script(g.hypervisor) + "\nexit 0\n"
}

fn state_of(raw: &str) -> GuestState {
    if let Some(st) = raw.strip_prefix("qemu-") {
        return match st {
            "running" => GuestState::Running,
            "inmigrate" => GuestState::Incoming,
            "postmigrate" => GuestState::MigratedAway,
            "paused" | "prelaunch" | "suspended" | "debug" | "restore-vm" | "save-vm" => GuestState::Paused,
            "shutdown" | "guest-panicked" | "internal-error" | "io-error" => GuestState::Stopped,
            _ => GuestState::Unknown,
        };
    }
    if let Some(flags) = raw.strip_prefix("xen-") {
        // xl's state column: r b p s c d (running, blocked, paused, shutdown, crashed, dying).
        return if flags.contains(['s', 'c', 'd']) {
            GuestState::Stopped
        } else if flags.contains('p') {
            GuestState::Paused
        } else if flags.contains(['r', 'b']) || flags.chars().all(|c| c == '-') {
            GuestState::Running
        } else {
            GuestState::Unknown
        };
    }
    match raw {
        "dead" => GuestState::Dead,
        _ => GuestState::Unknown,
    }
}

/// One `guest NAME STATE` line; Xen's migration names become the guest's name and state.
fn parse_guest(name: &str, raw: &str) -> GuestSeen {
    let mut state = state_of(raw);
    let mut name = name.to_string();
    if let Some(base) = name.strip_suffix("--incoming") {
        name = base.to_string();
        state = GuestState::Incoming;
    } else if let Some(base) = name.strip_suffix("--migratedaway") {
        name = base.to_string();
        state = GuestState::MigratedAway;
    }
    GuestSeen { name, state }
}

pub fn parse_guests(out: &str) -> Vec<GuestSeen> {
    out.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some("guest")).then(|| (f.next(), f.next()))
        })
        .filter_map(|(n, s)| Some(parse_guest(n?, s.unwrap_or("unknown"))))
        .collect()
}

/// The guests each hardware node runs, by the node's hypervisor (`instance list`, and every verb
/// that must know where a guest is before it starts, moves or powers off anything).
pub struct Guests<'a>(pub &'a Inventory);

impl Fact for Guests<'_> {
    type Value = Vec<GuestSeen>;

    fn script(&self, host: &Host) -> Result<String, Error> {
        Ok(guests_script(super::hypervisor_of(self.0, &host.name)?))
    }

    fn parse(&self, _: &Host, output: &str) -> Vec<GuestSeen> {
        parse_guests(output)
    }

    /// The listing is read as far as it got: its status is that of its last pipeline (a
    /// hypervisor tool failing on one guest), not of the lines it printed.
    fn needs_success(&self) -> bool {
        false
    }
}

pub fn parse_facts(out: &str) -> NodeFacts {
    let mut f = NodeFacts {
        guests: parse_guests(out),
        ..NodeFacts::default()
    };
    for line in out.lines() {
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "version" => f.hypervisor_version = rest.trim().to_string(),
            "mem" => f.mem_available_mib = rest.trim().parse().ok(),
            "bridge" => f.bridge = true,
            "missing" => f.missing_tools.push(rest.trim().to_string()),
            "arch" => f.arch = rest.trim().to_string(),
            "disk" => {
                let mut n = rest.split_whitespace().filter_map(|x| x.parse().ok());
                f.disk = n.next().zip(n.next());
            }
            "disk-readable" => f.disk_readable = true,
            "dir" => f.dir_exists = true,
            "source" => f.source_size = rest.trim().parse().ok(),
            "store-writable" => f.store_writable = true,
            "ssh-server" => f.dropbear = rest.trim() == "dropbear",
            _ => {}
        }
    }
    f
}

/// A node's facts for one guest command.
pub struct NodeProbe {
    /// The program `facts_script` built for the guest.
    pub script: String,
    /// Read the answer whatever the probe's status (`migrate`'s check, which has always done
    /// so; the program ends in `exit 0`, so only a shell that died says otherwise).
    pub any_status: bool,
}

impl Fact for NodeProbe {
    type Value = NodeFacts;

    fn script(&self, _: &Host) -> Result<String, Error> {
        Ok(self.script.clone())
    }

    fn parse(&self, _: &Host, output: &str) -> NodeFacts {
        parse_facts(output)
    }

    fn needs_success(&self) -> bool {
        !self.any_status
    }
}

/// Guest `.0`'s state on a node (`None`: no copy there), asked while it moves.
pub struct StateOf<'a>(pub &'a Guest);

impl Fact for StateOf<'_> {
    type Value = Option<GuestState>;

    fn script(&self, _: &Host) -> Result<String, Error> {
        Ok(guests_script(self.0.hypervisor) + "\nexit 0")
    }

    fn parse(&self, _: &Host, output: &str) -> Option<GuestState> {
        parse_guests(output)
            .into_iter()
            .find(|s| s.name == self.0.name.as_str())
            .map(|s| s.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `script` in `sh` in the folder `cwd`.
    fn sh_in(cwd: &std::path::Path, script: &str) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(cwd)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// The facts probe run by a real `sh` for a guest whose folder, store and copy source hold
    /// `$()`, backticks and `;`: every fact is about those literal paths, and nothing ran.
    #[test]
    fn the_node_probe_reports_hostile_paths_literally() {
        let tmp = tempfile::tempdir().unwrap();
        let ran = tmp.path().join("ran");
        // `ran` is created in the shell's folder (tmp) if anything in a value is executed.
        let hostile = |what: &str| tmp.path().join(format!("{what} $(touch ran) `touch ran`; touch ran"));
        let (dir, store, source) = (hostile("dir"), hostile("store"), hostile("source"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&store).unwrap();
        std::fs::write(dir.join("disk.img"), vec![0u8; 4096]).unwrap();
        std::fs::write(&source, vec![0u8; 1000]).unwrap();
        let mut g = crate::plan::instance::tests_support::guest("vm1");
        g.dir = dir.to_str().unwrap().to_string();
        let script = facts_script(
            &g,
            store.to_str().unwrap(),
            source.to_str(),
            &["sh", "cloudctl-no-such-tool"],
        );
        let f = parse_facts(&sh_in(tmp.path(), &script));
        assert!(!ran.exists(), "a value was executed");
        assert!(f.dir_exists && f.store_writable && f.disk_readable, "{f:?}");
        assert_eq!(f.disk.map(|(size, _)| size), Some(4096));
        assert_eq!(f.source_size, Some(1000));
        assert_eq!(f.missing_tools, ["cloudctl-no-such-tool"]);
        assert!(f.mem_available_mib.is_some(), "{f:?}");
        assert!(!f.arch.is_empty());
        // None of it there: no facts claimed.
        g.dir = tmp.path().join("absent").to_str().unwrap().to_string();
        let f = parse_facts(&sh_in(tmp.path(), &facts_script(&g, "/nonexistent-store", None, &[])));
        assert!(!f.dir_exists && !f.store_writable && !f.disk_readable && f.disk.is_none() && f.source_size.is_none());
    }

    /// A pid file whose process is not a QEMU (this test's own shell, or no process) is a dead guest.
    #[test]
    fn the_guest_listing_reports_pid_files_without_a_qemu_as_dead() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("vm1.pid"), format!("{}\n", std::process::id())).unwrap();
        std::fs::write(tmp.path().join("vm2.pid"), "999999999\n").unwrap();
        let mut seen = parse_guests(&sh_in(
            tmp.path(),
            &guests_in(Hypervisor::Kvm, tmp.path().to_str().unwrap()),
        ));
        seen.sort_by(|a, b| a.name.cmp(&b.name));
        let dead = |n: &str| GuestSeen {
            name: n.into(),
            state: GuestState::Dead,
        };
        assert_eq!(seen, [dead("vm1"), dead("vm2")]);
        assert!(parse_guests(&sh_in(tmp.path(), &guests_in(Hypervisor::Kvm, "/nonexistent"))).is_empty());
    }

    #[test]
    fn xen_migration_names_map_to_the_guest() {
        let g =
            parse_guests("guest web1--incoming xen---p---\nguest web2--migratedaway xen---p---\nguest db xen-r-----\n");
        assert_eq!(
            g[0],
            GuestSeen {
                name: "web1".into(),
                state: GuestState::Incoming
            }
        );
        assert_eq!(
            g[1],
            GuestSeen {
                name: "web2".into(),
                state: GuestState::MigratedAway
            }
        );
        assert_eq!(g[2].state, GuestState::Running);
    }

    #[test]
    fn facts_parse() {
        let f = parse_facts("version QEMU emulator version 7.2.15\nmem 20000\nbridge\nmissing socat\narch amd64\ndisk 67108864 1234\ndisk-readable\nguest a qemu-running\nguest b dead\n");
        assert_eq!(f.mem_available_mib, Some(20000));
        assert!(f.bridge && f.disk_readable && !f.dir_exists);
        assert_eq!(f.missing_tools, vec!["socat"]);
        assert_eq!(f.disk, Some((67108864, 1234)));
        assert_eq!(f.guests[1].state, GuestState::Dead);
    }
}

#[cfg(test)]
mod guests_fact {
    //! `Guests` gathered host-free: the scripted connector answers for each hardware node.
    use super::*;
    use crate::exec::record::{Log, ScriptedConnector};
    use crate::exec::{gather, HostError, Limits, ScriptOutput};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn each_node_lists_its_guests_and_an_unreachable_one_is_said_so() {
        let inv = crate::inventory::parse("seed-lab.toml", include_str!("../../../examples/seed-lab.toml")).unwrap();
        let mut nodes = super::super::hnodes(&inv);
        nodes.push(Host {
            name: "ghost".into(),
            role: "hnode",
            host: "127.0.0.9".into(),
            port: 22,
        });
        let log = Log::default();
        let connector = ScriptedConnector {
            log: log.clone(),
            connect: Arc::new(|name| match name {
                "hnode2" => Err(HostError::Unreachable("hnode2: connection refused".into())),
                _ => Ok(()),
            }),
            // hnode1's listing ends in a failing pipeline: what it printed still counts.
            answer: Arc::new(|name, _| {
                Ok(match name {
                    "hnode1" => ScriptOutput {
                        output: "guest web1 xen-r-----\nguest db1--incoming xen---p---\n".into(),
                        status: 1,
                    },
                    _ => ScriptOutput {
                        output: String::new(),
                        status: 0,
                    },
                })
            }),
        };
        let limits = Limits {
            forks: 2,
            host_timeout: Duration::from_secs(5),
        };
        let got = gather(&nodes, &Guests(&inv), &connector, &limits);
        let seen: Vec<_> = got.into_iter().map(|a| a.unwrap()).collect();
        let hnode1 = seen[0].as_ref().unwrap();
        assert_eq!(
            hnode1.iter().map(|g| (g.name.as_str(), g.state)).collect::<Vec<_>>(),
            [("web1", GuestState::Running), ("db1", GuestState::Incoming)]
        );
        let e = seen[1].as_ref().unwrap_err();
        assert_eq!(
            (e.exit(), e.to_string()),
            (crate::error::Exit::Unreachable, "hnode2: connection refused".into())
        );
        // A node the inventory does not know is not asked (no hypervisor to list with).
        assert_eq!(seen[2].as_ref().unwrap_err().exit(), crate::error::Exit::Usage);
        let asked: Vec<String> = log.lock().unwrap().iter().map(|(h, _)| h.clone()).collect();
        assert_eq!(asked, ["hnode1"]);
        assert!(log
            .lock()
            .unwrap()
            .iter()
            .all(|(_, s)| *s == guests_script(crate::inventory::Hypervisor::Xen)));
    }
}
