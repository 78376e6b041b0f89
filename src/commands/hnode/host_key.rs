//! A node's SSH host key under `hostkeys/NAME/` beside cloudctl's known_hosts: read when kept,
//! made in a throwaway folder when not, with the local steps that keep and pin it. The steps run
//! after the confirmation, so a refused prompt leaves hostkeys/ and known_hosts as they were.

use crate::commands::keys::{dropbear_of, node_host_key, NodeHostKey};
use crate::commands::Context;
use crate::error::Error;
use crate::exec::effect::{KeyFile, LocalEffect, LocalStep};
use crate::exec::known_hosts::{host_pattern, HostKey, KnownHosts};
use crate::inventory::Host;
use std::path::{Path, PathBuf};

const PRIVATE: &str = "ssh_host_ed25519_key";
const PUBLIC: &str = "ssh_host_ed25519_key.pub";
const DROPBEAR: &str = "dropbear_ed25519_host_key";

/// The node's key (the `dropbear` form empty when a dry run has none kept) and the steps
/// keeping and pinning it.
pub struct NodeKey {
    pub private: Vec<u8>,
    pub public: Vec<u8>,
    pub dropbear: Vec<u8>,
    pub steps: Vec<LocalStep>,
}

fn file(name: &str, bytes: &[u8], mode: u32) -> KeyFile {
    KeyFile {
        name: name.into(),
        bytes: bytes.to_vec(),
        mode,
    }
}

/// `None` under a dry run for a node with no key yet: said so, and nothing is made.
pub fn node_key(ctx: &Context, known_hosts: &KnownHosts, name: &str, target: &Host) -> Result<Option<NodeKey>, Error> {
    let dir = known_hosts
        .path()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
        .join("hostkeys")
        .join(name);
    let key = dir.join(PRIVATE);
    let local = |what: &str, e: &dyn std::fmt::Display| Error::Failed(anyhow::anyhow!("{what}: {e}"));
    let read = |p: &Path| std::fs::read(p).map_err(|e| local(&format!("cannot read {}", p.display()), &e));
    let mut steps = Vec::new();
    let (private, public, dropbear) = if key.exists() {
        let dropbear = if dir.join(DROPBEAR).exists() {
            read(&dir.join(DROPBEAR))?
        } else if ctx.dry_run {
            vec![]
        } else {
            // Converted now (the plan carries it), kept only once confirmed.
            let converted = dropbear_of(&key)?;
            let keep = vec![file(DROPBEAR, &converted, 0o600)];
            steps.push(LocalStep::silent(LocalEffect::MakeHostKey {
                dir: dir.clone(),
                files: keep,
            }));
            converted
        };
        (read(&key)?, read(&dir.join(PUBLIC))?, dropbear)
    } else if ctx.dry_run {
        ctx.ui.info(&format!(
            "dry run: would generate {name}'s SSH host key in {}",
            dir.display()
        ));
        return Ok(None);
    } else {
        let NodeHostKey {
            private,
            public,
            dropbear,
        } = node_host_key(&format!("{name} (cloudctl)"))?;
        steps.push(LocalStep {
            effect: LocalEffect::MakeHostKey {
                dir: dir.clone(),
                files: vec![
                    file(PRIVATE, &private, 0o600),
                    file(PUBLIC, &public, 0o644),
                    file(DROPBEAR, &dropbear, 0o600),
                ],
            },
            done: Some(format!("{name}: generated its SSH host key in {}", dir.display())),
            would: None,
        });
        (private, public, dropbear)
    };
    let offered = HostKey::from_public(&String::from_utf8_lossy(&public)).ok_or_else(|| {
        Error::Failed(anyhow::anyhow!(
            "{} is not an OpenSSH public key",
            dir.join(PUBLIC).display()
        ))
    })?;
    let pattern = host_pattern(&target.host, target.port);
    match known_hosts
        .lookup(&pattern)
        .map_err(|e| local("cannot read known_hosts", &e))?
    {
        Some(pinned) if pinned == offered => {}
        Some(pinned) => {
            return Err(Error::HostKey(format!(
                "{} pins {} {} for {name} ({pattern}), but cloudctl gave {name} the key {} in {}. If that old entry is stale, delete its line from {} and run again.",
                known_hosts.path().display(),
                pinned.key_type,
                pinned.fingerprint(),
                offered.fingerprint(),
                key.display(),
                known_hosts.path().display()
            )))
        }
        None => steps.push(LocalStep {
            done: Some(format!(
                "{name}: pinned its host key {} in {}",
                offered.fingerprint(),
                known_hosts.path().display()
            )),
            would: Some(format!("dry run: would pin {name}'s key {}", offered.fingerprint())),
            effect: LocalEffect::PinKey {
                file: known_hosts.path().to_path_buf(),
                pattern,
                key: offered,
            },
        }),
    }
    Ok(Some(NodeKey {
        private,
        public,
        dropbear,
        steps,
    }))
}
