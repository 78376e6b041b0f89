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

/// Runs cloudctl with the process's arguments and returns its exit code.
pub fn main() -> Exit {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => Exit::Ok,
                _ => Exit::Usage,
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
