//! Local key tools the commands share: running ssh-keygen/dropbearconvert (naming the package
//! when one is missing) and making ed25519 keys, kept on disk or thrown away after reading.

use crate::error::Error;
use std::path::Path;
use std::process::Command;

/// Runs a local tool, naming its package when it is missing.
pub fn tool(program: &str, args: &[&str]) -> Result<(), Error> {
    let out = Command::new(program).args(args).output().map_err(|e| {
        let package = if program.starts_with("dropbear") {
            "dropbear-bin"
        } else {
            "openssh-client"
        };
        Error::Usage(format!("cannot run {program} ({e}); install the {package} package"))
    })?;
    if !out.status.success() {
        return Err(Error::Failed(anyhow::anyhow!(
            "{program} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// A new ed25519 key without passphrase at `path` (public half at `path.pub`).
pub fn keygen(path: &Path, comment: &str) -> Result<(), Error> {
    tool(
        "ssh-keygen",
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
