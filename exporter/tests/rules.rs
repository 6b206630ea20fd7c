//! The alerting rules in `monitoring/rules.yml` pass `promtool check rules` and their
//! unit tests in `monitoring/rules.test.yml` (`promtool test rules`): each alert fires on
//! the series it is meant for, and stays quiet on the ones next to them.
//!
//! Environment: `PROMTOOL` (default `promtool` on PATH).

use std::path::{Path, PathBuf};
use std::process::Command;

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("monitoring")
}

fn promtool(args: &[&str]) -> String {
    let bin = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_owned());
    let out = Command::new(&bin)
        .args(args)
        .current_dir(monitoring())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{said}");
    said
}

#[test]
fn the_rules_are_valid() {
    let said = promtool(&["check", "rules", "rules.yml"]);
    assert!(said.contains("SUCCESS"), "{said}");
}

#[test]
fn every_alert_has_a_unit_test_and_the_tests_pass() {
    let rules = std::fs::read_to_string(monitoring().join("rules.yml")).unwrap();
    let tests = std::fs::read_to_string(monitoring().join("rules.test.yml")).unwrap();
    for required in [
        "EdgeCacheHitRatioDrop",
        "EdgeCommandErrors",
        "EdgeModelMemoryNearBound",
    ] {
        assert!(rules.contains(&format!("alert: {required}")), "{required}");
        assert!(
            tests.contains(&format!("alertname: {required}")),
            "no unit test for {required}"
        );
    }
    let said = promtool(&["test", "rules", "rules.test.yml"]);
    assert!(said.contains("SUCCESS"), "{said}");
}
