//! Synthetic cohort generation speed: `alnrisk synth --patients 151 --seed 7` at 256×256×60×3 (GE style, SEG),
//! written to a temporary folder and removed afterwards. Target: under 60 s on the 2-core build machine.
//!
//! Run: `cargo bench --bench synth`.

use std::time::Instant;

use alnrisk::synth::cohort::{CohortSpec, write_cohort};

fn dir_bytes(p: &std::path::Path) -> u64 {
    alnrisk::ingest::list_files(p)
        .unwrap_or_default()
        .iter()
        .filter_map(|f| f.metadata().ok())
        .map(|m| m.len())
        .sum()
}

fn main() {
    let out = std::env::temp_dir().join(format!("alnrisk-bench-synth-{}", std::process::id()));
    let spec = CohortSpec::default();
    let t = Instant::now();
    let summary = write_cohort(&spec, &out).expect("cohort");
    let secs = t.elapsed().as_secs_f64();
    let bytes = dir_bytes(&out);
    println!("| patients | matrix | threads | seconds | s/patient | GB written | ALN+ | train/test |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | 256×256×60×3 | {} | {secs:.1} | {:.2} | {:.2} | {} | {}/{} |",
        summary.patients.len(),
        rayon::current_num_threads(),
        secs / summary.patients.len() as f64,
        bytes as f64 / 1e9,
        summary.patients.iter().filter(|p| p.aln).count(),
        summary.patients.iter().filter(|p| p.cohort == "train").count(),
        summary.patients.iter().filter(|p| p.cohort == "test").count()
    );
    let _ = std::fs::remove_dir_all(&out);
}
