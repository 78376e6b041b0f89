//! Golden images in the shared instance store (`<store>/.images/NAME`): names, the remote
//! receiver of `image push`, the probe and listing scripts and what they print, the removal
//! plan, and how `instance create --copy` resolves a name. Pure.

use super::{AbsentStep, HostPlan, Plan, Step};
use crate::error::Error;
use crate::exec::script::{quote, RECORD};
use crate::inventory::{Host, Inventory};
use crate::types::Name;

/// Images live in this folder of `[instances] store`: instance folders are `[a-z0-9-]` names, so
/// a dot folder can never be one.
pub const IMAGES_DIR: &str = ".images";

pub fn images_dir(store: &str) -> String {
    format!("{}/{IMAGES_DIR}", store.trim_end_matches('/'))
}

/// Where image `name` lives in the store.
pub fn image_path(store: &str, name: &Name) -> String {
    format!("{}/{name}", images_dir(store))
}

/// The temp file a push writes (beside the final name, so the rename is atomic). Its name is
/// fixed: a push that was cut off leaves at most this file, and the next push of the same image
/// takes it over.
pub fn partial_path(store: &str, name: &Name) -> String {
    format!("{}/.{name}.partial", images_dir(store))
}

/// The image's name: the one given, else the file's name without its extension (`bookworm.img`
/// → `bookworm`), which must then be a valid name.
pub fn image_name(file: &std::path::Path, given: Option<&str>) -> Result<Name, Error> {
    if let Some(g) = given {
        return g.parse().map_err(|e| Error::Usage(format!("image name: {e}")));
    }
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    stem.parse().map_err(|e| {
        Error::Usage(format!(
            "cannot name the image after {}: {e}; give a NAME (lowercase letters, digits, '-'): cloudctl image push FILE NAME",
            crate::types::shown(&file.display().to_string())
        ))
    })
}

/// The receiver: a constant program, every value a positional argument (`$1` store, `$2` name,
/// `$3` size). Its input is the stream `exec::push` writes: `d OFFSET LENGTH` lines each followed
/// by LENGTH bytes, then `e SHA256`. It writes into the temp file (holes stay holes: the file is
/// sized first and only data is written, at its offset) and only renames it to the final name
/// once its size and the sha256 of its content read back match. Anything else — a cut stream, a
/// signal, a wrong checksum — removes the temp file; a second push of the same image at once is
/// refused.
///
/// The read-back runs beside the transfer, not after it: after each extent the loop tells a
/// background reader (through a FIFO) how far the file is complete, and that reader feeds the
/// file, holes included, in order to the hasher. So the far side's check costs little wall time
/// beyond the transfer itself.
const RECEIVER: &str = r#"set -u
umask 077
store=$1 name=$2 size=$3
dir=$store/.images
tmp=$dir/.$name.partial
final=$dir/$name
say() { echo "@cloudctl $*"; }
if [ ! -d "$store" ] || [ ! -w "$store" ]; then say refused "$store is not a writable directory"; exit 2; fi
[ ! -L "$dir" ] || { say refused "$dir is a symbolic link"; exit 2; }
mkdir -p "$dir" || exit 1
exec 9>>"$tmp" || exit 1
flock -n 9 || { say busy; exit 75; }
T=$(mktemp -d "${TMPDIR:-/tmp}/cloudctl-push.XXXXXX") || exit 1
trap 'rm -f "$tmp"; rm -rf "$T"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 141' PIPE
trap 'exit 143' TERM
{ truncate -s 0 "$tmp" && truncate -s "$size" "$tmp" && mkfifo "$T/done"; } || exit 1
if command -v openssl >/dev/null 2>&1; then hash() { openssl dgst -sha256 -r; }; else hash() { sha256sum; }; fi
(
  pos=0
  while read -r upto; do
    if [ "$upto" -gt "$pos" ]; then
      dd if="$tmp" bs=1M iflag=skip_bytes,count_bytes skip="$pos" count=$((upto - pos)) status=none || exit 1
    fi
    pos=$upto
  done
  [ "$pos" = "$size" ]
) <"$T/done" 9>&- | hash >"$T/sum" 9>&- &
hasher=$!
exec 7>"$T/done"
kind=
while read -r kind a b; do
  case $kind in
  d) dd of="$tmp" bs=1M iflag=fullblock,count_bytes count="$b" oflag=seek_bytes seek="$a" conv=notrunc status=none || exit 1
     echo $((a + b)) >&7 ;;
  e) break ;;
  *) say garbled; exit 1 ;;
  esac
done
[ "$kind" = e ] || { say truncated; exit 1; }
[ "$(stat -c %s "$tmp")" = "$size" ] || { say truncated; exit 1; }
echo "$size" >&7
exec 7>&-
wait "$hasher" || exit 1
got=$(cat "$T/sum") || exit 1
got=${got%% *}
[ "$got" = "$a" ] || { say mismatch "$got"; exit 1; }
mv -f "$tmp" "$final" || exit 1
trap - EXIT
rm -rf "$T"
say pushed "$got""#;

/// The shell line that starts the receiver for image `name` of `size` bytes.
pub fn receiver_command(store: &str, name: &Name, size: u64) -> String {
    let args = [RECEIVER, "sh", store, name.as_str(), &size.to_string()];
    let quoted: Vec<_> = args.iter().map(|a| quote(a)).collect();
    format!("sh -c {}", quoted.join(" "))
}

/// How a receiver ended, from what it printed.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// Verified and renamed into place; the sha256 the far side computed.
    Pushed(String),
    Mismatch(String),
    Busy,
    Refused(String),
    Truncated,
    /// It printed none of the above (a tool failed): its output.
    Other(String),
}

pub fn parse_received(output: &str) -> Received {
    let mut rest = Vec::new();
    for line in output.lines() {
        let Some(r) = line.strip_prefix(RECORD).and_then(|r| r.strip_prefix(' ')) else {
            rest.push(line);
            continue;
        };
        let (word, arg) = r.split_once(' ').unwrap_or((r, ""));
        match word {
            "pushed" => return Received::Pushed(arg.to_string()),
            "mismatch" => return Received::Mismatch(arg.to_string()),
            "busy" => return Received::Busy,
            "refused" => return Received::Refused(arg.to_string()),
            "truncated" | "garbled" => return Received::Truncated,
            _ => rest.push(line),
        }
    }
    Received::Other(rest.join("\n"))
}

/// What the node holding the store says before a push or removal.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoreFacts {
    pub writable: bool,
    /// Bytes free on the store's filesystem.
    pub free: Option<u64>,
    /// Size of the image already under that name.
    pub existing: Option<u64>,
    pub missing_tools: Vec<String>,
}

/// Read-only: is the store a writable folder, how much is free, is the image there, are the
/// receiver's tools there. Values are positional arguments.
pub fn probe_script(store: &str, name: &Name) -> String {
    let program = r#"store=$1 img=$2
if [ -d "$store" ] && [ -w "$store" ]; then echo writable; fi
free=$(df -Pk "$store" 2>/dev/null | awk 'NR==2 {print $4}') && [ -n "$free" ] && echo "free $((free * 1024))"
if [ -f "$img" ]; then echo "existing $(stat -c %s "$img")"; fi
for t in dd truncate flock stat; do command -v "$t" >/dev/null 2>&1 || echo "missing $t"; done
exit 0"#;
    let path = image_path(store, name);
    format!("sh -c {} sh {} {}", quote(program), quote(store), quote(&path))
}

pub fn parse_probe(output: &str) -> StoreFacts {
    let mut f = StoreFacts::default();
    for line in output.lines() {
        let (k, v) = line.split_once(' ').unwrap_or((line, ""));
        match k {
            "writable" => f.writable = true,
            "free" => f.free = v.trim().parse().ok(),
            "existing" => f.existing = v.trim().parse().ok(),
            "missing" => f.missing_tools.push(v.trim().to_string()),
            _ => {}
        }
    }
    f
}

/// One image in the store.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ImageEntry {
    pub name: String,
    /// Apparent size in bytes (what a guest's disk grows from).
    pub size: u64,
    /// Bytes the filesystem holds for it (less than `size` when it is sparse).
    pub allocated: u64,
    /// Last change, seconds since the epoch.
    pub modified: u64,
}

/// Read-only: every image of the store (regular files with a valid name; temp files of pushes
/// in flight start with a dot and are left out).
pub fn list_script(store: &str) -> String {
    let program = r#"dir=$1
[ -d "$dir" ] || exit 0
for f in "$dir"/*; do
  if [ ! -f "$f" ] || [ -L "$f" ]; then continue; fi
  stat -c 'image %s %b %B %Y %n' "$f"
done
exit 0"#;
    format!("sh -c {} sh {}", quote(program), quote(&images_dir(store)))
}

pub fn parse_list(output: &str) -> Vec<ImageEntry> {
    let mut v: Vec<ImageEntry> = output
        .lines()
        .filter_map(|l| {
            let mut f = l.strip_prefix("image ")?.splitn(5, ' ');
            let size = f.next()?.parse().ok()?;
            let blocks: u64 = f.next()?.parse().ok()?;
            let block_size: u64 = f.next()?.parse().ok()?;
            let modified = f.next()?.parse().ok()?;
            let name = f.next()?.rsplit('/').next()?.to_string();
            name.parse::<Name>().ok()?;
            Some(ImageEntry {
                name,
                size,
                allocated: blocks * block_size,
                modified,
            })
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// `image remove`: the image file goes, on the node that mounts the store, under its lock.
pub fn remove_plan(host: &Host, store: &str, name: &Name) -> Plan {
    let path = image_path(store, name)
        .parse()
        .expect("a store path and a name make a valid path");
    Plan {
        title: format!("remove image {name} from {}", images_dir(store)),
        hosts: vec![HostPlan {
            host: host.clone(),
            exclusive: true,
            steps: vec![Step::Absent(AbsentStep { path })],
        }],
        confirm: true,
    }
}

/// What `instance create --copy SOURCE` copies.
#[derive(Debug, Clone, PartialEq)]
pub enum CopySource {
    /// An image file on the hardware node (an absolute path).
    Path(String),
    /// The disk of the recorded (and stopped) instance of this name.
    Instance(String),
    /// An image pushed with `image push`: its path in the store.
    Image { name: Name, path: String },
}

/// Resolves `--copy SOURCE`: an absolute path as given; a recorded instance's name to its disk;
/// any other name to the store's image of that name (whether it is there, the node's probe says).
pub fn copy_source(inv: &Inventory, source: &str) -> Result<CopySource, Error> {
    if source.starts_with('/') {
        let path: crate::types::RemotePath = source.parse().map_err(Error::Usage)?;
        return Ok(CopySource::Path(path.to_string()));
    }
    if inv.instance.iter().any(|r| r.name.get_ref().as_str() == source) {
        return Ok(CopySource::Instance(source.to_string()));
    }
    let name: Name = source.parse().map_err(|e| {
        Error::Usage(format!(
            "--copy {}: not an absolute image path, a recorded instance or an image name ({e})",
            crate::types::shown(source)
        ))
    })?;
    let path = image_path(inv.instances().store.as_str(), &name);
    Ok(CopySource::Image { name, path })
}
