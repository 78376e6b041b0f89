//! Inventories tests start from: the seed lab example, and a `[lamp]` section to append.

use cloudctl::inventory;
use std::path::PathBuf;

/// examples/seed-lab.toml, loaded.
pub fn seed() -> inventory::Inventory {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/seed-lab.toml");
    inventory::load(&path).unwrap()
}

/// A `[lamp]` section over hnode1..4 with bind-mounted storage from `source`, pen timing out
/// after `timeout` seconds.
pub fn lamp_section(source: &str, timeout: u32) -> String {
    format!(
        "[lamp]\nbalancer = \"hnode1\"\nweb = [\"hnode2\", \"hnode3\"]\ndatabase = \"hnode4\"\nstorage = \"bind\"\nbind_source = \"{source}\"\n\n[lamp.pen]\ntimeout = {timeout}\n"
    )
}
