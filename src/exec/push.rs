//! `image push`'s sender: finds a local file's data with SEEK_DATA/SEEK_HOLE (holes are neither
//! read nor sent) and writes it as one stream for the receiver of `plan::image`, with the sha256
//! of the stream's extents (every header line and its data) at its end, so the far side can
//! verify what it wrote: it hashes the same lines and the data it reads back from where it wrote it.

use sha2::{Digest, Sha256};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};

/// Holes shorter than this are sent as zeros: the receiver starts one `dd` per extent (about a
/// millisecond), which costs more than sending a quarter MiB.
pub const MERGE_GAP: u64 = 256 * 1024;

/// Bytes moved (and hashed) at once: enough for libssh2 to fill whole packets without a return
/// to the caller between them, a quarter of the OpenSSH client's widened pipe, and small enough
/// for the hasher's buffer to stay in the CPU's cache (64 KiB and 1 MiB measured no faster).
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

/// Where a local read failed (kept apart from a failed write, which the receiver explains).
#[derive(Debug, Default)]
pub struct LocalError(pub Option<String>);

/// The sha256 of the stream's extents as the receiver hashes them back from the file it wrote:
/// each `d OFFSET LENGTH` line and its data, in order (the holes are not hashed: the receiver
/// makes them by sizing an empty file).
fn extents_sha256(file: &File, extents: &[Extent], stop: &AtomicBool) -> io::Result<String> {
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    for e in extents {
        hash.update(header(e).as_bytes());
        for (at, n) in chunks(e) {
            if stop.load(Ordering::SeqCst) || super::INTERRUPTED.load(Ordering::SeqCst) {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
            }
            file.read_exact_at(&mut buf[..n], at)?;
            hash.update(&buf[..n]);
        }
    }
    Ok(crate::digest::hex(&hash.finalize()))
}

/// Moves `n` bytes of `file` at `at` into the pipe `pipe` with splice(2): the kernel hands the
/// page cache's pages to the pipe, so the data is neither copied into this process nor out of it.
fn splice_into(file: &File, at: u64, n: usize, pipe: BorrowedFd<'_>) -> io::Result<()> {
    let mut off = at as libc::loff_t;
    let mut left = n;
    while left > 0 {
        // SAFETY: splice between a file and a pipe this process holds open; the only pointer is
        // to `off`, which lives across the call.
        let r = unsafe {
            libc::splice(
                file.as_raw_fd(),
                &mut off,
                pipe.as_raw_fd(),
                std::ptr::null_mut(),
                left,
                libc::SPLICE_F_MORE,
            )
        };
        match r {
            0 => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "end of file")),
            r if r > 0 => left -= r as usize,
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// Extent `e` as the (offset, length) pieces of at most `CHUNK` bytes it is read and sent in.
fn chunks(e: &Extent) -> impl Iterator<Item = (u64, usize)> {
    let end = e.offset + e.len;
    (e.offset..end)
        .step_by(CHUNK)
        .map(move |at| (at, (end - at).min(CHUNK as u64) as usize))
}

fn header(e: &Extent) -> String {
    format!("d {} {}\n", e.offset, e.len)
}

/// Writes `extents` of `file` to `out` in the receiver's format and returns the sha256 of the
/// stream's extents (see `extents_sha256`). `sent(n)` is called after every chunk of data.
/// The hash is computed on a thread of its own that reads the file itself, beside the sending
/// thread, so it takes the CPU the transfer leaves idle instead of adding to the sending thread's
/// time; a file that changes while it is pushed then hashes other than it was sent, and the far
/// side discards it. Into a pipe (the OpenSSH client's stdin) the data is spliced, not copied.
pub fn send(
    file: &File,
    extents: &[Extent],
    out: &mut dyn super::FeedSink,
    sent: &mut dyn FnMut(u64),
    local: &mut LocalError,
) -> io::Result<String> {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let hasher = scope.spawn(|| extents_sha256(file, extents, &stop));
        let sending = send_extents(file, extents, out, sent, local);
        // A failed send ends the hashing too, rather than waiting for it to read the whole file.
        stop.store(sending.is_err(), Ordering::SeqCst);
        let hashed = hasher
            .join()
            .map_err(|_| io::Error::other("the hashing thread panicked"))?;
        sending?;
        let sha = hashed.map_err(|err| local_failed(local, err))?;
        out.write_all(format!("e {sha}\n").as_bytes())?;
        out.flush()?;
        Ok(sha)
    })
}

fn send_extents(
    file: &File,
    extents: &[Extent],
    out: &mut dyn super::FeedSink,
    sent: &mut dyn FnMut(u64),
    local: &mut LocalError,
) -> io::Result<()> {
    // Only for a sink that is not a pipe: one buffer for the whole push, no allocation per chunk.
    let mut buf = Vec::new();
    for e in extents {
        out.write_all(header(e).as_bytes())?;
        for (at, n) in chunks(e) {
            // Ctrl-C: stop sending; the far side then discards what it has.
            if super::INTERRUPTED.load(Ordering::SeqCst) {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "interrupted"));
            }
            if let Some(pipe) = out.pipe() {
                splice_into(file, at, n, pipe).map_err(|err| match err.kind() {
                    // The far side's end closed: its output says why.
                    io::ErrorKind::BrokenPipe => err,
                    _ => local_failed(local, err),
                })?;
            } else {
                buf.resize(CHUNK, 0);
                file.read_exact_at(&mut buf[..n], at)
                    .map_err(|err| local_failed(local, err))?;
                out.write_all(&buf[..n])?;
            }
            sent(n as u64);
        }
    }
    Ok(())
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
    use std::io::{Seek, SeekFrom, Write};

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
