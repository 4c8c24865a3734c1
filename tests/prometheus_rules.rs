//! The fleet's alerting rules (`firmware-config/prometheus/`): promtool accepts them, their unit tests pass (each
//! alert fires when it should and not before; every alert has such a test), the example scrape configuration is
//! valid, and every metric they watch is one the daemon exports (`tests/serve/fleet.rs` checks the same against a
//! live `/metrics`).
//! promtool comes with Debian's `prometheus` package (`.ci/run` installs it).

use std::path::{Path, PathBuf};
use std::process::Command;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config/prometheus")
}

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir())
        .output()
        .expect("promtool not found: apt-get install prometheus");
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn promtool_accepts_the_rules_and_their_unit_tests_pass() {
    promtool(&["check", "rules", "alnrisk-rules.yml"]);
    promtool(&["test", "rules", "alnrisk-rules.test.yml"]);
}

#[test]
fn promtool_accepts_the_example_scrape_configuration() {
    promtool(&["check", "config", "prometheus.yml"]);
}

#[test]
fn every_alert_has_a_unit_test() {
    let rules = std::fs::read_to_string(dir().join("alnrisk-rules.yml")).unwrap();
    let tests = std::fs::read_to_string(dir().join("alnrisk-rules.test.yml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 12, "{alerts:?}");
    for a in alerts {
        // a test that expects it to fire (exp_alerts with labels), not only one that expects silence
        let fired = tests
            .split("alertname: ")
            .skip(1)
            .any(|t| t.starts_with(&format!("{a}\n")) && t.lines().nth(2).is_some_and(|l| l.contains("exp_labels")));
        assert!(fired, "{a} has no promtool unit test in which it fires");
    }
}

#[test]
fn every_metric_the_rules_watch_is_exported_by_the_daemon() {
    let rules = std::fs::read_to_string(dir().join("alnrisk-rules.yml")).unwrap();
    let exported =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/daemon/metrics.rs")).unwrap();
    let mut watched = Vec::new();
    // every metric name outside comments (the expressions; the annotations name none)
    for line in rules.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let mut rest = line;
        while let Some(at) = rest.find("alnrisk_") {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            watched.push(name);
        }
    }
    assert!(watched.len() >= 8, "{watched:?}");
    for name in &watched {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        assert!(
            exported.contains(&format!("\"{base}\"")),
            "the rules watch {name}, which src/daemon/metrics.rs does not define"
        );
    }
}
