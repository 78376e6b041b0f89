//! The programs cloudctl runs on this machine, each with the Debian package that provides it,
//! found with the `which` crate; a command checks for its tools before it touches anything.

use crate::error::Error;
use std::path::PathBuf;

/// A local program and the Debian package that provides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tool {
    pub program: &'static str,
    pub package: &'static str,
}

pub const SSH_KEYGEN: Tool = Tool {
    program: "ssh-keygen",
    package: "openssh-client",
};
pub const DROPBEARCONVERT: Tool = Tool {
    program: "dropbearconvert",
    package: "dropbear-bin",
};
pub const IP: Tool = Tool {
    program: "ip",
    package: "iproute2",
};
pub const PING: Tool = Tool {
    program: "ping",
    package: "iputils-ping",
};
pub const UNSHARE: Tool = Tool {
    program: "unshare",
    package: "util-linux",
};
pub const NSENTER: Tool = Tool {
    program: "nsenter",
    package: "util-linux",
};
pub const SETSID: Tool = Tool {
    program: "setsid",
    package: "util-linux",
};
pub const SSHD: Tool = Tool {
    program: "sshd",
    package: "openssh-server",
};

/// Searched after $PATH: `sudo`, cron and some shells give root a PATH without the sbin folders.
const SBIN_DIRS: [&str; 2] = ["/usr/sbin", "/sbin"];

/// The full path of `tool`, if it is installed.
pub fn find(tool: Tool) -> Option<PathBuf> {
    locate(tool.program)
}

/// The full path of a program by name: $PATH first, then the sbin folders.
pub fn locate(program: &str) -> Option<PathBuf> {
    which::which(program).ok().or_else(|| {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        which::which_in(program, Some(SBIN_DIRS.join(":")), cwd).ok()
    })
}

/// The full path of `tool`, or the error that names it and its package (exit 2).
pub fn path(tool: Tool) -> Result<PathBuf, Error> {
    find(tool).ok_or_else(|| missing(&[tool]))
}

/// Refuses (exit 2, nothing touched) unless every tool is installed, naming each missing one.
pub fn require(tools: &[Tool]) -> Result<(), Error> {
    let absent: Vec<Tool> = tools.iter().copied().filter(|t| find(*t).is_none()).collect();
    if absent.is_empty() {
        Ok(())
    } else {
        Err(missing(&absent))
    }
}

fn missing(tools: &[Tool]) -> Error {
    let names: Vec<String> = tools
        .iter()
        .map(|t| format!("{} (package {})", t.program, t.package))
        .collect();
    let mut packages: Vec<&str> = tools.iter().map(|t| t.package).collect();
    packages.dedup();
    Error::Usage(format!(
        "this command needs {} on this machine; install it with: apt-get install {}",
        names.join(", "),
        packages.join(" ")
    ))
}
