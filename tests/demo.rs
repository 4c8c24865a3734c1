//! `alnrisk demo` (the README's main command) in its quick form: synth → fit + sign → serve → three held-out
//! examinations over MQTT (atomic, partial write, late ROI) → LN read update → revised ROI → metrics, exit 0,
//! SYNTHETIC said.

use std::process::Command;

#[test]
fn demo_runs_end_to_end_and_says_the_data_are_synthetic() {
    let port = |_: u8| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let dir = std::env::temp_dir().join(format!("alnrisk-demo-test-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_alnrisk"))
        .args(["demo", "--quick", "--mqtt-port", &port(0).to_string()])
        .args(["--metrics", &format!("127.0.0.1:{}", port(1))])
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("ALL DATA HERE ARE SYNTHETIC"), "{text}");
    for step in ["[1/8]", "[2/8]", "[3/8]", "[4/8]", "[5/8]", "[6/8]", "[7/8]", "[8/8]"] {
        assert!(text.contains(step), "missing {step}: {text}");
    }
    assert!(text.contains("Table 2/3"), "the paper-style tables: {text}");
    assert!(text.contains("event: waiting_for_roi"), "{text}");
    assert_eq!(text.matches("[result · message").count(), 3, "{text}");
    assert!(text.contains("[update · message"), "{text}");
    assert!(text.contains("[revision · message"), "{text}");
    assert!(
        text.contains("alnrisk_series_processed_total{outcome=\"published\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("alnrisk_series_processed_total{outcome=\"revised\"} 1"),
        "{text}"
    );
    assert!(text.contains("alnrisk_messages_published_total 5"), "{text}");
}
