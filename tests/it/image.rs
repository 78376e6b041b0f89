//! Golden images: the push stream and its receiver on this machine's own shell (holes, checksum,
//! a cut stream), how `instance create --copy NAME` resolves a store image (no host), and
//! `image push|list|remove` end to end on a lab hardware node, an interrupted push included.

use crate::support::{cloudctl, text, Lab};
use cloudctl::exec::local::LocalTransport;
use cloudctl::exec::push;
use cloudctl::exec::{FeedSink, Transport};
use cloudctl::plan::image::{self, CopySource, Received};
use cloudctl::types::Name;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// A file of `size` bytes with pseudo-random data at every `data` offset (1 MiB each), holes
/// elsewhere; returns its sha256.
fn sparse_file(path: &Path, size: u64, data: &[u64]) -> String {
    let mut f = File::create(path).unwrap();
    f.set_len(size).unwrap();
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for &at in data {
        let block: Vec<u8> = (0..MIB / 8)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()
            })
            .collect();
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&block).unwrap();
    }
    f.sync_all().unwrap();
    sha256_of(path)
}

fn sha256_of(path: &Path) -> String {
    let mut h = Sha256::new();
    std::io::copy(&mut File::open(path).unwrap(), &mut h).unwrap();
    cloudctl::digest::hex(&h.finalize())
}

fn name(n: &str) -> Name {
    n.parse().unwrap()
}

/// Runs the receiver for `img` in `store` on this machine, fed by `feed`.
fn receive(store: &Path, img: &str, size: u64, feed: &mut cloudctl::exec::Feed) -> Received {
    let cmd = image::receiver_command(&store.display().to_string(), &name(img), size);
    let deadline = Instant::now() + Duration::from_secs(60);
    let out = LocalTransport.run_fed(&cmd, feed, deadline).unwrap();
    image::parse_received(&out.output)
}

/// A sink that hides that it is a pipe: the sender then reads and writes the data itself, as it
/// does into libssh2's channel, instead of splicing it.
struct NotAPipe<'a>(&'a mut dyn FeedSink);

impl Write for NotAPipe<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl FeedSink for NotAPipe<'_> {}

#[test]
fn a_sparse_file_arrives_whole_with_its_holes_and_only_its_data_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("golden.img");
    let size = 64 * MIB;
    let sha = sparse_file(&src, size, &[0, 20 * MIB, 21 * MIB, 50 * MIB]);
    let store = dir.path().join("store");
    fs::create_dir(&store).unwrap();

    let file = File::open(&src).unwrap();
    let extents = push::data_extents(&file, size).unwrap();
    let data = push::data_bytes(&extents);
    assert_eq!(data, 4 * MIB, "only the data is sent: {extents:?}");
    assert_eq!(extents.len(), 3, "the two adjacent MiB are one extent: {extents:?}");
    // Into a pipe (spliced: the OpenSSH client's stdin) and into a writer (libssh2's channel).
    for spliced in [true, false] {
        let mut sent = 0;
        let mut local = push::LocalError::default();
        let mut ours = String::new();
        let got = receive(&store, "golden", size, &mut |w| {
            assert!(w.pipe().is_some(), "the local receiver's stdin is a pipe");
            let mut plain = NotAPipe(w);
            let w: &mut dyn FeedSink = if spliced { plain.0 } else { &mut plain };
            ours = push::send(&file, &extents, w, &mut |n| sent += n, &mut local)?;
            Ok(())
        });
        assert_eq!(
            ours,
            data_sha(&src, &extents),
            "the sender hashes its extents (spliced: {spliced})"
        );
        assert_eq!(
            got,
            Received::Pushed(ours.clone()),
            "the far side's read-back matches (spliced: {spliced})"
        );
        assert_eq!(sent, data);
        let final_path = store.join(".images/golden");
        assert_eq!(sha256_of(&final_path), sha, "spliced: {spliced}");
        let meta = fs::metadata(&final_path).unwrap();
        assert_eq!(meta.len(), size);
        assert!(
            meta.blocks() * 512 < 8 * MIB,
            "holes stayed holes: {} bytes allocated",
            meta.blocks() * 512
        );
        assert!(!store.join(".images/.golden.partial").exists(), "no temp file left");
    }

    // The listing shows it, sparse.
    let list = LocalTransport
        .run_script(
            &image::list_script(&store.display().to_string()),
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    let entries = image::parse_list(&list.output);
    assert_eq!(entries.len(), 1, "{}", list.output);
    assert_eq!((entries[0].name.as_str(), entries[0].size), ("golden", size));
    assert!(entries[0].allocated < size);
}

#[test]
fn a_receiver_given_no_input_touches_nothing() {
    // cloudctl starts the receiver while it still probes the store, and closes its input
    // unwritten when it does not push after all (a refusal, a declined confirmation).
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    fs::create_dir(&store).unwrap();
    assert_eq!(receive(&store, "golden", MIB, &mut |_| Ok(())), Received::Truncated);
    assert_eq!(
        fs::read_dir(&store).unwrap().count(),
        0,
        "nothing was created in the store"
    );
}

#[test]
fn a_cut_stream_or_a_wrong_checksum_leaves_nothing_under_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    fs::create_dir_all(store.join(".images")).unwrap();
    // An older image under the name stays as it was.
    fs::write(store.join(".images/golden"), b"the previous image").unwrap();

    // The sender stops half-way through an extent.
    let cut = receive(&store, "golden", 4 * MIB, &mut |w| {
        w.write_all(b"d 0 2097152\n")?;
        w.write_all(&vec![1u8; MIB as usize])?;
        Err(std::io::Error::other("the sender died"))
    });
    assert_eq!(cut, Received::Truncated);
    // Data that does not match the checksum the sender announces.
    let bad = receive(&store, "golden", MIB, &mut |w| {
        w.write_all(b"d 0 4\nabcd")?;
        w.write_all(format!("e {}\n", "0".repeat(64)).as_bytes())
    });
    assert!(matches!(bad, Received::Mismatch(_)), "{bad:?}");

    assert_eq!(fs::read(store.join(".images/golden")).unwrap(), b"the previous image");
    let left: Vec<_> = fs::read_dir(store.join(".images"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["golden"], "no temp file left");
}

/// Writes the extents part of the stream `push::send` would write for `extents` of `src` (each
/// `d OFFSET LENGTH` line and its data) to `out`, with `alter` applied to each extent's
/// (offset, data) first.
fn write_extents(
    src: &Path,
    extents: &[push::Extent],
    alter: &mut dyn FnMut(usize, &mut u64, &mut Vec<u8>),
    out: &mut dyn Write,
) {
    let mut f = File::open(src).unwrap();
    for (i, e) in extents.iter().enumerate() {
        let mut data = vec![0u8; e.len as usize];
        f.seek(SeekFrom::Start(e.offset)).unwrap();
        std::io::Read::read_exact(&mut f, &mut data).unwrap();
        let mut at = e.offset;
        alter(i, &mut at, &mut data);
        out.write_all(format!("d {at} {}\n", data.len()).as_bytes()).unwrap();
        out.write_all(&data).unwrap();
    }
}

/// What `push::send` hashes for `extents` of `src`: the untouched extents part of its stream.
fn data_sha(src: &Path, extents: &[push::Extent]) -> String {
    let mut h = Sha256::new();
    write_extents(src, extents, &mut |_, _, _| {}, &mut h);
    cloudctl::digest::hex(&h.finalize())
}

/// The stream `push::send` would write for `extents` of `src`, with `alter` applied to each
/// extent's (offset, data) first, and the checksum of the untouched extents announced at the end.
fn stream(
    src: &Path,
    extents: &[push::Extent],
    sha: &str,
    alter: &mut dyn FnMut(usize, &mut u64, &mut Vec<u8>),
) -> Vec<u8> {
    let mut out = Vec::new();
    write_extents(src, extents, alter, &mut out);
    out.extend_from_slice(format!("e {sha}\n").as_bytes());
    out
}

#[test]
fn a_corrupted_byte_or_a_misplaced_extent_fails_the_check_and_holes_stay_holes() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("golden.img");
    let size = 8 * MIB;
    let sha = sparse_file(&src, size, &[0, 5 * MIB]);
    let extents = push::data_extents(&File::open(&src).unwrap(), size).unwrap();
    assert_eq!(extents.len(), 2, "{extents:?}");
    let sent_sha = data_sha(&src, &extents);
    let store = dir.path().join("store");
    fs::create_dir(&store).unwrap();
    let images = store.join(".images");
    let left = || -> Vec<String> {
        fs::read_dir(&images)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };

    // One byte flipped on the way, the right checksum announced: the far side's own hash says no.
    let flipped = stream(&src, &extents, &sent_sha, &mut |i, _, d| {
        if i == 1 {
            d[12345] ^= 0x40;
        }
    });
    let got = receive(&store, "golden", size, &mut |w| w.write_all(&flipped));
    assert!(matches!(got, Received::Mismatch(ref s) if *s != sent_sha), "{got:?}");
    assert!(left().is_empty(), "nothing is left: {:?}", left());

    // The right bytes at the wrong place (one page further on): what is hashed is each extent's
    // `d` line as received and its data read back from there, so this fails too.
    let shifted = stream(&src, &extents, &sent_sha, &mut |i, at, _| {
        if i == 1 {
            *at += 4096;
        }
    });
    let got = receive(&store, "golden", size, &mut |w| w.write_all(&shifted));
    assert!(matches!(got, Received::Mismatch(_)), "{got:?}");
    assert!(left().is_empty(), "nothing is left: {:?}", left());

    // Untouched, it arrives, and the file's layout is the source's: its holes are holes.
    let whole = stream(&src, &extents, &sent_sha, &mut |_, _, _| {});
    assert_eq!(
        receive(&store, "golden", size, &mut |w| w.write_all(&whole)),
        Received::Pushed(sent_sha.clone())
    );
    let pushed = File::open(images.join("golden")).unwrap();
    assert_eq!(
        push::data_extents(&pushed, size).unwrap(),
        extents,
        "holes stayed holes"
    );
    assert_eq!(sha256_of(&images.join("golden")), sha);
    assert_eq!(left(), ["golden"]);
}

#[test]
fn image_names_come_from_the_file_or_are_given() {
    assert_eq!(
        image::image_name(Path::new("/x/Bookworm.img"), None).unwrap().as_str(),
        "bookworm"
    );
    assert_eq!(
        image::image_name(Path::new("/x/a b.img"), Some("deb12"))
            .unwrap()
            .as_str(),
        "deb12"
    );
    let e = image::image_name(Path::new("/x/a b.img"), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("give a NAME"), "{e}");
    assert!(image::image_name(Path::new("x"), Some("../etc")).is_err());
}

#[test]
fn instance_create_copy_resolves_an_image_name_in_the_store() {
    let text = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed-lab.toml")).unwrap();
    let inv = cloudctl::inventory::parse("seed-lab.toml", &text).unwrap();
    let store = inv.instances().store.to_string();
    assert_eq!(
        image::copy_source(&inv, "golden").unwrap(),
        CopySource::Image {
            name: name("golden"),
            path: format!("{store}/.images/golden"),
        }
    );
    assert_eq!(
        image::copy_source(&inv, "/srv/images/x.img").unwrap(),
        CopySource::Path("/srv/images/x.img".into())
    );
    // A recorded instance's name still means its disk.
    assert_eq!(
        image::copy_source(&inv, "web1").unwrap(),
        CopySource::Instance("web1".into())
    );
    let e = image::copy_source(&inv, "Not A Name").unwrap_err().to_string();
    assert!(e.contains("image name"), "{e}");

    // The create plan copies from that path.
    let CopySource::Image { path, .. } = image::copy_source(&inv, "golden").unwrap() else {
        unreachable!()
    };
    let g = cloudctl::plan::instance::guest(
        &inv,
        "hnode1",
        &cloudctl::plan::instance::GuestRequest {
            name: name("web2"),
            memory: None,
            vcpus: None,
            disk: None,
            ip: "10.0.0.51".parse().unwrap(),
            mac: "52:54:00:00:05:02".parse().unwrap(),
        },
    )
    .unwrap();
    let plan = cloudctl::plan::instance::create::plan(
        &inv,
        &cloudctl::templates::Templates::load(None).unwrap(),
        &cloudctl::plan::instance::create::CreateRequest {
            guest: &g,
            hnode: &inv.select(&["hnode1".into()]).unwrap()[0],
            source: cloudctl::plan::instance::create::RootSource::Copy {
                path: path.clone(),
                size: 2 << 30,
            },
            secrets: &cloudctl::plan::instance::create::GuestSecrets {
                host_key: b"k".to_vec(),
                host_key_pub: b"ssh-ed25519 AAAA x".to_vec(),
                authorized_keys: b"ssh-ed25519 AAAA y".to_vec(),
            },
            nonce: "0123456789abcdef",
        },
    )
    .unwrap();
    let json = serde_json::to_string(&plan).unwrap();
    assert!(json.contains(&path), "the plan copies {path}");
}

// ---------------------------------------------------------------------------------------------
// On a lab hardware node

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}{}",
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn image_push_list_remove_round_trip_on_a_lab() {
    crate::support::require_lab(&[]);
    let lab = Lab::up("tpimg", 2, 173);
    let inv = lab.inventory();
    let store = lab.state.dir.join("store");
    let src = lab.dir.path().join("Golden.img");
    let size = 96 * MIB;
    let sha = sparse_file(&src, size, &[0, 8 * MIB, 9 * MIB, 90 * MIB]);
    let extents = push::data_extents(&File::open(&src).unwrap(), size).unwrap();
    let sent_sha = data_sha(&src, &extents);
    let src = src.display().to_string();

    // A dry run says what it would send and touches nothing.
    let dry = cloudctl(&["-i", &inv, "--json", "-n", "image", "push", &src]);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry.stderr));
    assert_eq!(json(&dry)["sent_bytes"], 4 * MIB);
    assert!(!store.join(".images").exists(), "a dry run created nothing");

    // The push: one JSON document with size, bytes sent, rate and the checksum.
    let out = cloudctl(&["-i", &inv, "--json", "image", "push", &src]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc = json(&out);
    assert_eq!(doc["image"], "golden");
    assert_eq!(
        doc["data_sha256"],
        sent_sha.as_str(),
        "the data's checksum, holes not in it"
    );
    assert_eq!(doc["size"], size);
    assert_eq!(doc["sent_bytes"], 4 * MIB, "holes were not sent");
    assert!(doc["rate_bytes_per_second"].as_f64().unwrap() > 0.0);
    let pushed = store.join(".images/golden");
    assert_eq!(sha256_of(&pushed), sha, "the image in the store is the file");
    assert!(
        fs::metadata(&pushed).unwrap().blocks() * 512 < 16 * MIB,
        "its holes stayed holes"
    );

    // Listed, with its size.
    let list = json(&cloudctl(&["-i", &inv, "--json", "image", "list"]));
    assert_eq!(list["images"][0]["name"], "golden", "{list}");
    assert_eq!(list["images"][0]["size"], size);

    // Replacing it, and removing it, need --yes without a TTY; nothing changes without.
    let again = cloudctl(&["-i", &inv, "image", "push", &src]);
    assert_eq!(again.status.code(), Some(6), "{}", text(&again.stderr));
    assert!(text(&again.stderr).contains("--yes"), "{}", text(&again.stderr));
    let refused = cloudctl(&["-i", &inv, "image", "remove", "golden"]);
    assert_eq!(refused.status.code(), Some(6), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("--yes"), "{}", text(&refused.stderr));
    assert_eq!(sha256_of(&pushed), sha, "still there");

    let removed = cloudctl(&["-i", &inv, "--yes", "image", "remove", "golden"]);
    assert_eq!(removed.status.code(), Some(0), "{}", text(&removed.stderr));
    assert!(!pushed.exists());
    let list = json(&cloudctl(&["-i", &inv, "--json", "image", "list"]));
    assert_eq!(list["images"], serde_json::json!([]));
    let gone = cloudctl(&["-i", &inv, "--yes", "image", "remove", "golden"]);
    assert_eq!(gone.status.code(), Some(2), "{}", text(&gone.stderr));
}

#[test]
#[cfg_attr(
    not(lab_tests),
    ignore = "lab test: needs root and every program in .ci/prerequisites"
)]
fn an_interrupted_image_push_leaves_no_image_and_a_rerun_completes() {
    crate::support::require_lab(&[]);
    let lab = Lab::up("tpkill", 2, 174);
    let inv = lab.inventory();
    let images = lab.state.dir.join("store/.images");
    let src = lab.dir.path().join("big.img");
    // 256 MiB of data: long enough to be caught part-way.
    let data: Vec<u64> = (0..256).map(|i| i * 2 * MIB).collect();
    let sha = sparse_file(&src, 512 * MIB, &data);
    let extents = push::data_extents(&File::open(&src).unwrap(), 512 * MIB).unwrap();
    let sent_sha = data_sha(&src, &extents);
    let src = src.display().to_string();

    let mut child = Command::new(crate::support::bin())
        .args(["-i", &inv, "--yes", "image", "push", &src, "big"])
        .env_remove("CLOUDCTL_INVENTORY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let partial = images.join(".big.partial");
    let deadline = Instant::now() + Duration::from_secs(60);
    while fs::metadata(&partial).map_or(0, |m| m.blocks() * 512) < 4 * MIB {
        assert!(Instant::now() < deadline, "the push never started writing");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the push ended before it could be cut"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let final_path = images.join("big");
    let deadline = Instant::now() + Duration::from_secs(20);
    while partial.exists() {
        assert!(Instant::now() < deadline, "the far side kept its temp file");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!final_path.exists(), "a cut push left a file under the image's name");

    let out = cloudctl(&["-i", &inv, "--json", "image", "push", &src, "big"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(json(&out)["data_sha256"], sent_sha.as_str());
    assert_eq!(sha256_of(&final_path), sha);
}
