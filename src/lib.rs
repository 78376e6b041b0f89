//! cloudctl: build and run a small private cloud over SSH. `main()` is the whole program: parse,
//! dispatch to a command, print the error if any, and return the exit code.

pub mod cli;
pub mod commands;
pub mod cpio;
pub mod digest;
pub mod error;
pub mod exec;
pub mod inventory;
pub mod inventory_file;
pub mod lab;
pub mod local_tools;
pub mod plan;
pub mod shell;
pub mod templates;
pub mod types;
pub mod ui;

use clap::Parser;
use error::Exit;
use std::sync::atomic::Ordering;

/// Whether `--json` is among the options, before any `--` that starts a remote command.
fn wants_json(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    args.take_while(|a| a != "--").any(|a| a == "--json")
}

/// Runs cloudctl with the process's arguments and returns its exit code.
pub fn main() -> Exit {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => Exit::Ok,
                _ => {
                    // Under --json a usage error is one JSON document too (clap told the user on stderr).
                    if wants_json(std::env::args_os().skip(1)) {
                        // The message without clap's usage and `--help` hint that follow it.
                        let rendered = e.render().to_string();
                        let lines: Vec<&str> = rendered
                            .lines()
                            .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .collect();
                        let message = lines.join(" ");
                        let message = message.strip_prefix("error: ").unwrap_or(&message);
                        crate::outln!("{:#}", ui::error_document(message, Exit::Usage));
                    }
                    Exit::Usage
                }
            };
        }
    };
    // First Ctrl-C: finish the hosts in flight, start no more, report. Second: stop at once.
    let _ = ctrlc::set_handler(|| {
        if exec::INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(Exit::Interrupted as i32);
        }
        eprintln!(
            "\ninterrupted: finishing hosts already in progress, starting no more (Ctrl-C again to stop at once)"
        );
    });
    let (ui, result) = commands::dispatch(cli);
    let exit = match result {
        Ok(exit) => exit,
        Err(e) => {
            ui.error(&e);
            e.exit()
        }
    };
    if exec::INTERRUPTED.load(Ordering::SeqCst) {
        return Exit::Interrupted;
    }
    exit
}
