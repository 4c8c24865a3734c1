//! The shipped systemd unit: `systemd-analyze` accepts it and rates its exposure at most 2.5 (the bound).
//! `.ci/run` makes sure `systemd-analyze` is installed; without it this test fails rather than passing silently.

use std::path::Path;
use std::process::Command;

#[test]
fn unit_exposure_is_at_most_2_5() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/alnrisk.service");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze must be installed (.ci/run installs systemd)");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    let level: f64 = line
        .split(':')
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("unparsable: {line}"));
    println!("{line}");
    assert!(level <= 2.5, "{line}");
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(std::fs::read_to_string(&unit).unwrap().contains(needed), "{needed}");
    }
}
