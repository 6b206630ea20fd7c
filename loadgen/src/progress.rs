//! Progress bars for long runs. They draw only when stderr is a terminal, so logs and CI
//! output stay clean; callers that must report throughput regardless print their own lines,
//! with the same readable [`rate`].

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::io::IsTerminal;

/// A bar of `len` steps counted in `unit` (`events`, `commands`…) with `what` as its
/// prefix, hidden when stderr is not a terminal. Its rate reads like "52.3k events/s".
pub fn bar(len: u64, what: &str, unit: &'static str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if !std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} {unit} ({rate}, eta {eta}) {msg}",
        )
        .expect("static template")
        .with_key("unit", move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(unit);
        })
        .with_key("rate", move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&rate(s.per_sec(), unit));
        })
        .progress_chars("=> "),
    );
    pb.set_prefix(what.to_owned());
    pb
}

/// A rate for people: three significant figures with a k or M suffix, e.g.
/// `rate(52_345.678, "events")` is `"52.3k events/s"` (instead of `52345.6780/s`).
pub fn rate(per_sec: f64, unit: &str) -> String {
    let x = if per_sec.is_finite() {
        per_sec.max(0.0)
    } else {
        0.0
    };
    let (v, suffix) = if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    let digits = if v >= 100.0 || suffix.is_empty() {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$}{suffix} {unit}/s")
}

#[cfg(test)]
mod tests {
    use super::rate;

    #[test]
    fn rates_read_as_three_figures_with_a_suffix() {
        assert_eq!(rate(52_345.678, "events"), "52.3k events/s");
        assert_eq!(rate(1_234_567.0, "commands"), "1.23M commands/s");
        assert_eq!(rate(412_000.0, "events"), "412k events/s");
        assert_eq!(rate(7.6, "runs"), "8 runs/s");
        assert_eq!(rate(f64::NAN, "events"), "0 events/s");
    }
}
