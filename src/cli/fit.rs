//! `alnrisk fit`: the study's whole pipeline on a site's cohort → a signed bundle, a report and the paper-style tables.

use std::path::PathBuf;
use std::process::ExitCode;

use super::Inputs;
use alnrisk::ingest::PhaseSelector;
use alnrisk::radiomics::Settings;
use alnrisk::roi::RoiOptions;

#[derive(clap::Args)]
pub(super) struct FitArgs {
    /// Cohort CSV (columns: id, series_dir, roi, aln_status, [cohort], [exam_date], clinical factors).
    #[arg(long)]
    cohort: PathBuf,
    /// Bundle folder to write.
    #[arg(long)]
    out: PathBuf,
    /// Report folder (report.html, report.md, CSV tables, figures, data/).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Feature cache folder (default: OUT/../.alnrisk-cache).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Starting VGG-16 weights (torchvision-named safetensors, e.g. ImageNet via models/convert_torchvision_vgg16.py).
    /// Without it: seeded He initialisation.
    #[arg(long)]
    cnn_init: Option<PathBuf>,
    /// Fine-tuning mode.
    #[arg(long, value_enum, default_value = "head")]
    finetune: alnrisk::deep::finetune::FinetuneMode,
    /// Augmented views per training crop (head mode; 2 keeps the 151-patient fit under 5 minutes on 2 cores).
    #[arg(long, default_value_t = 2)]
    views: usize,
    /// Maximum fine-tuning epochs (the study's 100).
    #[arg(long, default_value_t = 100)]
    epochs: usize,
    /// Early stopping: epochs without a better validation loss before stopping.
    #[arg(long, default_value_t = 5)]
    patience: usize,
    /// Deep feature layer.
    #[arg(long, value_enum, default_value_t)]
    layer: alnrisk::deep::FeatureLayer,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "cpu")]
    device: alnrisk::deep::DeviceChoice,
    /// DICOM phase.
    #[arg(long, default_value = "first-post-contrast")]
    phase: PhaseSelector,
    /// PyRadiomics parameter file (default: the study's settings, binWidth 25, original image).
    #[arg(long)]
    params: Option<PathBuf>,
    /// Split by exam date (YYYY-MM-DD) when the cohort has no `cohort` column.
    #[arg(long)]
    split_date: Option<String>,
    /// Welch's t-test instead of Student's.
    #[arg(long)]
    welch: bool,
    /// λ.1se instead of λ.min.
    #[arg(long)]
    lambda_1se: bool,
    /// Fit the nomogram on in-sample signature values instead of their out-of-fold (pre-validated) values.
    #[arg(long)]
    in_sample_signatures: bool,
    /// Clinical columns allowed into the nomogram (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    clinical_candidates: Option<Vec<String>>,
    /// Signing key (from `alnrisk keygen`).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Reduced-width VGG (channels / N, 256 hidden) — for tests and quick looks only, not the study's network.
    #[arg(long, hide = true)]
    vgg_scale: Option<usize>,
}

/// `fit`'s progress as bars on stderr (hidden when stderr is not a terminal), stages and notes as lines.
fn progress_bars() -> alnrisk::progress::Reporter {
    use alnrisk::progress::{Progress, Reporter};
    use indicatif::{ProgressBar, ProgressStyle};
    let bars = std::sync::Mutex::new(std::collections::BTreeMap::<String, ProgressBar>::new());
    Reporter::new(move |p| {
        let Ok(mut bars) = bars.lock() else { return };
        match p {
            Progress::Begin { task, total } => {
                let bar = ProgressBar::new(total as u64);
                if let Ok(style) = ProgressStyle::with_template("{msg:>22} [{bar:30}] {pos}/{len} {elapsed_precise}") {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar.set_message(task.to_string());
                bars.insert(task.to_string(), bar);
            }
            Progress::Step { task } => {
                if let Some(b) = bars.get(task) {
                    b.inc(1);
                }
            }
            Progress::End { task } => {
                if let Some(b) = bars.remove(task) {
                    b.finish();
                }
            }
            Progress::Stage { name, seconds } => eprintln!("  stage {name}: {seconds:.1} s"),
            Progress::Note(text) => eprintln!("{text}"),
        }
    })
}

pub(super) fn fit(a: FitArgs) -> anyhow::Result<ExitCode> {
    use alnrisk::deep::finetune::FinetuneConfig;
    use alnrisk::fit::{self, DeepSettings, FitConfig, SelectOptions};
    let started = std::time::Instant::now();
    let settings = match &a.params {
        Some(p) => Settings::from_yaml_file(p)?,
        None => Settings::default(),
    };
    let (device, note) = a.device.open()?;
    if let Some(n) = note {
        eprintln!("note: {n}");
    }
    let config = match a.vgg_scale {
        Some(div) => alnrisk::deep::VggConfig::scaled(div.max(1), 256, 2),
        None => alnrisk::deep::VggConfig::vgg16(2),
    };
    let key = a
        .key
        .as_deref()
        .map(alnrisk::model::bundle::read_signing_key)
        .transpose()?;
    let cache = a
        .cache
        .clone()
        .or_else(|| a.out.parent().map(|p| p.join(".alnrisk-cache")));
    let cfg = FitConfig {
        cohort: a.cohort.clone(),
        out: a.out.clone(),
        report: a.report.clone(),
        cache,
        settings,
        inputs: Inputs {
            phase: a.phase,
            roi: RoiOptions::default(),
        },
        crop_margin: 0,
        deep: DeepSettings {
            init: a.cnn_init.clone(),
            finetune: FinetuneConfig {
                mode: a.finetune,
                epochs: a.epochs,
                views: a.views,
                patience: a.patience,
                seed: a.seed,
                ..FinetuneConfig::default()
            },
            layer: a.layer,
            config,
            device,
        },
        split_date: a.split_date.clone(),
        seed: a.seed,
        select: SelectOptions {
            welch: a.welch,
            one_se: a.lambda_1se,
            folds: 10,
            seed: a.seed,
        },
        clinical_candidates: a.clinical_candidates.clone(),
        key,
        bootstrap: 200,
        in_sample_signatures: a.in_sample_signatures,
        progress: progress_bars(),
    };
    let o = fit::run(&cfg)?;
    print_fit_summary(&o);
    println!(
        "\ntotal {:.1} s; bundle {} (sha256 {}) in {}",
        started.elapsed().as_secs_f64(),
        o.manifest.bundle_id,
        o.bundle_sha256,
        a.out.display()
    );
    if let Some(r) = &a.report {
        println!("report: {}", r.join("report.html").display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The paper-style tables on stdout.
fn print_fit_summary(o: &alnrisk::fit::FitOutcome) {
    for n in &o.notes {
        println!("note: {n}");
    }
    println!("\nTable 2/3 — seven classifiers per signature: training 5-fold CV AUC (95% CI) | test AUC");
    for r in &o.classifiers {
        println!(
            "  {:9} {:30} {:.3} ({:.3}-{:.3}) | {:.3}",
            r.modality, r.model, r.cv.auc.mean, r.cv.auc.lo, r.cv.auc.hi, r.test.auc
        );
    }
    println!("\nNomogram coefficients (training):");
    for c in &o.coefficients {
        println!(
            "  {:22} β {:8.4}  SE {:7.4}  p {:.2e}  OR {:.3} ({:.3}-{:.3})",
            c.term, c.coefficient, c.se, c.p, c.odds_ratio, c.or_ci.0, c.or_ci.1
        );
    }
    println!("\nAUC (95% DeLong CI):");
    for e in &o.evaluations {
        for (k, v) in &e.auc {
            println!(
                "  {:8} {:20} {:.3} ({:.3}-{:.3})",
                e.cohort, k, v.auc, v.ci95.0, v.ci95.1
            );
        }
        println!(
            "  {:8} Hosmer-Lemeshow chi2 {:.2} (df {:.0}) p {:.3}; at cutoff {:.3}: sensitivity {:.3} specificity {:.3}",
            e.cohort,
            e.hosmer_lemeshow.0,
            e.hosmer_lemeshow.1,
            e.hosmer_lemeshow.2,
            o.manifest.nomogram.cutoff,
            e.at_cutoff.recall,
            e.at_cutoff.specificity
        );
    }
    if let Some((w, m)) = o.q8_probability_change {
        println!(
            "\nFitted on the quantized network's deep features, which it serves; with the f32 network the test cases' nomogram probability would move by max {w:.2e}, mean {m:.2e}"
        );
    }
    println!("\nTime per stage:");
    for (s, t) in &o.timings {
        println!("  {s:16} {t:7.1} s");
    }
}
