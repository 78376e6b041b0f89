//! Plans as data: per-host steps built by pure planners, compared in golden tests, applied by `exec`. Pure.

pub mod confignode;
pub mod confignode_facts;
pub mod confignode_status;
pub mod doctor;
pub mod doctor_probe;
pub mod evacuate;
pub mod fact;
pub mod hnode;
pub mod image;
pub mod instance;
pub mod lamp;
pub mod masked;
pub mod node;
pub mod node_memory;
pub mod phased;
pub mod placement;
pub mod poweroff;
pub mod rebalance;
pub mod run;
pub mod steps;
pub mod storage;
pub mod storage_facts;
pub mod storage_health;
pub mod storage_status;
pub mod wait;

use crate::error::Error;
use crate::inventory::Host;
use crate::types::RemotePath;
use serde::{Deserialize, Serialize};
pub use steps::{StepId, Steps};

/// Everything one command will do, host by host.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    /// What the plan does, in a few words (shown in prompts and reports).
    pub title: String,
    pub hosts: Vec<HostPlan>,
    /// Whether a change is made on the hosts (asks for confirmation); `run` makes none of its own.
    pub confirm: bool,
    /// Secret values the plan carries (a DRBD shared secret, ...) that a remote program may echo
    /// back, as drbdadm does with a failing drbdsetup command line: the executor masks them in
    /// every output it reports. Never serialised.
    #[serde(skip)]
    pub redact: Vec<String>,
}

impl Plan {
    /// This plan followed by a wait phase on `host` (run by the executor's poller once the plan
    /// applied): what a dry run shows, so the wait is reviewed with the rest.
    pub fn then_wait(&self, host: &Host, wait: wait::WaitStep) -> Plan {
        let mut plan = self.clone();
        match plan.hosts.iter_mut().find(|h| &h.host == host) {
            Some(hp) => hp.steps.push(Step::WaitUntil(wait)),
            None => plan.hosts.push(HostPlan {
                host: host.clone(),
                exclusive: false,
                steps: vec![Step::WaitUntil(wait)],
            }),
        }
        plan
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostPlan {
    pub host: Host,
    /// Hold the host's cloudctl lock while applying, so concurrent runs serialise.
    pub exclusive: bool,
    pub steps: Vec<Step>,
}

/// One thing to do on a host. Steps run in order; the first failure stops the host.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    File(FileStep),
    Dir(DirStep),
    Command(CommandStep),
    /// Remove a file if it is there (e.g. the PXE file of a removed node).
    Absent(AbsentStep),
    /// Poll a probe until it reads as done (the executor runs it between the steps around it).
    WaitUntil(wait::WaitStep),
}

impl Step {
    pub fn label(&self) -> String {
        match self {
            Step::File(f) => format!("file {}", f.path),
            Step::Dir(d) => format!("directory {}", d.path),
            Step::Command(c) => format!("run {}", c.short()),
            Step::Absent(a) => format!("remove {}", a.path),
            Step::WaitUntil(w) => format!("wait for {}", w.what),
        }
    }
}

/// Install a file: skipped if unchanged, validated before activation, old version kept as backup.
/// A secret file's content is never serialised as it is (plans appear in `--json` dry runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "ShownFileStep")]
pub struct FileStep {
    /// Name other steps use to depend on this file changing (e.g. "dhcpd.conf").
    pub id: String,
    pub path: RemotePath,
    #[serde(with = "content_serde")]
    pub content: Vec<u8>,
    pub mode: u32,
    /// `user` or `user:group`; unset keeps the remote default (the SSH user).
    pub owner: Option<String>,
    /// Validator argv; `{}` stands for the temporary file beside the target.
    pub validate: Option<Vec<String>>,
    /// Its content is never shown as it is, in diffs, output or logs: hidden whole, or with its
    /// secret values masked (`masked`).
    pub secret: bool,
    /// For a secret file that is shown all the same: where its secret values are; only they are
    /// masked (an administrator reviews a DRBD resource's other lines). Empty: not shown at all.
    #[serde(default)]
    pub masked: Vec<masked::SecretField>,
}

impl FileStep {
    /// The content as it may be shown: itself, a secret file's with its values masked, or none.
    pub fn shown(&self) -> Option<Vec<u8>> {
        match (self.secret, self.masked.is_empty()) {
            (false, _) => Some(self.content.clone()),
            (true, true) => None,
            (true, false) => {
                let text = String::from_utf8_lossy(&self.content);
                let values = masked::values(&text, &self.masked);
                Some(masked::mask(&text, &self.masked, &values).into_bytes())
            }
        }
    }

    /// What the host holds now, as it may be shown beside `shown` (masked like the new content,
    /// and the new content's secret values masked wherever they stand in it).
    pub fn shown_current(&self, current: &[u8]) -> Option<Vec<u8>> {
        if !self.secret {
            return Some(current.to_vec());
        }
        if self.masked.is_empty() {
            return None;
        }
        let values = masked::values(&String::from_utf8_lossy(&self.content), &self.masked);
        Some(masked::mask(&String::from_utf8_lossy(current), &self.masked, &values).into_bytes())
    }
}

/// How a file step is serialised: as it is, except that a secret's content is masked or replaced
/// by its size.
#[derive(Serialize)]
struct ShownFileStep {
    id: String,
    path: RemotePath,
    #[serde(with = "content_serde")]
    content: Vec<u8>,
    mode: u32,
    owner: Option<String>,
    validate: Option<Vec<String>>,
    secret: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    masked: Vec<masked::SecretField>,
}

impl From<FileStep> for ShownFileStep {
    fn from(f: FileStep) -> Self {
        let content = f
            .shown()
            .unwrap_or_else(|| format!("<secret: {} bytes, not shown>", f.content.len()).into_bytes());
        ShownFileStep {
            id: f.id,
            path: f.path,
            content,
            mode: f.mode,
            owner: f.owner,
            validate: f.validate,
            secret: f.secret,
            masked: f.masked,
        }
    }
}

/// Ensure a directory exists with a mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirStep {
    pub path: RemotePath,
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbsentStep {
    pub path: RemotePath,
}

/// Run a program; each argument is quoted separately on the remote side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommandStep {
    pub argv: Vec<String>,
    pub when: When,
}

impl CommandStep {
    /// The command as a user would type it (in full, for review in dry runs).
    pub fn display(&self) -> String {
        crate::shell::join(&self.argv)
    }

    /// The command in one line for reports: a program of several lines given to `sh -c` (one of
    /// cloudctl's scripts) is shown as `…`.
    pub fn short(&self) -> String {
        let words = self.argv.iter().enumerate().map(|(i, a)| {
            let program = i == 2 && self.argv[..2] == ["sh", "-c"] && a.contains('\n');
            if program {
                "…"
            } else {
                a.as_str()
            }
        });
        crate::shell::join(words)
    }
}

/// When a command runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum When {
    Always,
    /// Only if one of these file steps changed in this run, e.g. a service restart. Handles from
    /// `Steps::file`: a command cannot name a file step the plan does not have.
    Changed(Vec<StepId>),
    /// Only if this check command fails, e.g. install a package unless it is installed.
    Unless(Vec<String>),
}

/// File contents appear as text in plans when they are UTF-8, else as base64.
mod content_serde {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Text(String),
        Binary { base64: String },
    }

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Repr::Text(text.to_string()),
            Err(_) => Repr::Binary {
                base64: base64::engine::general_purpose::STANDARD.encode(bytes),
            },
        }
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        match Repr::deserialize(d)? {
            Repr::Text(t) => Ok(t.into_bytes()),
            Repr::Binary { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Owned argv from string literals.
/// Starts a probe's output line that carries a secret (a password, a DRBD shared secret the
/// next plan must reuse): `@secret NAME VALUE`. Parsers read past it; `without_secrets` keeps
/// such lines out of any message that shows a probe's output.
pub const SECRET_FACT: &str = "@secret ";

/// A probe's output as it may be shown to a person: every line carrying a secret replaced.
pub fn without_secrets(output: &str) -> String {
    output
        .lines()
        .map(|l| {
            if l.starts_with(SECRET_FACT) {
                "@secret (not shown)"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Installs Debian packages with apt-get, only when one of them is not installed yet.
pub fn install_packages(packages: &[&str]) -> Step {
    let mut installed = crate::shell::Script::new();
    installed.text("for p in ");
    for (i, p) in packages.iter().enumerate() {
        installed.text(if i == 0 { "" } else { " " }).word(p);
    }
    let installed = installed
        .text("; do dpkg-query -W -f='${db:Status-Status}' \"$p\" 2>/dev/null | grep -qx installed || exit 1; done")
        .build();
    let mut argv = strings(&[
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
    ]);
    argv.extend(strings(packages));
    Step::Command(CommandStep {
        argv,
        when: When::Unless(strings(&["sh", "-c", &installed])),
    })
}

/// A command step from string literals.
pub fn command(argv: &[&str], when: When) -> Step {
    Step::Command(CommandStep {
        argv: strings(argv),
        when,
    })
}

pub struct FileSpec<'a> {
    pub id: &'a str,
    pub path: &'a str,
    pub content: String,
    pub mode: u32,
    pub owner: Option<&'a str>,
    pub validate: Option<Vec<String>>,
    pub secret: bool,
}

pub fn file(f: FileSpec) -> Result<Step, Error> {
    Ok(Step::File(FileStep {
        id: f.id.into(),
        path: f.path.parse().map_err(Error::Usage)?,
        content: f.content.into_bytes(),
        mode: f.mode,
        owner: f.owner.map(str::to_string),
        validate: f.validate,
        secret: f.secret,
        masked: Vec::new(),
    }))
}

/// A secret file shown with only its secret values masked, found by `fields`. Only when the
/// fields find each of `secrets` as a whole value: a template overridden with other syntax keeps
/// the file hidden rather than show a secret the fields miss.
pub fn masked_file(f: FileSpec, fields: &[masked::SecretField], secrets: &[&str]) -> Result<Step, Error> {
    let Step::File(mut step) = file(FileSpec { secret: true, ..f })? else {
        unreachable!("file() makes a file step")
    };
    let found = masked::values(&String::from_utf8_lossy(&step.content), fields);
    if !secrets.is_empty() && secrets.iter().all(|s| !s.is_empty() && found.iter().any(|v| v == s)) {
        step.masked = fields.to_vec();
    }
    Ok(Step::File(step))
}

/// A plain 0644 root file.
pub fn config(id: &str, path: &str, content: String, validate: Option<Vec<String>>) -> Result<Step, Error> {
    file(FileSpec {
        id,
        path,
        content,
        mode: 0o644,
        owner: None,
        validate,
        secret: false,
    })
}

pub fn dir(path: &str, mode: u32) -> Result<Step, Error> {
    Ok(Step::Dir(DirStep {
        path: path.parse().map_err(Error::Usage)?,
        mode,
    }))
}
