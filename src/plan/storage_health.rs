//! What a node's kernel says about its replicated and RAID storage: `/proc/drbd` (DRBD 8.4's
//! status file, what the lab's and Debian's kernels run) and `/proc/mdstat`, read by one
//! read-only probe and parsed here. Pure.

use serde::Serialize;

/// One DRBD device, from its line in /proc/drbd
/// (` 0: cs:Connected ro:Primary/Primary ds:UpToDate/UpToDate C r-----`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DrbdDevice {
    pub minor: u32,
    /// Connection state: Connected, WFConnection, StandAlone, SyncSource, …
    pub cs: String,
    /// Roles, this node's first (`Primary/Unknown`); empty when unconfigured.
    pub ro: String,
    /// Disk states, this node's first (`UpToDate/DUnknown`); empty when unconfigured.
    pub ds: String,
    /// The resync progress line's percentage (`sync'ed: 37.5%`), while it resyncs.
    pub synced: Option<String>,
}

/// One md array, from its two lines in /proc/mdstat
/// (`md127 : active raid1 vdb[1] vda[0](F)` / `65472 blocks super 1.2 [2/1] [U_]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MdArray {
    pub name: String,
    /// `active`, `inactive`, or `active (read-only)`.
    pub state: String,
    /// raid1, multipath, …; empty for an inactive array, which shows none.
    pub level: String,
    /// Member devices, each with whether md marked it failed (`(F)`).
    pub members: Vec<(String, bool)>,
    /// `[wanted/working]`, when the array has redundancy to count.
    pub wanted: Option<u32>,
    pub working: Option<u32>,
    /// A resync, recovery or reshape under way: its kind and progress (`recovery = 12.6%`).
    pub rebuilding: Option<String>,
}

/// What the probe saw. `None`: the status file is not there (no driver loaded).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StorageHealth {
    pub drbd: Option<Vec<DrbdDevice>>,
    pub md: Option<Vec<MdArray>>,
    /// Kernel log lines of the form "Split-Brain detected" since boot.
    pub split_brain_lines: u32,
}

/// The read-only probe: scripts/storage/health.sh (what it prints is described there).
pub const PROBE: &str = include_str!("../../scripts/storage/health.sh");

/// Reads the probe's output (other lines around it are ignored).
pub fn parse(out: &str) -> StorageHealth {
    let mut h = StorageHealth::default();
    let mut section = "";
    let (mut drbd, mut md) = (String::new(), String::new());
    for line in out.lines() {
        match line {
            "--- drbd" | "--- mdstat" | "--- end" => {
                section = line;
                match line {
                    "--- drbd" => h.drbd = Some(Vec::new()),
                    "--- mdstat" => h.md = Some(Vec::new()),
                    _ => {}
                }
                continue;
            }
            _ => {}
        }
        match section {
            "--- drbd" => {
                drbd.push_str(line);
                drbd.push('\n');
            }
            "--- mdstat" => {
                md.push_str(line);
                md.push('\n');
            }
            _ => {
                if let Some(n) = line.strip_prefix("split-brain-lines ") {
                    h.split_brain_lines = n.trim().parse().unwrap_or(0);
                }
            }
        }
    }
    if h.drbd.is_some() {
        h.drbd = Some(parse_drbd(&drbd));
    }
    if h.md.is_some() {
        h.md = Some(parse_mdstat(&md));
    }
    h
}

/// The devices of /proc/drbd (8.4 format).
pub fn parse_drbd(text: &str) -> Vec<DrbdDevice> {
    let mut devices: Vec<DrbdDevice> = Vec::new();
    for line in text.lines() {
        let t = line.trim_start();
        if let Some((minor, rest)) = t.split_once(": ") {
            if let (Ok(minor), true) = (minor.parse::<u32>(), rest.starts_with("cs:")) {
                let field = |key: &str| {
                    rest.split_whitespace()
                        .find_map(|w| w.strip_prefix(key))
                        .unwrap_or_default()
                        .to_string()
                };
                devices.push(DrbdDevice {
                    minor,
                    cs: field("cs:"),
                    ro: field("ro:"),
                    ds: field("ds:"),
                    synced: None,
                });
                continue;
            }
        }
        if let (Some(at), Some(last)) = (t.find("sync'ed:"), devices.last_mut()) {
            last.synced = t[at + "sync'ed:".len()..].split_whitespace().next().map(str::to_string);
        }
    }
    devices
}

/// The arrays of /proc/mdstat.
pub fn parse_mdstat(text: &str) -> Vec<MdArray> {
    let mut arrays: Vec<MdArray> = Vec::new();
    for line in text.lines() {
        if let Some((name, rest)) = line.split_once(" : ") {
            if name.starts_with("md") && !name.contains(' ') {
                let mut words = rest.split_whitespace().peekable();
                let mut state = words.next().unwrap_or_default().to_string();
                if words.peek() == Some(&"(read-only)") || words.peek() == Some(&"(auto-read-only)") {
                    state = format!("{state} {}", words.next().unwrap_or_default());
                }
                let mut level = String::new();
                let mut members = Vec::new();
                for w in words {
                    match w.split_once('[') {
                        Some((dev, tail)) => members.push((dev.to_string(), tail.contains("(F)"))),
                        None if level.is_empty() && state.starts_with("active") => level = w.to_string(),
                        None => {}
                    }
                }
                arrays.push(MdArray {
                    name: name.to_string(),
                    state,
                    level,
                    members,
                    wanted: None,
                    working: None,
                    rebuilding: None,
                });
                continue;
            }
        }
        let Some(last) = arrays.last_mut() else { continue };
        // `[2/1] [U_]` on the line after the array's name.
        if let Some(count) = line
            .split_whitespace()
            .find(|w| w.starts_with('[') && w.ends_with(']') && w.contains('/'))
        {
            if let Some((a, b)) = count.trim_matches(['[', ']']).split_once('/') {
                last.wanted = a.parse().ok();
                last.working = b.parse().ok();
            }
        }
        for kind in ["recovery", "resync", "reshape", "check"] {
            if let Some(at) = line.find(&format!("{kind} =")) {
                let progress = line[at + kind.len() + 2..]
                    .split_whitespace()
                    .next()
                    .unwrap_or_default();
                last.rebuilding = Some(format!("{kind} {progress}"));
            }
        }
    }
    arrays
}

/// What is wrong with one md array, if anything.
pub fn md_problem(a: &MdArray) -> Option<String> {
    let failed: Vec<&str> = a.members.iter().filter(|m| m.1).map(|m| m.0.as_str()).collect();
    let mut why = Vec::new();
    if !a.state.starts_with("active") {
        why.push(format!("it is {}", a.state));
    }
    if let (Some(w), Some(n)) = (a.wanted, a.working) {
        if n < w {
            why.push(format!("{n} of its {w} members work"));
        }
    }
    if !failed.is_empty() {
        why.push(format!("md marked {} failed", failed.join(", ")));
    }
    if why.is_empty() {
        return None;
    }
    let rebuilding = a
        .rebuilding
        .as_ref()
        .map(|r| format!(" ({r} under way)"))
        .unwrap_or_default();
    Some(format!(
        "md array {} ({}) is degraded: {}{rebuilding}",
        a.name,
        if a.level.is_empty() { "no level shown" } else { &a.level },
        why.join(", ")
    ))
}

/// A DRBD device's trouble: `(check, problem)`. `split_brain_logged`: the kernel logged a split
/// brain since boot; with the connection given up (StandAlone) that is what it was.
pub fn drbd_problem(d: &DrbdDevice, split_brain_logged: bool) -> Option<(&'static str, String)> {
    let dev = format!("DRBD device {} (/dev/drbd{})", d.minor, d.minor);
    match d.cs.as_str() {
        "Unconfigured" => Some(("drbd_down", format!("{dev} is not configured (the resource is down)"))),
        "StandAlone" if split_brain_logged => Some((
            "drbd_split_brain",
            format!(
                "{dev} detected a split brain and dropped its connection (StandAlone, roles {}, disks {}): both sides wrote while apart",
                d.ro, d.ds
            ),
        )),
        "StandAlone" | "WFConnection" | "Disconnecting" | "Unconnected" | "Timeout" | "BrokenPipe"
        | "NetworkFailure" | "ProtocolError" | "TearDown" | "WFReportParams" => Some((
            "drbd_disconnected",
            format!(
                "{dev} is not connected to its peer ({}, roles {}, disks {}): writes are not replicated",
                d.cs, d.ro, d.ds
            ),
        )),
        _ if d.ds != "UpToDate/UpToDate" => Some((
            "drbd_degraded",
            format!(
                "{dev} is {} but its disks are {}{}",
                d.cs,
                d.ds,
                d.synced
                    .as_ref()
                    .map(|s| format!(" (resync {s} done)"))
                    .unwrap_or_default()
            ),
        )),
        _ => None,
    }
}
