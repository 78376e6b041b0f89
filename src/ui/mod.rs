//! All printing: messages, errors, prompts, progress, plans and reports. Human text goes to
//! stderr; `--json` documents (and `run`'s remote stdout) go to stdout.

pub mod confignode;
pub mod diff;
pub mod doctor;
pub mod hnode;
pub mod image;
pub mod instance;
pub mod lamp;
pub mod node;
pub mod progress;
pub mod rebalance;
pub mod report;
pub mod storage;

use crate::error::{Error, Exit};
use std::io::{IsTerminal, Write};

/// `println!` for cloudctl's stdout (see [`stdout_line`]).
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::ui::stdout_line(format_args!($($arg)*))
    };
}

/// Exit status when the reader of stdout went away (`cloudctl … | head`): 128 + SIGPIPE, what a
/// Unix filter killed by the signal reports.
pub const EXIT_STDOUT_CLOSED: i32 = 141;

/// Writes one line to stdout. A reader that went away ends cloudctl quietly, as it ends any Unix
/// filter, instead of a panic in the middle of a report.
pub fn stdout_line(line: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(line).and_then(|_| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(EXIT_STDOUT_CLOSED);
        }
        eprintln!("error: cannot write to stdout: {e}");
    }
}

/// The one JSON document of a command that ended in an error.
pub fn error_document(error: &str, exit: crate::error::Exit) -> serde_json::Value {
    serde_json::json!({ "ok": false, "error": error, "exit": exit, "exit_code": exit as i32 })
}

pub struct Ui {
    pub json: bool,
    pub quiet: bool,
    pub verbose: u8,
    /// Progress bars and prompts only make sense on a terminal.
    pub interactive: bool,
}

impl Ui {
    pub fn new(json: bool, quiet: bool, verbose: u8) -> Ui {
        let interactive = std::io::stderr().is_terminal() && std::io::stdin().is_terminal();
        Ui {
            json,
            quiet,
            verbose,
            interactive,
        }
    }

    /// A normal message (suppressed by -q).
    pub fn info(&self, msg: &str) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }

    /// Detail shown with -v.
    pub fn detail(&self, msg: &str) {
        if self.verbose > 0 {
            eprintln!("{msg}");
        }
    }

    pub fn warn(&self, msg: &str) {
        eprintln!("warning: {msg}");
    }

    /// Prints the error that ended the command (and, with --json, a JSON document saying so).
    pub fn error(&self, e: &Error) {
        let exit = e.exit();
        eprintln!("error: {e}");
        if self.json {
            self.print_json(&error_document(&e.to_string(), exit));
        }
    }

    pub fn print_json(&self, value: &serde_json::Value) {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(value).expect("JSON values serialise")
        );
    }

    /// Asks before a change. Without a TTY, only `--yes` lets it through.
    pub fn confirm(&self, question: &str, yes: bool) -> Result<(), Error> {
        if yes {
            return Ok(());
        }
        if !self.interactive {
            return Err(Error::NotConfirmed(format!(
                "{question}: refusing to change hosts without confirmation and there is no TTY to ask on; pass --yes (or --dry-run to see the plan)"
            )));
        }
        let go = dialoguer::Confirm::new()
            .with_prompt(format!("{question}?"))
            .default(false)
            .interact()
            .map_err(|e| Error::NotConfirmed(format!("could not ask for confirmation: {e}; pass --yes")))?;
        if go {
            Ok(())
        } else {
            Err(Error::NotConfirmed("not confirmed; nothing was changed".into()))
        }
    }

    /// For destructive steps: the user must type `expected` (e.g. a disk name) to go on.
    pub fn confirm_typed(&self, what: &str, expected: &str, yes: bool) -> Result<(), Error> {
        if yes {
            return Ok(());
        }
        if !self.interactive {
            return Err(Error::NotConfirmed(format!(
                "{what}: no TTY to confirm on; pass --yes to confirm"
            )));
        }
        let typed: String = dialoguer::Input::new()
            .with_prompt(format!("{what}. Type {expected} to confirm"))
            .allow_empty(true)
            .interact_text()
            .map_err(|e| Error::NotConfirmed(format!("could not ask for confirmation: {e}; pass --yes")))?;
        if typed.trim() == expected {
            Ok(())
        } else {
            Err(Error::NotConfirmed(format!(
                "you typed {typed:?}, not {expected}; nothing was changed"
            )))
        }
    }

    /// The JSON envelope every command shares: `ok`, `exit`, `exit_code`, plus the command's fields.
    pub fn json_result(&self, exit: Exit, mut body: serde_json::Value) {
        if let Some(map) = body.as_object_mut() {
            map.insert("ok".into(), (exit == Exit::Ok).into());
            map.insert("exit".into(), serde_json::to_value(exit).expect("enum serialises"));
            map.insert("exit_code".into(), (exit as i32).into());
        }
        self.print_json(&body);
    }
}

/// A timestamp for plain (non-TTY) progress lines.
pub fn timestamp() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
