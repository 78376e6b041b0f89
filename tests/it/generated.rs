//! completions/ and man/ are generated from the clap definition and committed; this test fails
//! when they are stale (regenerate with CLOUDCTL_BLESS=1 cargo test generated).

use clap::CommandFactory;
use clap_complete::Shell;
use std::path::{Path, PathBuf};

fn generated() -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for (shell, name) in [(Shell::Bash, "cloudctl.bash"), (Shell::Zsh, "_cloudctl")] {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cloudctl::cli::Cli::command(), "cloudctl", &mut buf);
        files.push((root.join("completions").join(name), buf));
    }
    // Built, so that every subcommand's page lists the global options (under their own heading).
    let mut cmd = cloudctl::cli::Cli::command();
    cmd.build();
    let mut pages = vec![(String::from("cloudctl"), cmd.clone())];
    // Building adds a `help` subcommand at every level; it needs no page of its own.
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let name = format!("cloudctl-{}", sub.get_name());
        for leaf in sub.get_subcommands().filter(|s| s.get_name() != "help") {
            pages.push((
                format!("{name}-{}", leaf.get_name()),
                leaf.clone().name(format!("{name}-{}", leaf.get_name())),
            ));
        }
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, page) in pages {
        let mut buf = Vec::new();
        clap_mangen::Man::new(page).render(&mut buf).unwrap();
        files.push((root.join("man").join(format!("{name}.1")), buf));
    }
    files
}

#[test]
fn completions_and_man_pages_are_up_to_date() {
    let bless = std::env::var_os("CLOUDCTL_BLESS").is_some();
    let mut stale = Vec::new();
    for (path, content) in generated() {
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &content).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(&content[..]) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files (run `CLOUDCTL_BLESS=1 cargo test generated`): {stale:?}"
    );
    let main_page = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("man/cloudctl.1")).unwrap();
    assert!(main_page.contains("EXIT STATUS"), "the man page documents exit codes");
}

/// A subcommand's own options come first; the global ones follow under their own heading.
#[test]
fn subcommand_pages_list_global_options_after_their_own() {
    let page = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("man/cloudctl-node-add.1")).unwrap();
    let options = &page[page.find(".SH OPTIONS").expect("an OPTIONS section")..];
    let own = options
        .find("\\-\\-mac")
        .expect("node add's own --mac is under OPTIONS");
    let heading = options
        .find(".SH \"GLOBAL OPTIONS\"")
        .expect("a GLOBAL OPTIONS section");
    let global = options
        .find("\\-\\-dry\\-run")
        .expect("the global --dry-run is on the page");
    assert!(
        own < heading && heading < global,
        "own options, then the Global options heading, then --dry-run"
    );
}
