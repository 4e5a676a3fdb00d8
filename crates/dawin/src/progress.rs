//! Progress bars (indicatif) with rate and ETA; hidden when stdout is not a terminal.
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;

/// A bar over `len` samples labelled `msg`, drawn on stderr only when `enabled` and stdout is a
/// terminal.
pub fn bar(len: usize, msg: impl Into<String>, enabled: bool) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    if enabled && std::io::stdout().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        );
    } else {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_message(msg.into());
    pb
}
