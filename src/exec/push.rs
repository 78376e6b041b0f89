//! `image push`'s sender: finds a local file's data with SEEK_DATA/SEEK_HOLE (holes are neither
//! read nor sent) and writes it as one stream for the receiver of `plan::image`, hashing the
//! whole content (holes as zeros) on the way so the far side can verify what it wrote.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;

/// Holes shorter than this are sent as zeros: the receiver starts one `dd` per extent (about a
/// millisecond), which costs more than sending a quarter MiB.
pub const MERGE_GAP: u64 = 256 * 1024;

/// Bytes read, written and hashed at once: enough for libssh2 to fill whole packets without a
/// return to the caller between them, and small enough that the buffer may still be in the CPU's
/// cache when it is written to the pipe and hashed.
const CHUNK: usize = 256 << 10;

/// A run of data in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    pub offset: u64,
    pub len: u64,
}

fn seek(fd: i32, offset: u64, whence: i32) -> io::Result<Option<u64>> {
    // SAFETY: lseek on a file descriptor we own has no memory effects.
    let r = unsafe { libc::lseek(fd, offset as libc::off_t, whence) };
    if r >= 0 {
        return Ok(Some(r as u64));
    }
    match io::Error::last_os_error() {
        // ENXIO: no data (or hole) at or after `offset`.
        e if e.raw_os_error() == Some(libc::ENXIO) => Ok(None),
        e => Err(e),
    }
}

/// The file's data extents up to `size`, holes shorter than `MERGE_GAP` merged into their
/// neighbours. A filesystem without hole support reports the whole file as data.
pub fn data_extents(file: &File, size: u64) -> io::Result<Vec<Extent>> {
    let fd = file.as_raw_fd();
    let mut extents: Vec<Extent> = Vec::new();
    let mut pos = 0;
    while pos < size {
        let Some(start) = seek(fd, pos, libc::SEEK_DATA)? else {
            break;
        };
        if start >= size {
            break;
        }
        let end = seek(fd, start, libc::SEEK_HOLE)?.unwrap_or(size).min(size);
        match extents.last_mut() {
            Some(last) if start - (last.offset + last.len) < MERGE_GAP => last.len = end - last.offset,
            _ => extents.push(Extent {
                offset: start,
                len: end - start,
            }),
        }
        pos = end;
    }
    Ok(extents)
}

/// The bytes a push of these extents sends (data only, framing aside).
pub fn data_bytes(extents: &[Extent]) -> u64 {
    extents.iter().map(|e| e.len).sum()
}

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

fn hash_zeros(h: &mut Sha256, mut n: u64) {
    while n > 0 {
        let k = n.min(ZEROS.len() as u64) as usize;
        h.update(&ZEROS[..k]);
        n -= k as u64;
    }
}

/// Where a local read failed (kept apart from a failed write, which the receiver explains).
#[derive(Debug, Default)]
pub struct LocalError(pub Option<String>);

/// Writes `extents` of `file` (logical size `size`) to `out` in the receiver's format and returns
/// the sha256 of the whole content (holes as zeros). `sent(n)` is called after every chunk of
/// data. Each chunk is read into one buffer reused for the whole push and hashed right after it
/// is written, while it is still in the CPU's cache: a hasher thread fed with a fresh buffer per
/// chunk measured slower on a busy 2-core machine, where every process of the push competes for
/// the CPU anyway (a hand-off and an allocation per chunk, and the reads from another core's
/// cache).
pub fn send(
    file: &File,
    extents: &[Extent],
    size: u64,
    out: &mut dyn Write,
    sent: &mut dyn FnMut(u64),
    local: &mut LocalError,
) -> io::Result<String> {
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut pos = 0;
    for e in extents {
        hash_zeros(&mut hash, e.offset - pos);
        out.write_all(format!("d {} {}\n", e.offset, e.len).as_bytes())?;
        let end = e.offset + e.len;
        let mut at = e.offset;
        while at < end {
            // Ctrl-C: stop sending; the far side then discards what it has.
            if super::INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
            }
            let n = (end - at).min(CHUNK as u64) as usize;
            file.read_exact_at(&mut buf[..n], at)
                .map_err(|err| local_failed(local, err))?;
            out.write_all(&buf[..n])?;
            sent(n as u64);
            hash.update(&buf[..n]);
            at += n as u64;
        }
        pos = end;
    }
    hash_zeros(&mut hash, size - pos);
    let sha: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    out.write_all(format!("e {sha}\n").as_bytes())?;
    out.flush()?;
    Ok(sha)
}

fn local_failed(local: &mut LocalError, e: io::Error) -> io::Error {
    let text = if e.kind() == io::ErrorKind::UnexpectedEof {
        "the file became shorter while it was sent".to_string()
    } else {
        e.to_string()
    };
    local.0 = Some(text.clone());
    io::Error::other(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom};

    #[test]
    fn holes_are_found_and_small_ones_merged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = File::create(&path).unwrap();
        let mib = 1 << 20;
        f.set_len(16 * mib).unwrap();
        for at in [0, 4 * mib, 4 * mib + 8192] {
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&[7u8; 4096]).unwrap();
        }
        f.sync_all().unwrap();
        let f = File::open(&path).unwrap();
        let e = data_extents(&f, 16 * mib).unwrap();
        // tmpfs or ext4 may round extents to pages/blocks; what matters: two runs, holes skipped.
        assert_eq!(e.len(), 2, "{e:?}");
        assert_eq!(e[0].offset, 0);
        assert_eq!(e[1].offset, 4 * mib);
        assert!(data_bytes(&e) < mib, "{e:?}");
    }
}
