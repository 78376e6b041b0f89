//! The dry-run `System`: changes nothing, and keeps the effects it was handed so the run (and a
//! test) can say what would have been done.

use super::{KeyFile, LocalEffect, LocalStep, System};
use crate::error::Error;
use crate::exec::known_hosts::HostKey;
use std::path::Path;
use std::sync::Mutex;

#[derive(Default)]
pub struct DryRunSystem {
    seen: Mutex<Vec<LocalEffect>>,
}

impl DryRunSystem {
    /// The effects that would have been applied, in order.
    pub fn seen(&self) -> Vec<LocalEffect> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn keep(&self, e: LocalEffect) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).push(e);
    }
}

impl System for DryRunSystem {
    fn pin_key(&self, file: &Path, pattern: &str, key: &HostKey) -> Result<(), Error> {
        self.keep(LocalEffect::PinKey {
            file: file.to_path_buf(),
            pattern: pattern.to_string(),
            key: key.clone(),
        });
        Ok(())
    }

    fn write_inventory(&self, path: &Path, old: &str, new: &str) -> Result<(), Error> {
        self.keep(LocalEffect::WriteInventory {
            path: path.to_path_buf(),
            old: old.to_string(),
            new: new.to_string(),
        });
        Ok(())
    }

    fn make_host_key(&self, dir: &Path, files: &[KeyFile]) -> Result<(), Error> {
        self.keep(LocalEffect::MakeHostKey {
            dir: dir.to_path_buf(),
            files: files.to_vec(),
        });
        Ok(())
    }

    fn said<'a>(&self, step: &'a LocalStep) -> Option<&'a str> {
        step.would.as_deref()
    }
}
