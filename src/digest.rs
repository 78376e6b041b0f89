//! SHA-256 as lowercase hex: how cloudctl names file contents (probes, backups, the lab's state).
//! A leaf, shared by planners and the executor.

use sha2::{Digest, Sha256};

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A digest as lowercase hex.
pub fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
