//! What the command line checks a typed value against before any command runs (pure): a value
//! that cannot be a name, MAC, IPv4 address, size, path, network or time limit is refused by
//! clap (exit 2, naming the value and the type's own reason; one JSON document with --json)
//! before the inventory is read. The command still gets the value as written and parses it where
//! it uses it, with the same rules, so these only move the refusal earlier.

use crate::commands::MAX_SECONDS;
use crate::types::Name;

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
    let secs: u64 = s.parse().map_err(|e: std::num::ParseIntError| e.to_string())?;
    if secs > MAX_SECONDS {
        return Err(format!(
            "{flag} {secs} is too long: at most {MAX_SECONDS} seconds (a week)"
        ));
    }
    Ok(secs)
}
