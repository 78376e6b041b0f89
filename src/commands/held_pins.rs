//! Host-free: under `host_key_policy = "accept-new"` a real run's first connect accepts a new
//! key for the run but pins it only after the confirmation. A refused prompt (no --yes, no TTY)
//! leaves known_hosts byte-identical; a confirmed run, or one that asks nothing and runs to its
//! end, pins it; a plan built before the prompt (migrate's) still sees the accepted key.

use super::*;
use crate::exec::known_hosts::{host_pattern, HostKey};

const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPqIxu0wCQ2s16urOUUyF0BlTldjLAygyKp2D81Yymbv hnode1";

/// The seed lab under accept-new, its known_hosts (holding another host's pin) in `dir`.
fn lab(dir: &std::path::Path, yes: bool) -> (Context, Inventory) {
    let text: String = include_str!("../../examples/seed-lab.toml")
        .replace(
            "~/.config/cloudctl/known_hosts",
            &dir.join("known_hosts").display().to_string(),
        )
        .replace("~/.ssh/id_ed25519", &dir.join("id").display().to_string())
        .lines()
        .filter(|l| !l.starts_with("host_key_policy"))
        .map(|l| format!("{l}\n"))
        .collect();
    let text = text.replacen("[ssh]\n", "[ssh]\nhost_key_policy = \"accept-new\"\n", 1);
    std::fs::write(
        dir.join("known_hosts"),
        "10.0.0.2 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPqIxu0wCQ2s16urOUUyF0BlTldjLAygyKp2D81Yymbv\n",
    )
    .unwrap();
    let inv = crate::inventory::parse("cloud.toml", &text).unwrap();
    assert_eq!(inv.ssh.host_key_policy, crate::inventory::HostKeyPolicy::AcceptNew);
    let mut ui = crate::ui::Ui::new(true, true, 0);
    // Never a prompt, even when the tests run on a terminal: the refusal is what is tested.
    ui.interactive = false;
    let ctx = Context {
        inventory_path: Some(dir.join("cloud.toml")),
        yes,
        forks: 1,
        ..Context::for_test(ui, None)
    };
    (ctx, inv)
}

/// hnode1 offers a key nobody pinned, and the run's first connect to it accepts that key.
fn first_connect(ctx: &Context, inv: &Inventory) -> (SshConnector, String, HostKey) {
    let host = inv.select(&["hnode1".to_string()]).unwrap().remove(0);
    let pattern = host_pattern(&host.host, host.port);
    let key = HostKey::from_public(KEY).unwrap();
    let connector = ctx.connector(inv);
    assert_eq!(connector.known_hosts.lookup(&pattern).unwrap(), None);
    connector.verify(&host, &pattern, None, &key).unwrap();
    (connector, pattern, key)
}

fn confirmed_plan() -> Plan {
    Plan {
        title: "change hnode1".into(),
        hosts: vec![],
        confirm: true,
        redact: vec![],
    }
}

#[test]
fn a_refused_prompt_leaves_known_hosts_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, inv) = lab(dir.path(), false);
    let before = std::fs::read(dir.path().join("known_hosts")).unwrap();
    let (connector, pattern, key) = first_connect(&ctx, &inv);
    assert_eq!(
        std::fs::read(dir.path().join("known_hosts")).unwrap(),
        before,
        "the first connect pinned before the confirmation"
    );
    // A plan built before the prompt sees the accepted key (migrate puts it into its plan).
    assert_eq!(ctx.pinned_key(&connector, &pattern).unwrap(), Some(key));
    let refused = ctx.converge_with(&inv, &confirmed_plan(), &[], |_| None);
    assert!(matches!(refused, Err(Error::NotConfirmed(_))), "{refused:?}");
    assert!(finish(&ctx, refused).is_err());
    assert_eq!(
        std::fs::read(dir.path().join("known_hosts")).unwrap(),
        before,
        "a refused prompt changed known_hosts"
    );
    // The same for a typed confirmation, as `instance remove` asks.
    let (_, _, _) = first_connect(&ctx, &inv);
    assert!(matches!(
        ctx.confirm_typed("remove hnode1's guest", "web1"),
        Err(Error::NotConfirmed(_))
    ));
    assert_eq!(std::fs::read(dir.path().join("known_hosts")).unwrap(), before);
}

#[test]
fn a_confirmed_run_pins_after_the_confirmation_and_keeps_the_other_pins() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, inv) = lab(dir.path(), true);
    let before = std::fs::read_to_string(dir.path().join("known_hosts")).unwrap();
    let (connector, pattern, key) = first_connect(&ctx, &inv);
    assert_eq!(std::fs::read_to_string(dir.path().join("known_hosts")).unwrap(), before);
    let done = ctx.converge_with(&inv, &confirmed_plan(), &[], |_| None);
    assert!(matches!(done, Ok(Exit::Ok)), "{done:?}");
    assert_eq!(connector.known_hosts.lookup(&pattern).unwrap(), Some(key));
    let after = std::fs::read_to_string(dir.path().join("known_hosts")).unwrap();
    assert!(after.starts_with(&before), "another host's pin was lost: {after}");
}

#[test]
fn a_run_that_asks_nothing_pins_when_it_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, inv) = lab(dir.path(), false);
    let (connector, pattern, key) = first_connect(&ctx, &inv);
    assert_eq!(connector.known_hosts.lookup(&pattern).unwrap(), None);
    assert!(matches!(finish(&ctx, Ok(Exit::Unreachable)), Ok(Exit::Unreachable)));
    assert_eq!(connector.known_hosts.lookup(&pattern).unwrap(), Some(key));
}

#[test]
fn a_dry_run_holds_nothing_to_pin_later() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ctx, inv) = lab(dir.path(), true);
    ctx.dry_run = true;
    let before = std::fs::read(dir.path().join("known_hosts")).unwrap();
    let _ = first_connect(&ctx, &inv);
    assert!(finish(&ctx, Ok(Exit::Ok)).is_ok());
    assert_eq!(std::fs::read(dir.path().join("known_hosts")).unwrap(), before);
}
