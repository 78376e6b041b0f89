//! Planner for `instance remove`: stop the guest on its node, then delete its folder on the
//! shared storage only when the folder carries the create mark recorded for it, and holds
//! nothing but what `instance create` puts there. Script text, parsing and the decision; pure.

use super::{backend, script, Guest};
use crate::error::Error;
use crate::inventory::Host;
use crate::plan::fact::Fact;
use crate::plan::{HostPlan, Plan, When};
use serde::Serialize;

/// The create mark's file in a guest folder (written by `instance create`'s build script).
pub const MARK: &str = ".cloudctl-create";

/// Files `instance create` (and a running guest) leave in a guest folder: nothing else is ever deleted.
pub const OWN_FILES: [&str; 5] = ["disk.img", "disk.img.building", "xl.cfg", "console.log", MARK];

/// What the guest's node sees of its folder.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FolderFacts {
    /// A directory (not a link) at `<store>/NAME`.
    pub exists: bool,
    /// Something else (a file, a link) at that path.
    pub not_a_folder: bool,
    /// The mark's content, if the file is there.
    pub mark: Option<String>,
    /// Every entry of the folder (names only).
    pub entries: Vec<String>,
}

/// `scripts/instance/folder-facts.sh DIR MARK` (what it prints is described there).
const FOLDER_FACTS: &str = include_str!("../../../scripts/instance/folder-facts.sh");

/// Read-only: the folder of `g` as its node sees it.
pub fn facts_script(g: &Guest) -> String {
    crate::shell::sh_c(FOLDER_FACTS, &[&g.dir, MARK])
}

/// What is in guest `.0`'s folder on its node (see `facts_script`).
pub struct Folder<'a>(pub &'a Guest);

impl Fact for Folder<'_> {
    type Value = FolderFacts;

    fn script(&self, _: &Host) -> Result<String, Error> {
        Ok(facts_script(self.0))
    }

    fn parse(&self, _: &Host, output: &str) -> FolderFacts {
        parse_facts(output)
    }
}

pub fn parse_facts(out: &str) -> FolderFacts {
    let mut f = FolderFacts::default();
    for line in out.lines() {
        let (key, rest) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "exists" => f.exists = true,
            "not-a-folder" => f.not_a_folder = true,
            "mark" => f.mark = Some(rest.trim().to_string()),
            "entry" => f.entries.push(rest.to_string()),
            _ => {}
        }
    }
    f
}

/// What happens to the guest's folder.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "folder")]
pub enum Disk {
    /// Deleted: it carries the recorded mark and holds only cloudctl's files.
    Delete,
    /// Kept because `--keep-disk` asked for it.
    Keep,
    /// There is no folder: nothing to delete.
    Absent,
}

/// Decides what to do with the folder; `Err` says why it must not be deleted (exit 2: nothing
/// is touched, not even the guest stopped, so a refusal never leaves a half-removed guest).
pub fn decide(g: &Guest, recorded_nonce: Option<&str>, f: &FolderFacts, keep_disk: bool) -> Result<Disk, String> {
    if keep_disk {
        return Ok(Disk::Keep);
    }
    let keep_hint = format!("pass --keep-disk to remove {} and leave its folder as it is", g.name);
    if f.not_a_folder {
        return Err(format!(
            "{} is not a folder (a link or a file): cloudctl did not make it and will not delete it; {keep_hint}",
            g.dir
        ));
    }
    if !f.exists {
        return Ok(Disk::Absent);
    }
    let Some(nonce) = recorded_nonce else {
        return Err(format!(
            "the inventory holds no create mark for {} (it was created before cloudctl kept one), so nothing proves {} is its folder; {keep_hint}",
            g.name, g.dir
        ));
    };
    match f.mark.as_deref() {
        Some(m) if m == nonce => {}
        Some(_) => {
            return Err(format!(
                "{} carries another create's mark, not the one recorded for {}: it is not this guest's folder; {keep_hint}",
                g.dir, g.name
            ))
        }
        None => {
            return Err(format!(
                "{} has no create mark ({MARK}): cloudctl cannot tell it made it, and deletes nothing it did not make; {keep_hint}",
                g.dir
            ))
        }
    }
    let foreign: Vec<&str> = f
        .entries
        .iter()
        .map(String::as_str)
        .filter(|e| !OWN_FILES.contains(e))
        .collect();
    if !foreign.is_empty() {
        return Err(format!(
            "{} holds files instance create did not make ({}); move them away first, or {keep_hint}",
            g.dir,
            foreign
                .iter()
                .map(|e| crate::types::shown(e))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(Disk::Delete)
}

/// scripts/instance/delete-folder.sh (its arguments and what it does are described there).
pub const DELETE: &str = include_str!("../../../scripts/instance/delete-folder.sh");

/// Stop the guest on `node`, then (for `Disk::Delete`) its folder.
pub fn plan(g: &Guest, node: &Host, disk: &Disk, nonce: Option<&str>, grace_secs: u32) -> Plan {
    let mut steps = backend(g.hypervisor).stop_steps(g, grace_secs);
    if let (Disk::Delete, Some(nonce)) = (disk, nonce) {
        steps.push(script(DELETE, &[&g.dir, nonce], When::Always));
    }
    Plan {
        title: format!("remove instance {} from {}", g.name, node.name),
        hosts: vec![HostPlan {
            host: node.clone(),
            exclusive: true,
            steps,
        }],
        confirm: true,
        redact: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest() -> Guest {
        crate::plan::instance::tests_support::guest("vm1")
    }

    const N: &str = "0123456789abcdef0123456789abcdef";

    fn folder(mark: Option<&str>, entries: &[&str]) -> FolderFacts {
        FolderFacts {
            exists: true,
            not_a_folder: false,
            mark: mark.map(String::from),
            entries: entries.iter().map(|e| e.to_string()).collect(),
        }
    }

    /// The probe run by a real `sh` on a folder whose path would run `touch` if the shell parsed
    /// it: it sees the folder, its mark and its entries, and runs nothing.
    #[test]
    fn the_folder_probe_reports_a_hostile_path_literally() {
        let tmp = tempfile::tempdir().unwrap();
        let ran = tmp.path().join("ran");
        let dir = tmp
            .path()
            .join(format!("vm1 $(touch {0}) `touch {0}`; touch {0}", ran.display()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(MARK), format!("{N}\n")).unwrap();
        std::fs::write(dir.join("disk.img"), "").unwrap();
        let mut g = guest();
        g.dir = dir.to_str().unwrap().to_string();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(facts_script(&g))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut seen = parse_facts(&String::from_utf8_lossy(&out.stdout));
        seen.entries.sort();
        let mut want = folder(Some(N), &[MARK, "disk.img"]);
        want.entries.sort();
        assert_eq!(seen, want);
        assert!(!ran.exists(), "a value was executed");
        g.dir = tmp.path().join("absent").to_str().unwrap().to_string();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(facts_script(&g))
            .output()
            .unwrap();
        assert_eq!(
            parse_facts(&String::from_utf8_lossy(&out.stdout)),
            FolderFacts::default()
        );
    }

    #[test]
    fn deletes_only_a_marked_folder_holding_only_its_own_files() {
        let g = guest();
        let own = folder(Some(N), &["disk.img", "console.log", MARK]);
        assert_eq!(decide(&g, Some(N), &own, false), Ok(Disk::Delete));
        assert_eq!(decide(&g, Some(N), &own, true), Ok(Disk::Keep));
        let no_mark = folder(None, &["disk.img"]);
        assert!(decide(&g, Some(N), &no_mark, false)
            .unwrap_err()
            .contains("has no create mark"));
        let other = folder(Some("ffffffffffffffffffffffffffffffff"), &["disk.img", MARK]);
        assert!(decide(&g, Some(N), &other, false)
            .unwrap_err()
            .contains("another create's mark"));
        assert!(decide(&g, None, &own, false)
            .unwrap_err()
            .contains("holds no create mark"));
        let extra = folder(Some(N), &["disk.img", MARK, "notes.txt"]);
        let why = decide(&g, Some(N), &extra, false).unwrap_err();
        assert!(why.contains("notes.txt") && why.contains("--keep-disk"), "{why}");
        let link = FolderFacts {
            not_a_folder: true,
            ..FolderFacts::default()
        };
        assert!(decide(&g, Some(N), &link, false).unwrap_err().contains("not a folder"));
        assert_eq!(decide(&g, Some(N), &FolderFacts::default(), false), Ok(Disk::Absent));
    }

    #[test]
    fn the_delete_step_comes_after_the_stop_and_only_when_deciding_so() {
        let g = guest();
        let host = Host {
            name: "hnode1".into(),
            role: "hnode",
            host: "10.0.0.31".into(),
            port: 22,
        };
        let p = plan(&g, &host, &Disk::Delete, Some(N), 5);
        assert_eq!(p.hosts[0].steps.len(), 2);
        assert!(p.hosts[0].steps[1].label().contains(N));
        assert_eq!(plan(&g, &host, &Disk::Keep, Some(N), 5).hosts[0].steps.len(), 1);
    }

    #[test]
    fn facts_parse() {
        let f = parse_facts(&format!("exists\nmark {N}\nentry disk.img\nentry .cloudctl-create\n"));
        assert_eq!(f, folder(Some(N), &["disk.img", MARK]));
    }
}
