//! `--dry-run` output: every step of the plan, each file as a unified diff against the host's
//! current content.

use crate::exec::script::Probed;
use crate::plan::{HostPlan, Step, When};
use similar::TextDiff;

/// Renders one host's plan; `current[i]` is what a probe found for file step `i`
/// (`None` when the host was not probed).
pub fn host_preview(hp: &HostPlan, current: &[Option<Probed>]) -> String {
    let mut out = format!("== {} ({})\n", hp.host.name, hp.host.endpoint());
    for (i, step) in hp.steps.iter().enumerate() {
        match step {
            Step::File(f) => {
                let old = current.get(i).cloned().flatten();
                let old_bytes = old.as_ref().and_then(|p| p.content.clone()).unwrap_or_default();
                let exists = old.as_ref().is_some_and(|p| p.sha.is_some());
                if exists && old_bytes == f.content {
                    out += &format!("  file {} unchanged\n", f.path);
                } else if let (Some(new_bytes), Some(old_bytes)) = (f.shown(), f.shown_current(&old_bytes)) {
                    let (old_text, new_text) =
                        (String::from_utf8_lossy(&old_bytes), String::from_utf8_lossy(&new_bytes));
                    let old_name = if exists {
                        f.path.to_string()
                    } else {
                        "/dev/null".to_string()
                    };
                    let diff = TextDiff::from_lines(old_text.as_ref(), new_text.as_ref());
                    if exists && old_text == new_text {
                        out += &format!("  file {} would be replaced: only its secret values change\n", f.path);
                        continue;
                    }
                    out += &format!(
                        "  file {} (mode {:o}{}{})\n",
                        f.path,
                        f.mode,
                        f.owner.as_ref().map(|o| format!(", owner {o}")).unwrap_or_default(),
                        if f.secret { ", secret values masked" } else { "" }
                    );
                    out += &diff
                        .unified_diff()
                        .context_radius(3)
                        .header(&old_name, f.path.as_str())
                        .to_string();
                    if let Some(v) = &f.validate {
                        out += &format!("  validated with: {}\n", v.join(" "));
                    }
                } else {
                    out += &format!(
                        "  file {} ({} bytes, secret: content not shown) would be {}\n",
                        f.path,
                        f.content.len(),
                        if exists { "replaced" } else { "created" }
                    );
                }
            }
            Step::Absent(a) => out += &format!("  remove {} if present\n", a.path),
            Step::Dir(d) => out += &format!("  ensure directory {} (mode {:o})\n", d.path, d.mode),
            Step::WaitUntil(w) => out += &format!("  {}\n", crate::plan::wait::describe(w)),
            Step::Command(c) => match &c.when {
                When::Always => out += &format!("  run: {}\n", c.display()),
                When::Changed(ids) => {
                    let ids: Vec<&str> = ids.iter().map(|i| i.as_str()).collect();
                    out += &format!("  run if {} changed: {}\n", ids.join(" or "), c.display())
                }
                When::Unless(check) => {
                    let check = crate::shell::join(check);
                    out += &format!("  run unless `{check}` succeeds: {}\n", c.display())
                }
            },
        }
    }
    out
}
