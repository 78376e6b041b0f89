//! The layering and the one place shell text is built, checked in the source (issue 11): a test
//! fails when a planner imports the executor, `error` or a leaf grows a dependency upward, a
//! second quoter appears, or a module other than the few builders below builds shell text by
//! hand (every planner and command has moved to the shell module and scripts/).

use std::path::{Path, PathBuf};

/// Every `.rs` file under src/, as (path relative to the crate, content).
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    walk(&root.join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// The format strings of the `format!` calls in `src` (plain and raw literals), with their line.
fn format_strings(src: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(at) = rest.find("format!(") {
        let after = rest[at + "format!(".len()..].trim_start();
        rest = after;
        let (open, close) = if let Some(raw) = after.strip_prefix('r') {
            let hashes = raw.len() - raw.trim_start_matches('#').len();
            (1 + hashes + 1, format!("\"{}", "#".repeat(hashes)))
        } else {
            (1, "\"".to_string())
        };
        if !after[open - 1..].starts_with('"') {
            continue; // the format string is not a literal (a macro or a constant)
        }
        let body = &after[open..];
        let end = if close.len() > 1 {
            body.find(&close)
        } else {
            // A plain literal ends at the first quote that is not escaped.
            let b = body.as_bytes();
            let mut i = 0;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            Some(i)
        };
        let Some(end) = end else { break };
        let line = src.len() - after.len();
        out.push((src[..line].lines().count(), body[..end].to_string()));
        rest = &body[end..];
    }
    out
}

/// Shell syntax that a message or a path never holds.
const SHELL: &[&str] = &[
    "/dev/null",
    "; then",
    "; do",
    " || ",
    " && ",
    "$(",
    "\"$",
    "2>&1",
    "| while",
    "exit 0",
];

/// Where `src` assembles shell text by hand: a `format!` that interpolates into shell syntax, or
/// a word quoted with `quote(` to be pasted into text (the `Script` builder, `sh_c` and `join`
/// of the shell module are the way).
fn hand_built_shell(src: &str) -> Vec<String> {
    let mut found: Vec<String> = format_strings(src)
        .into_iter()
        .filter(|(_, f)| f.contains('{') && SHELL.iter().any(|s| f.contains(s)))
        .map(|(line, f)| format!("line {line}: format!(\"{}…\")", f.chars().take(60).collect::<String>()))
        .collect();
    for (n, l) in src.lines().enumerate() {
        let code = l.split("//").next().unwrap_or("");
        if code.contains("quote(") && !code.contains("fn quote(") {
            found.push(format!("line {}: {}", n + 1, l.trim()));
        }
    }
    found
}

/// Modules that may build shell text, and why. The shell module is the place; the executor
/// renders plans into its apply script and wraps scripts for the transport; the `sh` template
/// helper quotes into a rendered shell file.
const BUILDERS: &[&str] = &[
    "src/shell.rs",
    "src/exec/script.rs",
    "src/exec/files.rs",
    "src/exec/ssh.rs",
    "src/exec/local.rs",
    "src/templates.rs",
];

#[test]
fn no_module_off_the_list_builds_shell_text() {
    let mut bad = Vec::new();
    for (path, src) in sources() {
        // The module's own code: its unit tests build hostile values on purpose.
        let found = hand_built_shell(src.split("#[cfg(test)]").next().unwrap_or(""));
        if !BUILDERS.contains(&path.as_str()) && !found.is_empty() {
            bad.push(format!("{path}:\n    {}", found.join("\n    ")));
        }
    }
    assert!(
        bad.is_empty(),
        "shell text built outside the shell module: pass values through crate::shell (Script, sh_c, \
         join) or move the program to scripts/<noun>/*.sh with include_str!\n{}",
        bad.join("\n")
    );
}

/// String constants that hold a remote program of several lines (`const X: &str = "…` spanning
/// source lines, with shell syntax): such a program lives in scripts/<noun>/*.sh, shellchecked,
/// and reaches the code through `include_str!`.
fn multi_line_programs(src: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = src;
    while let Some(at) = rest.find(": &str = ") {
        let after = &rest[at + ": &str = ".len()..];
        rest = after;
        let hashes = after
            .strip_prefix('r')
            .map(|r| r.len() - r.trim_start_matches('#').len());
        let (open, close) = match hashes {
            Some(h) => (1 + h + 1, format!("\"{}", "#".repeat(h))),
            None => (1, "\"".to_string()),
        };
        if !after[open - 1..].starts_with('"') {
            continue;
        }
        let body = &after[open..];
        let end = if hashes.is_some() {
            body.find(&close).unwrap_or(body.len())
        } else {
            let b = body.as_bytes();
            let mut i = 0;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i.min(b.len())
        };
        let literal = &body[..end];
        let shell = SHELL
            .iter()
            .chain(&["; then", "esac", "done", "fi"])
            .any(|s| literal.contains(s));
        if literal.contains('\n') && shell {
            let line = src.len() - after.len();
            found.push(format!(
                "line {}: {}…",
                src[..line].lines().count(),
                literal.lines().next().unwrap_or("")
            ));
        }
        rest = &body[end..];
    }
    found
}

#[test]
fn no_remote_program_of_several_lines_is_a_rust_string() {
    let mut bad = Vec::new();
    for (path, src) in sources() {
        let found = multi_line_programs(src.split("#[cfg(test)]").next().unwrap_or(""));
        if !BUILDERS.contains(&path.as_str()) && !found.is_empty() {
            bad.push(format!("{path}:\n    {}", found.join("\n    ")));
        }
    }
    assert!(
        bad.is_empty(),
        "remote programs of several lines as Rust strings: move each to scripts/<noun>/*.sh \
         (include_str!, one typed wrapper)\n{}",
        bad.join("\n")
    );
    let sample = "const A: &str = r#\"i=0\nwhile [ $i -lt 3 ]; do i=$((i + 1)); done\"#;\nconst B: &str = \"if x; then\\n\\\n    y; fi\";\nconst C: &str = \"one line; then\";\nconst D: &str = include_str!(\"x.sh\");";
    assert_eq!(
        multi_line_programs(sample).len(),
        2,
        "{:?}",
        multi_line_programs(sample)
    );
}

/// The scan itself finds what it must (so the test above can fail) and not a message.
#[test]
fn the_scan_sees_hand_built_shell_and_not_messages() {
    let hand = r#"let s = format!("if [ -b {q} ]; then echo disk; fi"); let t = format!(r"x=$(cat {p})");"#;
    assert_eq!(hand_built_shell(hand).len(), 2, "{:?}", hand_built_shell(hand));
    assert_eq!(hand_built_shell("let w = quote(&disk);").len(), 1);
    let fine = r#"format!("{name}: cannot read {path}; fix it") + &format!("{a} and {b}")"#;
    assert!(hand_built_shell(fine).is_empty(), "{:?}", hand_built_shell(fine));
    let built = r#"Script::new().text("mdadm --detail ").word(md).text(" >/dev/null 2>&1\n")"#;
    assert!(hand_built_shell(built).is_empty());
}

/// The code of a module itself, line by line without comments: its unit tests (after
/// `#[cfg(test)]`) may use what they like.
fn own_code(src: &str) -> impl Iterator<Item = &str> {
    src.split("#[cfg(test)]")
        .next()
        .unwrap_or("")
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
}

/// `shell` and `digest` are leaves; planners never import the executor; `error` sits below both
/// (error → exec → plan → error and plan ⇄ exec were cycles); one quoter (shlex only in `shell`).
#[test]
fn the_layers_have_no_cycles_and_one_quoter() {
    let mut bad = Vec::new();
    for (path, src) in sources() {
        let code = own_code(&src).collect::<Vec<_>>().join("\n");
        let uses = |m: &str| code.contains(m);
        if (path == "src/shell.rs" || path == "src/digest.rs") && (uses("crate::") || uses("super::")) {
            bad.push(format!("{path} is a leaf: it may use no other cloudctl module"));
        }
        if path.starts_with("src/plan/") && uses("crate::exec") {
            bad.push(format!("{path}: a planner imports the executor (plan ⇄ exec)"));
        }
        if path == "src/error.rs" && (uses("crate::exec") || uses("crate::plan") || uses("crate::commands")) {
            bad.push(format!("{path}: error imports a layer above it"));
        }
        if path != "src/shell.rs" && uses("shlex::") {
            bad.push(format!("{path}: a second quoter (shlex); use crate::shell"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Local effects are applied in one place (issue 11): only the real system of the local-effect
/// executor pins a host key or replaces the inventory, so a dry run, which swaps that system for
/// one that changes nothing, touches no local file by construction. The lab keeps its own files.
#[test]
fn only_the_local_effect_executor_pins_keys_or_writes_the_inventory() {
    const EXECUTOR: &str = "src/exec/effect/real.rs";
    let mut bad = Vec::new();
    for (path, src) in sources() {
        if path == EXECUTOR || path.starts_with("src/lab/") {
            continue;
        }
        // Without spaces: rustfmt splits `a\n.known_hosts\n.pin(`.
        let code: String = own_code(&src).collect::<String>().split_whitespace().collect();
        if code.contains(".pin(") {
            bad.push(format!(
                "{path} pins a host key itself; return a LocalEffect::PinKey step"
            ));
        }
        if code.contains("inventory_file::replace(") {
            bad.push(format!(
                "{path} writes the inventory itself; return a LocalStep::write_inventory"
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The test modules the scan below knows: every file of tests/it but main.rs (support/ is not one).
fn test_modules() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let stem = p.file_stem()?.to_string_lossy().into_owned();
            (p.extension().is_some_and(|x| x == "rs") && stem != "main").then_some(stem)
        })
        .collect();
    names.sort();
    names
}

/// The test modules `src` reaches through `prefix` (`crate::` or, in a top-level module,
/// `super::`), both as `crate::pxe::Vm` and inside a `crate::{…}` group; comments are skipped.
fn imported_test_modules(src: &str, prefix: &str, modules: &[String]) -> Vec<String> {
    let code: String = src
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let rest = &code[at + prefix.len()..];
        let heads: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => group[..group.find('}').unwrap_or(group.len())].split(',').collect(),
            None => vec![rest],
        };
        for head in heads {
            let name: String = head
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&name) && !found.contains(&name) {
                found.push(name);
            }
        }
    }
    found
}

/// Test modules share helpers through tests/it/support/ only, and support imports no test
/// module: a helper one module borrows from another is found in neither place it belongs, and
/// ties the two together (issue 11).
#[test]
fn test_modules_import_helpers_from_support_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it");
    let modules = test_modules();
    let mut bad = Vec::new();
    let mut check = |path: PathBuf, prefixes: &[&str]| {
        let src = std::fs::read_to_string(&path).unwrap();
        for prefix in prefixes {
            for m in imported_test_modules(&src, prefix, &modules) {
                bad.push(format!(
                    "{} imports test module {m}; move what it uses to support/",
                    path.display()
                ));
            }
        }
    };
    for m in &modules {
        check(root.join(format!("{m}.rs")), &["crate::", "super::"]);
    }
    for e in std::fs::read_dir(root.join("support")).unwrap() {
        check(e.unwrap().path(), &["crate::", "super::super::"]);
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The scan above finds both spellings of an import (so that test can fail), and not support.
#[test]
fn the_scan_sees_a_test_module_imported() {
    let modules = vec!["pxe".to_string(), "golden".to_string()];
    // Spelled with `{c}` so this file does not import the modules it names.
    let src = |s: &str| s.replace("{c}", "crate");
    let seen = |s: &str| imported_test_modules(&src(s), "crate::", &modules);
    assert_eq!(seen("use {c}::pxe::{Vm, QEMU};"), ["pxe"]);
    assert_eq!(seen("let q = {c}::pxe::QEMU;"), ["pxe"]);
    assert_eq!(seen("use {c}::{golden::assert_golden, support::text};"), ["golden"]);
    assert!(seen("use {c}::support::vm::{Vm, QEMU}; use {c}::pxe_scale;").is_empty());
    assert!(seen("// moved from {c}::pxe").is_empty(), "a comment is no import");
}
