//! Every inventory in examples/ loads, validates and plans.

use cloudctl::{inventory, plan};

#[test]
fn every_example_loads_and_plans() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let inv = inventory::load(&path).unwrap_or_else(|e| panic!("{e}"));
            let hosts = inv.select(&["all".into()]).unwrap();
            assert!(!hosts.is_empty(), "{}", path.display());
            let p = plan::run::plan(&hosts, &["true".into()]);
            assert_eq!(p.hosts.len(), hosts.len());
            seen += 1;
        }
    }
    assert!(seen >= 1);
}

#[test]
fn seed_lab_groups() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/seed-lab.toml");
    let inv = inventory::load(&path).unwrap();
    let names = |sel: &str| {
        inv.select(&[sel.to_string()])
            .unwrap()
            .into_iter()
            .map(|h| h.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(names("confignode"), ["confignode"]);
    assert_eq!(names("snode"), ["snode1", "snode2"]);
    assert_eq!(names("hnode"), ["hnode1", "hnode2"]);
    assert_eq!(names("all").len(), 5);
    let both = inv.select(&["hnode2".into(), "hnode".into()]).unwrap();
    assert_eq!(both.len(), 2, "selectors are a union without duplicates");
    let over = inv.select(&["hnode2".into()]).unwrap();
    assert_eq!(
        (over[0].host.as_str(), over[0].port),
        ("hnode2.lab.example", 2222),
        "address overrides ip and port"
    );
}
