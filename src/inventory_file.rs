//! Changing the inventory file itself: comment-preserving edits of `[[node]]` entries
//! (toml_edit), an exclusive lock against concurrent cloudctl runs, and atomic replacement.

use crate::error::Error;
use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use toml_edit::{value, ArrayOfTables, DocumentMut, Item, Table};

/// A node as `node add` writes it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NewNode {
    pub name: String,
    pub mac: String,
    pub ip: String,
    pub role: String,
    pub profile: Option<String>,
}

fn parse(text: &str) -> Result<DocumentMut, Error> {
    text.parse::<DocumentMut>()
        .map_err(|e| Error::Usage(format!("the inventory is not valid TOML: {e}")))
}

fn nodes(doc: &mut DocumentMut) -> Result<&mut ArrayOfTables, Error> {
    doc.entry("node")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or_else(|| Error::Usage("`node` in the inventory must be written as [[node]] tables".into()))
}

/// Appends `[[node]]` tables, keeping everything else byte for byte. A table appended at the end
/// of a TOML document joins the `node` array wherever its other elements are, so this is text
/// appended, not the whole file re-serialised: its cost is the new nodes', whatever the file's
/// size. (The caller parses the result, which refuses a file whose `node` is not `[[node]]`s.)
pub fn add_nodes(text: &str, new: &[NewNode]) -> Result<String, Error> {
    let mut out = String::with_capacity(text.len() + new.len() * 96);
    out += text;
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    let field = |out: &mut String, key: &str, v: &str| {
        // A TOML basic string, escaped as toml_edit writes it.
        *out += &format!("{key} = {}\n", toml_edit::Value::from(v));
    };
    for n in new {
        out += "\n[[node]]\n";
        field(&mut out, "name", &n.name);
        field(&mut out, "mac", &n.mac);
        field(&mut out, "ip", &n.ip);
        field(&mut out, "role", &n.role);
        if let Some(p) = &n.profile {
            field(&mut out, "profile", p);
        }
    }
    Ok(out)
}

/// Removes the `[[node]]` named `name`; `None` if there is none.
pub fn remove_node(text: &str, name: &str) -> Result<Option<String>, Error> {
    let mut doc = parse(text)?;
    let arr = nodes(&mut doc)?;
    let before = arr.len();
    arr.retain(|t| t.get("name").and_then(|v| v.as_str()) != Some(name));
    Ok((arr.len() != before).then(|| doc.to_string()))
}

/// Sets (`true`) or clears a `[[node]]`'s `drained` flag; `None` if there is no such node.
pub fn set_node_drained(text: &str, name: &str, drained: bool) -> Result<Option<String>, Error> {
    let mut doc = parse(text)?;
    let Some(t) = nodes(&mut doc)?
        .iter_mut()
        .find(|t| t.get("name").and_then(|v| v.as_str()) == Some(name))
    else {
        return Ok(None);
    };
    if drained {
        t["drained"] = value(true);
    } else {
        t.remove("drained");
    }
    Ok(Some(doc.to_string()))
}

/// A guest as `instance create` records it, once it runs.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NewInstance {
    pub name: String,
    pub hnode: String,
    pub memory: u32,
    pub vcpus: u8,
    pub disk: String,
    pub ip: String,
    pub mac: String,
    /// The ownership mark left in the guest's folder (see `InstanceRecord::nonce`).
    #[serde(skip)]
    pub nonce: String,
}

fn instances(doc: &mut DocumentMut) -> Result<&mut ArrayOfTables, Error> {
    doc.entry("instance")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or_else(|| Error::Usage("`instance` in the inventory must be written as [[instance]] tables".into()))
}

/// Appends an `[[instance]]` table, keeping everything else byte for byte.
pub fn add_instance(text: &str, i: &NewInstance) -> Result<String, Error> {
    let mut doc = parse(text)?;
    let mut t = Table::new();
    t["name"] = value(&i.name);
    t["hnode"] = value(&i.hnode);
    t["memory"] = value(i64::from(i.memory));
    t["vcpus"] = value(i64::from(i.vcpus));
    t["disk"] = value(&i.disk);
    t["ip"] = value(&i.ip);
    t["mac"] = value(&i.mac);
    t["nonce"] = value(&i.nonce);
    instances(&mut doc)?.push(t);
    Ok(doc.to_string())
}

/// Records that instance `name` now runs on `hnode`; `None` if there is no such instance.
pub fn set_instance_hnode(text: &str, name: &str, hnode: &str) -> Result<Option<String>, Error> {
    let mut doc = parse(text)?;
    let Some(t) = instances(&mut doc)?
        .iter_mut()
        .find(|t| t.get("name").and_then(|v| v.as_str()) == Some(name))
    else {
        return Ok(None);
    };
    t["hnode"] = value(hnode);
    Ok(Some(doc.to_string()))
}

/// Removes the `[[instance]]` named `name`; `None` if there is none.
pub fn remove_instance(text: &str, name: &str) -> Result<Option<String>, Error> {
    let mut doc = parse(text)?;
    let arr = instances(&mut doc)?;
    let before = arr.len();
    arr.retain(|t| t.get("name").and_then(|v| v.as_str()) != Some(name));
    Ok((arr.len() != before).then(|| doc.to_string()))
}

/// An exclusive lock on an inventory, held until dropped. It locks a separate, never-replaced
/// `.NAME.lock` file because the inventory itself is replaced by rename.
pub struct InventoryLock {
    _file: fs::File,
    path: PathBuf,
}

impl InventoryLock {
    /// Waits (saying so) while another cloudctl run holds the lock.
    pub fn acquire(inventory: &Path, on_wait: impl Fn(&str)) -> Result<InventoryLock, Error> {
        let name = inventory
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "cloud.toml".into());
        let path = inventory.with_file_name(format!(".{name}.lock"));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::Usage(format!("cannot create the inventory lock {}: {e}", path.display())))?;
        let fd = file.as_raw_fd();
        // SAFETY: flock on a descriptor we own; the lock is released when `file` closes.
        if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            on_wait(&format!(
                "waiting for another cloudctl run that holds {}",
                path.display()
            ));
            // SAFETY: as above, now blocking.
            if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
                return Err(Error::Failed(anyhow::anyhow!(
                    "cannot lock {}: {}",
                    path.display(),
                    std::io::Error::last_os_error()
                )));
            }
        }
        Ok(InventoryLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Replaces the inventory atomically (temp file beside it, same mode, rename).
pub fn replace(inventory: &Path, text: &str) -> Result<(), Error> {
    let fail = |e: std::io::Error| Error::Failed(anyhow::anyhow!("cannot write {}: {e}", inventory.display()));
    let dir = inventory
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
    tmp.write_all(text.as_bytes()).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    if let Ok(meta) = fs::metadata(inventory) {
        tmp.as_file().set_permissions(meta.permissions()).map_err(fail)?;
    }
    tmp.persist(inventory).map_err(|e| fail(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str =
        "# my cloud\n[cloud]\nname = \"t\" # inline\n\n# first node\n[[node]]\nname = \"a\"\nrole = \"hnode\"\n";

    #[test]
    fn add_and_remove_keep_comments_and_layout() {
        let n = NewNode {
            name: "b".into(),
            mac: "52:54:00:00:00:02".into(),
            ip: "10.0.0.2".into(),
            role: "hnode".into(),
            profile: None,
        };
        let added = add_nodes(TEXT, std::slice::from_ref(&n)).unwrap();
        assert!(added.starts_with(TEXT), "existing text kept byte for byte:\n{added}");
        assert!(added.contains("[[node]]\nname = \"b\"\nmac = \"52:54:00:00:00:02\""));
        let doc: toml::Table = toml::from_str(&added).unwrap();
        assert_eq!(
            doc["node"].as_array().unwrap().len(),
            2,
            "joined the existing [[node]] array"
        );
        let mid = "[[node]]\nname = \"a\"\n\n[cloud] # last\nname = \"t\"".to_string();
        let doc: toml::Table = toml::from_str(&add_nodes(&mid, std::slice::from_ref(&n)).unwrap()).unwrap();
        assert_eq!(doc["node"].as_array().unwrap().len(), 2, "also after another table");
        let removed = remove_node(&added, "b").unwrap().unwrap();
        assert_eq!(removed, TEXT);
        assert_eq!(remove_node(TEXT, "zz").unwrap(), None);
    }
}
