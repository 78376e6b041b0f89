//! Secret files that are shown with only their secret values masked (a DRBD resource, the LAMP
//! database settings), so an administrator can review them in `--dry-run`. Pure.

use serde::{Deserialize, Serialize};

/// What a masked value reads as.
pub const MASK: &str = "********";

/// Where a secret sits in a file that is otherwise shown: on each line, what follows `before`
/// up to the next `after` (the end of the line when `after` is empty). Fields are written by
/// the planner beside the template that renders them, not guessed from the content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretField {
    pub before: String,
    pub after: String,
}

impl SecretField {
    pub fn new(before: &str, after: &str) -> SecretField {
        SecretField {
            before: before.into(),
            after: after.into(),
        }
    }

    /// The spans (byte ranges) of the values this field finds in `line`.
    fn spans(&self, line: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut from = 0;
        while let Some(at) = line[from..].find(&self.before) {
            let start = from + at + self.before.len();
            let end = match self.after.as_str() {
                "" => line.len(),
                after => line[start..].find(after).map_or(line.len(), |e| start + e),
            };
            out.push((start, end));
            from = end.max(start + 1).min(line.len());
            if from >= line.len() {
                break;
            }
        }
        out
    }
}

/// The values `fields` find in `text` (the secrets a rendered file holds).
pub fn values(text: &str, fields: &[SecretField]) -> Vec<String> {
    let mut out: Vec<String> = text
        .lines()
        .flat_map(|l| fields.iter().flat_map(|f| f.spans(l)).map(|(a, b)| l[a..b].to_string()))
        .filter(|v| !v.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `text` with every value `fields` find masked, and every one of `also` wherever it appears
/// (the new file's secrets, should the old file hold them somewhere else).
pub fn mask(text: &str, fields: &[SecretField], also: &[String]) -> String {
    let mut lines: Vec<String> = Vec::new();
    for line in text.split_inclusive('\n') {
        let mut spans: Vec<(usize, usize)> = fields.iter().flat_map(|f| f.spans(line)).collect();
        spans.sort();
        let mut shown = String::new();
        let mut at = 0;
        for (start, end) in spans {
            if start < at {
                continue;
            }
            // A value runs to the end of its line: the newline stays.
            let end = if end == line.len() {
                line.trim_end_matches('\n').len().max(start)
            } else {
                end
            };
            shown += &line[at..start];
            shown += MASK;
            at = end;
        }
        shown += &line[at..];
        lines.push(shown);
    }
    let mut shown = lines.concat();
    for v in also.iter().filter(|v| !v.is_empty()) {
        shown = shown.replace(v.as_str(), MASK);
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_values_are_masked() {
        let drbd = [SecretField::new("shared-secret \"", "\";")];
        let text = "net {\n    shared-secret \"0123abcd\";\n    protocol C;\n}\n";
        assert_eq!(values(text, &drbd), ["0123abcd"]);
        assert_eq!(
            mask(text, &drbd, &[]),
            "net {\n    shared-secret \"********\";\n    protocol C;\n}\n"
        );
        let cnf = [SecretField::new("password = ", "")];
        assert_eq!(
            mask("user = a\npassword = s3cret\n", &cnf, &[]),
            "user = a\npassword = ********\n"
        );
        let sql = [SecretField::new("IDENTIFIED BY '", "'")];
        assert_eq!(
            mask(
                "CREATE USER 'u'@'h' IDENTIFIED BY 'pw'; ALTER USER 'u' IDENTIFIED BY 'pw';\n",
                &sql,
                &[]
            ),
            "CREATE USER 'u'@'h' IDENTIFIED BY '********'; ALTER USER 'u' IDENTIFIED BY '********';\n"
        );
        // A value the new file holds is masked in the old one wherever it stands.
        let old = "# was 0123abcd\n    shared-secret \"oldsecret\";\n";
        assert_eq!(
            mask(old, &drbd, &values(text, &drbd)),
            "# was ********\n    shared-secret \"********\";\n"
        );
        // No closing delimiter: the rest of the line is the value.
        assert_eq!(mask("shared-secret \"abc\n", &drbd, &[]), "shared-secret \"********\n");
    }
}
