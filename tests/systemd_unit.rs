//! The shipped systemd unit: `systemd-analyze` accepts it and rates its exposure at most 2.5 (the bound),
//! and the Jetson package's drop-in (`systemd/jetson.conf`) does not raise it. `.ci/run` makes sure
//! `systemd-analyze` is installed; without it these tests fail rather than passing silently.

use std::path::Path;
use std::process::Command;

/// `systemd-analyze security --offline=true` of `args`: the overall exposure level and the whole report.
fn exposure(args: &[&std::ffi::OsStr]) -> (f64, String) {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .args(args)
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
    (level, text)
}

/// The unit as the Jetson package installs it: `alnrisk.service` plus `alnrisk.service.d/jetson.conf`, under a
/// scratch root, rated the same way. The report must show the drop-in's devices (so it was read), and the exposure
/// may not exceed the plain unit's.
#[test]
fn the_jetson_drop_in_keeps_the_exposure() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = std::env::temp_dir().join(format!("alnrisk-systemd-root-{}", std::process::id()));
    let units = root.join("usr/lib/systemd/system");
    std::fs::create_dir_all(units.join("alnrisk.service.d")).unwrap();
    std::fs::copy(repo.join("systemd/alnrisk.service"), units.join("alnrisk.service")).unwrap();
    let (plain, _) = exposure(&[root.join("usr/lib/systemd/system/alnrisk.service").as_os_str()]);
    std::fs::copy(
        repo.join("systemd/jetson.conf"),
        units.join("alnrisk.service.d/jetson.conf"),
    )
    .unwrap();
    let root_arg = format!("--root={}", root.display());
    let (jetson, text) = exposure(&[root_arg.as_ref(), "alnrisk.service".as_ref()]);
    println!("exposure: {plain} plain, {jetson} with the Jetson drop-in");
    for needed in ["char-nvhost*", "char-nvgpu*", "/dev/nvmap"] {
        assert!(
            text.contains(needed),
            "the drop-in was not read ({needed} missing):\n{text}"
        );
    }
    assert!(
        jetson <= plain && jetson <= 2.5,
        "exposure {jetson} with the drop-in, {plain} without"
    );
    let drop_in = std::fs::read_to_string(repo.join("systemd/jetson.conf")).unwrap();
    assert!(drop_in.contains("SupplementaryGroups=video render"), "the GPU's groups");
    let unit = std::fs::read_to_string(repo.join("systemd/alnrisk.service")).unwrap();
    let jetson_lines = unit
        .lines()
        .filter(|l| !l.starts_with('#') && (l.contains("nvhost") || l.contains("nvmap") || l.contains("nvgpu")));
    assert_eq!(
        jetson_lines.count(),
        0,
        "the Jetson's lines belong in the drop-in, not the x86-64 unit"
    );
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn unit_exposure_is_at_most_2_5() {
    let unit = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/alnrisk.service");
    let (level, _) = exposure(&[unit.as_os_str()]);
    println!("overall exposure {level}");
    assert!(level <= 2.5, "exposure {level}");
    let text = std::fs::read_to_string(&unit).unwrap();
    for needed in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(text.contains(needed), "{needed}");
    }
}
