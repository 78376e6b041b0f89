//! `cloudctl lamp deploy|status`: the LAMP stack of the `[lamp]` section — facts from every LAMP
//! node, the database password generated once, one plan for all nodes; and a read-only status.

use super::Context;
use crate::cli::LampCommand;
use crate::error::{Error, Exit};
use crate::inventory::lamp::MULTIPLE_MYSQLD_WARNING;
use crate::inventory::{Host, Inventory};
use crate::plan::lamp::{self, facts, status, Facts, Role, Secret};
use crate::types::Name;
use crate::ui;
use std::io::Read;

pub fn run(ctx: &Context, cmd: LampCommand) -> Result<Exit, Error> {
    match cmd {
        LampCommand::Deploy => deploy(ctx),
        LampCommand::Status => show_status(ctx),
    }
}

fn deploy(ctx: &Context) -> Result<Exit, Error> {
    let (path, inv) = ctx.load_inventory()?;
    let section = lamp::section(&inv)?;
    if section.allow_multiple_mysqld {
        let n = section.databases().len();
        ctx.ui.warn(&if n > 1 {
            format!("{MULTIPLE_MYSQLD_WARNING}. Running {n} mysqld anyway because [lamp] allow_multiple_mysqld = true.")
        } else {
            format!("{MULTIPLE_MYSQLD_WARNING}. [lamp] allow_multiple_mysqld = true, though only one database node is named now.")
        });
    }
    // Two deploys at once must not generate two passwords and leave nodes disagreeing.
    let _lock = super::lock_inventory(ctx, &path)?;
    let templates = ctx.templates()?;
    let facts = gather_facts(ctx, &inv)?;
    let password = match &facts.db_password {
        Some(p) => p.clone(),
        None => {
            ctx.ui
                .detail("no database password on the database node yet: generating one");
            generate_password()?
        }
    };
    let plan = lamp::plan(&inv, &templates, &facts, &password)?;
    ctx.converge(&inv, &plan)
}

/// Probes every LAMP node in parallel (read-only).
fn gather_facts(ctx: &Context, inv: &Inventory) -> Result<Facts, Error> {
    let section = lamp::section(inv)?;
    let nodes = lamp::nodes(section);
    let hosts = lamp_hosts(inv, &nodes)?;
    let answers = ctx.gather(
        inv,
        &hosts,
        &facts::Deploy {
            lamp: section,
            nodes: &nodes,
        },
    );
    let mut facts = Facts::default();
    for answer in answers {
        let node =
            answer.ok_or_else(|| Error::Failed(anyhow::anyhow!("interrupted while probing the LAMP nodes")))??;
        facts.merge(node);
    }
    Ok(facts)
}

/// The hosts of the LAMP nodes, in `nodes` order.
fn lamp_hosts(inv: &Inventory, nodes: &[(Name, Vec<Role>)]) -> Result<Vec<Host>, Error> {
    nodes.iter().map(|(name, _)| lamp::host(inv, name)).collect()
}

/// 40 random letters and digits from the kernel's generator; never printed or logged.
fn generate_password() -> Result<Secret, Error> {
    let mut urandom = std::fs::File::open("/dev/urandom").map_err(|e| {
        Error::Failed(anyhow::anyhow!(
            "cannot open /dev/urandom to generate the database password: {e}"
        ))
    })?;
    loop {
        let mut bytes = [0u8; 64];
        urandom
            .read_exact(&mut bytes)
            .map_err(|e| Error::Failed(anyhow::anyhow!("cannot read /dev/urandom: {e}")))?;
        if let Some(secret) = Secret::from_random(&bytes) {
            return Ok(secret);
        }
    }
}

fn show_status(ctx: &Context) -> Result<Exit, Error> {
    let (_, inv) = ctx.load_inventory()?;
    let section = lamp::section(&inv)?;
    let nodes = lamp::nodes(section);
    let backends: Vec<String> = section
        .web
        .get_ref()
        .iter()
        .map(|w| format!("{}:{}", lamp::ip(&inv, w), section.pen.backend_port))
        .collect();
    let hosts = lamp_hosts(&inv, &nodes)?;
    let results = ctx.gather(
        &inv,
        &hosts,
        &facts::Status {
            lamp: section,
            nodes: &nodes,
            backends,
        },
    );
    let mut exit = Exit::Ok;
    let mut report = Vec::new();
    for (((name, roles), host), r) in nodes.iter().zip(&hosts).zip(results) {
        let address = host.endpoint();
        let failed = |e: String| status::NodeStatus {
            name: name.to_string(),
            address: address.clone(),
            roles: status::role_names(roles),
            error: Some(e),
            components: vec![],
            backends: vec![],
        };
        let st = match r {
            None => {
                exit = Exit::Interrupted;
                failed("interrupted before this node was probed".into())
            }
            Some(Err(e)) => {
                exit = exit.max(e.not_asked_exit());
                failed(e.to_string())
            }
            Some(Ok(st)) => {
                // The one severity order decides, whichever node came first.
                if !st.healthy() {
                    exit = exit.max(Exit::Failed);
                }
                st
            }
        };
        report.push(st);
    }
    ui::lamp::status(&ctx.ui, &report, exit);
    Ok(exit)
}
