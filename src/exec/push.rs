//! `image push`'s sender: finds a local file's data with SEEK_DATA/SEEK_HOLE (holes are neither
//! read nor sent) and writes it as one stream for the receiver of `plan::image`, hashing the
//! whole content (holes as zeros) on the way so the far side can verify what it wrote.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;

/// Holes shorter than this are sent as zeros: the receiver starts one `dd` per extent (about a
/// millisecond), which costs more than sending a quarter MiB.
pub const MERGE_GAP: u64 = 256 * 1024;

/// Bytes read and written at once: large writes keep libssh2 filling whole packets without a
/// return to the caller between them.
const CHUNK: usize = 1 << 20;

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

/// What the hasher thread is given, in file order.
enum Piece {
    Data(Vec<u8>),
    Zeros(u64),
}

/// Writes `extents` of `file` (logical size `size`) to `out` in the receiver's format and returns
/// the sha256 of the whole content. `sent(n)` is called after every chunk of data. The hash runs
/// on a thread of its own, so it overlaps with encrypting and sending.
pub fn send(
    file: &mut File,
    extents: &[Extent],
    size: u64,
    out: &mut dyn Write,
    sent: &mut dyn FnMut(u64),
    local: &mut LocalError,
) -> io::Result<String> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Piece>(8);
    std::thread::scope(|scope| {
        let hasher = scope.spawn(move || {
            let mut hash = Sha256::new();
            for piece in rx {
                match piece {
                    Piece::Data(d) => hash.update(&d),
                    Piece::Zeros(n) => hash_zeros(&mut hash, n),
                }
            }
            hash.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>()
        });
        let mut pos = 0;
        for e in extents {
            let _ = tx.send(Piece::Zeros(e.offset - pos));
            out.write_all(format!("d {} {}\n", e.offset, e.len).as_bytes())?;
            file.seek(SeekFrom::Start(e.offset))
                .map_err(|err| local_failed(local, err))?;
            let mut left = e.len;
            while left > 0 {
                // Ctrl-C: stop sending; the far side then discards what it has.
                if super::INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
                    return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
                }
                let n = left.min(CHUNK as u64) as usize;
                let mut buf = vec![0u8; n];
                file.read_exact(&mut buf).map_err(|err| local_failed(local, err))?;
                out.write_all(&buf)?;
                sent(n as u64);
                let _ = tx.send(Piece::Data(buf));
                left -= n as u64;
            }
            pos = e.offset + e.len;
        }
        let _ = tx.send(Piece::Zeros(size - pos));
        drop(tx);
        let sha = hasher.join().expect("the hasher does not panic");
        out.write_all(format!("e {sha}\n").as_bytes())?;
        out.flush()?;
        Ok(sha)
    })
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
