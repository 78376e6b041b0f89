//! What the command line checks a typed value against before any command runs (pure): a value
//! that cannot be a name, lab name, role, MAC, IPv4 address, size, path, copy source, network or
//! time limit is refused by
//! clap (exit 2, naming the value and the type's own reason; one JSON document with --json)
//! before the inventory is read. The command still gets the value as written and parses it where
//! it uses it, with the same rules, so these only move the refusal earlier.

use crate::commands::MAX_SECONDS;
use crate::inventory::Role;
use crate::types::{Name, RemotePath};

/// A value clap refuses unless it reads as a `T` (the types' own messages say why).
pub fn typed<T: std::str::FromStr<Err = String>>(s: &str) -> Result<String, String> {
    s.parse::<T>().map(|_| s.to_string())
}

/// The same for an IPv4 address.
pub fn ipv4(s: &str) -> Result<String, String> {
    s.parse::<std::net::Ipv4Addr>()
        .map(|_| s.to_string())
        .map_err(|_| "write an IPv4 address like 10.0.0.31".into())
}

/// `node add --ip`: an IPv4 address, read trimmed as a CSV row's (empty: the default).
pub fn node_ip(s: &str) -> Result<String, String> {
    match s.trim() {
        "" => Ok(s.to_string()),
        t => ipv4(t).map(|_| s.to_string()),
    }
}

/// `node add NAME` and `--mac`: read trimmed, as a CSV row's fields are.
pub fn trimmed<T: std::str::FromStr<Err = String>>(s: &str) -> Result<String, String> {
    typed::<T>(s.trim()).map(|_| s.to_string())
}

/// `node add --profile`: a name, read trimmed (empty: the role's profile, as today).
pub fn profile(s: &str) -> Result<String, String> {
    match s.trim() {
        "" => Ok(s.to_string()),
        t => typed::<Name>(t).map(|_| s.to_string()),
    }
}

/// A time limit in seconds: a number, at most `MAX_SECONDS`. The reason names `flag` in the same
/// words `commands::seconds` uses, so the refusal reads as it did when the command made it.
pub fn seconds(flag: &str, s: &str) -> Result<u64, String> {
    let secs: u64 = s
        .parse()
        .map_err(|e: std::num::ParseIntError| format!("{e}: write a whole number of seconds, like 60"))?;
    if secs > MAX_SECONDS {
        return Err(format!(
            "{flag} {secs} is too long: at most {MAX_SECONDS} seconds (a week)"
        ));
    }
    Ok(secs)
}

/// `instance stop|remove --grace`: a time limit as the others (at most a week), in the `u32`
/// the stop scripts take.
pub fn grace(s: &str) -> Result<u32, String> {
    // MAX_SECONDS (a week) fits a u32 many times over, so the conversion cannot fail.
    seconds("--grace", s).map(|secs| u32::try_from(secs).expect("at most a week"))
}

/// `lab --name`: what every `lab` command accepts as a lab name (it becomes part of interface
/// names). Checked here as well as in `lab`, so a bad name is refused before the root check.
pub fn lab_name(s: &str) -> Result<String, String> {
    crate::lab::validate_name(s).map(|()| s.to_string())
}

/// `node add --role`: hnode or snode, read trimmed as a CSV row's (empty: hnode, as today).
pub fn role(s: &str) -> Result<String, String> {
    match s.trim() {
        "" => Ok(s.to_string()),
        t => typed::<Role>(t).map(|_| s.to_string()),
    }
}

/// `instance create --copy`: an absolute image path on the node, or a name (a stopped
/// instance's or a store image's; which one, the command finds in the inventory).
pub fn copy_source(s: &str) -> Result<String, String> {
    if s.starts_with('/') {
        return typed::<RemotePath>(s);
    }
    typed::<Name>(s).map_err(|e| {
        format!("{e}; --copy takes an absolute image path (like /srv/golden.img), a stopped instance's name or an image name")
    })
}
