//! Local key tools the commands share: ssh-keygen and dropbearconvert (found through local_tools,
//! which names the package when one is missing) and ed25519 keys, kept on disk or thrown away.

use crate::error::Error;
use crate::local_tools::{self, Tool, SSH_KEYGEN};
use std::path::Path;
use std::process::Command;

/// Runs a local tool, naming its package when it is missing.
pub fn tool(tool: Tool, args: &[&str]) -> Result<(), Error> {
    let program = local_tools::path(tool)?;
    let out = Command::new(&program)
        .args(args)
        .output()
        .map_err(|e| Error::Failed(anyhow::anyhow!("cannot run {}: {e}", program.display())))?;
    if !out.status.success() {
        return Err(Error::Failed(anyhow::anyhow!(
            "{} failed: {}",
            tool.program,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// A new ed25519 key without passphrase at `path` (public half at `path.pub`).
pub fn keygen(path: &Path, comment: &str) -> Result<(), Error> {
    tool(
        SSH_KEYGEN,
        &[
            "-q",
            "-t",
            "ed25519",
            "-N",
            "",
            "-C",
            comment,
            "-f",
            &path.display().to_string(),
        ],
    )
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::Failed(anyhow::anyhow!("cannot read {}: {e}", path.display())))
}

/// A new ed25519 key pair that never touches a lasting file: (private key, public key line).
pub fn throwaway(comment: &str) -> Result<(Vec<u8>, Vec<u8>), Error> {
    let dir = tempfile::tempdir().map_err(|e| Error::Failed(anyhow::anyhow!("cannot make a temporary folder: {e}")))?;
    let key = dir.path().join("key");
    keygen(&key, comment)?;
    Ok((read(&key)?, read(&key.with_extension("pub"))?))
}

/// A node's host key pair, with the private half in dropbear's form too.
pub struct NodeHostKey {
    pub private: Vec<u8>,
    pub public: Vec<u8>,
    pub dropbear: Vec<u8>,
}

/// A node's new host key, made in a throwaway folder: the caller keeps it where it belongs
/// once the run is confirmed.
pub fn node_host_key(comment: &str) -> Result<NodeHostKey, Error> {
    let dir = tempfile::tempdir().map_err(|e| Error::Failed(anyhow::anyhow!("cannot make a temporary folder: {e}")))?;
    let key = dir.path().join("key");
    keygen(&key, comment)?;
    Ok(NodeHostKey {
        private: read(&key)?,
        public: read(&key.with_extension("pub"))?,
        dropbear: dropbear_of(&key)?,
    })
}

/// The OpenSSH private key at `key` in dropbear's form, converted in a throwaway folder.
pub fn dropbear_of(key: &Path) -> Result<Vec<u8>, Error> {
    let dir = tempfile::tempdir().map_err(|e| Error::Failed(anyhow::anyhow!("cannot make a temporary folder: {e}")))?;
    let out = dir.path().join("dropbear");
    tool(
        local_tools::DROPBEARCONVERT,
        &[
            "openssh",
            "dropbear",
            &key.display().to_string(),
            &out.display().to_string(),
        ],
    )?;
    read(&out)
}
