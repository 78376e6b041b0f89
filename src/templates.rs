//! Templates: handlebars in strict mode, built in (templates/<noun>-<verb>/<file>.hbs) and
//! overridable from a `--templates DIR` with the same layout. Rendering is pure.

use crate::error::Error;
use handlebars::Handlebars;
use std::path::Path;

include!(concat!(env!("OUT_DIR"), "/embedded_templates.rs"));

/// The text of a helper's first parameter (strings as they are, numbers as written).
fn param_text(h: &handlebars::Helper, helper: &'static str) -> Result<String, handlebars::RenderError> {
    let value = h
        .param(0)
        .ok_or(handlebars::RenderErrorReason::ParamNotFoundForIndex(helper, 0))?
        .value();
    Ok(match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// The handlebars helper behind `{{sh value}}`: the value as one quoted `sh` word.
fn shell_word(
    h: &handlebars::Helper,
    _: &Handlebars,
    _: &handlebars::Context,
    _: &mut handlebars::RenderContext,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    out.write(&crate::shell::quote(&param_text(h, "sh")?))?;
    Ok(())
}

/// The handlebars helper behind `{{quoted value}}`.
fn double_quoted(
    h: &handlebars::Helper,
    _: &Handlebars,
    _: &handlebars::Context,
    _: &mut handlebars::RenderContext,
    out: &mut dyn handlebars::Output,
) -> handlebars::HelperResult {
    let text = param_text(h, "quoted")?;
    out.write(&format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"")))?;
    Ok(())
}

pub struct Templates {
    hb: Handlebars<'static>,
}

impl Templates {
    /// Built-in templates, with any `DIR/<noun>-<verb>/<file>.hbs` replacing the one of that name.
    pub fn load(override_dir: Option<&Path>) -> Result<Templates, Error> {
        let mut hb = Handlebars::new();
        hb.set_strict_mode(true);
        // Config files are not HTML; typed values keep them safe instead.
        hb.register_escape_fn(handlebars::no_escape);
        // `{{sh value}}`: one shell word, for files a shell sources (/etc/default/*, init settings).
        hb.register_helper("sh", Box::new(shell_word));
        // `{{quoted value}}`: a double-quoted string with `\` and `"` escaped (Apache, DRBD, my.cnf).
        hb.register_helper("quoted", Box::new(double_quoted));
        for (name, source) in EMBEDDED {
            hb.register_template_string(name, *source)
                .map_err(|e| Error::Usage(format!("built-in template {name} is broken: {e}")))?;
        }
        if let Some(dir) = override_dir {
            let entries = std::fs::read_dir(dir).map_err(|e| {
                Error::Usage(format!(
                    "--templates {}: {e}; give a directory holding <noun>-<verb>/<file>.hbs",
                    dir.display()
                ))
            })?;
            // Anything that is not DIR/<noun>-<verb>/<file>.hbs of a built-in template is refused:
            // a misplaced override would otherwise be ignored without a word. Hidden files
            // (.git, editor swap files) are skipped.
            let visible = |e: &std::fs::DirEntry| !e.file_name().to_string_lossy().starts_with('.');
            let misplaced = |path: &Path| {
                Error::Usage(format!(
                    "--templates: {} overrides no built-in template (expected {}/<noun>-<verb>/<file>.hbs); built-in names are: {}",
                    path.display(),
                    dir.display(),
                    EMBEDDED
                        .iter()
                        .map(|(n, _)| format!("{n}.hbs"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            };
            for sub in entries.filter_map(|e| e.ok()).filter(visible) {
                if !sub.path().is_dir() {
                    return Err(misplaced(&sub.path()));
                }
                for file in std::fs::read_dir(sub.path())
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.ok())
                    .filter(visible)
                {
                    let path = file.path();
                    let Some(stem) = path
                        .file_name()
                        .and_then(|f| f.to_str())
                        .and_then(|f| f.strip_suffix(".hbs"))
                    else {
                        return Err(misplaced(&path));
                    };
                    let name = format!("{}/{stem}", sub.file_name().to_string_lossy());
                    if !EMBEDDED.iter().any(|(n, _)| *n == name) {
                        return Err(misplaced(&path));
                    }
                    hb.register_template_file(&name, &path)
                        .map_err(|e| Error::Usage(format!("template {}: {e}", path.display())))?;
                }
            }
        }
        Ok(Templates { hb })
    }

    pub fn render(&self, name: &str, data: &impl serde::Serialize) -> Result<String, Error> {
        self.hb
            .render(name, data)
            .map_err(|e| Error::Usage(format!("template {name}: {e} (fix the template or the value it needs)")))
    }
}
