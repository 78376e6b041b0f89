//! Turns a host's steps into one POSIX `sh` script and parses what it reports back. Pure.
//!
//! Only plain `sh` and coreutils run remotely. File contents travel inside the script (read by the
//! remote shell from the SSH channel's stdin), never in a process argument. Every user value is
//! quoted; the script reports each step as one `@cloudctl` record line.

use crate::plan::{FileStep, HostPlan, Step, When};
use base64::Engine;
use sha2::{Digest, Sha256};
use std::borrow::Cow;

/// Marks the lines of a script's output that carry records; other lines are diagnostics.
const RECORD: &str = "@cloudctl";
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

/// Helpers every script defines first.
/// `hash_of FILE` sets H to the file's sha256 (empty if absent) with one process; `rec` encodes
/// a step's captured output only when there is some. Few forks keep a no-change run cheap.
const HASH_OF: &str = "hash_of() { H=; [ -f \"$1\" ] && H=$(sha256sum < \"$1\") && H=${H%% *}; }\n";
const PRELUDE: &str = r#"set -u
rec() { o=-; e=-; [ -s "$T/o" ] && o=$(base64 -w0 < "$T/o"); [ -s "$T/e" ] && e=$(base64 -w0 < "$T/e"); printf '@cloudctl %s %s %s %s %s\n' "$1" "$2" "${3:--}" "$o" "$e"; : > "$T/o"; : > "$T/e"; }
T=$(mktemp -d "${TMPDIR:-/tmp}/cloudctl.XXXXXX") || exit 70
trap 'rm -rf "$T"' EXIT
: > "$T/o"; : > "$T/e"
"#;

/// A read-only script printing, for each path, its checksum (and its content with `with_content`).
/// Output: one `@cloudctl probe INDEX SHA|- [BASE64|-]` line per path.
pub fn probe_script(paths: &[&str], with_content: bool) -> String {
    let mut s = format!("main() {{\nset -u\n{HASH_OF}");
    for (i, p) in paths.iter().enumerate() {
        let p = quote(p);
        s += &format!("hash_of {p}; printf '{RECORD} probe {i} %s' \"${{H:--}}\"\n");
        if with_content {
            s += &format!("if [ -n \"$H\" ] && [ -s {p} ]; then printf ' '; base64 -w0 < {p}; else printf ' -'; fi\n");
        }
        s += "echo\n";
    }
    s + "}\nmain </dev/null\n"
}

/// What a probe found at one path.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Probed {
    pub sha: Option<String>,
    pub content: Option<Vec<u8>>,
}

pub fn parse_probe(output: &str, count: usize) -> Result<Vec<Probed>, String> {
    let mut found = vec![None; count];
    for line in output.lines() {
        let mut f = line.split(' ');
        if (f.next(), f.next()) != (Some(RECORD), Some("probe")) {
            continue;
        }
        let idx: usize = f
            .next()
            .and_then(|i| i.parse().ok())
            .filter(|i| *i < count)
            .ok_or_else(|| format!("bad probe line {line:?}"))?;
        let sha = f.next().filter(|h| *h != "-").map(str::to_string);
        let content = match f.next() {
            Some("-") | None => None,
            Some(b) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|e| format!("bad probe content: {e}"))?,
            ),
        };
        found[idx] = Some(Probed { sha, content });
    }
    found
        .into_iter()
        .enumerate()
        .map(|(i, p)| p.ok_or_else(|| format!("probe did not report path #{i}: {output}")))
        .collect()
}

/// The apply script for one host. `remote_sha[i]` is what a probe found for step `i` (files only);
/// a file already holding the planned content is not sent again, and the script refuses to run
/// ("stale") if such a file changed since the probe.
pub fn apply_script(hp: &HostPlan, remote_sha: &[Option<String>], lock_timeout_secs: u64) -> String {
    let mut s = String::from("main() {\n");
    s += PRELUDE;
    s += HASH_OF;
    if hp.exclusive {
        s += &format!(
            "mkdir -p /run/lock && exec 9>>{LOCK_FILE} && flock -w {lock_timeout_secs} 9 || {{ echo '{RECORD} lock timeout'; exit {EXIT_LOCK_TIMEOUT}; }}\n"
        );
    }
    let unsent = |i: usize, f: &FileStep| remote_sha.get(i).cloned().flatten() == Some(sha256_hex(&f.content));
    for (i, step) in hp.steps.iter().enumerate() {
        if let Step::File(f) = step {
            if unsent(i, f) {
                s += &format!(
                    "hash_of {}; [ \"$H\" = {} ] || {{ echo '{RECORD} stale'; exit 0; }}\n",
                    quote(f.path.as_str()),
                    sha256_hex(&f.content)
                );
            }
        }
    }
    for (i, step) in hp.steps.iter().enumerate() {
        s += &format!("c{i}=0\n");
        match step {
            Step::File(f) => s += &file_step(i, f, !unsent(i, f)),
            Step::Dir(d) => {
                let p = quote(d.path.as_str());
                let mode = format!("{:o}", d.mode);
                s += &format!(
                    "if [ -d {p} ] && [ \"$(stat -c %a {p})\" = {mode} ]; then rec {i} ok\n\
                     elif mkdir -p {p} 2>\"$T/e\" && chmod {mode} {p} 2>\"$T/e\"; then c{i}=1; rec {i} changed\n\
                     else rec {i} failed 1; exit 1; fi\n"
                );
            }
            Step::Absent(a) => {
                let p = quote(a.path.as_str());
                s += &format!(
                    "if [ -e {p} ] || [ -L {p} ]; then if rm -f {p} 2>\"$T/e\"; then c{i}=1; rec {i} changed; else rec {i} failed 1; exit 1; fi\n\
                     else rec {i} ok; fi\n"
                );
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
                s += &format!(
                    "if {cond}; then {} >\"$T/o\" 2>\"$T/e\" 9>&-; rc=$?\n\
                     if [ $rc -eq 0 ]; then c{i}=1; rec {i} {status} 0; else rec {i} failed $rc; exit 1; fi\n\
                     else rec {i} {otherwise}; fi\n",
                    argv.join(" ")
                );
            }
        }
    }
    s + "exit 0\n}\nmain </dev/null\n"
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

fn file_step(i: usize, f: &FileStep, send: bool) -> String {
    let p = quote(f.path.as_str());
    let name = f.path.as_str().rsplit('/').next().unwrap_or("file");
    let tmp_path = format!("{}/.{name}.cloudctl-new", f.path.parent().trim_end_matches('/'));
    let tmp = quote(&tmp_path);
    let bak = quote(&f.path.with_suffix(".cloudctl-bak")).into_owned();
    let sha = sha256_hex(&f.content);
    let mode = format!("{:o}", f.mode);
    let (stat_fmt, want_meta) = match &f.owner {
        Some(o) => ("'%a %U:%G'", quote(&format!("{mode} {o}")).into_owned()),
        None => ("%a", mode.clone()),
    };
    let fix_meta = |target: &str| {
        let mut m = format!("chmod {mode} {target}");
        if let Some(o) = &f.owner {
            m += &format!(" && chown {} {target}", quote(o));
        }
        m
    };
    // An unsent file's content was checked by the stale guard at the top: only its metadata is left.
    let mut s = if send {
        format!("hash_of {p}; if [ \"$H\" = {sha} ]; then\n")
    } else {
        "if true; then\n".to_string()
    };
    s += &format!(
        "  if [ \"$(stat -c {stat_fmt} {p})\" = {want_meta} ]; then rec {i} ok\n  \
         elif {} 2>\"$T/e\"; then c{i}=1; rec {i} changed; else rec {i} failed 1; exit 1; fi\n",
        fix_meta(&p)
    );
    if !send {
        return s + "fi\n";
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(&f.content);
    s += "else\n  { base64 -d > ";
    s += &tmp;
    s += " <<'CLOUDCTL_EOF'\n";
    for chunk in encoded.as_bytes().chunks(76) {
        s += std::str::from_utf8(chunk).expect("base64 is ASCII");
        s += "\n";
    }
    s += "CLOUDCTL_EOF\n  } 2>\"$T/e\"";
    s += &format!(
        " && hash_of {tmp} && [ \"$H\" = {sha} ] && {} 2>>\"$T/e\" || {{ rm -f {tmp}; rec {i} failed 1; exit 1; }}\n",
        fix_meta(&tmp)
    );
    if let Some(v) = &f.validate {
        let argv: Vec<String> = v
            .iter()
            .map(|a| {
                if a == "{}" {
                    tmp.to_string()
                } else {
                    quote(a).into_owned()
                }
            })
            .collect();
        s += &format!(
            "  {} >\"$T/o\" 2>\"$T/e\" 9>&-; rc=$?\n  if [ $rc -ne 0 ]; then rm -f {tmp}; rec {i} invalid $rc; exit 3; fi\n",
            argv.join(" ")
        );
    }
    s += &format!(
        "  if [ -e {p} ]; then ln -f {p} {bak} 2>/dev/null || cp -p {p} {bak}; fi\n  \
         mv -f {tmp} {p} 2>\"$T/e\" || {{ rm -f {tmp}; rec {i} failed 1; exit 1; }}\n  c{i}=1; rec {i} changed\nfi\n"
    );
    s
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
