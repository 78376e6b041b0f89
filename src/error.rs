//! The one place that maps outcomes to exit codes (documented in the man page and README).

/// cloudctl's exit codes. Each says what happened to the hosts. They are ordered by severity
/// (not by number): the most serious outcome among several is their `max()`, on every path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    /// Success (including "no changes").
    Ok = 0,
    /// A step failed on a host after hosts were touched (for `run`: a command exited non-zero).
    Failed = 1,
    /// Usage, inventory or template error: nothing was touched.
    Usage = 2,
    /// A validator refused a rendered file: it was not activated, the old one is still in place.
    Invalid = 3,
    /// A host could not be reached (connection, authentication, timeout); the others completed.
    Unreachable = 4,
    /// A host key is unknown (strict policy) or has changed: that host was not touched.
    HostKey = 5,
    /// The change was not confirmed (answered no, or no TTY and no `--yes`): nothing was touched.
    NotConfirmed = 6,
    /// Interrupted (Ctrl-C): hosts already started finished their current step; the rest were not started.
    Interrupted = 130,
}

impl Exit {
    /// How serious an outcome is: a failed step outranks an unreachable host (something was
    /// changed and went wrong), and an interruption outranks everything.
    fn severity(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Unreachable => 1,
            Exit::HostKey => 2,
            Exit::Invalid => 3,
            Exit::Failed => 4,
            Exit::Usage | Exit::NotConfirmed => 5,
            Exit::Interrupted => 6,
        }
    }

    /// The table for `--help` and the man page.
    pub const TABLE: &'static str = "EXIT STATUS:
  0    success (also when there was nothing to change)
  1    a step failed after hosts were touched (run: a command exited non-zero)
  2    usage, inventory or template error; nothing was touched
  3    a validator refused a rendered file; the old file is still active
  4    a host was unreachable (connect, authentication, timeout); others completed
  5    a host key is unknown (strict policy) or changed; that host was not touched
  6    not confirmed (answered no, or no TTY without --yes); nothing was touched
  130  interrupted (Ctrl-C); started hosts finished their step, the rest did not start
  141  stdout was closed by its reader (e.g. `| head`); cloudctl stopped writing";
}

impl Ord for Exit {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Equal severities (usage, not confirmed) are ordered by code, so the order is total.
        (self.severity(), *self as u8).cmp(&(other.severity(), *other as u8))
    }
}

impl PartialOrd for Exit {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// An error that ends the command before or instead of a per-host report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Inventory(#[from] crate::inventory::InventoryError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    NotConfirmed(String),
    #[error("{0}")]
    HostKey(String),
    #[error("{0}")]
    Unreachable(String),
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

impl Error {
    /// This error ended asking a host something a command needs first, and `message` says what
    /// (with this error in it). A refused host key stays a host-key error (exit 5, as on every
    /// other path); anything else makes the host unreachable (exit 4).
    pub fn not_asked(self, message: String) -> Error {
        match self.not_asked_exit() {
            Exit::HostKey => Error::HostKey(message),
            _ => Error::Unreachable(message),
        }
    }

    /// The exit code of a host this error kept from being asked (see `not_asked`).
    pub fn not_asked_exit(&self) -> Exit {
        match self {
            Error::HostKey(_) => Exit::HostKey,
            _ => Exit::Unreachable,
        }
    }

    pub fn exit(&self) -> Exit {
        match self {
            Error::Inventory(_) | Error::Usage(_) => Exit::Usage,
            Error::NotConfirmed(_) => Exit::NotConfirmed,
            Error::HostKey(_) => Exit::HostKey,
            Error::Unreachable(_) => Exit::Unreachable,
            Error::Failed(_) => Exit::Failed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_not_asked_keeps_a_key_refusal_and_is_otherwise_unreachable() {
        let cases = [
            (Error::HostKey("changed".into()), Exit::HostKey),
            (Error::Unreachable("refused".into()), Exit::Unreachable),
            (Error::Failed(anyhow::anyhow!("exit 127")), Exit::Unreachable),
        ];
        for (e, want) in cases {
            let shown = e.to_string();
            assert_eq!(e.not_asked_exit(), want);
            let asked = e.not_asked(format!("cannot ask hnode1 ({shown})"));
            assert_eq!(asked.exit(), want, "{asked}");
            assert_eq!(asked.to_string(), format!("cannot ask hnode1 ({shown})"));
        }
    }
}
