//! The `System` a real run's SSH connector pins through under `host_key_policy = "accept-new"`:
//! a new host key is accepted for the run's connections at once, but the pin is held here, not
//! written, until the run goes ahead (`Context::confirm`, or the end of a run that asks nothing).
//! So a refused prompt leaves known_hosts as it was, as a dry run does.

use super::{KeyFile, LocalEffect, LocalStep, System};
use crate::error::Error;
use crate::exec::known_hosts::HostKey;
use std::path::Path;
use std::sync::Mutex;

#[derive(Default)]
pub struct HeldSystem {
    held: Mutex<Vec<LocalStep>>,
}

impl HeldSystem {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<LocalStep>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key held for `pattern` in known_hosts `file`, if this run accepted one.
    pub fn key(&self, file: &Path, pattern: &str) -> Option<HostKey> {
        self.lock().iter().find_map(|s| match &s.effect {
            LocalEffect::PinKey {
                file: f,
                pattern: p,
                key,
            } if f == file && p == pattern => Some(key.clone()),
            _ => None,
        })
    }

    /// The held effects, in the order they came; none are left held.
    pub fn take(&self) -> Vec<LocalStep> {
        std::mem::take(&mut *self.lock())
    }

    fn hold(&self, effect: LocalEffect) {
        self.lock().push(LocalStep::silent(effect));
    }
}

impl System for HeldSystem {
    /// A host met again in the same run must offer the key it offered first.
    fn pin_key(&self, file: &Path, pattern: &str, key: &HostKey) -> Result<(), Error> {
        match self.key(file, pattern) {
            Some(k) if k == *key => Ok(()),
            Some(k) => Err(Error::HostKey(format!(
                "HOST KEY CHANGED for {pattern} during this run: it offered {} {} first, now {} {}; nothing was pinned. Someone may be intercepting the connection.",
                k.key_type,
                k.fingerprint(),
                key.key_type,
                key.fingerprint()
            ))),
            None => {
                self.hold(LocalEffect::PinKey {
                    file: file.to_path_buf(),
                    pattern: pattern.to_string(),
                    key: key.clone(),
                });
                Ok(())
            }
        }
    }

    fn write_inventory(&self, path: &Path, old: &str, new: &str) -> Result<(), Error> {
        self.hold(LocalEffect::WriteInventory {
            path: path.to_path_buf(),
            old: old.to_string(),
            new: new.to_string(),
        });
        Ok(())
    }

    fn make_host_key(&self, dir: &Path, files: &[KeyFile]) -> Result<(), Error> {
        self.hold(LocalEffect::MakeHostKey {
            dir: dir.to_path_buf(),
            files: files.to_vec(),
        });
        Ok(())
    }

    /// Pinning on first use says nothing, as OpenSSH's accept-new does.
    fn said<'a>(&self, _step: &'a LocalStep) -> Option<&'a str> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::effect::RealSystem;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPqIxu0wCQ2s16urOUUyF0BlTldjLAygyKp2D81Yymbv x";

    #[test]
    fn a_pin_is_held_once_and_written_only_when_taken_and_applied() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        std::fs::write(&file, "").unwrap();
        let key = HostKey::from_public(KEY).unwrap();
        let held = HeldSystem::default();
        held.pin_key(&file, "10.0.0.5", &key).unwrap();
        held.pin_key(&file, "10.0.0.5", &key).unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"", "a held pin was written");
        assert_eq!(held.key(&file, "10.0.0.5"), Some(key.clone()));
        let other = HostKey {
            key_type: key.key_type.clone(),
            blob: [key.blob.clone(), vec![0]].concat(),
        };
        let changed = held.pin_key(&file, "10.0.0.5", &other);
        assert!(matches!(changed, Err(Error::HostKey(m)) if m.contains("HOST KEY CHANGED")));
        let steps = held.take();
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert!(held.take().is_empty());
        super::super::apply(&steps, &RealSystem, &|_| {}).unwrap();
        assert_eq!(
            crate::exec::known_hosts::KnownHosts::new(file)
                .lookup("10.0.0.5")
                .unwrap(),
            Some(key)
        );
    }
}
