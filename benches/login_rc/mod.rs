//! Whether a bench's sshd hosts' login shells read this machine's rc files.
//!
//! The benches' hosts all log in as root on this one machine, so they share its `~/.bashrc`,
//! which bash reads for every command run through sshd. On this machine that file runs pyenv's
//! `eval "$(pyenv init -)"`: each login then runs `pyenv rehash`, which takes one lock file and
//! costs a few hundred milliseconds even uncontended. Real hosts neither share that lock nor, as
//! a rule, run pyenv for root; so a bench's hosts read no rc file unless
//! `BENCH_LOGIN_RC=machine` says so. The condition is the host's, so every client a bench
//! compares (cloudctl and the OpenSSH tools alike) logs in under the same one.

/// Whether the hosts' login shells read this machine's rc files (see the module comment).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum LoginRc {
    /// As `sshd` does by default: bash reads `~/.bashrc` before each command.
    Machine,
    /// sshd sets `SHLVL=1` for the session: bash then counts itself as a nested shell and reads
    /// no rc file (bash reads `~/.bashrc` for sshd only at shell level 1). Same for every client.
    Skipped,
}

impl LoginRc {
    /// `BENCH_LOGIN_RC=machine` or `=skipped` chooses; otherwise the bench's own default.
    pub fn from_env(default: LoginRc) -> LoginRc {
        match std::env::var("BENCH_LOGIN_RC").as_deref() {
            Ok("machine") => LoginRc::Machine,
            Ok("skipped") => LoginRc::Skipped,
            Ok(other) => {
                eprintln!("BENCH_LOGIN_RC: give `machine` or `skipped`, not {other:?}");
                std::process::exit(2);
            }
            Err(_) => default,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            LoginRc::Machine => "the hosts' shells read this machine's ~/.bashrc (BENCH_LOGIN_RC=machine)",
            LoginRc::Skipped => "the hosts' shells read no rc file (BENCH_LOGIN_RC=skipped)",
        }
    }

    /// The sshd_config lines that give a host this condition (appended to its config).
    pub fn sshd_config(self) -> &'static str {
        match self {
            LoginRc::Machine => "",
            LoginRc::Skipped => "SetEnv SHLVL=1\n",
        }
    }
}
