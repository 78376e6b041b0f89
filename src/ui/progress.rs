//! Progress while hosts are worked on: one indicatif line per host on a TTY, timestamped plain
//! lines otherwise (cron logs), nothing with -q or --json.

use crate::exec::{Event, HostStatus};
use crate::inventory::Host;
use crate::ui::{timestamp, Ui};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::time::Duration;

pub enum Progress {
    Bars {
        _multi: MultiProgress,
        bars: HashMap<String, ProgressBar>,
    },
    Lines,
    Silent,
}

impl Progress {
    pub fn start(ui: &Ui, hosts: &[&Host]) -> Progress {
        if ui.quiet || ui.json {
            return Progress::Silent;
        }
        if !ui.interactive {
            return Progress::Lines;
        }
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let width = hosts.iter().map(|h| h.name.len()).max().unwrap_or(4);
        let style =
            ProgressStyle::with_template(&format!("{{spinner}} {{prefix:{width}}}  {{msg}}")).expect("valid template");
        let bars = hosts
            .iter()
            .map(|h| {
                let bar = multi.add(
                    ProgressBar::new_spinner()
                        .with_style(style.clone())
                        .with_prefix(h.name.clone()),
                );
                bar.set_message("waiting");
                bar.enable_steady_tick(Duration::from_millis(120));
                (h.name.clone(), bar)
            })
            .collect();
        Progress::Bars { _multi: multi, bars }
    }

    pub fn event(&self, event: Event) {
        let (name, message) = match &event {
            Event::Stage(h, stage) => (h.name.as_str(), stage.to_string()),
            Event::Done(r) => (r.name.as_str(), status_word(r.status).to_string()),
        };
        match self {
            Progress::Silent => {}
            Progress::Lines => eprintln!("{} {name}: {message}", timestamp()),
            Progress::Bars { bars, .. } => {
                if let Some(bar) = bars.get(name) {
                    match event {
                        Event::Done(_) => bar.finish_with_message(message),
                        Event::Stage(..) => bar.set_message(message),
                    }
                }
            }
        }
    }
}

pub fn status_word(s: HostStatus) -> &'static str {
    match s {
        HostStatus::Ok => "ok",
        HostStatus::Changed => "changed",
        HostStatus::Failed => "FAILED",
        HostStatus::Invalid => "REFUSED by validator",
        HostStatus::Unreachable => "UNREACHABLE",
        HostStatus::HostKeyRefused => "HOST KEY REFUSED",
        HostStatus::NotStarted => "not started",
    }
}
