//! A minimal writer for the `newc` cpio format the Linux kernel unpacks as an initramfs (used for
//! per-node overlay initrds). Deterministic: fixed inode numbers and timestamps, so the same
//! content yields the same bytes and re-runs change nothing. Pure.

/// One entry: a directory (`content: None`) or a regular file, with its permission bits.
pub struct Entry<'a> {
    pub path: &'a str,
    pub mode: u32,
    pub content: Option<&'a [u8]>,
}

fn header(out: &mut Vec<u8>, ino: u32, mode: u32, size: usize, name: &str) {
    let fields = [ino, mode, 0, 0, 1, 0, size as u32, 0, 0, 0, 0, name.len() as u32 + 1, 0];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad(out);
}

fn pad(out: &mut Vec<u8>) {
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

/// The archive holding `entries` in order (parents must come before their children).
pub fn archive(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let kind = if e.content.is_some() { 0o100000 } else { 0o040000 };
        let data = e.content.unwrap_or_default();
        header(
            &mut out,
            i as u32 + 1,
            kind | (e.mode & 0o7777),
            data.len(),
            e.path.trim_start_matches('/'),
        );
        out.extend_from_slice(data);
        pad(&mut out);
    }
    header(&mut out, 0, 0, 0, "TRAILER!!!");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    #[test]
    fn cpio_lists_what_we_wrote() {
        let entries = [
            Entry {
                path: "etc",
                mode: 0o755,
                content: None,
            },
            Entry {
                path: "etc/hostname",
                mode: 0o644,
                content: Some(b"hnode1\n"),
            },
            Entry {
                path: "etc/key",
                mode: 0o600,
                content: Some(b"abc"),
            },
        ];
        let bytes = archive(&entries);
        assert_eq!(bytes, archive(&entries), "deterministic");
        let Ok(mut child) = Command::new("cpio")
            .args(["-t", "-v", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
        else {
            eprintln!("cpio not installed; checked only determinism");
            return;
        };
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success());
        assert!(
            listing.contains("drwxr-xr-x") && listing.contains("etc/hostname") && listing.contains("-rw-------"),
            "{listing}"
        );
    }
}
