//! `cargo bench --bench fit`: the fitting benchmark. Generates the synthetic 151-patient cohort
//! (`alnrisk synth --patients 151 --seed 7`, 256×256×60×3), then fits it as `alnrisk fit` does by default (VGG-16 from
//! the seeded He initialisation, `--finetune head`, 2 views, patience 5), from DICOM to signed bundle and report, with
//! an empty feature cache; prints the time per stage. Target: under 5 minutes on 2 CPU cores.
//! `ALNRISK_BENCH_PATIENTS=N` runs a smaller cohort.

use std::time::Instant;

use alnrisk::case::CaseInputs;
use alnrisk::deep::finetune::{FinetuneConfig, FinetuneMode};
use alnrisk::fit::{self, DeepSettings, FitConfig, SelectOptions};
use alnrisk::synth::cohort;

fn main() -> anyhow::Result<()> {
    let patients: usize = std::env::var("ALNRISK_BENCH_PATIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(151);
    let dir = std::env::temp_dir().join(format!("alnrisk-bench-fit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spec = cohort::CohortSpec {
        patients,
        ..cohort::CohortSpec::default()
    };
    let t = Instant::now();
    cohort::write_cohort(&spec, &dir.join("cohort"))?;
    let synth_s = t.elapsed().as_secs_f64();
    let cfg = FitConfig {
        cohort: dir.join("cohort/cohort.csv"),
        out: dir.join("bundle"),
        report: Some(dir.join("report")),
        cache: Some(dir.join("cache")),
        settings: Default::default(),
        inputs: CaseInputs::default(),
        crop_margin: 0,
        deep: DeepSettings {
            init: None,
            finetune: FinetuneConfig {
                mode: FinetuneMode::Head,
                views: 2,
                patience: 5,
                seed: 7,
                ..Default::default()
            },
            layer: alnrisk::deep::FeatureLayer::Fc7,
            config: alnrisk::deep::VggConfig::vgg16(2),
            device: candle_core::Device::Cpu,
        },
        split_date: None,
        seed: 7,
        select: SelectOptions {
            welch: false,
            one_se: false,
            folds: 10,
            seed: 7,
        },
        clinical_candidates: Some(vec!["mri_ln_status".into()]),
        key: None,
        bootstrap: 200,
        in_sample_signatures: false,
        progress: Default::default(),
    };
    let t = Instant::now();
    let o = fit::run(&cfg)?;
    let total = t.elapsed().as_secs_f64();
    println!("\nfit benchmark: {patients} SYNTHETIC patients, 256x256x60x3, VGG-16 head fine-tuning, CPU");
    println!("| stage | seconds |\n|---|---|");
    println!("| (synth, not part of fit) | {synth_s:.1} |");
    for (s, v) in &o.timings {
        println!("| {s} | {v:.1} |");
    }
    println!("| **fit total** | **{total:.1}** |");
    let test = o.evaluations.iter().find(|e| e.cohort == "test");
    if let Some(e) = test {
        for (k, a) in &e.auc {
            println!("test AUC {k}: {:.3} ({:.3}-{:.3})", a.auc, a.ci95.0, a.ci95.1);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
