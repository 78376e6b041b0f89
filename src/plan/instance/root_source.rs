//! Where a new guest's root filesystem comes from, and which tools its node must have for that.
//! Pure: the request and the node's reported facts in, the choice or the refusal out.

use super::create::RootSource;
use super::probe::NodeFacts;
use crate::error::Error;
use crate::inventory::Hypervisor;
use crate::types::Name;

/// The programs the node runs while creating the guest: probed before anything is touched, so a
/// missing one is a refusal, not a half-made guest.
pub fn needed_tools(hypervisor: Hypervisor, debootstrap: bool) -> Vec<&'static str> {
    let mut tools = vec!["mkfs.ext4", "e2fsck", "resize2fs", "losetup", "ip"];
    tools.extend(match hypervisor {
        Hypervisor::Kvm => ["qemu-system-x86_64", "socat"],
        Hypervisor::Xen => ["xl", "ssh"],
    });
    if debootstrap {
        tools.push("debootstrap");
    }
    tools
}

/// `--debootstrap SUITE` wins over a copy (the suite built for the node's own architecture);
/// a copy takes the size the node reported for its source; neither is a usage error.
pub fn choose(debootstrap: Option<&str>, copy_from: Option<String>, f: &NodeFacts) -> Result<RootSource, Error> {
    match (debootstrap, copy_from) {
        (Some(suite), _) => Ok(RootSource::Debootstrap {
            suite: suite
                .parse::<Name>()
                .map_err(|e| Error::Usage(format!("--debootstrap: {e}")))?
                .to_string(),
            arch: f.arch.clone(),
        }),
        (None, Some(path)) => Ok(RootSource::Copy {
            size: f.source_size.unwrap_or(0),
            path,
        }),
        (None, None) => Err(Error::Usage(
            "instance create needs --debootstrap SUITE or --copy SOURCE".into(),
        )),
    }
}
