//! Progress while hosts are worked on: one indicatif line per host on a TTY (one bar counting
//! hosts when there are more than a screen holds), timestamped plain lines otherwise (cron
//! logs), nothing with -q or --json.

use crate::exec::{Event, HostStatus};
use crate::inventory::Host;
use crate::ui::{timestamp, Ui};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Above this many hosts a TTY gets one bar for all of them: a line per host would not fit on
/// the screen, and each line's spinner would cost a ticker thread.
const MAX_HOST_LINES: usize = 20;

pub enum Progress {
    Bars {
        _multi: MultiProgress,
        bars: HashMap<String, ProgressBar>,
    },
    /// Many hosts: one bar, hosts done over hosts, and how many did not end well.
    Count {
        bar: ProgressBar,
        problems: AtomicUsize,
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
        if hosts.len() > MAX_HOST_LINES {
            let bar = ProgressBar::with_draw_target(Some(hosts.len() as u64), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {bar:30} {pos}/{len} hosts done {msg}")
                    .expect("valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            return Progress::Count {
                bar,
                problems: AtomicUsize::new(0),
            };
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
            // A wait's rounds are the command's to show, if it likes.
            Event::Round(..) => return,
        };
        match self {
            Progress::Silent => {}
            Progress::Count { bar, problems } => {
                if let Event::Done(r) = event {
                    if !matches!(r.status, HostStatus::Ok | HostStatus::Changed) {
                        let n = problems.fetch_add(1, Ordering::Relaxed) + 1;
                        bar.set_message(format!("({n} not ok, the report follows)"));
                    }
                    bar.inc(1);
                }
            }
            Progress::Lines => eprintln!("{} {name}: {message}", timestamp()),
            Progress::Bars { bars, .. } => {
                if let Some(bar) = bars.get(name) {
                    match event {
                        Event::Done(_) => bar.finish_with_message(message),
                        Event::Stage(..) => bar.set_message(message),
                        Event::Round(..) => {}
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

impl Drop for Progress {
    fn drop(&mut self) {
        // The report that follows says how each host ended; the count has done its job.
        if let Progress::Count { bar, .. } = self {
            bar.finish_and_clear();
        }
    }
}
