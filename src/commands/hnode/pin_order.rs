//! Host-free: `hnode boot` makes, keeps and pins the node's key only after the confirmation.
//! Reading or making the key gives steps, not files; a refused prompt (no --yes, no TTY) leaves
//! known_hosts and hostkeys/ byte-identical, and a dry run says what it would pin without pinning.

use super::*;
use crate::exec::effect::LocalEffect;
use crate::plan::Plan;

const PUB: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPqIxu0wCQ2s16urOUUyF0BlTldjLAygyKp2D81Yymbv hnode1 (cloudctl)\n";

/// The seed lab with its known_hosts and identity in `dir`, hnode1's key already generated
/// (so nothing is made before the prompt either) and nothing pinned.
fn lab(dir: &Path) -> (Context, Inventory) {
    let text = include_str!("../../../examples/seed-lab.toml")
        .replace("~/.ssh/id_ed25519", &dir.join("id").display().to_string())
        .replace(
            "~/.config/cloudctl/known_hosts",
            &dir.join("known_hosts").display().to_string(),
        );
    let path = dir.join("cloud.toml");
    std::fs::write(&path, &text).unwrap();
    std::fs::write(dir.join("id.pub"), PUB).unwrap();
    std::fs::write(dir.join("known_hosts"), "").unwrap();
    let keys = dir.join("hostkeys/hnode1");
    std::fs::create_dir_all(&keys).unwrap();
    std::fs::write(
        keys.join("ssh_host_ed25519_key"),
        "private, never read by this test's asserts\n",
    )
    .unwrap();
    std::fs::write(keys.join("ssh_host_ed25519_key.pub"), PUB).unwrap();
    std::fs::write(keys.join("dropbear_ed25519_host_key"), "converted\n").unwrap();
    let inv = crate::inventory::parse("cloud.toml", &text).unwrap();
    let mut ui = crate::ui::Ui::new(true, true, 0);
    // Never a prompt, even when the tests run on a terminal: the refusal is what is tested.
    ui.interactive = false;
    let ctx = Context {
        inventory_path: Some(path),
        yes: false,
        forks: 1,
        ..Context::for_test(ui, None)
    };
    (ctx, inv)
}

/// known_hosts and every file under hostkeys/ (folders too), with their bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![("known_hosts".into(), std::fs::read(dir.join("known_hosts")).unwrap())];
    let mut dirs = vec![dir.join("hostkeys")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.push((p.display().to_string(), vec![]));
                dirs.push(p);
            } else {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn steps(ctx: &Context, inv: &Inventory) -> Vec<LocalStep> {
    let node = inv.node.iter().find(|n| n.name.get_ref().as_str() == "hnode1").unwrap();
    let target = inv.select(&["hnode1".to_string()]).unwrap().remove(0);
    node_secrets(ctx, inv, node, &target, Power::None).unwrap().1
}

/// The one step of a node whose key is kept but not pinned: its pin.
fn pin_step(ctx: &Context, inv: &Inventory) -> Option<LocalStep> {
    let mut all = steps(ctx, inv);
    assert!(all.len() <= 1, "{all:?}");
    all.pop()
}

fn refuse(ctx: &Context, inv: &Inventory, steps: &[LocalStep]) {
    let plan = Plan {
        title: "boot hnode1".into(),
        hosts: vec![],
        confirm: true,
        redact: vec![],
    };
    let refused = ctx.converge_with(inv, &plan, steps, |_| None);
    assert!(matches!(refused, Err(Error::NotConfirmed(_))), "{refused:?}");
}

#[test]
fn reading_the_key_pins_nothing_and_a_refused_prompt_leaves_every_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, inv) = lab(dir.path());
    let before = files(dir.path());
    let pin = pin_step(&ctx, &inv).expect("an unpinned key gives a pin step");
    assert!(matches!(&pin.effect, LocalEffect::PinKey { pattern, .. } if pattern == "10.0.0.31"));
    assert_eq!(files(dir.path()), before, "the key was pinned before the confirmation");
    refuse(&ctx, &inv, std::slice::from_ref(&pin));
    assert_eq!(files(dir.path()), before, "a refused prompt changed a file");
}

/// Needs ssh-keygen and dropbearconvert, as `hnode boot` does (it refuses without them).
#[test]
fn a_new_key_is_made_aside_and_kept_only_once_confirmed() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, inv) = lab(dir.path());
    std::fs::remove_dir_all(dir.path().join("hostkeys/hnode1")).unwrap();
    let before = files(dir.path());
    let made = steps(&ctx, &inv);
    let kinds: Vec<&str> = made
        .iter()
        .map(|s| match s.effect {
            LocalEffect::MakeHostKey { .. } => "make",
            LocalEffect::PinKey { .. } => "pin",
            LocalEffect::WriteInventory { .. } => "write",
        })
        .collect();
    assert_eq!(kinds, ["make", "pin"]);
    assert_eq!(
        files(dir.path()),
        before,
        "the key was made or pinned before the confirmation"
    );
    refuse(&ctx, &inv, &made);
    assert_eq!(files(dir.path()), before, "a refused prompt changed a file");
    ctx.apply_local(&made).unwrap();
    let keys = dir.path().join("hostkeys/hnode1");
    for f in [
        "ssh_host_ed25519_key",
        "ssh_host_ed25519_key.pub",
        "dropbear_ed25519_host_key",
    ] {
        assert!(keys.join(f).exists(), "{f} was not kept");
    }
    assert!(steps(&ctx, &inv).is_empty(), "kept and pinned, so nothing left to do");
}

#[test]
fn a_dry_run_shows_the_pin_and_pins_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut ctx, inv) = lab(dir.path());
    ctx.dry_run = true;
    let before = files(dir.path());
    let pin = pin_step(&ctx, &inv).unwrap();
    assert!(pin
        .would
        .as_deref()
        .unwrap()
        .starts_with("dry run: would pin hnode1's key SHA256:"));
    ctx.apply_local(std::slice::from_ref(&pin)).unwrap();
    assert_eq!(files(dir.path()), before);
}

#[test]
fn once_confirmed_the_key_is_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, inv) = lab(dir.path());
    let pin = pin_step(&ctx, &inv).unwrap();
    ctx.apply_local(std::slice::from_ref(&pin)).unwrap();
    assert!(pin_step(&ctx, &inv).is_none(), "pinned, so no second pin step");
}
