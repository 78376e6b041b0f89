//! The real `System`: the only place a local effect touches this machine's files.

use super::{KeyFile, LocalStep, System};
use crate::error::Error;
use crate::exec::known_hosts::{HostKey, KnownHosts};
use crate::inventory_file;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
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

    fn make_host_key(&self, dir: &Path, files: &[KeyFile]) -> Result<(), Error> {
        let fail = |p: &Path, e: std::io::Error| Error::Failed(anyhow::anyhow!("cannot write {}: {e}", p.display()));
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|e| fail(dir, e))?;
        }
        for f in files {
            let path = dir.join(&f.name);
            // Written beside the target and renamed: a half-written private key is never there.
            let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| fail(&path, e))?;
            tmp.write_all(&f.bytes).map_err(|e| fail(&path, e))?;
            tmp.as_file().sync_all().map_err(|e| fail(&path, e))?;
            tmp.as_file()
                .set_permissions(fs::Permissions::from_mode(f.mode))
                .map_err(|e| fail(&path, e))?;
            tmp.persist(&path).map_err(|e| fail(&path, e.error))?;
        }
        Ok(())
    }

    fn said<'a>(&self, step: &'a LocalStep) -> Option<&'a str> {
        step.done.as_deref()
    }
}
