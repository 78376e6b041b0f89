//! Embeds every `templates/**/*.hbs` into the binary (overridable at run time with --templates),
//! and decides whether the root-only lab tests run here or are compiled as ignored (with why).

use std::fs;
use std::path::Path;

fn collect(dir: &Path, root: &Path, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            collect(&p, root, out);
        } else if p.extension().is_some_and(|e| e == "hbs") {
            let rel = p
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .replace('\\', "/");
            let name = rel.trim_end_matches(".hbs").to_string();
            out.push(format!(
                "({name:?}, include_str!({:?})),",
                p.canonicalize().expect("exists").display().to_string()
            ));
        }
    }
}

/// The lab tests run under CI=true (where a missing prerequisite must fail, not skip), or on a
/// machine that is root and has every program of `.ci/prerequisites`. Elsewhere they are compiled
/// `#[ignore]`d, so they show as ignored, never passed; a build warning says exactly why.
fn lab_tests() {
    println!("cargo::rustc-check-cfg=cfg(lab_tests)");
    println!("cargo:rerun-if-env-changed=CI");
    println!("cargo:rerun-if-changed=.ci/prerequisites");
    // Changes whenever a package is installed or removed.
    println!("cargo:rerun-if-changed=/var/lib/dpkg/status");
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let root = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    let path = std::env::var("PATH").unwrap_or_default() + ":/usr/sbin:/sbin";
    let installed = |program: &str| {
        if program.starts_with('/') {
            Path::new(program).exists()
        } else {
            path.split(':').any(|dir| Path::new(dir).join(program).is_file())
        }
    };
    let prerequisites = fs::read_to_string(".ci/prerequisites").expect(".ci/prerequisites");
    let missing: Vec<String> = prerequisites
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let (program, package) = (words.next()?, words.next()?);
            (!installed(program)).then(|| format!("{program} ({package})"))
        })
        .collect();
    let reason = match (root, missing.is_empty()) {
        _ if ci => String::new(),
        (true, true) => String::new(),
        (false, _) => "lab test: needs root (run the suite as root, e.g. .ci/run)".to_string(),
        (true, false) => format!(
            "lab test: missing {} (run .ci/install-deps as root)",
            missing.join(", ")
        ),
    };
    if reason.is_empty() {
        println!("cargo:rustc-cfg=lab_tests");
    } else {
        println!("cargo:warning=the lab tests are ignored on this machine: {reason}");
    }
}

fn main() {
    lab_tests();
    let root = Path::new("templates");
    println!("cargo:rerun-if-changed=templates");
    let mut entries = Vec::new();
    collect(root, root, &mut entries);
    let code = format!(
        "/// (name, source) of every built-in template.\npub const EMBEDDED: &[(&str, &str)] = &[\n{}\n];\n",
        entries.join("\n")
    );
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded_templates.rs");
    fs::write(out, code).expect("write embedded_templates.rs");
}
