//! Planner for `instance migrate` (modelled on Ganeti): the pre-checks, then the phases of a live
//! migration as a `Phased` plan (prepare both ends, start, watch; abort on failure) with the
//! finish and the target's stop after it, and `--cleanup`'s verdict. Pure; the executor runs the
//! phases (`exec::phased::run`), its poller watching the migration (a `WaitStep`).
//!
//! The guest's memory travels over SSH by default: the source node gets a one-time key that the
//! target only accepts from the source's address and only to feed the migration into the waiting
//! hypervisor (a forced command), checked against the target's pinned host key. Both are removed
//! after the migration, whatever its outcome.

use super::probe::{GuestSeen, GuestState, NodeFacts};
use super::{kvm, script, Backend, Guest};
use crate::inventory::{Host, Hypervisor};
use crate::plan::phased::{Phase, Phased};
use crate::plan::wait::{Reading, WaitStep};
use crate::plan::{command, file, strings, FileSpec, HostPlan, Plan, Step, When};
use serde::Serialize;

/// How the guest's memory travels.
#[derive(Debug, Clone)]
pub enum Channel {
    /// Through SSH with a one-time key (the default).
    Ssh {
        private_key: Vec<u8>,
        public_key: String,
        /// `PATTERN TYPE BASE64`: the target's pinned host key, as the source's known_hosts.
        target_known_host: String,
    },
    /// Plain TCP to this port on the target (`--unencrypted`; kvm only).
    Tcp { port: u16 },
}

pub struct MigrateRequest<'a> {
    pub guest: &'a Guest,
    pub source: &'a Host,
    pub target: &'a Host,
    /// The source's address as the target sees it (the one-time key is bound to it).
    pub source_ip: Option<String>,
    pub ssh_user: &'a str,
    pub channel: Channel,
    /// The target's authorized_keys file; None: `~/.ssh/authorized_keys` of the SSH user.
    pub authorized_keys: Option<String>,
    pub max_downtime_ms: u32,
    pub max_bandwidth_mib: Option<u32>,
    /// How long the migration may take (`--timeout`): the bound of the wait for it.
    pub timeout_secs: u64,
}

/// How often QEMU is asked how far the migration got.
const POLL_EVERY_MS: u64 = 200;

/// "No limit" for QEMU's max-bandwidth (bytes/s): 100 GiB/s.
const UNLIMITED_BANDWIDTH: u64 = 100 << 30;

/// A live migration as data. `run`: the phases the executor runs in order (`prepare` both
/// ends, `start`, and for kvm `poll`, the wait until QEMU on the source reports the migration
/// completed; Xen's `xl migrate` runs to the end, so none), and on a failure `abort` (it cancels
/// the migration on the source and removes the one-time key on both ends; it stops nothing).
/// Then the command verifies both ends: `finish` once the guest moved; else `abort`, and
/// `stop_target` only when the source's copy verifiably runs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MigrationPlan {
    #[serde(flatten)]
    pub run: Phased,
    pub finish: Plan,
    /// Stops the target's copy: run after an abort only when the source's copy verifiably runs.
    pub stop_target: Plan,
}

impl MigrationPlan {
    /// The phase `name` of `run`.
    pub fn phase(&self, name: &str) -> &Plan {
        &self
            .run
            .phase(name)
            .unwrap_or_else(|| panic!("a migration has a {name} phase"))
            .plan
    }

    pub fn start(&self) -> &Plan {
        self.phase(START)
    }

    pub fn abort(&self) -> &Plan {
        self.phase(ABORT)
    }
}

/// The phases' names.
pub const PREPARE: &str = "prepare";
pub const START: &str = "start";
pub const POLL: &str = "poll";
pub const ABORT: &str = "abort";

/// A migration that went through.
#[derive(Debug, Clone, Serialize)]
pub struct Moved {
    pub guest: String,
    pub from: String,
    pub to: String,
    pub progress: Progress,
    pub elapsed: std::time::Duration,
    /// A copy still on the source after tidying up (`None`: nothing left).
    pub left: Option<GuestState>,
}

/// A migration that did not happen: the guest stays on the source (if it runs there).
#[derive(Debug, Clone, Serialize)]
pub struct NotMoved {
    pub guest: String,
    pub source: String,
    pub why: String,
    pub state_on_source: Option<GuestState>,
    pub exit: crate::error::Exit,
}

/// What one end reported about the guest, after retries: its state, absent (`None`), or why it
/// could not be asked.
pub type Seen = Result<Option<GuestState>, String>;

/// How a migration ended, from what both ends report afterwards.
#[derive(Debug, Clone, PartialEq)]
pub enum After {
    /// The guest runs on the target, and the source verifiably does not run it: finish there.
    Moved,
    /// Anything else: abort (which stops the target's copy only if `may_stop_target`).
    NotMoved(String),
}

fn seen_str(s: &Seen) -> String {
    match s {
        Ok(Some(st)) => st.as_str().to_string(),
        Ok(None) => "absent".to_string(),
        Err(e) => format!("unknown ({e})"),
    }
}

/// Decides from both ends' answers; an end that could not be asked is never taken as "absent".
pub fn after_migration(target_name: &str, on_target: &Seen, source_name: &str, on_source: &Seen) -> After {
    let source_quiet = matches!(on_source, Ok(None)) || matches!(on_source, Ok(Some(s)) if *s != GuestState::Running);
    if matches!(on_target, Ok(Some(GuestState::Running))) && source_quiet {
        return After::Moved;
    }
    After::NotMoved(format!(
        "after the migration the guest is {} on {target_name} and {} on {source_name}",
        seen_str(on_target),
        seen_str(on_source)
    ))
}

/// An abort may stop the target's copy only when the source's copy verifiably runs: after a
/// completed migration the source is paused, and the target's copy is the only one running.
pub fn may_stop_target(on_source: &Seen) -> bool {
    matches!(on_source, Ok(Some(GuestState::Running)))
}

/// scripts/instance/authkey-add.sh (its arguments and what it does are described there).
const AUTH_ADD: &str = include_str!("../../../scripts/instance/authkey-add.sh");

/// scripts/instance/authkey-remove.sh (its arguments and what it does are described there).
pub const AUTH_DEL: &str = include_str!("../../../scripts/instance/authkey-remove.sh");

/// The comment that marks a guest's one-time migration key in authorized_keys.
pub fn key_marker(g: &Guest) -> String {
    format!("cloudctl-migrate-{}", g.name)
}

/// The address the target's authorized_keys line limits the one-time key to (`from=`), if its
/// SSH server can: dropbear knows no `from=` and refuses the whole line. The key stays one-time,
/// forced to the receiving command and removed after the migration either way.
pub fn key_source(target: &NodeFacts, source_ip: Option<String>) -> Option<String> {
    source_ip.filter(|_| !target.dropbear)
}

/// What the hypervisor's own words mean, for a failure whose cause is not in them: `xl migrate`
/// of a PV guest needs Xen's shadow paging for its log-dirty mode, and says only "Failed to
/// enable logdirty" (EOPNOTSUPP) when Xen was built without it, as Debian's 4.17 is.
pub fn known_cause(stderr: &str) -> Option<&'static str> {
    stderr.contains("Failed to enable logdirty").then_some(
        "this Xen cannot live-migrate the guest: tracking a PV guest's dirty memory needs Xen's shadow paging, which this \
         hypervisor was built without (CONFIG_SHADOW_PAGING; Debian's xen-hypervisor-4.17 has it off), and PVH/HVM guests \
         need hardware virtualization (VT-x or AMD-V). Boot the hardware nodes with a Xen built with shadow paging \
         (examples/build-xen-shadow.sh rebuilds Debian's with it, for the profile's `xen`), or use the kvm backend",
    )
}

/// Everything that stops a migration before anything moves, as messages naming the fix.
pub fn check(
    g: &Guest,
    target_name: &str,
    target_hv: Hypervisor,
    src: &NodeFacts,
    dst: &NodeFacts,
    dst_capacity_mib: Option<u64>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let name = g.name.as_str();
    if target_hv != g.hypervisor {
        problems.push(format!(
            "{target_name} runs {target_hv:?}, the guest runs on {:?}: a live migration needs the same hypervisor",
            g.hypervisor
        ));
    }
    match src.guest(name).map(|s| s.state) {
        Some(GuestState::Running) => {}
        Some(other) => problems.push(format!(
            "{name} is {} on its node, not running; see `cloudctl instance list` (or `instance migrate {name} --cleanup`)",
            other.as_str()
        )),
        None => problems.push(format!(
            "{name} does not run on the node the inventory records; run `cloudctl instance migrate {name} --cleanup` to find it"
        )),
    }
    if let Some(s) = dst.guest(name).filter(|s| s.state.is_live()) {
        problems.push(format!(
            "a copy of {name} is already on {target_name} ({}); run `cloudctl instance migrate {name} --cleanup` first",
            s.state.as_str()
        ));
    }
    if src.hypervisor_version.is_empty() || src.hypervisor_version != dst.hypervisor_version {
        problems.push(format!(
            "hypervisor versions differ: source {:?}, {target_name} {:?}; install the same version on both",
            src.hypervisor_version, dst.hypervisor_version
        ));
    }
    if !dst.bridge {
        problems.push(format!(
            "bridge {} does not exist on {target_name}; the guest's network would be cut off there",
            g.bridge
        ));
    }
    let free = match (dst.mem_available_mib, dst_capacity_mib) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    };
    match free {
        Some(free) if free < u64::from(g.memory) => problems.push(format!(
            "{target_name} has {free} MiB free for guests, {name} needs {} MiB",
            g.memory
        )),
        Some(_) => {}
        None => problems.push(format!("cannot tell how much memory {target_name} has free")),
    }
    match (src.disk, dst.disk) {
        (Some(a), Some(b)) if a == b && dst.disk_readable => {}
        (_, None) => problems.push(format!(
            "{target_name} does not see {}: the shared storage is not mounted there",
            g.disk()
        )),
        (_, Some(_)) if !dst.disk_readable => problems.push(format!("{target_name} cannot read {}", g.disk())),
        (a, b) => problems.push(format!(
            "{} is not the same file on both nodes (size and inode {a:?} vs {b:?}): is the storage really shared?",
            g.disk()
        )),
    }
    for (who, f) in [("the source", src), (target_name, dst)] {
        if !f.missing_tools.is_empty() {
            problems.push(format!(
                "{who} lacks {}; install them first",
                f.missing_tools.join(", ")
            ));
        }
    }
    problems
}

fn host_plan(host: &Host, steps: Vec<Step>) -> HostPlan {
    HostPlan {
        host: host.clone(),
        exclusive: true,
        steps,
    }
}

fn phase(title: String, hosts: Vec<HostPlan>) -> Plan {
    Plan {
        title,
        hosts: hosts.into_iter().filter(|h| !h.steps.is_empty()).collect(),
        confirm: false,
        redact: Vec::new(),
    }
}

/// The ssh command the source runs to reach the target (the kvm relay's, or xl's -s).
fn ssh_argv(r: &MigrateRequest) -> Vec<String> {
    let g = r.guest;
    let known_hosts = format!("UserKnownHostsFile={}", g.run_file("migrate-known-hosts"));
    let port = r.target.port.to_string();
    let dest = format!("{}@{}", r.ssh_user, r.target.host);
    strings(&[
        "ssh",
        "-T",
        "-i",
        &g.run_file("migrate-key"),
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        &known_hosts,
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "ConnectTimeout=10",
        "-p",
        &port,
        &dest,
    ])
}

/// The relay that carries a kvm migration from the unprivileged QEMU into ssh.
const RELAY: &str = include_str!("../../../scripts/instance/migrate-relay.sh");

/// Where the source's QEMU writes its migration stream, and the relay's pid file. Not under
/// /run/cloudctl, which is root's alone (the remote lock).
fn relay_files(g: &Guest) -> (String, String) {
    (
        format!("/run/cloudctl-migrate/{}.sock", g.name),
        g.run_file("relay-pid"),
    )
}

fn relay_stop(g: &Guest) -> Step {
    let (sock, pidfile) = relay_files(g);
    script(RELAY, &["stop", &sock, &pidfile], When::Unless(absent(&pidfile)))
}

/// A check that succeeds while `path` does not exist: a tidy-up step with nothing to do is skipped.
fn absent(path: &str) -> Vec<String> {
    strings(&["sh", "-c", "! test -e \"$1\"", "sh", path])
}

pub fn plan(r: &MigrateRequest) -> Result<MigrationPlan, crate::error::Error> {
    let g = r.guest;
    let auth_file = r.authorized_keys.clone().unwrap_or_default();
    let marker = key_marker(g);
    let incoming_sock = g.run_file("migrate");
    let receive = match g.hypervisor {
        Hypervisor::Kvm => format!("socat - UNIX-CONNECT:{incoming_sock}"),
        Hypervisor::Xen => "xl migrate-receive".to_string(),
    };
    let mut src_prepare = Vec::new();
    let mut dst_prepare = Vec::new();
    let mut src_tidy = Vec::new();
    let mut dst_tidy = Vec::new();
    if let Channel::Ssh {
        private_key,
        public_key,
        target_known_host,
    } = &r.channel
    {
        let from = r
            .source_ip
            .as_ref()
            .map(|ip| format!("from=\"{ip}\","))
            .unwrap_or_default();
        let line = format!("restrict,{from}command=\"{receive}\" {} {marker}", public_key.trim());
        dst_prepare.push(script(AUTH_ADD, &[&auth_file, &line], When::Always));
        src_prepare.push(crate::plan::dir(super::RUN_DIR, 0o700)?);
        src_prepare.push(file(FileSpec {
            id: "migrate-key",
            path: &g.run_file("migrate-key"),
            content: String::from_utf8_lossy(private_key).into_owned(),
            mode: 0o600,
            owner: None,
            validate: None,
            secret: true,
        })?);
        src_prepare.push(file(FileSpec {
            id: "migrate-known-hosts",
            path: &g.run_file("migrate-known-hosts"),
            content: format!("{target_known_host}\n"),
            mode: 0o600,
            owner: None,
            validate: None,
            secret: false,
        })?);
        src_tidy.push(command(
            &[
                "rm",
                "-f",
                &g.run_file("migrate-key"),
                &g.run_file("migrate-known-hosts"),
            ],
            When::Always,
        ));
        dst_tidy.push(script(AUTH_DEL, &[&auth_file, &marker], When::Always));
    }
    let (start, poll, finish_src, finish_dst, abort_src, abort_dst) = match g.hypervisor {
        Hypervisor::Kvm => {
            let mut start = Vec::new();
            let (listen, uri) = match &r.channel {
                Channel::Ssh { .. } => {
                    let (out, pidfile) = relay_files(g);
                    let mut args = vec!["start", out.as_str(), pidfile.as_str(), kvm::QEMU_RUNAS];
                    let ssh = ssh_argv(r);
                    args.extend(ssh.iter().map(String::as_str));
                    start.push(script(RELAY, &args, When::Always));
                    src_tidy.insert(0, relay_stop(g));
                    (format!("unix:{incoming_sock}"), format!("unix:{out}"))
                }
                Channel::Tcp { port } => {
                    let listen = format!("tcp:{}:{port}", r.target.host);
                    (listen.clone(), listen)
                }
            };
            dst_prepare.extend(kvm::launch_steps(g, Some(&listen)));
            // Always set: QEMU keeps a limit from an earlier (e.g. aborted) migration otherwise.
            let bandwidth = r
                .max_bandwidth_mib
                .map_or(UNLIMITED_BANDWIDTH, |mib| u64::from(mib) << 20);
            let params = serde_json::json!({"downtime-limit": r.max_downtime_ms, "max-bandwidth": bandwidth});
            let set = serde_json::json!({"execute": "migrate-set-parameters", "arguments": params}).to_string();
            let go = serde_json::json!({"execute": "migrate", "arguments": {"uri": uri}}).to_string();
            let poll = WaitStep {
                what: format!("the migration of {}", g.name),
                setup: None,
                probe: crate::shell::sh_c(kvm::QMP, &[&g.run_file("qmp"), r#"{"execute":"query-migrate"}"#]),
                // Often enough to see completion soon, and a progress line twice a second.
                every_ms: POLL_EVERY_MS,
                timeout_secs: r.timeout_secs,
                reading: Reading::QemuMigration,
                timed_out: Some(format!("the migration did not finish within {} s", r.timeout_secs)),
            };
            let stop_now = Backend::stop_steps(&kvm::Kvm, g, 0);
            start.push(kvm::qmp_step(g, &[&set, &go]));
            // QEMU announces the guest's MAC when it starts on the target, but a switch can miss
            // those frames and keep sending the guest's traffic to the old port until its table
            // ages out (seconds of lost pings). Announcing again once the source is gone costs
            // nothing; `announce-self` is QMP's command for exactly this.
            let announce = serde_json::json!({"execute": "announce-self", "arguments":
                {"initial": 50, "max": 550, "rounds": 5, "step": 100}})
            .to_string();
            (
                start,
                Some(poll),
                stop_now.clone(),
                vec![kvm::qmp_step(g, &[&announce])],
                vec![script(kvm::QMP_CANCEL, &[&g.run_file("qmp")], When::Always)],
                stop_now,
            )
        }
        Hypervisor::Xen => {
            if matches!(r.channel, Channel::Tcp { .. }) {
                return Err(crate::error::Error::Usage(
                    "xl migrates through SSH only; --unencrypted is for the kvm backend".into(),
                ));
            }
            let start = vec![Step::Command(crate::plan::CommandStep {
                argv: strings(&[
                    "xl",
                    "migrate",
                    "-s",
                    &crate::shell::join(ssh_argv(r)),
                    g.name.as_str(),
                    &r.target.host,
                ]),
                when: When::Always,
            })];
            (start, None, Vec::new(), Vec::new(), Vec::new(), Vec::new())
        }
    };
    let name = &g.name;
    let (s, t) = (r.source, r.target);
    let with = |a: &[Step], b: &[Step]| a.iter().chain(b).cloned().collect::<Vec<_>>();
    let mut phases = vec![
        Phase::new(
            PREPARE,
            phase(
                format!("prepare {t_name} to receive {name}", t_name = t.name),
                vec![host_plan(t, dst_prepare), host_plan(s, src_prepare)],
            ),
        )
        .failing_as(format!("{} could not be prepared", t.name)),
        // The start is the migration itself for Xen (`xl migrate` returns when it is done): it
        // is bounded by --timeout, not by the run's host timeout.
        Phase::new(
            START,
            phase(
                format!("migrate {name} from {} to {}", s.name, t.name),
                vec![host_plan(s, start)],
            ),
        )
        .failing_as("the migration did not start".into())
        .bounded(r.timeout_secs),
    ];
    if let Some(poll) = poll {
        // The wait runs on the source; it says why it failed (the migration's own error).
        let watch = HostPlan {
            host: s.clone(),
            exclusive: false,
            steps: vec![Step::WaitUntil(poll)],
        };
        phases.push(Phase::new(
            POLL,
            phase(format!("watch the migration of {name}"), vec![watch]),
        ));
    }
    Ok(MigrationPlan {
        run: Phased {
            phases,
            on_failure: vec![Phase::new(
                ABORT,
                phase(
                    format!("abort migrating {name}"),
                    vec![
                        host_plan(s, with(&abort_src, &src_tidy)),
                        host_plan(t, dst_tidy.clone()),
                    ],
                ),
            )],
        },
        finish: phase(
            format!("finish migrating {name}"),
            vec![
                host_plan(s, with(&finish_src, &src_tidy)),
                host_plan(t, with(&finish_dst, &dst_tidy)),
            ],
        ),
        stop_target: phase(
            format!("stop the copy of {name} on {}", t.name),
            vec![host_plan(t, abort_dst)],
        ),
    })
}

/// Progress of a kvm migration, from QEMU's `query-migrate` answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Progress {
    pub status: String,
    pub total_time_ms: Option<u64>,
    pub downtime_ms: Option<u64>,
    pub transferred: Option<u64>,
    pub remaining: Option<u64>,
    pub total: Option<u64>,
    pub error: Option<String>,
}

pub fn parse_progress(out: &str) -> Option<Progress> {
    let answer = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("return").cloned())
        .find(|r| r.get("status").is_some())?;
    let n = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_u64());
    let ram = answer.get("ram").cloned().unwrap_or_default();
    Some(Progress {
        status: answer["status"].as_str().unwrap_or("").to_string(),
        total_time_ms: n(&answer, "total-time"),
        downtime_ms: n(&answer, "downtime"),
        transferred: n(&ram, "transferred"),
        remaining: n(&ram, "remaining"),
        total: n(&ram, "total"),
        error: answer.get("error-desc").and_then(|e| e.as_str()).map(str::to_string),
    })
}

/// Where `--cleanup` finds the guest.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "verdict", content = "nodes")]
pub enum Verdict {
    /// Running on exactly this node.
    RunsOn(String),
    /// Running nowhere (copies may be paused somewhere).
    Nowhere,
    /// Running on more than one node: split brain, nothing is touched.
    SplitBrain(Vec<String>),
}

/// Decides where the guest really runs, and plans stopping the copies that are not the one.
/// Leftover one-time keys are removed on every node; the shared disk is never touched.
pub fn cleanup(g: &Guest, seen: &[(Host, Option<GuestSeen>)], auth_file: &str) -> (Verdict, Plan) {
    let running: Vec<&Host> = seen
        .iter()
        .filter(|(_, s)| s.as_ref().is_some_and(|s| s.state == GuestState::Running))
        .map(|(h, _)| h)
        .collect();
    let verdict = match running.as_slice() {
        [one] => Verdict::RunsOn(one.name.clone()),
        [] => Verdict::Nowhere,
        many => Verdict::SplitBrain(many.iter().map(|h| h.name.clone()).collect()),
    };
    let marker = key_marker(g);
    let hosts = seen
        .iter()
        .map(|(h, s)| {
            let mut steps = Vec::new();
            let leftover = s.as_ref().is_some_and(|s| s.state != GuestState::Running);
            // Stop stale copies only when the guest verifiably runs elsewhere.
            if leftover && matches!(verdict, Verdict::RunsOn(_)) {
                steps.extend(match g.hypervisor {
                    Hypervisor::Kvm => Backend::stop_steps(&kvm::Kvm, g, 0),
                    Hypervisor::Xen => vec![script(
                        r#"for d in "$1" "$1--incoming" "$1--migratedaway"; do xl list "$d" >/dev/null 2>&1 && xl destroy "$d"; done; exit 0"#,
                        &[g.name.as_str()],
                        When::Always,
                    )],
                });
            }
            if g.hypervisor == Hypervisor::Kvm {
                steps.push(relay_stop(g));
            }
            let key = g.run_file("migrate-key");
            steps.push(command(
                &["rm", "-f", &key, &g.run_file("migrate-known-hosts")],
                When::Unless(absent(&key)),
            ));
            steps.push(script(
                AUTH_DEL,
                &[auth_file, &marker],
                When::Unless(strings(&[
                    "sh",
                    "-c",
                    "f=${1:-$HOME/.ssh/authorized_keys}; ! grep -qF -- \"$2\" \"$f\" 2>/dev/null",
                    "sh",
                    auth_file,
                    &marker,
                ])),
            ));
            host_plan(h, steps)
        })
        .collect();
    (verdict, phase(format!("clean up after migrating {}", g.name), hosts))
}
