//! The real `System`: the only place a local effect touches this machine's files.

use super::{LocalStep, System};
use crate::error::Error;
use crate::exec::known_hosts::{HostKey, KnownHosts};
use crate::inventory_file;
use std::path::Path;

pub struct RealSystem;

impl System for RealSystem {
    fn pin_key(&self, file: &Path, pattern: &str, key: &HostKey) -> Result<(), Error> {
        KnownHosts::new(file.to_path_buf())
            .pin(pattern, key)
            .map_err(|e| Error::Failed(anyhow::anyhow!("cannot write {}: {e}", file.display())))
    }

    fn write_inventory(&self, path: &Path, old: &str, new: &str) -> Result<(), Error> {
        // An unchanged inventory is not rewritten: its mtime and inode stay what they were.
        if old == new {
            return Ok(());
        }
        inventory_file::replace(path, new)
    }

    fn said<'a>(&self, step: &'a LocalStep) -> Option<&'a str> {
        step.done.as_deref()
    }
}
