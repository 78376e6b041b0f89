//! What the image commands print: the transfer's progress bar (bytes, rate, ETA) on a TTY, the
//! push result, the store's listing; one JSON document each with --json.

use super::Ui;
use crate::error::Exit;
use crate::plan::image::ImageEntry;
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::time::Duration;

/// Progress of one transfer: a bar over the data bytes on a TTY, nothing otherwise.
pub struct Transfer(Option<ProgressBar>);

impl Transfer {
    pub fn start(ui: &Ui, data_bytes: u64) -> Transfer {
        if ui.quiet || ui.json || !ui.interactive {
            return Transfer(None);
        }
        let bar = ProgressBar::with_draw_target(Some(data_bytes), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}")
                .expect("valid template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Transfer(Some(bar))
    }

    pub fn sent(&self, n: u64) {
        if let Some(b) = &self.0 {
            b.inc(n);
        }
    }

    /// The data is sent; the far side now checks it.
    pub fn verifying(&self) {
        if let Some(b) = &self.0 {
            b.set_message("verifying the data's sha256 on the far side");
        }
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

/// What a push did (its --json document, without the envelope).
#[derive(Debug, Serialize)]
pub struct Pushed {
    pub image: String,
    pub file: String,
    pub node: String,
    pub path: String,
    /// Size of the image in bytes (holes included).
    pub size: u64,
    /// Data bytes sent (holes are not sent).
    pub sent_bytes: u64,
    pub extents: usize,
    pub seconds: f64,
    /// Data bytes sent per second over the whole push (verification included).
    pub rate_bytes_per_second: f64,
    /// sha256 of the data sent (each extent's `d OFFSET LENGTH` line and its bytes), as the far
    /// side read it back from the image it wrote; the holes are not in it.
    pub data_sha256: String,
    /// An image of that name was there before and was replaced.
    pub replaced: bool,
}

pub fn pushed(ui: &Ui, p: &Pushed) {
    if ui.json {
        let mut body = serde_json::to_value(p).expect("serialises");
        body["command"] = "image push".into();
        ui.json_result(Exit::Ok, body);
        return;
    }
    ui.info(&format!(
        "pushed image {} to {} via {}: {} ({} of data sent, {} in holes skipped) in {:.1} s, {}/s; data sha256 {} verified on {}",
        p.image,
        p.path,
        p.node,
        HumanBytes(p.size),
        HumanBytes(p.sent_bytes),
        HumanBytes(p.size - p.sent_bytes),
        p.seconds,
        HumanBytes(p.rate_bytes_per_second as u64),
        p.data_sha256,
        p.node
    ));
}

/// `--dry-run`: what a push would do.
pub fn push_plan(ui: &Ui, p: &Pushed) {
    if ui.json {
        let mut body = serde_json::to_value(p).expect("serialises");
        body["command"] = "image push".into();
        body["dry_run"] = true.into();
        ui.json_result(Exit::Ok, body);
        return;
    }
    let replace = if p.replaced { " (replacing the image there)" } else { "" };
    eprintln!(
        "would push {} as image {} to {}{replace} via {}: {} in {} data extents out of {}",
        p.file,
        p.image,
        p.path,
        p.node,
        HumanBytes(p.sent_bytes),
        p.extents,
        HumanBytes(p.size)
    );
    ui.info("dry run: nothing was changed");
}

pub fn list(ui: &Ui, node: &str, dir: &str, images: &[ImageEntry]) {
    if ui.json {
        ui.json_result(
            Exit::Ok,
            serde_json::json!({ "command": "image list", "node": node, "store": dir, "images": images }),
        );
        return;
    }
    if images.is_empty() {
        ui.info(&format!(
            "no images in {dir} (on {node}); add one with `cloudctl image push FILE`"
        ));
        return;
    }
    let width = images.iter().map(|i| i.name.len()).max().unwrap_or(4).max(4);
    crate::outln!("{:width$}  {:>10}  {:>10}  modified", "NAME", "SIZE", "ON STORE");
    for i in images {
        let when = humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(i.modified));
        crate::outln!(
            "{:width$}  {:>10}  {:>10}  {when}",
            i.name,
            HumanBytes(i.size).to_string(),
            HumanBytes(i.allocated).to_string()
        );
    }
}
