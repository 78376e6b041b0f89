//! The kvm backend: one QEMU process per guest, managed by cloudctl itself (as Ganeti does),
//! driven through its QMP socket with `socat`. Pure.
//!
//! Why not libvirt: the hardware nodes are diskless and cloudctl already owns their state; a
//! daemon with its own domain database would be a second source of truth to keep in step with
//! the inventory, its migration needs name resolution between nodes, and its own migration
//! tunnel hides the progress and downtime figures QMP gives directly.

use super::{script, Backend, Guest, RUN_DIR};
use crate::error::Error;
use crate::plan::wait::{Reading, Stage, WaitStep};
use crate::plan::{dir, Step, When};

pub struct Kvm;

/// QEMU's seccomp filter: obsolete system calls and resource control denied. Privilege changes
/// and spawning stay allowed: `-runas` calls setuid and `-daemonize` forks.
const SANDBOX: &str = "on,obsolete=deny,resourcecontrol=deny";

/// The uid:gid QEMU drops to once it has opened its files (`-runas`). Numeric, so it needs no
/// passwd entry on any node and is the same on all of them; nothing on a node belongs to it, so
/// a guest that breaks out of QEMU can reach no file (disk, sockets and logs stay root's and
/// were opened before the drop).
pub const QEMU_RUNAS: &str = "64200:64200";

/// Every program that talks to a guest's monitor starts with the one QMP helper
/// (scripts/instance/qmp.sh: the capabilities handshake, then the commands through socat).
macro_rules! with_qmp {
    ($program:literal) => {
        concat!(include_str!("../../../scripts/instance/qmp.sh"), include_str!($program))
    };
}
pub(crate) use with_qmp;

/// `qmp-send.sh SOCKET COMMAND_JSON...`: prints QEMU's answers, fails on an error answer.
pub const QMP: &str = with_qmp!("../../../scripts/instance/qmp-send.sh");

/// `qmp-cancel.sh SOCKET`: cancels an outgoing migration (QEMU then resumes the guest where it is).
pub const QMP_CANCEL: &str = with_qmp!("../../../scripts/instance/qmp-cancel.sh");

/// `tap-up.sh TAP BRIDGE`: the guest's host-side interface, on the bridge.
const TAP_UP: &str = include_str!("../../../scripts/instance/tap-up.sh");

/// `query-running.sh SOCKET`: one round of the wait until a guest runs (prints `running` once
/// QEMU reports it running); polled by the executor (`wait_running`).
pub const QUERY_RUNNING: &str = with_qmp!("../../../scripts/instance/query-running.sh");

/// How long a started QEMU has to report its guest running, and how often it is asked.
const RUNNING_WITHIN_SECS: u64 = 30;
const RUNNING_EVERY_MS: u64 = 200;

/// The wait, after a start, until QEMU reports `g` running: a step the executor's poller runs.
pub fn wait_running(g: &Guest) -> Step {
    Step::WaitUntil(WaitStep {
        what: format!("QEMU to run {}", g.name),
        setup: None,
        probe: crate::shell::sh_c(QUERY_RUNNING, &[&g.run_file("qmp")]),
        every_ms: RUNNING_EVERY_MS,
        timeout_secs: RUNNING_WITHIN_SECS,
        reading: Reading::Stages {
            stages: vec![Stage::new("running", "QEMU reports the guest running")],
            done: Some("running".into()),
            then_ssh: None,
            tools: Vec::new(),
        },
        // As the start has always said it.
        timed_out: Some(format!(
            "the guest is not running after {RUNNING_WITHIN_SECS} s (see its console log)"
        )),
    })
}

/// `kvm-stop.sh SOCKET PIDFILE TAP GRACE`: ACPI power button, then QEMU's quit after GRACE seconds.
pub const STOP: &str = with_qmp!("../../../scripts/instance/kvm-stop.sh");

/// `running PIDFILE`: succeeds while the pid file names a live QEMU.
const RUNNING: &str = r#"pid=$(cat "$1" 2>/dev/null) && kill -0 "$pid" 2>/dev/null && case $(cat /proc/$pid/comm 2>/dev/null) in qemu*) true;; *) false;; esac"#;

fn running_check(g: &Guest) -> Vec<String> {
    crate::plan::strings(&["sh", "-c", RUNNING, "sh", &g.run_file("pid")])
}

/// Nothing of the guest is on this node: no pid file (live or stale), no interface.
fn gone_check(g: &Guest) -> Vec<String> {
    crate::plan::strings(&[
        "sh",
        "-c",
        "! [ -e \"$1\" ] && ! ip link show dev \"$2\" >/dev/null 2>&1",
        "sh",
        &g.run_file("pid"),
        &g.tap(),
    ])
}

/// QEMU option values separate fields with commas; a literal comma is written twice.
fn opt(value: &str) -> String {
    value.replace(',', ",,")
}

/// QEMU's command line for `g`; the same on both ends of a migration (the target adds the
/// `-incoming` URI it listens on).
pub fn qemu_argv(g: &Guest, incoming: Option<&str>) -> Vec<String> {
    let mut argv: Vec<String> = vec![
        "qemu-system-x86_64".into(),
        "-name".into(),
        format!("guest={},process=qemu-{}", g.name, g.name),
        "-machine".into(),
        format!("pc,accel={}", g.accel.as_str()),
        "-m".into(),
        g.memory.to_string(),
        "-smp".into(),
        g.vcpus.to_string(),
        "-nodefaults".into(),
        "-display".into(),
        "none".into(),
        "-kernel".into(),
        g.kernel.clone(),
    ];
    if let Some(initrd) = &g.initrd {
        argv.extend(["-initrd".into(), initrd.clone()]);
    }
    argv.extend([
        "-append".into(),
        g.cmdline(),
        "-drive".into(),
        // cache=none: no host page cache, so the target of a migration reads what the source wrote.
        // auto-read-only=off: the file is opened read-write before QEMU drops root; by default
        // an incoming QEMU opens it read-only and reopens it at takeover, as the unprivileged
        // uid, which the root-owned disk refuses.
        format!(
            "file={},format=raw,if=virtio,cache=none,file.auto-read-only=off",
            opt(&g.disk())
        ),
        "-netdev".into(),
        format!("tap,id=net0,ifname={},script=no,downscript=no", g.tap()),
        "-device".into(),
        format!("virtio-net-pci,netdev=net0,mac={}", g.mac),
        "-chardev".into(),
        format!(
            "file,id=console,path={},append=on",
            opt(&format!("{}/console.log", g.dir))
        ),
        "-serial".into(),
        "chardev:console".into(),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", opt(&g.run_file("qmp"))),
        "-pidfile".into(),
        g.run_file("pid"),
        "-sandbox".into(),
        SANDBOX.into(),
        "-runas".into(),
        QEMU_RUNAS.into(),
        "-daemonize".into(),
    ]);
    // On the command line rather than `migrate-incoming` later: QEMU then listens before it
    // drops root, so a Unix socket can be made in root's runtime directory.
    if let Some(uri) = incoming {
        argv.extend(["-incoming".into(), uri.into()]);
    }
    argv
}

/// A QMP exchange as a step.
pub fn qmp_step(g: &Guest, commands: &[&str]) -> Step {
    let sock = g.run_file("qmp");
    let mut args = vec![sock.as_str()];
    args.extend_from_slice(commands);
    script(QMP, &args, When::Always)
}

/// Host-side interface and a QEMU process (paused, listening on `incoming` for a migration).
pub fn launch_steps(g: &Guest, incoming: Option<&str>) -> Vec<Step> {
    vec![
        dir(RUN_DIR, 0o700).expect("static path"),
        script(TAP_UP, &[&g.tap(), g.bridge.as_str()], When::Always),
        // Reported as a change only when it starts a QEMU; a running guest is left alone.
        Step::Command(crate::plan::CommandStep {
            argv: qemu_argv(g, incoming),
            when: When::Unless(running_check(g)),
        }),
    ]
}

impl Backend for Kvm {
    fn config_steps(&self, _g: &Guest, _t: &crate::templates::Templates) -> Result<Vec<Step>, Error> {
        // QEMU's command line is derived from the inventory at every start: nothing to keep.
        Ok(Vec::new())
    }

    fn start_steps(&self, g: &Guest) -> Vec<Step> {
        let mut steps = launch_steps(g, None);
        steps.push(wait_running(g));
        steps
    }

    fn stop_steps(&self, g: &Guest, grace_secs: u32) -> Vec<Step> {
        vec![script(
            STOP,
            &[
                &g.run_file("qmp"),
                &g.run_file("pid"),
                &g.tap(),
                &grace_secs.to_string(),
            ],
            When::Unless(gone_check(g)),
        )]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::wait::{read, Read};

    #[test]
    fn a_start_ends_with_the_wait_until_qemu_reports_the_guest_running() {
        let g = super::super::tests_support::guest("web2");
        let steps = Kvm.start_steps(&g);
        let Some(Step::WaitUntil(w)) = steps.last() else {
            panic!("{steps:?}")
        };
        assert!(
            w.probe.contains("query-status") && w.probe.ends_with(&g.run_file("qmp")),
            "{}",
            w.probe
        );
        assert_eq!((w.timeout_secs, w.every_ms), (30, 200));
        assert_eq!(read(w, "hnode1", ""), Read::NotYet(vec![]));
        assert_eq!(read(w, "hnode1", "running\n"), Read::Done);
        // A timeout says what the start always said.
        let timed_out = crate::exec::wait::WaitError::TimedOut { last: None };
        assert_eq!(
            timed_out.message(w),
            "the guest is not running after 30 s (see its console log)"
        );
    }
}
