//! The LAMP tests' HTTP clients: requests for status.php from the root namespace or a lab host,
//! bounded in count and time, each line saying which web node answered.

use super::{text, Lab};
use std::process::{Command, Output};

/// Runs `script` in the root namespace (`None`) or on lab host `i`.
pub fn client(lab: &Lab, on: Option<usize>, script: &str) -> Output {
    match on {
        Some(i) => lab.sh(i, script),
        None => Command::new("sh").args(["-c", script]).output().unwrap(),
    }
}

/// `count` requests for `url`/status.php from `on`, each bounded to 5 s, with the cookie jar
/// `jar` if given: per request the answering node (and "hits N" of its session), or `FAILED ...`
/// for a request that failed or did not reach the database.
pub fn requests(lab: &Lab, on: Option<usize>, url: &str, count: u32, jar: Option<&str>) -> Vec<String> {
    let cookies = jar.map(|j| format!("-b {j} -c {j}")).unwrap_or_default();
    let script = format!(
        "for i in $(seq {count}); do out=$(curl -sS -m 5 {cookies} {url}/status.php 2>&1) && printf '%s\\n' \"$out\" | grep -q '^database: reachable' && printf '%s\\n' \"$out\" | sed -n 's/^node: //p;s/^session: hits /hits /p' | paste -sd' ' || echo \"FAILED $out\"; done"
    );
    let out = client(lab, on, &script);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_string).collect()
}

/// The node that answered each request ("web1 hits 3" -> "web1").
pub fn nodes(lines: &[String]) -> Vec<&str> {
    lines.iter().map(|l| l.split(' ').next().unwrap_or("")).collect()
}
