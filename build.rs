//! Embeds every `templates/**/*.hbs` into the binary (overridable at run time with --templates).

use std::fs;
use std::path::Path;

fn collect(dir: &Path, root: &Path, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            collect(&p, root, out);
        } else if p.extension().is_some_and(|e| e == "hbs") {
            let rel = p
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .replace('\\', "/");
            let name = rel.trim_end_matches(".hbs").to_string();
            out.push(format!(
                "({name:?}, include_str!({:?})),",
                p.canonicalize().expect("exists").display().to_string()
            ));
        }
    }
}

fn main() {
    let root = Path::new("templates");
    println!("cargo:rerun-if-changed=templates");
    let mut entries = Vec::new();
    collect(root, root, &mut entries);
    let code = format!(
        "/// (name, source) of every built-in template.\npub const EMBEDDED: &[(&str, &str)] = &[\n{}\n];\n",
        entries.join("\n")
    );
    let out = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded_templates.rs");
    fs::write(out, code).expect("write embedded_templates.rs");
}
