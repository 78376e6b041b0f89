//! Read-only facts about a hardware node for guest commands: hypervisor version, memory, bridge,
//! tools, the shared disk as this node sees it, and the guests running there. Script text and
//! parsing only; pure.

use super::Guest;
use crate::inventory::Hypervisor;
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
    pub guests: Vec<GuestSeen>,
}

impl NodeFacts {
    pub fn guest(&self, name: &str) -> Option<&GuestSeen> {
        self.guests.iter().find(|s| s.name == name)
    }
}

fn q(s: &str) -> String {
    crate::shell::quote(s).into_owned()
}

/// Lists the guests on a node as `guest NAME STATE` lines.
pub fn guests_script(h: Hypervisor) -> String {
    match h {
        Hypervisor::Kvm => format!(
            r#"for f in {dir}/*.pid; do
  [ -e "$f" ] || continue
  n=${{f##*/}}; n=${{n%.pid}}; pid=$(cat "$f" 2>/dev/null)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && case $(cat /proc/$pid/comm 2>/dev/null) in qemu*) true;; *) false;; esac; then
    st=$(printf '%s\n' '{{"execute":"qmp_capabilities"}}' '{{"execute":"query-status"}}' | socat -t 3 - "UNIX-CONNECT:{dir}/$n.qmp" 2>/dev/null | sed -n 's/.*"status": *"\([a-z-]*\)".*/\1/p' | tail -n 1)
    echo "guest $n qemu-${{st:-unknown}}"
  else
    echo "guest $n dead"
  fi
done"#,
            dir = super::RUN_DIR
        ),
        Hypervisor::Xen => r#"xl list 2>/dev/null | tail -n +2 | while read -r name id mem vcpus state rest; do
  [ "$name" = Domain-0 ] || echo "guest $name xen-$state"
done"#
            .into(),
    }
}

/// Node facts for guest `g` (copy source: `source`), for the node's hypervisor.
pub fn facts_script(g: &Guest, store: &str, source: Option<&str>, need: &[&str]) -> String {
    let version = match g.hypervisor {
        Hypervisor::Kvm => "qemu-system-x86_64 --version 2>/dev/null | head -n 1",
        Hypervisor::Xen => "xl info 2>/dev/null | sed -n 's/^xen_version *: *//p'",
    };
    let memory = match g.hypervisor {
        Hypervisor::Kvm => "awk '/^MemAvailable:/ { print int($2 / 1024) }' /proc/meminfo",
        Hypervisor::Xen => "xl info 2>/dev/null | sed -n 's/^free_memory *: *//p'",
    };
    let disk = q(&g.disk());
    let mut s = format!(
        "echo \"version $({version})\"\necho \"mem $({memory})\"\n\
         [ -d /sys/class/net/{br}/bridge ] && echo bridge\n\
         for t in {tools}; do command -v \"$t\" >/dev/null 2>&1 || echo \"missing $t\"; done\n\
         echo \"arch $(dpkg --print-architecture 2>/dev/null || uname -m)\"\n\
         [ -e {disk} ] && echo \"disk $(stat -L -c '%s %i' {disk})\"\n\
         dd if={disk} of=/dev/null bs=64k count=1 2>/dev/null && echo disk-readable\n\
         [ -e {dir} ] && echo dir\n\
         [ -d {store} ] && [ -w {store} ] && echo store-writable\n",
        br = q(g.bridge.as_str()),
        tools = need.iter().map(|t| q(t)).collect::<Vec<_>>().join(" "),
        dir = q(&g.dir),
        store = q(store),
    );
    if let Some(src) = source {
        s += &format!("[ -f {src} ] && echo \"source $(stat -L -c %s {src})\"\n", src = q(src));
    }
    s += &guests_script(g.hypervisor);
    s += "\nexit 0\n";
    s
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
            _ => {}
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

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
