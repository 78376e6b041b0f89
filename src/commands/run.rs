//! `cloudctl run`: a command on many hosts in parallel, like pssh.

use super::Context;
use crate::cli::RunArgs;
use crate::error::{Error, Exit};
use crate::plan;
use crate::ui::report;

pub fn run(ctx: &Context, args: RunArgs) -> Result<Exit, Error> {
    let (_, inv) = ctx.load_inventory()?;
    let hosts = inv.select(&args.on).map_err(Error::Usage)?;
    if args.command.iter().any(|a| a.contains('\0')) {
        return Err(Error::Usage(
            "the command contains a NUL byte, which no remote shell can pass on".into(),
        ));
    }
    let plan = plan::run::plan(&hosts, &args.command);
    let connector = ctx.connector(&inv);
    let limits = ctx.limits(&inv);
    if ctx.dry_run {
        return ctx.preview(&connector, &limits, &plan);
    }
    let (reports, exit) = ctx.apply(&connector, &limits, &plan);
    report::run(&ctx.ui, &reports, exit);
    Ok(exit)
}
