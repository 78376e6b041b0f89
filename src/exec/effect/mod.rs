//! Local effects as values (pure): what a command changes on this machine — a host key pinned in
//! cloudctl's known_hosts, the inventory file rewritten — planned like remote steps and applied by
//! one function, `apply`, after the confirmation, through a swappable `System`.
//!
//! Why values: a command that pins or writes by itself can do it before the prompt or under
//! `--dry-run`; a command that returns these can't, because only `apply` touches the machine and
//! the dry run hands it a `DryRunSystem` that changes nothing (chezmoi's "system" shape).

mod dry_run;
mod held;
mod real;

pub use dry_run::DryRunSystem;
pub use held::HeldSystem;
pub use real::RealSystem;

use crate::error::Error;
use crate::exec::known_hosts::HostKey;
use std::path::PathBuf;

/// One change to a local file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalEffect {
    /// Pin `key` for `pattern` in the known_hosts file `file` (other hosts' lines kept).
    PinKey {
        file: PathBuf,
        pattern: String,
        key: HostKey,
    },
    /// Replace the inventory at `path`, whose text is `old` now, with `new` (atomically).
    WriteInventory { path: PathBuf, old: String, new: String },
    /// Keep a host key made in a throwaway folder: `files` into `dir` (made 0700 if missing).
    MakeHostKey { dir: PathBuf, files: Vec<KeyFile> },
}

/// One file of a host key pair, with its mode (0600 for a private half).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyFile {
    pub name: String,
    pub bytes: Vec<u8>,
    pub mode: u32,
}

/// Never the key itself: a failing test or a debug print must not show a private key.
impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyFile({}, {} bytes, {:o})", self.name, self.bytes.len(), self.mode)
    }
}

/// An effect with what the user is told: `done` once applied, `would` under a dry run (`None`:
/// the command tells it itself, as `host trust` does with one line for all keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalStep {
    pub effect: LocalEffect,
    pub done: Option<String>,
    pub would: Option<String>,
}

impl LocalStep {
    /// A step the command reports itself, applied or not.
    pub fn silent(effect: LocalEffect) -> LocalStep {
        LocalStep {
            effect,
            done: None,
            would: None,
        }
    }

    /// Writing the inventory at `path` from `old` to `new`, reported by the command.
    pub fn write_inventory(path: &std::path::Path, old: &str, new: &str) -> LocalStep {
        LocalStep::silent(LocalEffect::WriteInventory {
            path: path.to_path_buf(),
            old: old.to_string(),
            new: new.to_string(),
        })
    }
}

/// The machine the effects go to: the real one, or a dry run that only says what it would do.
pub trait System: Send + Sync {
    fn pin_key(&self, file: &std::path::Path, pattern: &str, key: &HostKey) -> Result<(), Error>;
    fn write_inventory(&self, path: &std::path::Path, old: &str, new: &str) -> Result<(), Error>;
    fn make_host_key(&self, dir: &std::path::Path, files: &[KeyFile]) -> Result<(), Error>;
    /// What to tell the user about `step` once this system went through it.
    fn said<'a>(&self, step: &'a LocalStep) -> Option<&'a str>;
}

/// Applies `steps` in order through `system`, telling `say` about each; stops at the first
/// failure (an inventory write after a failed pin would describe a state that is not there).
pub fn apply(steps: &[LocalStep], system: &dyn System, say: &dyn Fn(&str)) -> Result<(), Error> {
    for step in steps {
        match &step.effect {
            LocalEffect::PinKey { file, pattern, key } => system.pin_key(file, pattern, key)?,
            LocalEffect::WriteInventory { path, old, new } => system.write_inventory(path, old, new)?,
            LocalEffect::MakeHostKey { dir, files } => system.make_host_key(dir, files)?,
        }
        if let Some(msg) = system.said(step) {
            say(msg);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Every effect kind under the dry-run system leaves the files byte-identical and is
    //! reported; the real system applies the same steps.
    use super::*;
    use std::path::Path;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPqIxu0wCQ2s16urOUUyF0BlTldjLAygyKp2D81Yymbv test";

    /// Every file under `dir` with its bytes (a missing file is simply absent).
    fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(snapshot(&p));
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
        out.sort();
        out
    }

    /// One step of each kind, on files in `dir`: a key pinned in a known_hosts that does not
    /// exist yet (its folder neither), and an inventory rewritten.
    fn every_kind(dir: &Path) -> Vec<LocalStep> {
        let inventory = dir.join("cloud.toml");
        std::fs::write(&inventory, "# mine\n[cloud]\nname = \"t\"\n").unwrap();
        vec![
            LocalStep {
                effect: LocalEffect::PinKey {
                    file: dir.join("sub/known_hosts"),
                    pattern: "[10.0.0.31]:2222".into(),
                    key: HostKey::from_public(KEY).unwrap(),
                },
                done: Some("pinned".into()),
                would: Some("would pin".into()),
            },
            LocalStep {
                effect: LocalEffect::WriteInventory {
                    path: inventory,
                    old: "# mine\n[cloud]\nname = \"t\"\n".into(),
                    new: "# mine\n[cloud]\nname = \"u\"\n".into(),
                },
                done: Some("written".into()),
                would: Some("would write".into()),
            },
            LocalStep {
                effect: LocalEffect::MakeHostKey {
                    dir: dir.join("hostkeys/n1"),
                    files: vec![
                        KeyFile {
                            name: "ssh_host_ed25519_key".into(),
                            bytes: b"private\n".to_vec(),
                            mode: 0o600,
                        },
                        KeyFile {
                            name: "ssh_host_ed25519_key.pub".into(),
                            bytes: format!("{KEY}\n").into_bytes(),
                            mode: 0o644,
                        },
                    ],
                },
                done: Some("made".into()),
                would: Some("would make".into()),
            },
        ]
    }

    fn run(steps: &[LocalStep], system: &dyn System) -> Vec<String> {
        let said = Mutex::new(Vec::new());
        apply(steps, system, &|m| said.lock().unwrap().push(m.to_string())).unwrap();
        said.into_inner().unwrap()
    }

    use std::sync::Mutex;

    #[test]
    fn a_dry_run_of_every_effect_kind_changes_no_file_and_reports_each() {
        let dir = tempfile::tempdir().unwrap();
        let steps = every_kind(dir.path());
        let before = snapshot(dir.path());
        let dry = DryRunSystem::default();
        assert_eq!(run(&steps, &dry), ["would pin", "would write", "would make"]);
        assert_eq!(snapshot(dir.path()), before);
        assert!(!dir.path().join("sub").exists(), "the known_hosts folder was made");
        assert!(!dir.path().join("hostkeys").exists(), "the hostkeys folder was made");
        let seen: Vec<LocalEffect> = steps.iter().map(|s| s.effect.clone()).collect();
        assert_eq!(dry.seen(), seen);
    }

    #[test]
    fn the_real_system_applies_the_same_steps() {
        let dir = tempfile::tempdir().unwrap();
        let steps = every_kind(dir.path());
        assert_eq!(run(&steps, &RealSystem), ["pinned", "written", "made"]);
        let keys = dir.path().join("hostkeys/n1");
        let mode =
            |p: &Path| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions()) & 0o777;
        assert_eq!(mode(&keys), 0o700);
        assert_eq!(mode(&keys.join("ssh_host_ed25519_key")), 0o600);
        assert_eq!(mode(&keys.join("ssh_host_ed25519_key.pub")), 0o644);
        assert_eq!(std::fs::read(keys.join("ssh_host_ed25519_key")).unwrap(), b"private\n");
        let kh = std::fs::read_to_string(dir.path().join("sub/known_hosts")).unwrap();
        assert_eq!(kh, format!("[10.0.0.31]:2222 {}\n", &KEY[..KEY.len() - " test".len()]));
        let inv = std::fs::read_to_string(dir.path().join("cloud.toml")).unwrap();
        assert_eq!(inv, "# mine\n[cloud]\nname = \"u\"\n");
    }

    #[test]
    fn an_unchanged_inventory_is_not_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cloud.toml");
        std::fs::write(&path, "a = 1\n").unwrap();
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
        RealSystem.write_inventory(&path, "a = 1\n", "a = 1\n").unwrap();
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap()),
            inode
        );
    }
}
