//! Host-free: `hnode boot` pins the node's key only after the confirmation. Reading the key
//! gives a pin step, not a pinned key; a refused prompt (no --yes, no TTY) leaves known_hosts
//! and hostkeys/ byte-identical, and a dry run says what it would pin without pinning it.

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
        dry_run: false,
        yes: false,
        forks: 1,
        templates: None,
        ui,
        hosts: None,
    };
    (ctx, inv)
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![("known_hosts".into(), std::fs::read(dir.join("known_hosts")).unwrap())];
    for e in std::fs::read_dir(dir.join("hostkeys/hnode1")).unwrap() {
        let p = e.unwrap().path();
        out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
    }
    out.sort();
    out
}

fn pin_step(ctx: &Context, inv: &Inventory) -> Option<LocalStep> {
    let node = inv.node.iter().find(|n| n.name.get_ref().as_str() == "hnode1").unwrap();
    let target = inv.select(&["hnode1".to_string()]).unwrap().remove(0);
    node_secrets(ctx, inv, node, &target, Power::None).unwrap().1
}

#[test]
fn reading_the_key_pins_nothing_and_a_refused_prompt_leaves_every_file_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, inv) = lab(dir.path());
    let before = files(dir.path());
    let pin = pin_step(&ctx, &inv).expect("an unpinned key gives a pin step");
    assert!(matches!(&pin.effect, LocalEffect::PinKey { pattern, .. } if pattern == "10.0.0.31"));
    assert_eq!(files(dir.path()), before, "the key was pinned before the confirmation");
    let plan = Plan {
        title: "boot hnode1".into(),
        hosts: vec![],
        confirm: true,
        redact: vec![],
    };
    let refused = ctx.converge_with(&inv, &plan, std::slice::from_ref(&pin), |_| None);
    assert!(matches!(refused, Err(Error::NotConfirmed(_))), "{refused:?}");
    assert_eq!(files(dir.path()), before, "a refused prompt changed a file");
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
