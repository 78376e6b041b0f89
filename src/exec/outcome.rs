//! What host outcomes mean as exit codes and errors. Here, not in `error`, so that `error` stays
//! below the executor (error → exec → plan → error was a cycle).

use super::{HostError, HostReport, HostStatus};
use crate::error::{Error, Exit};

impl Exit {
    /// The most serious outcome among hosts decides the exit code.
    pub fn from_reports(reports: &[HostReport]) -> Exit {
        reports.iter().map(|r| Exit::of(r.status)).max().unwrap_or(Exit::Ok)
    }

    /// What one host's outcome means.
    pub fn of(status: HostStatus) -> Exit {
        match status {
            HostStatus::Ok | HostStatus::Changed => Exit::Ok,
            HostStatus::Failed => Exit::Failed,
            HostStatus::Invalid => Exit::Invalid,
            HostStatus::Unreachable => Exit::Unreachable,
            HostStatus::HostKeyRefused => Exit::HostKey,
            HostStatus::NotStarted => Exit::Interrupted,
        }
    }
}

impl From<HostError> for Error {
    fn from(e: HostError) -> Self {
        match e {
            HostError::Unreachable(m) => Error::Unreachable(m),
            HostError::HostKey(m) => Error::HostKey(m),
            HostError::Failed(m) => Error::Failed(anyhow::anyhow!(m)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error a command's own path (a probe, a connection before any plan) gives for a host
    /// that ended so, as `host`, `storage` and `lamp` fold them with `max`.
    fn as_error(status: HostStatus) -> Option<Error> {
        match status {
            HostStatus::Ok | HostStatus::Changed => None,
            HostStatus::Failed | HostStatus::Invalid | HostStatus::NotStarted => {
                Some(Error::Failed(anyhow::anyhow!("step failed")))
            }
            HostStatus::Unreachable => Some(Error::Unreachable("no route".into())),
            HostStatus::HostKeyRefused => Some(Error::HostKey("changed".into())),
        }
    }

    #[test]
    fn one_order_for_every_mix_of_host_outcomes() {
        use HostStatus::*;
        let all = [Ok, Changed, Failed, Invalid, Unreachable, HostKeyRefused, NotStarted];
        for a in all {
            for b in all {
                let by_reports = [Exit::of(a), Exit::of(b)].into_iter().max().unwrap();
                // The worst is the same whichever host came first.
                assert_eq!(by_reports, [Exit::of(b), Exit::of(a)].into_iter().max().unwrap());
                // Errors folded by `max` (the commands' own paths) agree with the report path
                // whenever both name the same outcome.
                let by_errors = [a, b]
                    .into_iter()
                    .filter_map(as_error)
                    .map(|e| e.exit())
                    .fold(Exit::Ok, Exit::max);
                if [a, b].iter().all(|s| !matches!(s, Invalid | NotStarted)) {
                    assert_eq!(by_reports, by_errors, "{a:?} + {b:?}");
                }
            }
        }
        // The audit's case: one failed host and one unreachable host exit 1 (failed) on both paths.
        assert_eq!(Exit::of(Failed).max(Exit::of(Unreachable)), Exit::Failed);
        assert_eq!(Exit::Unreachable.max(Exit::Failed), Exit::Failed);
        assert_eq!(Exit::Usage.max(Exit::Failed), Exit::Usage);
        assert_eq!(Exit::Interrupted.max(Exit::Usage), Exit::Interrupted);
    }
}
