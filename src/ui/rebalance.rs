//! Printing for `cloud rebalance`: the plan (moves, score before and after) and the outcome.

use super::Ui;
use crate::error::Exit;
use crate::plan::rebalance::Rebalance;
use std::time::Duration;

pub fn plan(ui: &Ui, r: &Rebalance) {
    ui.info(&format!(
        "imbalance score {:.4} (0 is even); the plan: {} move(s) to {:.4}",
        r.score_before,
        r.moves.len(),
        r.score_after
    ));
    for (i, m) in r.moves.iter().enumerate() {
        ui.info(&format!(
            "  {}. {} {} → {} (score {:.4})",
            i + 1,
            m.guest,
            m.from,
            m.to,
            m.score_after
        ));
    }
}

/// `done`: each move run, with its seconds or why it failed; `measured`: the score afterwards.
pub fn done(
    ui: &Ui,
    r: &Rebalance,
    done: &[(String, String, Result<f64, String>)],
    measured: Option<(f64, Duration)>,
    dry_run: bool,
    exit: Exit,
) {
    for (g, to, res) in done {
        match res {
            Ok(s) => ui.info(&format!("  {g} moved to {to} in {s:.1} s")),
            Err(why) => ui.warn(&format!(
                "  {g} did not move to {to}: {why}; the remaining moves were not started"
            )),
        }
    }
    if dry_run {
        ui.info("dry run: nothing was changed");
    } else if r.moves.is_empty() {
        ui.info("the cloud is as even as moves can make it: no changes");
    }
    if let Some((score, took)) = measured {
        ui.info(&format!(
            "score now {score:.4} (the plan said {:.4}), {:.1} s",
            r.score_after,
            took.as_secs_f64()
        ));
    }
    if ui.json {
        let moves: Vec<serde_json::Value> = done
            .iter()
            .map(|(g, to, res)| match res {
                Ok(s) => serde_json::json!({ "instance": g, "to": to, "moved": true, "seconds": s }),
                Err(why) => serde_json::json!({ "instance": g, "to": to, "moved": false, "why": why }),
            })
            .collect();
        ui.json_result(
            exit,
            serde_json::json!({ "command": "cloud rebalance", "dry_run": dry_run, "plan": r, "done": moves,
                                "score_measured": measured.map(|m| m.0) }),
        );
    }
}
