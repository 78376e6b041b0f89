//! Golden images in the shared instance store (`<store>/.images/NAME`): names, the remote
//! receiver of `image push`, the probe and listing scripts and what they print, the removal
//! plan, and how `instance create --copy` resolves a name. Pure.

use super::{AbsentStep, HostPlan, Plan, Step};
use crate::error::Error;
use crate::inventory::{Host, Inventory};
use crate::shell::RECORD;
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

/// The receiver (`scripts/image/receive.sh`: what it reads and prints is described there): a
/// constant program, every value a positional argument (`$1` store, `$2` name, `$3` size).
const RECEIVER: &str = include_str!("../../scripts/image/receive.sh");

/// The shell line that starts the receiver for image `name` of `size` bytes.
pub fn receiver_command(store: &str, name: &Name, size: u64) -> String {
    crate::shell::sh_c(RECEIVER, &[store, name.as_str(), &size.to_string()])
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
    let program = include_str!("../../scripts/image/probe.sh");
    let path = image_path(store, name);
    crate::shell::sh_c(program, &[store, &path])
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
    let program = include_str!("../../scripts/image/list.sh");
    crate::shell::sh_c(program, &[&images_dir(store)])
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
        redact: Vec::new(),
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
