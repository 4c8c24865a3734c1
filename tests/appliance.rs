//! The appliance build (`cargo build --release --no-default-features`) carries the daemon and the per-case
//! commands, and none of the developer tools: no `synth`, `demo`, `fit`, `bench-e2e` or `parity`, and no
//! embedded broker. It needs that second build, so it is ignored in a plain `cargo test`; `.ci/run` builds the
//! appliance, copies it to `target/appliance/alnrisk` and runs this file with `--ignored`:
//!
//! ```sh
//! cargo build --release --no-default-features && mkdir -p target/appliance && cp target/release/alnrisk target/appliance/
//! cargo build --release   # the default build back in target/release
//! ALNRISK_APPLIANCE_BIN=target/appliance/alnrisk cargo test --release --test appliance -- --ignored
//! ```

mod common;

use std::path::PathBuf;
use std::process::Command;

fn appliance() -> PathBuf {
    let p = std::env::var_os("ALNRISK_APPLIANCE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/appliance/alnrisk"));
    assert!(
        p.is_file(),
        "build the appliance first (see this file's doc): {} is missing",
        p.display()
    );
    p
}

fn help_of(bin: &mut Command) -> String {
    let out = bin.arg("--help").output().expect("the binary runs");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

const TOOLS: [&str; 5] = ["synth", "demo", "fit", "bench-e2e", "parity"];
const APPLIANCE: [&str; 6] = ["extract", "deep", "predict", "serve", "keygen", "inspect"];

#[test]
#[ignore = "needs the appliance build; .ci/run builds it and runs this with --ignored"]
fn the_appliance_has_the_daemon_and_no_developer_tools() {
    let bin = appliance();
    let appliance_commands = commands(&help_of(&mut Command::new(&bin)));
    let developer_commands = commands(&help_of(&mut common::bin()));
    for c in APPLIANCE {
        assert!(
            appliance_commands.iter().any(|x| x == c),
            "{c} missing: {appliance_commands:?}"
        );
    }
    for c in TOOLS {
        assert!(
            !appliance_commands.iter().any(|x| x == c),
            "{c} in the appliance: {appliance_commands:?}"
        );
        // the developer build has it, so the check above is about the build, not the parsing
        assert!(
            developer_commands.iter().any(|x| x == c),
            "{c} not in the developer build"
        );
        let out = Command::new(&bin).arg(c).output().unwrap();
        assert!(!out.status.success(), "`alnrisk {c}` ran in the appliance");
        assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand"));
    }
    // no embedded broker, no synthetic cohort generator, no report figures linked in. (The word SYNTHETIC alone
    // is in both: the console page flags a phantom examination with it.)
    let bytes = std::fs::read(&bin).unwrap();
    let dev = std::fs::read(env!("CARGO_BIN_EXE_alnrisk")).unwrap();
    for needle in [
        &b"rumqttd"[..],
        b"plotters",
        b"SYNTHETIC BREAST DCE-MRI",
        b"SYNTHETIC TUMOUR ROI",
    ] {
        let has = |b: &[u8]| b.windows(needle.len()).any(|w| w == needle);
        assert!(
            has(&dev),
            "{} should be in the developer build",
            String::from_utf8_lossy(needle)
        );
        assert!(!has(&bytes), "{} is in the appliance", String::from_utf8_lossy(needle));
    }
    assert!(
        bytes.len() < dev.len(),
        "the appliance is not smaller: {} vs {} bytes",
        bytes.len(),
        dev.len()
    );
}
