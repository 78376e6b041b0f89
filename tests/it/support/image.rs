//! Files into and out of images: a program copied with its shared libraries into a tree, a file
//! read out of an ext4 image.

use super::text;
use std::path::Path;
use std::process::Command;

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
