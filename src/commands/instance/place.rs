//! Placement for the guest verbs: every hardware node's memory asked at once, then the rule of
//! `plan::placement` (README "Placement") picks the node.

use super::{ask_all, Context};
use crate::error::Error;
use crate::inventory::Inventory;
use crate::plan::instance::hnodes;
use crate::plan::node_memory::{Memory, NodeMemory};
use crate::plan::placement::{self, Choice, Need, NodeLoad};

/// Every hardware node's memory and CPUs (`None`: it did not answer).
pub fn answers(ctx: &Context, inv: &Inventory) -> Vec<(String, Option<NodeMemory>)> {
    ask_all(ctx, inv, &hnodes(inv), &Memory(inv))
        .into_iter()
        .map(|(h, r)| (h.name, r.ok()))
        .collect()
}

/// Every hardware node's load: the inventory's records and what each node reports (a node that
/// does not answer is down, and is never chosen).
pub fn loads(ctx: &Context, inv: &Inventory) -> Vec<NodeLoad> {
    let answers: Vec<(String, Option<placement::Reported>)> = answers(ctx, inv)
        .into_iter()
        .map(|(n, m)| (n, m.map(|m| m.reported)))
        .collect();
    placement::loads(inv, &answers)
}

/// The node the rule picks for `need`, said on stderr with the reason; exit 2 when none fits.
pub fn choose(ctx: &Context, inv: &Inventory, need: &Need) -> Result<Choice, Error> {
    let choice =
        placement::place(&loads(ctx, inv), need).map_err(|no| Error::Usage(format!("{no}\nnothing was changed")))?;
    crate::ui::instance::placed(&ctx.ui, need.guest, &choice);
    Ok(choice)
}
