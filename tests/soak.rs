//! The short soak in CI: `alnrisk bench-soak --exams 300`, the broker restarted every 100 results. The bench
//! checks its own targets (every result once by message id, RSS growth under 10% after the warm-up, a flat
//! descriptor count, empty spools) and exits non-zero when one is missed; the full 3,000-examination run is in the
//! README ("Soak").

mod common;

#[test]
fn three_hundred_examinations_through_broker_restarts_arrive_once_with_flat_memory_and_descriptors() {
    let dir = common::tmp("soak", "short");
    let out = common::bin()
        .args([
            "bench-soak",
            "--exams",
            "300",
            "--restart-every",
            "100",
            "--warmup",
            "60",
            "--dir",
        ])
        .arg(&dir)
        .output()
        .expect("alnrisk bench-soak runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("300 distinct message ids, 0 missing"), "{stdout}");
    assert!(stdout.contains("broker restarted 2×"), "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
