//! The `Fact` trait: one read-only probe of a host, as the program it runs there and the parser
//! that turns what it printed into a typed value. Pure: `exec::gather` runs facts on hosts.

use crate::error::Error;
use crate::inventory::Host;

/// A read-only probe and its parser. Commands that need to know something about hosts (their
/// guests, their DRBD state, their LAMP components) name it as a `Fact` and let `exec::gather`
/// ask every host at once, so connecting, time limits, `--forks` and the handling of a host
/// that does not answer are written once.
pub trait Fact: Sync {
    /// What the probe says about one host.
    type Value: Send;

    /// The program for `host`: built with `crate::shell` or a `scripts/<noun>/*.sh` wrapper, so
    /// a value reaches it only as a quoted word. An error here means that host is not asked.
    fn script(&self, host: &Host) -> Result<String, Error>;

    /// What `host` printed (stdout and stderr merged), as the typed value.
    fn parse(&self, host: &Host, output: &str) -> Self::Value;

    /// Whether a non-zero exit status fails the host. Probes end in `exit 0`, so another status
    /// means the probe itself broke and its output cannot be trusted; a fact whose output is
    /// worth reading whatever the status says so here.
    fn needs_success(&self) -> bool {
        true
    }
}
