//! cloudctl's own known_hosts file (OpenSSH format, unhashed): lookup, fingerprints, and pinning
//! with a file lock and an atomic rewrite so parallel threads and processes never lose an entry.

use base64::Engine;
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKey {
    pub key_type: String,
    pub blob: Vec<u8>,
}

impl HostKey {
    /// Reads the key type from the blob itself (its first length-prefixed string).
    pub fn from_blob(blob: &[u8]) -> Option<HostKey> {
        let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
        let key_type = std::str::from_utf8(blob.get(4..4 + len)?).ok()?.to_string();
        Some(HostKey {
            key_type,
            blob: blob.to_vec(),
        })
    }

    /// Reads an OpenSSH public key line (`TYPE BASE64 [COMMENT]`, as in a `.pub` file).
    pub fn from_public(line: &str) -> Option<HostKey> {
        let blob = line.split_whitespace().nth(1)?;
        HostKey::from_blob(&base64::engine::general_purpose::STANDARD.decode(blob).ok()?)
    }

    /// `SHA256:…` as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(&self.blob);
        format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
        )
    }

    pub fn line(&self, host: &str) -> String {
        format!(
            "{host} {} {}",
            self.key_type,
            base64::engine::general_purpose::STANDARD.encode(&self.blob)
        )
    }
}

/// The known_hosts name of an endpoint, as OpenSSH writes it.
pub fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

pub struct KnownHosts {
    path: PathBuf,
}

/// One pinned entry, for `host list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Pinned {
    pub host: String,
    pub key_type: String,
    pub fingerprint: String,
}

impl KnownHosts {
    pub fn new(path: PathBuf) -> Self {
        KnownHosts { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> std::io::Result<String> {
        match fs::read_to_string(&self.path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            r => r,
        }
    }

    /// The key pinned for `pattern`, if any.
    pub fn lookup(&self, pattern: &str) -> std::io::Result<Option<HostKey>> {
        Ok(parse(&self.read()?)
            .into_iter()
            .find(|(h, _)| h == pattern)
            .map(|(_, k)| k))
    }

    pub fn list(&self) -> std::io::Result<Vec<Pinned>> {
        Ok(parse(&self.read()?)
            .into_iter()
            .map(|(host, k)| Pinned {
                host,
                key_type: k.key_type.clone(),
                fingerprint: k.fingerprint(),
            })
            .collect())
    }

    /// Pins `key` for `pattern`, replacing a previous key of that host; other lines are kept as they are.
    pub fn pin(&self, pattern: &str, key: &HostKey) -> std::io::Result<()> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.exists() {
            fs::create_dir_all(dir)?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        }
        let lock = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(self.path.with_extension("lock"))?;
        // SAFETY: flock on a file descriptor we own; released when `lock` is dropped.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut text: String = self
            .read()?
            .lines()
            .filter(|l| l.split_whitespace().next() != Some(pattern))
            .map(|l| format!("{l}\n"))
            .collect();
        text += &key.line(pattern);
        text += "\n";
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(text.as_bytes())?;
        tmp.as_file().sync_all()?;
        tmp.as_file().set_permissions(fs::Permissions::from_mode(0o600))?;
        tmp.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }
}

fn parse(text: &str) -> Vec<(String, HostKey)> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (host, key_type, b64) = (f.next()?, f.next()?, f.next()?);
            let blob = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
            Some((
                host.to_string(),
                HostKey {
                    key_type: key_type.to_string(),
                    blob,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(t: &str, body: &[u8]) -> HostKey {
        let mut blob = (t.len() as u32).to_be_bytes().to_vec();
        blob.extend_from_slice(t.as_bytes());
        blob.extend_from_slice(body);
        HostKey::from_blob(&blob).unwrap()
    }

    #[test]
    fn pin_replaces_only_that_host_and_keeps_others() {
        let dir = tempfile::tempdir().unwrap();
        let kh = KnownHosts::new(dir.path().join("sub/known_hosts"));
        kh.pin("10.0.0.2", &key("ssh-ed25519", b"a")).unwrap();
        kh.pin("[10.0.0.3]:2222", &key("ssh-ed25519", b"b")).unwrap();
        kh.pin("10.0.0.2", &key("ssh-ed25519", b"c")).unwrap();
        assert_eq!(kh.lookup("10.0.0.2").unwrap(), Some(key("ssh-ed25519", b"c")));
        assert_eq!(kh.lookup("[10.0.0.3]:2222").unwrap(), Some(key("ssh-ed25519", b"b")));
        assert_eq!(kh.list().unwrap().len(), 2);
        let mode = fs::metadata(kh.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn fingerprint_matches_openssh_format() {
        let k = key("ssh-ed25519", b"x");
        assert!(k.fingerprint().starts_with("SHA256:"));
        assert!(!k.fingerprint().ends_with('='));
        assert_eq!(host_pattern("h", 22), "h");
        assert_eq!(host_pattern("h", 2222), "[h]:2222");
    }
}
