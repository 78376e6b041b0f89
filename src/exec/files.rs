//! Shell text for many files at once, so a host's cost does not grow with its file count in
//! round trips or remote processes: one probe (`stat` + `sha256sum` over every path), one upload
//! per target directory (a gzip'd tar staged beside the targets), one checksum check, one backup
//! and one rename batch per directory, and one `rm` for removals. Pure.
//!
//! Lists travel in here-documents whose delimiter is chosen so that no line of the list equals it;
//! every path or name on a command line is quoted.

use super::script::{Probed, BACKUP_DIR};
use crate::digest::sha256_hex;
use crate::plan::FileStep;
use crate::shell::{quote, RECORD};
use base64::Engine;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;

/// `<<'DELIM'\nLINES\nDELIM\n` with a delimiter no line equals (`_` never occurs in base64).
pub fn heredoc<S: AsRef<str>>(lines: &[S]) -> (String, String) {
    let mut delim = String::from("CLOUDCTL_EOF");
    while lines.iter().any(|l| l.as_ref() == delim) {
        delim.push('_');
    }
    let mut body = String::new();
    for l in lines {
        body += l.as_ref();
        body.push('\n');
    }
    body += &delim;
    body.push('\n');
    (format!("<<'{delim}'"), body)
}

/// A `sha256sum -c` line; names holding a backslash are written escaped, as sha256sum does.
fn sum_line(sha: &str, name: &str) -> String {
    if name.contains('\\') {
        format!("\\{sha}  {}", name.replace('\\', "\\\\"))
    } else {
        format!("{sha}  {name}")
    }
}

/// A read-only script reporting, for every path, its sha256 (regular files only, so a FIFO or a
/// device is never read) and its `mode user:group`. Output: `@cloudctl sha HASH  PATH`,
/// `@cloudctl meta MODE OWNER PATH`, then `@cloudctl probed`.
pub fn probe_script(paths: &[&str]) -> String {
    let (redir, body) = heredoc(paths);
    let mut s = String::from("main() {\nset -u\numask 077\n");
    // `stat -L` names the regular files; only those reach sha256sum.
    s += &format!(
        "xargs -r -d '\\n' stat -L -c '%F/%n' -- {redir} 2>/dev/null | sed -n 's|^regular \\(empty \\)\\{{0,1\\}}file/||p' | xargs -r -d '\\n' sha256sum -- 2>/dev/null | sed 's/^/{RECORD} sha /'\n{body}"
    );
    s += &format!("xargs -r -d '\\n' stat -c '{RECORD} meta %a %U:%G %n' -- {redir} 2>/dev/null\n{body}");
    s + &format!("echo '{RECORD} probed'\n}}\nmain </dev/null\n")
}

/// Reads a probe's output: what exists at each of `paths` (absent: sha and meta `None`).
pub fn parse_probe(output: &str, paths: &[&str]) -> Result<Vec<Probed>, String> {
    let mut index: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, p) in paths.iter().enumerate() {
        index.entry(p).or_default().push(i);
    }
    let mut found = vec![Probed::default(); paths.len()];
    let mut complete = false;
    let mut set = |path: &str, f: &mut dyn FnMut(&mut Probed)| {
        for &i in index.get(path).map(Vec::as_slice).unwrap_or_default() {
            f(&mut found[i]);
        }
    };
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix(RECORD).and_then(|r| r.strip_prefix(" sha ")) {
            let (escaped, rest) = match rest.strip_prefix('\\') {
                Some(r) => (true, r),
                None => (false, rest),
            };
            let (sha, name) = rest
                .split_once("  ")
                .filter(|(h, _)| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| format!("bad probe line {line:?}"))?;
            let name = if escaped { unescape(name) } else { name.to_string() };
            set(&name, &mut |p| p.sha = Some(sha.to_string()));
        } else if let Some(rest) = line.strip_prefix(RECORD).and_then(|r| r.strip_prefix(" meta ")) {
            let mut f = rest.splitn(3, ' ');
            let (Some(mode), Some(owner), Some(name)) = (f.next(), f.next(), f.next()) else {
                return Err(format!("bad probe line {line:?}"));
            };
            set(name, &mut |p| p.meta = Some(format!("{mode} {owner}")));
        } else if line == format!("{RECORD} probed") {
            complete = true;
        }
    }
    if !complete {
        return Err(format!("the probe did not finish: {}", output.trim()));
    }
    Ok(found)
}

fn unescape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// A read-only script sending the current content of `paths` as one tar stream (for diffs).
pub fn content_script(paths: &[&str]) -> String {
    let (redir, body) = heredoc(paths);
    format!(
        "main() {{\nset -u\numask 077\nprintf '{RECORD} content '\n\
         tar -c -h -P -f - --no-recursion --ignore-failed-read --verbatim-files-from -T - {redir} 2>/dev/null | base64 -w0\n{body}echo\n}}\nmain </dev/null\n"
    )
}

/// Reads `content_script` output: path → content.
pub fn parse_content(output: &str) -> Result<HashMap<String, Vec<u8>>, String> {
    let line = output
        .lines()
        .find_map(|l| l.strip_prefix(RECORD).and_then(|r| r.strip_prefix(" content ")))
        .ok_or_else(|| format!("the content probe did not answer: {}", output.trim()))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line.trim())
        .map_err(|e| format!("bad content probe: {e}"))?;
    let mut out = HashMap::new();
    let mut archive = tar::Archive::new(bytes.as_slice());
    for entry in archive.entries().map_err(|e| format!("bad content probe: {e}"))? {
        let mut entry = entry.map_err(|e| format!("bad content probe: {e}"))?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).map_err(|e| format!("bad content probe: {e}"))?;
        out.insert(path, content);
    }
    Ok(out)
}

/// `mode` or `mode user:group` as the probe reports it, compared with what a step wants.
pub fn meta_matches(f: &FileStep, meta: &str) -> bool {
    let (mode, owner) = meta.split_once(' ').unwrap_or((meta, ""));
    if mode != format!("{:o}", f.mode) {
        return false;
    }
    match &f.owner {
        None => true,
        Some(o) if o.contains(':') => owner == o,
        Some(o) => owner.split(':').next() == Some(o.as_str()),
    }
}

/// The guard an apply script starts with: files that were not re-sent must still hold what the
/// probe saw (content and metadata), else the script says "stale" and stops before any change.
pub fn stale_guard(unsent: &[(&FileStep, &Probed)]) -> String {
    if unsent.is_empty() {
        return String::new();
    }
    let sums: Vec<String> = unsent
        .iter()
        .map(|(f, _)| sum_line(&sha256_hex(&f.content), f.path.as_str()))
        .collect();
    let paths: Vec<&str> = unsent.iter().map(|(f, _)| f.path.as_str()).collect();
    let metas: Vec<&str> = unsent.iter().map(|(_, p)| p.meta.as_deref().unwrap_or("-")).collect();
    let stale = format!("{{ echo '{RECORD} stale'; exit 0; }}");
    let (r1, b1) = heredoc(&sums);
    let (r2, b2) = heredoc(&paths);
    format!(
        "sha256sum -c --quiet --status {r1} 2>/dev/null || {stale}\n{b1}\
         [ \"$(xargs -r -d '\\n' stat -c '%a %U:%G' -- {r2} 2>/dev/null\n{b2})\" = {} ] || {stale}\n",
        quote(&metas.join("\n"))
    )
}

/// A file of a batch: its step index, the step, and whether its content must be sent.
pub struct Member<'a> {
    pub index: usize,
    pub file: &'a FileStep,
    pub send: bool,
    /// The probe found something at the path (so activation keeps a backup).
    pub exists: bool,
    /// Unsent files: the probe saw the wanted mode and owner.
    pub meta_ok: bool,
    /// Pending markers of the commands that must run once this file is active.
    pub pending: Vec<String>,
}

fn base_name(f: &FileStep) -> &str {
    f.path.as_str().rsplit('/').next().unwrap_or("file")
}

fn chmod_chown(f: &FileStep, target: &str) -> String {
    let mut m = format!("chmod {:o} {target}", f.mode);
    if let Some(o) = &f.owner {
        m += &format!(" && chown {} {target}", quote(o));
    }
    m
}

/// A gzip'd tar of `(name, content, mode)`, as base64 lines for a here-document.
fn tarball(files: &[&FileStep]) -> Vec<String> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
    for f in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(f.content.len() as u64);
        header.set_mode(f.mode);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, base_name(f), f.content.as_slice())
            .expect("writing a tar into memory cannot fail");
    }
    let mut gz = builder.into_inner().expect("in memory");
    gz.flush().expect("in memory");
    let bytes = gz.finish().expect("in memory");
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    encoded
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect()
}

/// Shell text for a run of consecutive file steps. Files are staged (uploaded, checksummed,
/// owned) all at once; then, in step order, each validated file is checked after every earlier
/// file of the run is active (a validator may read them), and files become active by `mv -t`
/// into their directory (an atomic rename each), after a tar copy of the old ones to
/// `NAME.cloudctl-bak`. `stages` numbers the staging directories of the whole script.
pub fn batch(members: &[Member], stages: &mut usize) -> String {
    let mut s = String::new();
    let mut by_dir: BTreeMap<&str, Vec<&Member>> = BTreeMap::new();
    for m in members.iter().filter(|m| m.send) {
        by_dir.entry(m.file.path.parent()).or_default().push(m);
    }
    let mut stage_of: HashMap<usize, String> = HashMap::new();
    for (dir, group) in &by_dir {
        let var = format!("S{}", *stages);
        *stages += 1;
        let first = group[0].index;
        let fail = format!("{{ rec {first} failed 1; exit 1; }}");
        let tmpl = quote(&format!("{}/.cloudctl-stage.XXXXXX", dir.trim_end_matches('/'))).into_owned();
        let files: Vec<&FileStep> = group.iter().map(|m| m.file).collect();
        let (r, b) = heredoc(&tarball(&files));
        let sums: Vec<String> = files
            .iter()
            .map(|f| sum_line(&sha256_hex(&f.content), base_name(f)))
            .collect();
        let (rs, bs) = heredoc(&sums);
        let _ = write!(
            s,
            "{var}=$(mktemp -d {tmpl} 2>\"$T/e\") || {fail}\n\
             base64 -d {r} 2>\"$T/e\" | tar -x -z -m -p --no-same-owner -f - -C \"${var}\" 2>>\"$T/e\" || {fail}\n{b}\
             ( cd \"${var}\" && sha256sum -c --strict --quiet ) {rs} >\"$T/e\" 2>&1 || {fail}\n{bs}"
        );
        let mut owners: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for f in &files {
            if let Some(o) = &f.owner {
                owners.entry(o).or_default().push(base_name(f));
            }
        }
        for (owner, list) in owners {
            let (ro, bo) = heredoc(&list);
            let _ = write!(
                s,
                "( cd \"${var}\" && xargs -r -d '\\n' chown {} -- ) {ro} 2>\"$T/e\" || {fail}\n{bo}",
                quote(owner)
            );
        }
        s += ": > \"$T/e\"\n";
        for m in group {
            stage_of.insert(m.index, var.clone());
        }
    }
    let mut pending: Vec<&Member> = Vec::new();
    for m in members {
        if let (true, Some(v)) = (m.send, &m.file.validate) {
            s += &activate(&pending, &stage_of);
            pending.clear();
            let staged = format!("\"${}\"/{}", stage_of[&m.index], quote(base_name(m.file)));
            let argv: Vec<String> = v
                .iter()
                .map(|a| {
                    if a == "{}" {
                        staged.clone()
                    } else {
                        quote(a).into_owned()
                    }
                })
                .collect();
            let i = m.index;
            let _ = writeln!(
                s,
                "{} >\"$T/o\" 2>\"$T/e\" 9>&-; rc=$?\nif [ $rc -ne 0 ]; then rec {i} invalid $rc; exit 3; fi\n: > \"$T/o\"; : > \"$T/e\"",
                argv.join(" ")
            );
        }
        pending.push(m);
    }
    s += &activate(&pending, &stage_of);
    // Every staged file has moved out: the (empty) staging folders go.
    let vars: std::collections::BTreeSet<&String> = stage_of.values().collect();
    for var in vars {
        let _ = writeln!(s, "rmdir \"${var}\" 2>/dev/null; {var}=");
    }
    s
}

/// Makes `members` active: metadata fixes for unsent files, then per directory a backup of the
/// files being replaced and one `mv -t`, then a record per file.
fn activate(members: &[&Member], stage_of: &HashMap<usize, String>) -> String {
    let mut s = String::new();
    for m in members.iter().filter(|m| !m.send) {
        let i = m.index;
        if m.meta_ok {
            let _ = writeln!(s, "rec {i} ok");
        } else {
            let _ = writeln!(
                s,
                "if {} 2>\"$T/e\"; then c{i}=1; rec {i} changed; else rec {i} failed 1; exit 1; fi",
                chmod_chown(m.file, &quote(m.file.path.as_str()))
            );
        }
    }
    let mut by_stage: BTreeMap<&str, Vec<&Member>> = BTreeMap::new();
    for m in members.iter().filter(|m| m.send) {
        by_stage.entry(&stage_of[&m.index]).or_default().push(m);
    }
    for (var, group) in by_stage {
        let dir = quote(group[0].file.path.parent()).into_owned();
        let first = group[0].index;
        let fail = format!("{{ rec {first} failed 1; exit 1; }}");
        let old: Vec<&str> = group.iter().filter(|m| m.exists).map(|m| base_name(m.file)).collect();
        if !old.is_empty() {
            let (r, b) = heredoc(&old);
            // A copy, not a link, kept out of the (perhaps served) folder: under the state folder.
            let backups = quote(&format!("{BACKUP_DIR}{}", group[0].file.path.parent())).into_owned();
            let _ = write!(
                s,
                "sd && mkdir -p {backups} && ( cd {dir} && tar -c -f - --no-recursion --ignore-failed-read --verbatim-files-from -T - {r} 2>/dev/null | tar -x -p -f - -C {backups} ) 2>\"$T/e\" || {fail}\n{b}"
            );
        }
        // Before the files are active, the commands that must follow them are marked pending.
        let mut marks: Vec<&str> = group
            .iter()
            .flat_map(|m| m.pending.iter().map(String::as_str))
            .collect();
        marks.sort_unstable();
        marks.dedup();
        if !marks.is_empty() {
            let _ = writeln!(s, "{{ sd && : >{}; }} 2>\"$T/e\" || {fail}", marks.join(" && : >"));
        }
        for m in &group {
            let _ = writeln!(s, "b{}={}", m.index, if m.exists { 1 } else { 2 });
        }
        let names: Vec<&str> = group.iter().map(|m| base_name(m.file)).collect();
        let (r, b) = heredoc(&names);
        let _ = write!(
            s,
            "( cd \"${var}\" && xargs -r -d '\\n' mv -f -t {dir} -- ) {r} 2>\"$T/e\"\n{b}F=\n"
        );
        let staged = |m: &Member| format!("\"${var}\"/{}", quote(base_name(m.file)));
        for m in &group {
            let _ = writeln!(s, "[ -e {} ] && F=${{F:-{}}}", staged(m), m.index);
        }
        s += "[ -z \"$F\" ] || rec \"$F\" failed 1\n";
        for m in &group {
            let i = m.index;
            let _ = writeln!(s, "[ -e {} ] || {{ c{i}=1; rec {i} changed; }}", staged(m));
        }
        s += "[ -z \"$F\" ] || exit 1\n";
    }
    s
}

/// Shell text for a run of consecutive removals: one `rm -f` for all that exist, a record each.
pub fn absent_batch(members: &[(usize, &str)]) -> String {
    let mut s = String::from("A=0\n");
    for (i, p) in members {
        let p = quote(p);
        let _ = writeln!(
            s,
            "c{i}=0; if [ -e {p} ] || [ -L {p} ]; then c{i}=2; A=1; else rec {i} ok; fi"
        );
    }
    let paths: Vec<&str> = members.iter().map(|(_, p)| *p).collect();
    let (r, b) = heredoc(&paths);
    let _ = write!(s, "[ $A = 0 ] || xargs -r -d '\\n' rm -f -- {r} 2>\"$T/e\"\n{b}");
    for (i, p) in members {
        let p = quote(p);
        let _ = writeln!(
            s,
            "if [ $c{i} = 2 ]; then if [ -e {p} ] || [ -L {p} ]; then rec {i} failed 1; exit 1; else c{i}=1; rec {i} changed; fi; fi"
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heredoc_delimiter_never_equals_a_line() {
        let (redir, body) = heredoc(&["/a", "CLOUDCTL_EOF", "CLOUDCTL_EOF_"]);
        assert_eq!(redir, "<<'CLOUDCTL_EOF__'");
        assert_eq!(body, "/a\nCLOUDCTL_EOF\nCLOUDCTL_EOF_\nCLOUDCTL_EOF__\n");
    }

    #[test]
    fn metadata_is_compared_as_the_step_asks() {
        let mut f = FileStep {
            id: "x".into(),
            path: "/etc/x".parse().unwrap(),
            content: Vec::new(),
            mode: 0o640,
            owner: None,
            validate: None,
            secret: false,
            masked: Vec::new(),
        };
        assert!(meta_matches(&f, "640 root:root"));
        assert!(!meta_matches(&f, "644 root:root"));
        f.owner = Some("root:tftp".into());
        assert!(meta_matches(&f, "640 root:tftp") && !meta_matches(&f, "640 root:root"));
        f.owner = Some("www-data".into());
        assert!(
            meta_matches(&f, "640 www-data:adm"),
            "a user alone compares the user only"
        );
    }

    #[test]
    fn names_with_a_backslash_are_escaped_for_sha256sum() {
        assert_eq!(sum_line("ab", "a\\b"), "\\ab  a\\\\b");
        assert_eq!(unescape("a\\\\b"), "a\\b");
    }
}
