//! Templates: handlebars in strict mode, built in (templates/<noun>-<verb>/<file>.hbs) and
//! overridable from a `--templates DIR` with the same layout. Rendering is pure.

use crate::error::Error;
use handlebars::Handlebars;
use std::path::Path;

include!(concat!(env!("OUT_DIR"), "/embedded_templates.rs"));

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
            for sub in entries.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()) {
                for file in std::fs::read_dir(sub.path())
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.ok())
                {
                    let path = file.path();
                    let Some(stem) = path
                        .file_name()
                        .and_then(|f| f.to_str())
                        .and_then(|f| f.strip_suffix(".hbs"))
                    else {
                        continue;
                    };
                    let name = format!("{}/{stem}", sub.file_name().to_string_lossy());
                    if !EMBEDDED.iter().any(|(n, _)| *n == name) {
                        return Err(Error::Usage(format!(
                            "--templates: {} overrides no built-in template; built-in names are: {}",
                            path.display(),
                            EMBEDDED
                                .iter()
                                .map(|(n, _)| format!("{n}.hbs"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
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
