//! `cloudctl doctor`: one read-only look at the whole cloud (every host probed in parallel,
//! with strict host keys, every host's clock read against this machine's, the storage nodes'
//! DRBD and md state), the findings of `plan::doctor`, each with its fix; exit 0 or 1.

use super::Context;
use crate::error::{Error, Exit};
use crate::plan::doctor::{self, Answer, CloudFacts};
use crate::plan::instance::hypervisor_of;

pub fn run(ctx: &Context) -> Result<Exit, Error> {
    let (_, inv) = ctx.load_inventory()?;
    let hosts = inv.hosts();
    let auth = inv
        .instances()
        .authorized_keys
        .as_ref()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let answers = crate::exec::fan_out(&hosts, ctx.forks, |h| {
        let script = match h.role {
            "confignode" => doctor::confignode_script(&inv),
            "hnode" => doctor::hnode_script(hypervisor_of(&inv, &h.name)?, &auth),
            "snode" => doctor::snode_script(),
            _ => "exit 0\n".to_string(),
        };
        let script = format!("{}{script}", doctor::CLOCK_PROBE);
        let before = now();
        ctx.gather(&inv, h, &script).map(|out| (out, before, now()))
    });
    let mut facts = CloudFacts::default();
    let pair = inv.confignode.as_ref().is_some_and(|c| c.is_pair());
    for (h, a) in hosts.iter().zip(answers) {
        let a = a.unwrap_or_else(|| Err(Error::Failed(anyhow::anyhow!("interrupted before it was asked"))));
        if let Ok((out, before, after)) = &a {
            if let Some((printed, resolution)) = doctor::parse_clock(out) {
                facts.clocks.push((
                    h.name.clone(),
                    doctor::ClockReading {
                        printed,
                        resolution,
                        asked_between: (*before, *after),
                    },
                ));
            }
        }
        match h.role {
            "confignode" => facts.add_confignode(&h.name, classify(&a, doctor::parse_confignode), pair),
            "hnode" => facts.hnodes.push((h.name.clone(), classify(&a, doctor::parse_hnode))),
            "snode" => facts
                .snodes
                .push((h.name.clone(), classify(&a, crate::plan::storage_health::parse))),
            _ => facts.others.push((h.name.clone(), classify(&a, |_| ()))),
        }
    }
    let findings = doctor::check(&inv, &facts);
    let exit = if findings.is_empty() { Exit::Ok } else { Exit::Failed };
    crate::ui::doctor::report(&ctx.ui, &findings, hosts.len(), exit);
    Ok(exit)
}

/// A host's answer as the checks see it: its facts, a host-key refusal, or no answer.
fn classify<T>(answer: &Result<(String, f64, f64), Error>, parse: impl Fn(&str) -> T) -> Answer<T> {
    match answer {
        Ok((out, _, _)) => Answer::Facts(parse(out)),
        Err(Error::HostKey(m)) => Answer::HostKey(m.clone()),
        Err(e) => Answer::Unreachable(e.to_string()),
    }
}

/// This machine's clock in Unix seconds (for the clock-skew check).
fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
