//! `cloudctl doctor`: one read-only look at the whole cloud (every host probed in parallel,
//! with strict host keys, every host's clock read against this machine's, the storage nodes'
//! DRBD and md state), the findings of `plan::doctor`, each with its fix; exit 0 or 1.

use super::Context;
use crate::error::{Error, Exit};
use crate::plan::doctor::{self, Answer, CloudFacts};
use crate::plan::doctor_probe::{Probe, RoleFacts};

pub fn run(ctx: &Context) -> Result<Exit, Error> {
    let (_, inv) = ctx.load_inventory()?;
    let hosts = inv.hosts();
    let probe = Probe {
        inv: &inv,
        authorized_keys: inv
            .instances()
            .authorized_keys
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default(),
    };
    // Each host asked on its own (not `gather`): the clock check needs this machine's clock
    // just before and just after each host was asked.
    let answers = crate::exec::fan_out(&hosts, ctx.forks, |h| {
        let before = now();
        ctx.ask(&inv, h, &probe).map(|f| (f, before, now()))
    });
    let mut facts = CloudFacts::default();
    let pair = inv.confignode.as_ref().is_some_and(|c| c.is_pair());
    for (h, a) in hosts.iter().zip(answers) {
        let a = a.unwrap_or_else(|| Err(Error::Failed(anyhow::anyhow!("interrupted before it was asked"))));
        let name = h.name.clone();
        match a {
            Ok((f, before, after)) => {
                if let Some((printed, resolution)) = f.clock {
                    facts.clocks.push((
                        name.clone(),
                        doctor::ClockReading {
                            printed,
                            resolution,
                            asked_between: (before, after),
                        },
                    ));
                }
                match f.role {
                    RoleFacts::ConfigNode(c) => facts.add_confignode(&name, Answer::Facts(c), pair),
                    RoleFacts::Hnode(n) => facts.hnodes.push((name, Answer::Facts(n))),
                    RoleFacts::Snode(s) => facts.snodes.push((name, Answer::Facts(s))),
                    RoleFacts::Other => facts.others.push((name, Answer::Facts(()))),
                }
            }
            Err(e) => match h.role {
                "confignode" => facts.add_confignode(&name, not_answered(&e), pair),
                "hnode" => facts.hnodes.push((name, not_answered(&e))),
                "snode" => facts.snodes.push((name, not_answered(&e))),
                _ => facts.others.push((name, not_answered(&e))),
            },
        }
    }
    let findings = doctor::check(&inv, &facts);
    let exit = if findings.is_empty() { Exit::Ok } else { Exit::Failed };
    crate::ui::doctor::report(&ctx.ui, &findings, hosts.len(), exit);
    Ok(exit)
}

/// A host that did not answer, as the checks see it: a host-key refusal, or no answer.
fn not_answered<T>(e: &Error) -> Answer<T> {
    match e {
        Error::HostKey(m) => Answer::HostKey(m.clone()),
        e => Answer::Unreachable(e.to_string()),
    }
}

/// This machine's clock in Unix seconds (for the clock-skew check).
fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
