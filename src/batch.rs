//! What every JSONL batch command adds to `sluice_pipeline::stream`: its input
//! (a file or stdin) and a progress bar.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};

/// The input file (or stdin for `None` or `-`) and its length when known.
pub fn open_input(path: Option<&Path>) -> anyhow::Result<(Box<dyn Read + Send>, Option<u64>)> {
    match path {
        None => Ok((Box::new(io::stdin()), None)),
        Some(p) if p.as_os_str() == "-" => Ok((Box::new(io::stdin()), None)),
        Some(p) => {
            let file = File::open(p).with_context(|| format!("cannot read {}", p.display()))?;
            let len = file.metadata().ok().map(|m| m.len());
            Ok((Box::new(file), len))
        }
    }
}

/// A progress bar over the input's bytes (a spinner when the length is unknown).
pub fn progress_bar(len: Option<u64>) -> ProgressBar {
    match len {
        Some(len) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .expect("valid template"),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bytes} ({bytes_per_sec})")
                .expect("valid template"),
        ),
    }
}

/// Sets `progress` (if there is one) to the bytes read so far.
pub fn show_progress(progress: Option<&ProgressBar>) -> impl FnMut(u64) + '_ {
    move |bytes| {
        if let Some(p) = progress {
            p.set_position(bytes);
        }
    }
}
