//! `cargo bench --bench fit`: the fitting benchmark. Generates the synthetic 151-patient cohort
//! (`alnrisk synth --patients 151 --seed 7`, 256×256×60×3), then fits it as `alnrisk fit` does by default (VGG-16 from
//! the seeded He initialisation, `--finetune head`, 2 views, patience 5), from DICOM to signed bundle and report, with
//! an empty feature cache; prints the time per stage. Target: under 5 minutes on 2 CPU cores.
//! `ALNRISK_BENCH_PATIENTS=N` runs a smaller cohort.
//!
//! `cargo bench --bench fit -- --head-step` times only the head's training step (`deep::head_train::Head::step`)
//! at VGG-16's sizes (fc6 25,088 → 4,096, fc7, fc8 → 2), batch 16, on random pool5 rows with the zero fraction of
//! real ones (38 %): the median of 15 steps after 3 warm-up steps, and fc6's fixed-order forward pass alone. The fit
//! repeats the step about 400 times.

use std::time::Instant;

use alnrisk::case::CaseInputs;
use alnrisk::deep::finetune::{FinetuneConfig, FinetuneMode};
use alnrisk::fit::{self, DeepSettings, FitConfig, SelectOptions};
use alnrisk::synth::cohort;

/// `--head-step`: the median time of one head training step at VGG-16's sizes.
fn head_step() {
    use alnrisk::deep::head_train::{AdamW, DenseLayer, Head};
    use alnrisk::rng::Rng;
    const BATCH: usize = 16;
    let mut rng = Rng::new(3);
    let mut layer = |out: usize, inp: usize| {
        let scale = (2.0 / inp as f64).sqrt();
        let w = (0..out * inp).map(|_| (rng.normal() * scale) as f32).collect();
        DenseLayer::new(out, inp, w, vec![0.0; out])
    };
    let layers = [layer(4096, 25088), layer(4096, 4096), layer(2, 4096)];
    let mut head = Head::new(layers);
    let rows = |n: usize, rng: &mut Rng| -> Vec<f32> {
        (0..n * 25088)
            .map(|_| {
                if rng.uniform() < 0.38 {
                    0.0
                } else {
                    rng.uniform() as f32 * 4.0
                }
            })
            .collect()
    };
    let opt = AdamW::new(1e-4, 1e-4);
    let mut x = rows(BATCH, &mut rng);
    let mut h6 = head.first_layer(&x);
    let mut times = Vec::new();
    for step in 0..18 {
        let next = rows(BATCH, &mut rng);
        let targets: Vec<u32> = (0..BATCH as u32).map(|i| (i + step) % 2).collect();
        let t = Instant::now();
        let (_, next_h6) = head.step(&x, h6, &targets, 0.5, &opt, &mut rng, &next);
        if step >= 3 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        (x, h6) = (next, next_h6);
    }
    times.sort_by(f64::total_cmp);
    let mut forward = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        std::hint::black_box(head.first_layer(&x));
        forward.push(t.elapsed().as_secs_f64() * 1e3);
    }
    forward.sort_by(f64::total_cmp);
    println!(
        "fc6 forward alone (batch {BATCH}, the fixed-order pass): median {:.1} ms",
        forward[2]
    );
    println!(
        "head step (fc6 25088→4096, fc7 4096→4096, fc8 4096→2, batch {BATCH}): median {:.1} ms, min {:.1} ms, max {:.1} ms",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--head-step") {
        head_step();
        return Ok(());
    }
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
