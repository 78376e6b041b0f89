//! Files into and out of images: the lab's boot images built by examples/build-*.sh, a program
//! copied with its shared libraries into a tree, a file read out of an ext4 image.

use super::text;
use std::path::Path;
use std::process::Command;

/// Runs examples/SCRIPT (it builds an image, or takes it from /var/cache/cloudctl) and returns
/// what it printed, to be read with `printed`.
pub fn build(script: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(script);
    let out = Command::new("bash").arg(&script).output().unwrap();
    assert!(out.status.success(), "{}: {}", script.display(), text(&out.stderr));
    text(&out.stdout)
}

/// The path on the first line of `stdout` that starts with one of `prefixes` ("built: ",
/// "cached: ", "kernel: ", "root: "), without the size that may follow it.
pub fn printed(stdout: &str, prefixes: &[&str]) -> String {
    stdout
        .lines()
        .find_map(|l| prefixes.iter().find_map(|p| l.strip_prefix(p)))
        .map(|r| r.split(' ').next().unwrap().to_string())
        .unwrap_or_else(|| panic!("no {prefixes:?} line in: {stdout}"))
}

/// The lines a build script prints for the image it built or found cached.
pub const IMAGE: &[&str] = &["built: ", "cached: "];

/// `program` and the shared libraries `ldd` lists for it, at the same paths under `root`.
pub fn copy_with_libraries(root: &Path, program: &str) {
    let ldd = Command::new("ldd").arg(program).output().unwrap();
    let libs = text(&ldd.stdout);
    for file in std::iter::once(program).chain(libs.split_whitespace().filter(|w| w.starts_with('/'))) {
        let dest = root.join(file.trim_start_matches('/'));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(file, &dest).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

/// A file inside an ext4 image, read with debugfs (no mount needed).
pub fn read_in_image(image: &str, path: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-R", &format!("cat {path}"), image])
        .output()
        .unwrap();
    text(&out.stdout)
}
