//! Whether a hardware node is ready for a new guest, decided from the facts it reported, and the
//! size the guest's disk gets. Pure: nothing is asked here, the facts come in gathered.

use super::probe::{GuestSeen, NodeFacts};
use super::Guest;
use crate::error::Error;
use crate::plan::image::CopySource;
use crate::types::{Name, Size};

/// Refuses sizes no hypervisor boots a guest with (checked before any host is asked).
pub fn sane_size(g: &Guest) -> Result<(), Error> {
    if g.memory < 16 || g.vcpus == 0 {
        return Err(Error::Usage(
            "--memory is at least 16 (MiB) and --vcpus at least 1".into(),
        ));
    }
    Ok(())
}

/// Every reason `node` cannot take the guest, all at once so one run shows the whole list.
pub fn check(
    g: &Guest,
    node: &str,
    f: &NodeFacts,
    source: Option<&CopySource>,
    copy: Option<&str>,
    store: &str,
) -> Result<(), Error> {
    let mut problems = Vec::new();
    if !f.missing_tools.is_empty() {
        problems.push(format!(
            "{node} lacks {}; install them first",
            f.missing_tools.join(", ")
        ));
    }
    if !f.bridge {
        problems.push(format!("bridge {} does not exist on {node}", g.bridge));
    }
    if !f.store_writable {
        problems.push(format!(
            "{store} is not a writable directory on {node}: is the shared storage mounted? ([instances] store)"
        ));
    }
    if f.dir_exists {
        problems.push(format!(
            "{} already exists on the shared storage; cloudctl will not touch it (remove it, or choose another name)",
            g.dir
        ));
    }
    match (source, copy, f.source_size) {
        (Some(CopySource::Image { name, path }), _, None) => problems.push(format!(
            "there is no image {name} in the store ({path} is not a file on {node}); push one with `cloudctl image push FILE {name}`, see `cloudctl image list`"
        )),
        (_, Some(src), None) => problems.push(format!("{src} is not a file on {node}")),
        _ => {}
    }
    if let Some(free) = f.mem_available_mib {
        if free < u64::from(g.memory) {
            problems.push(format!("{node} has {free} MiB available, the guest needs {}", g.memory));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "cannot create {} on {node} (nothing was changed):\n  - {}",
        g.name,
        problems.join("\n  - ")
    )))
}

/// Refuses a name a hardware node already runs without a record: creating it would give two
/// guests one disk path and one MAC. `running_on` is every node that reported the guest.
pub fn not_running(name: &Name, running_on: &[String]) -> Result<(), Error> {
    if !running_on.is_empty() {
        return Err(Error::Usage(format!(
            "a guest named {name} already runs on a hardware node without a record; stop it or choose another name"
        )));
    }
    Ok(())
}

/// Refuses copying the disk of an instance that still runs somewhere: its disk is being written,
/// so the copy would be inconsistent. `live` is every node that reported the instance.
pub fn copy_source_stopped(name: &str, live: &[(String, GuestSeen)]) -> Result<(), Error> {
    if let Some((node, s)) = live.first() {
        return Err(Error::Usage(format!(
            "--copy {name}: it is {} on {node}; stop it first (`cloudctl instance stop {name}`) so its disk is consistent",
            s.state.as_str()
        )));
    }
    Ok(())
}

/// The guest's disk size: a copy is never smaller than its source.
pub fn disk_size(g: &Guest, source: Option<u64>) -> Size {
    match source {
        Some(b) if b > g.disk_size.bytes() => format!("{}K", b.div_ceil(1024)).parse().unwrap_or(g.disk_size),
        _ => g.disk_size,
    }
}
