//! The one place that turns values into `sh` text: quoting, `sh -c PROG sh ARGS` command lines and
//! a script builder. A leaf: it depends on no other cloudctl module, so every layer may use it.
//!
//! A value reaches a remote shell only as one quoted word or as a positional argument. The
//! builder takes program text as `&'static str`, written in the source, so a value computed at run
//! time cannot be pasted into it unquoted; values go through `word` and `call`.

use std::borrow::Cow;

/// Marks the lines of a remote program's output that carry records; other lines are diagnostics.
pub const RECORD: &str = "@cloudctl";

/// Quotes one word for `sh`. Values never contain NUL: typed values exclude it, and argv comes
/// from the OS command line or from planners; a NUL is dropped rather than cut the word short.
pub fn quote(word: &str) -> Cow<'_, str> {
    shlex::try_quote(word).unwrap_or_else(|_| {
        Cow::Owned(
            shlex::try_quote(&word.replace('\0', ""))
                .expect("NUL removed")
                .into_owned(),
        )
    })
}

/// Words as one `sh` command line, each quoted (how a command is shown and how it is run).
pub fn join<S: AsRef<str>>(words: impl IntoIterator<Item = S>) -> String {
    let quoted: Vec<String> = words.into_iter().map(|w| quote(w.as_ref()).into_owned()).collect();
    quoted.join(" ")
}

/// `sh -c PROGRAM sh ARGS…` as argv: the program is fixed text, the values are its `$1`, `$2`, …,
/// so nothing in them is parsed by the shell.
pub fn sh_c_argv(program: &str, args: &[&str]) -> Vec<String> {
    let mut argv: Vec<String> = ["sh", "-c", program, "sh"].map(String::from).to_vec();
    argv.extend(args.iter().map(|a| a.to_string()));
    argv
}

/// The same as one command line (for a probe that runs a command string).
pub fn sh_c(program: &str, args: &[&str]) -> String {
    join(sh_c_argv(program, args))
}

/// A remote program built from fixed text and quoted values.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Script {
    text: String,
}

impl Script {
    pub fn new() -> Script {
        Script::default()
    }

    /// Program text written in the source (`&'static`: never a value computed at run time).
    pub fn text(&mut self, fixed: &'static str) -> &mut Script {
        self.text += fixed;
        self
    }

    /// One value as one quoted word.
    pub fn word(&mut self, value: &str) -> &mut Script {
        self.text += &quote(value);
        self
    }

    /// `NAME 'arg' 'arg'…`: a command (or a function the fixed text defined) with values as its
    /// positional arguments, followed by the rest of the line.
    pub fn call(&mut self, name: &'static str, args: &[&str], rest: &'static str) -> &mut Script {
        self.text += name;
        for a in args {
            self.text.push(' ');
            self.text += &quote(a);
        }
        self.text += rest;
        self
    }

    /// `sh -c PROGRAM sh ARGS…`: a program of its own (fixed text) with values as its positional
    /// arguments, as one line.
    pub fn sh_c(&mut self, program: &'static str, args: &[&str]) -> &mut Script {
        self.text += &sh_c(program, args);
        self
    }

    /// Another script built the same way (a check reused inside a condition).
    pub fn script(&mut self, other: &Script) -> &mut Script {
        self.text += &other.text;
        self
    }

    pub fn build(&self) -> String {
        self.text.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Values that would run `touch` if the shell parsed them.
    fn hostile(marker: &str) -> Vec<String> {
        vec![
            format!("$(touch {marker})"),
            format!("`touch {marker}`"),
            format!("x; touch {marker}"),
            format!("x\ntouch {marker}"),
            format!("'; touch {marker}; '"),
            format!("\"; touch {marker}; \""),
            format!("x && touch {marker} #"),
            format!("../../{}", "a".repeat(4096)),
            "*".into(),
            "-n".into(),
            String::new(),
            "a\0b".into(),
        ]
    }

    /// Runs `program` with `sh` and returns its stdout.
    fn sh(program: &str) -> String {
        let out = Command::new("sh").arg("-c").arg(program).output().unwrap();
        assert!(
            out.status.success(),
            "{program}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn every_hostile_value_reaches_the_shell_as_one_literal_word() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        for v in hostile(marker.to_str().unwrap()) {
            let literal = v.replace('\0', "");
            // A quoted word, a positional argument, a builder word and a call argument.
            let by_word = sh(&format!("printf '%s|' {}", quote(&v)));
            let by_arg = {
                let argv = sh_c_argv("printf '%s|' \"$#\" \"$1\"", &[&literal]);
                let out = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
                String::from_utf8(out.stdout).unwrap()
            };
            let by_line = sh(&sh_c("printf '%s|' \"$#\" \"$1\"", &[&v]));
            let by_builder = sh(&Script::new()
                .text("f() { printf '%s|' \"$#\" \"$1\"; }\nprintf '%s|' ")
                .word(&v)
                .text("\n")
                .call("f", &[&v], "\n")
                .build());
            assert_eq!(by_word, format!("{literal}|"), "{v:?}");
            assert_eq!(by_arg, format!("1|{literal}|"), "{v:?}");
            assert_eq!(by_line, format!("1|{literal}|"), "{v:?}");
            assert_eq!(by_builder, format!("{literal}|1|{literal}|"), "{v:?}");
            assert!(!marker.exists(), "{v:?} was executed");
        }
    }

    #[test]
    fn join_quotes_only_what_needs_it() {
        assert_eq!(join(["echo", "a b", "it's", "$x"]), r#"echo 'a b' "it's" '$x'"#);
        assert_eq!(sh_c("echo \"$1\"", &["v"]), r#"sh -c 'echo "$1"' sh v"#);
    }
}
