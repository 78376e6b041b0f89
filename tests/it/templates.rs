//! Built-in templates render in strict mode and can be overridden with --templates.

use cloudctl::templates::Templates;

fn lab_data() -> serde_json::Value {
    serde_json::json!({})
}

#[test]
fn strict_mode_refuses_a_missing_value() {
    let t = Templates::load(None).unwrap();
    let err = t.render("lab-up/cloud.toml", &lab_data()).unwrap_err().to_string();
    assert!(err.contains("lab-up/cloud.toml"), "{err}");
}

#[test]
fn override_dir_replaces_a_builtin_and_rejects_unknown_names() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("lab-up")).unwrap();
    std::fs::write(dir.path().join("lab-up/cloud.toml.hbs"), "custom {{name}}\n").unwrap();
    let t = Templates::load(Some(dir.path())).unwrap();
    assert_eq!(
        t.render("lab-up/cloud.toml", &serde_json::json!({ "name": "x" }))
            .unwrap(),
        "custom x\n"
    );

    std::fs::write(dir.path().join("lab-up/typo.hbs"), "x").unwrap();
    let err = Templates::load(Some(dir.path()))
        .err()
        .expect("unknown template name refused")
        .to_string();
    assert!(
        err.contains("typo.hbs") && err.contains("lab-up/cloud.toml.hbs"),
        "{err}"
    );
    let err = Templates::load(Some(&dir.path().join("missing")))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("--templates"), "{err}");
}
