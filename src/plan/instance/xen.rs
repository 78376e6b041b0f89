//! The xen backend: the xl toolstack. The guest's xl config sits beside its disk on shared
//! storage; `xl create` starts it, `xl shutdown` stops it, `xl migrate` moves it. Pure.

use super::{script, Backend, Guest};
use crate::error::Error;
use crate::plan::{command, config, Step, When};
use crate::templates::Templates;
use serde::Serialize;

pub struct Xen;

/// scripts/instance/xen-stop.sh (its arguments and what it does are described there).
const STOP: &str = include_str!("../../../scripts/instance/xen-stop.sh");

#[derive(Serialize)]
struct XlConfig<'a> {
    name: &'a str,
    memory: u32,
    vcpus: u8,
    kernel: &'a str,
    initrd: Option<&'a str>,
    cmdline: String,
    disk: String,
    mac: String,
    bridge: &'a str,
}

pub fn config_path(g: &Guest) -> String {
    format!("{}/xl.cfg", g.dir)
}

/// xl.cfg strings are double-quoted with no escapes: a value holding `"` or `\` cannot be written.
fn xl_string(field: &str, v: &str) -> Result<(), Error> {
    if v.contains(['"', '\\']) {
        return Err(Error::Usage(format!(
            "{field} {v:?} cannot go into an xl config (it holds a quote or backslash); choose another"
        )));
    }
    Ok(())
}

pub fn render_config(g: &Guest, t: &Templates) -> Result<String, Error> {
    let cmdline = g.cmdline();
    xl_string("[instances] kernel", &g.kernel)?;
    xl_string("[instances] initrd", g.initrd.as_deref().unwrap_or(""))?;
    xl_string("[instances] append", &cmdline)?;
    xl_string("[instances] store", &g.dir)?;
    t.render(
        "instance-create/xl.cfg",
        &XlConfig {
            name: g.name.as_str(),
            memory: g.memory,
            vcpus: g.vcpus,
            kernel: &g.kernel,
            initrd: g.initrd.as_deref(),
            cmdline,
            disk: g.disk(),
            mac: g.mac.to_string(),
            bridge: g.bridge.as_str(),
        },
    )
}

impl Backend for Xen {
    fn config_steps(&self, g: &Guest, t: &Templates) -> Result<Vec<Step>, Error> {
        Ok(vec![config("xl.cfg", &config_path(g), render_config(g, t)?, None)?])
    }

    fn start_steps(&self, g: &Guest) -> Vec<Step> {
        vec![
            command(
                &["xl", "create", &config_path(g)],
                When::Unless(crate::plan::strings(&["xl", "list", g.name.as_str()])),
            ),
            command(&["xl", "list", g.name.as_str()], When::Always),
        ]
    }

    fn stop_steps(&self, g: &Guest, grace_secs: u32) -> Vec<Step> {
        let stopped = crate::plan::strings(&["sh", "-c", "! xl list \"$1\" >/dev/null 2>&1", "sh", g.name.as_str()]);
        vec![script(
            STOP,
            &[g.name.as_str(), &grace_secs.to_string()],
            When::Unless(stopped),
        )]
    }
}
