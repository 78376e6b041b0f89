//! Turns a host's steps into one POSIX `sh` script and parses what it reports back. Pure.
//!
//! Only plain `sh` and coreutils run remotely. File contents travel inside the script (read by the
//! remote shell from the SSH channel's stdin), never in a process argument. Every user value is
//! quoted; the script reports each step as one `@cloudctl` record line.

use super::files;
use crate::plan::{FileStep, HostPlan, Step, When};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// Marks the lines of a script's output that carry records; other lines are diagnostics.
pub const RECORD: &str = "@cloudctl";
/// Where the per-host lock lives (serialises concurrent cloudctl runs on one host).
pub const LOCK_FILE: &str = "/run/lock/cloudctl.lock";
/// Exit status of a script that could not take the host lock in time.
pub const EXIT_LOCK_TIMEOUT: i32 = 75;

/// Quotes one word for `sh`. Values never contain NUL: typed values exclude it, and argv comes
/// from the OS command line or from planners.
pub fn quote(word: &str) -> Cow<'_, str> {
    shlex::try_quote(word).unwrap_or_else(|_| {
        Cow::Owned(
            shlex::try_quote(&word.replace('\0', ""))
                .expect("NUL removed")
                .into_owned(),
        )
    })
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Helpers every script defines first: `rec` encodes a step's captured output only when there
/// is some, so recording a step costs no process.
const PRELUDE: &str = r#"set -u
rec() { o=-; e=-; [ -s "$T/o" ] && o=$(base64 -w0 < "$T/o"); [ -s "$T/e" ] && e=$(base64 -w0 < "$T/e"); printf '@cloudctl %s %s %s %s %s\n' "$1" "$2" "${3:--}" "$o" "$e"; : > "$T/o"; : > "$T/e"; }
T=$(mktemp -d "${TMPDIR:-/tmp}/cloudctl.XXXXXX") || exit 70
: > "$T/o"; : > "$T/e"
"#;

/// What a probe found at one path.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Probed {
    pub sha: Option<String>,
    /// `mode user:group`, as `stat -c '%a %U:%G'` prints it.
    pub meta: Option<String>,
    /// The current content (dry runs only, and only where it differs from the plan).
    pub content: Option<Vec<u8>>,
}

/// The apply script for one host. `remote[i]` is what a probe found for step `i` (files only);
/// a file already holding the planned content is not sent again, and the script refuses to run
/// ("stale") if such a file changed since the probe. Consecutive file steps and consecutive
/// removals run as batches (see `files`), so the remote processes do not grow with the files.
pub fn apply_script(hp: &HostPlan, remote: &[Option<Probed>], lock_timeout_secs: u64) -> String {
    let seen = |i: usize| remote.get(i).cloned().flatten().unwrap_or_default();
    let unsent = |i: usize, f: &FileStep| {
        let p = seen(i);
        p.sha == Some(sha256_hex(&f.content)) && p.meta.is_some()
    };
    let mut body = String::new();
    if hp.exclusive {
        body += &format!(
            "mkdir -p /run/lock && exec 9>>{LOCK_FILE} && flock -w {lock_timeout_secs} 9 || {{ echo '{RECORD} lock timeout'; exit {EXIT_LOCK_TIMEOUT}; }}\n"
        );
    }
    let probed: Vec<Probed> = (0..hp.steps.len()).map(seen).collect();
    let guarded: Vec<(&FileStep, &Probed)> = hp
        .steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            Step::File(f) if unsent(i, f) => Some((f, &probed[i])),
            _ => None,
        })
        .collect();
    body += &files::stale_guard(&guarded);
    let mut stages = 0;
    let mut i = 0;
    while i < hp.steps.len() {
        // The run of steps of one kind starting at i (files and removals are batched).
        let run_end = |pred: fn(&Step) -> bool| {
            (i..hp.steps.len())
                .find(|&j| !pred(&hp.steps[j]))
                .unwrap_or(hp.steps.len())
        };
        match &hp.steps[i] {
            Step::File(_) => {
                let end = run_end(|s| matches!(s, Step::File(_)));
                let members: Vec<files::Member> = (i..end)
                    .map(|j| {
                        let Step::File(f) = &hp.steps[j] else {
                            unreachable!("a run of files")
                        };
                        let keep = unsent(j, f);
                        let p = &probed[j];
                        files::Member {
                            index: j,
                            file: f,
                            send: !keep,
                            exists: p.sha.is_some() || p.meta.is_some() || remote.get(j).cloned().flatten().is_none(),
                            meta_ok: keep && p.meta.as_deref().is_some_and(|m| files::meta_matches(f, m)),
                        }
                    })
                    .collect();
                for m in &members {
                    body += &format!("c{}=0\n", m.index);
                }
                body += &files::batch(&members, &mut stages);
                i = end;
            }
            Step::Absent(_) => {
                let end = run_end(|s| matches!(s, Step::Absent(_)));
                let members: Vec<(usize, &str)> = (i..end)
                    .map(|j| match &hp.steps[j] {
                        Step::Absent(a) => (j, a.path.as_str()),
                        _ => unreachable!("a run of removals"),
                    })
                    .collect();
                body += &files::absent_batch(&members);
                i = end;
            }
            Step::Dir(d) => {
                let p = quote(d.path.as_str());
                let mode = format!("{:o}", d.mode);
                body += &format!(
                    "c{i}=0\nif [ -d {p} ] && [ \"$(stat -c %a {p})\" = {mode} ]; then rec {i} ok\n\
                     elif mkdir -p {p} 2>\"$T/e\" && chmod {mode} {p} 2>\"$T/e\"; then c{i}=1; rec {i} changed\n\
                     else rec {i} failed 1; exit 1; fi\n"
                );
                i += 1;
            }
            Step::Command(c) => {
                let argv: Vec<_> = c.argv.iter().map(|a| quote(a)).collect();
                let (cond, status, otherwise) = match &c.when {
                    When::Always => ("true".to_string(), "ok", "skipped"),
                    When::Changed(ids) => (changed_condition(hp, ids), "changed", "skipped"),
                    When::Unless(check) => {
                        let check: Vec<_> = check.iter().map(|a| quote(a)).collect();
                        (format!("! {} >/dev/null 2>&1 9>&-", check.join(" ")), "changed", "ok")
                    }
                };
                body += &format!(
                    "c{i}=0\nif {cond}; then {} >\"$T/o\" 2>\"$T/e\" 9>&-; rc=$?\n\
                     if [ $rc -eq 0 ]; then c{i}=1; rec {i} {status} 0; else rec {i} failed $rc; exit 1; fi\n\
                     else rec {i} {otherwise}; fi\n",
                    argv.join(" ")
                );
                i += 1;
            }
        }
    }
    // Staging directories left by a failed batch are removed on exit, with the temp dir.
    let stage_vars: String = (0..stages).map(|k| format!(" ${{S{k}:+\"$S{k}\"}}")).collect();
    let inits: String = (0..stages).map(|k| format!("S{k}=\n")).collect();
    format!("main() {{\n{PRELUDE}{inits}trap 'rm -rf \"$T\"{stage_vars}' EXIT\n{body}exit 0\n}}\nmain </dev/null\n")
}

/// A shell condition true when any of the file steps named by `ids` changed.
fn changed_condition(hp: &HostPlan, ids: &[String]) -> String {
    let tests: Vec<String> = hp
        .steps
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s, Step::File(f) if ids.contains(&f.id)))
        .map(|(i, _)| format!("[ $c{i} = 1 ]"))
        .collect();
    if tests.is_empty() {
        "false".into()
    } else {
        format!("{{ {}; }}", tests.join(" || "))
    }
}

/// How one step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Ok,
    Changed,
    Skipped,
    Failed,
    /// A validator refused the new file; the old one is still active.
    Invalid,
    /// Not reached: an earlier step failed, or the run stopped.
    NotRun,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Ok => "ok",
            StepStatus::Changed => "changed",
            StepStatus::Skipped => "skipped",
            StepStatus::Failed => "failed",
            StepStatus::Invalid => "invalid",
            StepStatus::NotRun => "not run",
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepResult {
    pub status: StepStatus,
    pub exit_status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// What an apply script reported.
#[derive(Debug, Clone, PartialEq)]
pub enum ApplyOutcome {
    Done {
        steps: Vec<StepResult>,
        diagnostics: String,
    },
    /// A file changed between probe and apply; re-run sending every file.
    Stale,
    LockTimeout,
}

pub fn parse_apply(output: &str, step_count: usize) -> Result<ApplyOutcome, String> {
    let decode = |f: Option<&str>| -> Result<String, String> {
        match f {
            None | Some("-") => Ok(String::new()),
            Some(b) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .map_err(|e| format!("bad record: {e}")),
        }
    };
    let mut steps: Vec<Option<StepResult>> = vec![None; step_count];
    let mut diagnostics = String::new();
    for line in output.lines() {
        let Some(rest) = line.strip_prefix(RECORD).and_then(|r| r.strip_prefix(' ')) else {
            diagnostics += line;
            diagnostics += "\n";
            continue;
        };
        match rest {
            "stale" => return Ok(ApplyOutcome::Stale),
            "lock timeout" => return Ok(ApplyOutcome::LockTimeout),
            _ => {}
        }
        let mut f = rest.split(' ');
        let idx: usize = f
            .next()
            .and_then(|i| i.parse().ok())
            .filter(|i| *i < step_count)
            .ok_or_else(|| format!("bad record {line:?}"))?;
        let status = match f.next() {
            Some("ok") => StepStatus::Ok,
            Some("changed") => StepStatus::Changed,
            Some("skipped") => StepStatus::Skipped,
            Some("failed") => StepStatus::Failed,
            Some("invalid") => StepStatus::Invalid,
            _ => return Err(format!("bad record {line:?}")),
        };
        let exit_status = f.next().and_then(|r| r.parse().ok());
        let stdout = decode(f.next())?;
        let stderr = decode(f.next())?;
        steps[idx] = Some(StepResult {
            status,
            exit_status,
            stdout,
            stderr,
        });
    }
    let steps = steps
        .into_iter()
        .map(|s| {
            s.unwrap_or(StepResult {
                status: StepStatus::NotRun,
                exit_status: None,
                stdout: String::new(),
                stderr: String::new(),
            })
        })
        .collect();
    Ok(ApplyOutcome::Done { steps, diagnostics })
}
