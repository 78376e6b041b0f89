//! Golden files: output compared byte for byte with tests/golden (CLOUDCTL_BLESS=1 rewrites them
//! after an intended change), and a host plan with every step kind to feed them.

use super::fixtures::seed;
use cloudctl::plan::{CommandStep, DirStep, FileStep, HostPlan, Step, When};
use std::path::PathBuf;

/// Fails unless `actual` equals tests/golden/`name`; under CLOUDCTL_BLESS writes it instead.
pub fn assert_golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("CLOUDCTL_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with CLOUDCTL_BLESS=1 to create it)", path.display()));
    assert!(expected == actual, "{name} differs from the golden file; if intended, rerun with CLOUDCTL_BLESS=1\n--- expected\n{expected}\n--- actual\n{actual}");
}

/// A host plan exercising every step kind: file with validator and owner, directory, restart on change.
pub fn sample_host_plan() -> HostPlan {
    let host = seed().select(&["confignode".into()]).unwrap().remove(0);
    HostPlan {
        host,
        exclusive: true,
        steps: vec![
            Step::Dir(DirStep {
                path: "/etc/demo".parse().unwrap(),
                mode: 0o755,
            }),
            Step::File(FileStep {
                id: "demo.conf".into(),
                path: "/etc/demo/demo.conf".parse().unwrap(),
                content: b"option = 1\n".to_vec(),
                mode: 0o644,
                owner: Some("root:root".into()),
                validate: Some(vec!["grep".into(), "-q".into(), "option".into(), "{}".into()]),
                secret: false,
                masked: Vec::new(),
            }),
            Step::Command(CommandStep {
                argv: vec!["service".into(), "demo".into(), "restart".into()],
                when: When::Changed(vec![cloudctl::plan::StepId::unchecked("demo.conf")]),
            }),
        ],
    }
}
