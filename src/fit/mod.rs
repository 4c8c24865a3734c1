//! `alnrisk fit`: the study's pipeline on a site's cohort, from DICOM to a signed model bundle and a report.
//!
//! Stages (each timed): cohort table → split → radiomics and VGG crops per case ([`features`]) → VGG fine-tuning
//! on the training cases and deep features → per-modality selection ([`select`]) → the seven classifiers
//! ([`crate::classify`], Tables 2 and 3) → Table 1 ([`table1`]) → nomogram (IRLS logistic regression of the
//! signatures and the significant clinical factors) → evaluation (DeLong ROC, calibration, Hosmer–Lemeshow,
//! decision curves, Youden cutoff) → bundle ([`crate::model::bundle`]) and report ([`report`]).
//!
//! The test cohort is never used to fit, standardise or select anything: it is only scored.

mod classifiers;
mod clinical;
pub mod cohort;
mod evaluate;
pub mod features;
mod nomogram;
pub mod plots;
pub mod report;
pub mod select;
pub mod table1;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ed25519_dalek::SigningKey;
use serde::Serialize;

use crate::case::CaseInputs;
use crate::classify::CvMetrics;
use crate::deep::Vgg16;
use crate::error::{Error, Result};
use crate::model::bundle::{self, ClinicalCoding, FeatureRange, Manifest, RoiRules, Signatures, VggEntry};
use crate::model::{Nomogram, Signature, acquisition};
use crate::progress::{Progress, Reporter};
use crate::radiomics::Settings;
use crate::stats::evaluation::{BootstrapCalibration, CalibrationGroup, ClassificationMetrics};
use crate::stats::{DelongAuc, logistic_probability};

pub use features::DeepSettings;
pub use select::{SelectOptions, Selection};
pub use table1::Table1;

/// Everything `fit` needs.
pub struct FitConfig {
    /// Cohort CSV.
    pub cohort: PathBuf,
    /// Bundle folder to write.
    pub out: PathBuf,
    /// Report folder (optional).
    pub report: Option<PathBuf>,
    /// Feature cache folder (optional).
    pub cache: Option<PathBuf>,
    /// Radiomics settings.
    pub settings: Settings,
    /// Phase and ROI rules.
    pub inputs: CaseInputs,
    /// Voxels around the ROI bounding box for the VGG crop.
    pub crop_margin: usize,
    /// VGG settings.
    pub deep: DeepSettings,
    /// Split by date when there is no cohort column.
    pub split_date: Option<String>,
    /// Seed for the split, folds, classifiers and bootstrap.
    pub seed: u64,
    /// Selection options.
    pub select: SelectOptions,
    /// Clinical columns allowed into the nomogram (`None`: all).
    pub clinical_candidates: Option<Vec<String>>,
    /// Key to sign the bundle with.
    pub key: Option<SigningKey>,
    /// Bootstrap replicates of the calibration curve.
    pub bootstrap: usize,
    /// Fit the nomogram on the in-sample signature values (as a naive reading of the study) instead of their
    /// out-of-fold values.
    pub in_sample_signatures: bool,
    /// Where progress goes (bars on the command line; silent by default).
    pub progress: Reporter,
}

/// One classifier row of Tables 2 and 3.
#[derive(Debug, Clone, Serialize)]
pub struct ClassifierRow {
    /// Modality.
    pub modality: String,
    /// Row label (what really runs).
    pub model: String,
    /// 5-fold CV on training.
    pub cv: CvMetrics,
    /// Refit on all training, scored on test.
    pub test: ClassificationMetrics,
    /// Test probabilities (for the ROC figure).
    #[serde(skip)]
    pub test_prob: Vec<f64>,
}

/// Evaluation of the scores in one cohort.
#[derive(Debug, Clone, Serialize)]
pub struct CohortEvaluation {
    /// `training` / `test`.
    pub cohort: String,
    /// Cases.
    pub n: usize,
    /// AUC with DeLong CI per score (`nomogram`, `radiomics_signature`, `deep_signature`).
    pub auc: BTreeMap<String, DelongAuc>,
    /// Paired DeLong p of the nomogram against each signature.
    pub delong_vs_nomogram: BTreeMap<String, f64>,
    /// Nomogram metrics at the training Youden cutoff.
    pub at_cutoff: ClassificationMetrics,
    /// Decile calibration groups of the nomogram.
    pub calibration: Vec<CalibrationGroup>,
    /// Hosmer–Lemeshow (statistic, df, p).
    pub hosmer_lemeshow: (f64, f64, f64),
}

/// A case that could not be used.
#[derive(Debug, Clone, Serialize)]
pub struct FailedCase {
    /// Case id.
    pub id: String,
    /// Cohort row.
    pub row: usize,
    /// Why.
    pub reason: String,
}

/// The nomogram's coefficient table.
#[derive(Debug, Clone, Serialize)]
pub struct CoefficientRow {
    /// Term.
    pub term: String,
    /// β.
    pub coefficient: f64,
    /// SE.
    pub se: f64,
    /// Wald z.
    pub z: f64,
    /// p.
    pub p: f64,
    /// Odds ratio exp(β).
    pub odds_ratio: f64,
    /// 95 % CI of the OR.
    pub or_ci: (f64, f64),
}

/// Per-case values, in cohort order over the usable cases.
#[derive(Debug, Clone, Serialize)]
pub struct CaseValues {
    /// Case ids.
    pub ids: Vec<String>,
    /// Training membership.
    pub train: Vec<bool>,
    /// Labels.
    pub labels: Vec<bool>,
    /// Score name → values (`radiomics_signature`, `deep_signature`, `nomogram`, clinical predictors).
    pub scores: BTreeMap<String, Vec<f64>>,
    /// Selected feature name → raw values.
    pub selected: BTreeMap<String, Vec<f64>>,
    /// Raw clinical columns.
    pub clinical: BTreeMap<String, Vec<String>>,
}

/// Everything the report shows.
pub struct FitOutcome {
    /// The bundle manifest written.
    pub manifest: Manifest,
    /// sha256 of bundle.json.
    pub bundle_sha256: String,
    /// Split description.
    pub split: cohort::SplitRule,
    /// Unusable cases with reasons.
    pub failed: Vec<FailedCase>,
    /// Selections per modality.
    pub selections: Vec<Selection>,
    /// Tables 2 and 3.
    pub classifiers: Vec<ClassifierRow>,
    /// Table 1 per cohort.
    pub table1: Vec<Table1>,
    /// Nomogram coefficients.
    pub coefficients: Vec<CoefficientRow>,
    /// Evaluations (training, test).
    pub evaluations: Vec<CohortEvaluation>,
    /// Bootstrap-corrected calibration (training).
    pub calibration_curve: Option<BootstrapCalibration>,
    /// Decision curves on the total cohort: name → net benefit at thresholds 0.01…0.99.
    pub decision_curves: BTreeMap<String, Vec<f64>>,
    /// Per-case values.
    pub cases: CaseValues,
    /// Seconds per stage.
    pub timings: Vec<(String, f64)>,
    /// Notes and warnings, in order.
    pub notes: Vec<String>,
    /// Fine-tuning losses (train, validation) per epoch.
    pub finetune_losses: (Vec<f64>, Vec<f64>),
    /// Largest and mean |Δ probability| of the nomogram if the f32 network were served instead of the quantized
    /// one it was fitted on, over the test cases.
    pub q8_probability_change: Option<(f64, f64)>,
}

/// Decision-curve thresholds 0.01…0.99.
pub fn dca_thresholds() -> Vec<f64> {
    (1..100).map(|k| f64::from(k) / 100.0).collect()
}

fn subset<T: Clone>(v: &[T], idx: &[usize]) -> Vec<T> {
    idx.iter().map(|&i| v[i].clone()).collect()
}

/// The features of the usable cases by name: radiomics, then the deep layer's units.
pub(crate) struct FeatureTable<'a> {
    rad_names: &'a [String],
    rad: &'a [Vec<f64>],
    deep_names: &'a [String],
    deep: &'a [Vec<f64>],
}

impl FeatureTable<'_> {
    /// Case `k`'s value of feature `name`, if it has one.
    pub(crate) fn value(&self, k: usize, name: &str) -> Option<f64> {
        self.rad_names
            .iter()
            .position(|n| n == name)
            .map(|j| self.rad[k][j])
            .or_else(|| self.deep_names.iter().position(|n| n == name).map(|j| self.deep[k][j]))
    }
}

/// Seconds per stage, printed as they pass.
struct StageClock {
    since: Instant,
    timings: Vec<(String, f64)>,
    progress: Reporter,
}

impl StageClock {
    fn new(progress: Reporter) -> Self {
        StageClock {
            since: Instant::now(),
            timings: Vec::new(),
            progress,
        }
    }

    fn lap(&mut self, name: &str) {
        let s = self.since.elapsed().as_secs_f64();
        self.progress.report(Progress::Stage { name, seconds: s });
        self.timings.push((name.to_string(), s));
        self.since = Instant::now();
    }
}

/// Run the whole pipeline.
pub fn run(cfg: &FitConfig) -> Result<FitOutcome> {
    let mut clock = StageClock::new(cfg.progress.clone());
    let mut notes = Vec::new();
    let bad = |reason: String| Error::Cohort {
        path: cfg.cohort.clone(),
        reason,
    };
    let single_class = |y: &[bool]| y.iter().all(|&b| b) || y.iter().all(|&b| !b);

    // 1–2. cohort and split
    let table = cohort::read_cohort(&cfg.cohort)?;
    let (train_flag, split) = cohort::split(&table, cfg.split_date.as_deref(), cfg.seed)?;
    let y_train_all: Vec<bool> = table
        .rows
        .iter()
        .zip(&train_flag)
        .filter(|(_, t)| **t)
        .map(|(r, _)| r.label)
        .collect();
    if single_class(&y_train_all) {
        let pos = y_train_all.iter().filter(|&&b| b).count();
        return Err(bad(format!(
            "the training cohort has a single class ({pos} of {} cases ALN+): nothing to fit",
            y_train_all.len()
        )));
    }
    clock.lap("cohort");

    // 3. radiomics and crops
    let extracted = features::extract_all(
        &table.rows,
        &cfg.settings,
        &cfg.inputs,
        cfg.crop_margin,
        cfg.cache.as_deref(),
        &cfg.progress,
    );
    let mut failed = Vec::new();
    let mut ok: Vec<(usize, features::CaseExtract)> = Vec::new();
    for (i, r) in extracted.into_iter().enumerate() {
        match r {
            Ok(e) => ok.push((i, e)),
            Err(reason) => {
                let row = &table.rows[i];
                cfg.progress.note(&format!(
                    "case {} (row {}): feature extraction failed: {reason}",
                    row.id, row.row
                ));
                failed.push(FailedCase {
                    id: row.id.clone(),
                    row: row.row,
                    reason,
                });
            }
        }
    }
    if !failed.is_empty() {
        notes.push(format!(
            "{} case(s) failed feature extraction and are listed in the report",
            failed.len()
        ));
    }
    let cached = ok.iter().filter(|(_, e)| e.cached).count();
    notes.push(format!("{} cases extracted ({cached} from the cache)", ok.len()));
    let rows: Vec<&cohort::CohortRow> = ok.iter().map(|(i, _)| &table.rows[*i]).collect();
    let train: Vec<bool> = ok.iter().map(|(i, _)| train_flag[*i]).collect();
    let labels: Vec<bool> = rows.iter().map(|r| r.label).collect();
    let tr_idx: Vec<usize> = (0..ok.len()).filter(|&k| train[k]).collect();
    let te_idx: Vec<usize> = (0..ok.len()).filter(|&k| !train[k]).collect();
    let y_tr = subset(&labels, &tr_idx);
    if single_class(&y_tr) {
        return Err(bad("after failed cases, the training cohort has a single class".into()));
    }
    let rad_names: Vec<String> = ok[0].1.radiomics.iter().map(|(k, _)| k.clone()).collect();
    let rad: Vec<Vec<f64>> = ok
        .iter()
        .map(|(_, e)| {
            rad_names
                .iter()
                .map(|n| e.radiomics.iter().find(|(k, _)| k == n).map_or(f64::NAN, |(_, v)| *v))
                .collect()
        })
        .collect();
    let provenance = provenance(cfg, &split, &ok, &table.rows, &train)?;
    clock.lap("radiomics");

    // 4. deep features
    let crops: Vec<(String, crate::deep::Crop)> = ok.iter().map(|(_, e)| (e.key.clone(), e.crop())).collect();
    let deep = features::deep_features(&crops, &tr_idx, &labels, &cfg.deep, cfg.cache.as_deref(), &cfg.progress)?;
    let deep_names: Vec<String> = (0..deep.features.first().map_or(0, Vec::len))
        .map(|k| cfg.deep.layer.feature_name(k))
        .collect();
    notes.push(format!(
        "VGG fine-tuning ({:?}): best epoch {} of {} (validation loss {:.4})",
        cfg.deep.finetune.mode,
        deep.report.best_epoch + 1,
        deep.report.train_loss.len(),
        deep.report
            .validation_loss
            .get(deep.report.best_epoch)
            .copied()
            .unwrap_or(f64::NAN)
    ));
    clock.lap("deep features");

    // 5. selection: t-test, then LASSO, per modality → the signatures
    let mut selections = Vec::new();
    for (name, names, x) in [("radiomics", &rad_names, &rad), ("deep", &deep_names, &deep.features)] {
        let s = select::select(name, names, &subset(x, &tr_idx), &y_tr, &cfg.select);
        notes.extend(s.notes.clone());
        selections.push(s);
    }
    let table_of_features = FeatureTable {
        rad_names: &rad_names,
        rad: &rad,
        deep_names: &deep_names,
        deep: &deep.features,
    };
    let (mut scores, selected_values) = signature_values(&selections, &table_of_features, ok.len());
    clock.lap("selection");

    // 6. the seven classifiers per signature (Tables 2 and 3)
    let classifiers = classifiers::rows(&selections, &table_of_features, &labels, (&tr_idx, &te_idx), cfg.seed);
    clock.lap("classifiers");

    // 7. Table 1 and the clinical factors that enter the nomogram
    let rows_tr: Vec<&cohort::CohortRow> = tr_idx.iter().map(|&k| rows[k]).collect();
    let rows_te: Vec<&cohort::CohortRow> = te_idx.iter().map(|&k| rows[k]).collect();
    let t1_train = table1::table1("training", &rows_tr, &table.clinical_columns);
    let t1_test = table1::table1("test", &rows_te, &table.clinical_columns);
    let codings = clinical::codings(&t1_train, &rows_tr, cfg.clinical_candidates.as_deref(), &mut notes);
    clinical::check_complete(&codings, &rows).map_err(bad)?;
    for c in &codings {
        scores.insert(c.name.clone(), rows.iter().map(|r| clinical::value(r, c)).collect());
    }

    // 8. nomogram
    let nomo = nomogram::fit(
        &selections,
        &codings,
        &scores,
        (&tr_idx, &y_tr),
        cfg.in_sample_signatures,
        &mut notes,
    )
    .map_err(bad)?;
    scores.insert("nomogram".into(), nomo.probability.clone());
    clock.lap("nomogram");

    // 9. evaluation
    let evaluation = evaluate::evaluate(
        &nomo,
        &selections,
        &scores,
        &labels,
        (&tr_idx, &te_idx),
        (cfg.bootstrap, cfg.seed),
        &mut notes,
    );
    clock.lap("evaluation");

    // 10. bundle: the fine-tuned weights, their Q8_0 form (served), and the signed manifest
    std::fs::create_dir_all(&cfg.out).map_err(|e| Error::io(&cfg.out, e))?;
    let weights_path = cfg.out.join(VGG_WEIGHTS);
    candle_core::safetensors::save(&deep.f32_weights, &weights_path)
        .map_err(|e| Error::io(&weights_path, std::io::Error::other(e.to_string())))?;
    deep.net.save_gguf(&cfg.out.join(VGG_QUANTIZED))?;
    let signatures = Signatures {
        radiomics: selections
            .iter()
            .find(|s| s.name == "radiomics")
            .and_then(|s| s.signature.clone()),
        deep: selections
            .iter()
            .find(|s| s.name == "deep")
            .and_then(|s| s.signature.clone()),
    };
    // The model was fitted on the quantized network's features, which it serves; how much the test cases' nomogram
    // probability would move with the f32 network instead (f32 convolutions and dense layers: the size of the
    // quantization effect, reported, not served).
    let q8_probability_change = match &signatures.deep {
        Some(sig) => {
            let f32_net = Vgg16::from_tensors(
                deep.net.config.clone(),
                &deep.f32_weights,
                &weights_path,
                &deep.net.device,
            )?;
            Some(q8_change(&f32_net, (&crops, &te_idx), sig, &nomo, &cfg.deep)?)
        }
        None => None,
    };
    let feature_ranges = selected_values
        .iter()
        .chain(scores.iter())
        .filter(|(name, _)| *name != "nomogram")
        .map(|(name, v)| (name.clone(), FeatureRange::of(&subset(v, &tr_idx))))
        .collect();
    let performance = serde_json::json!({
        "evaluations": evaluation.cohorts,
        "split": split,
        "cases": {"training": tr_idx.len(), "test": te_idx.len(), "failed": failed.len()},
        "q8_probability_change": q8_probability_change,
    });
    let mut manifest = manifest(
        cfg,
        &deep,
        signatures,
        codings,
        nomo.nomogram,
        feature_ranges,
        performance,
    )?;
    manifest.provenance = Some(provenance);
    // the acquisitions the model was fitted on (training cases; the test cohort shows how it transfers)
    manifest.acquisition_ranges =
        acquisition::ranges(&tr_idx.iter().map(|&k| &ok[k].1.acquisition).collect::<Vec<_>>());
    let outside: Vec<&str> = te_idx
        .iter()
        .filter(|&&k| !acquisition::flags(&manifest.acquisition_ranges, &ok[k].1.acquisition).is_empty())
        .map(|&k| rows[k].id.as_str())
        .collect();
    if !te_idx.is_empty() {
        notes.push(format!(
            "{} of {} test case(s) lie outside the training cohort's acquisitions (the daemon would flag them){}",
            outside.len(),
            te_idx.len(),
            if outside.is_empty() {
                String::new()
            } else {
                format!(": {}", outside.join(", "))
            }
        ));
    }
    let bundle_sha256 = bundle::write_bundle(&cfg.out, &mut manifest, cfg.key.as_ref())?;
    if cfg.key.is_none() {
        notes.push("the bundle is UNSIGNED (no --key): the daemon loads it only with --allow-unsigned".into());
    }
    clock.lap("bundle");

    let cases = CaseValues {
        ids: rows.iter().map(|r| r.id.clone()).collect(),
        train,
        labels,
        scores,
        selected: selected_values,
        clinical: table
            .clinical_columns
            .iter()
            .map(|c| {
                (
                    c.clone(),
                    rows.iter()
                        .map(|r| r.clinical.get(c).cloned().unwrap_or_default())
                        .collect(),
                )
            })
            .collect(),
    };
    let mut outcome = FitOutcome {
        manifest,
        bundle_sha256,
        split,
        failed,
        selections,
        classifiers,
        table1: vec![t1_train, t1_test],
        coefficients: nomo.coefficients,
        evaluations: evaluation.cohorts,
        calibration_curve: evaluation.calibration_curve,
        decision_curves: evaluation.decision_curves,
        cases,
        timings: clock.timings.clone(),
        notes,
        finetune_losses: (deep.report.train_loss.clone(), deep.report.validation_loss.clone()),
        q8_probability_change,
    };
    if let Some(dir) = &cfg.report {
        report::write_report(dir, &outcome)?;
        clock.lap("report");
        outcome.timings = clock.timings;
    }
    Ok(outcome)
}

/// What made the bundle: the cohort file's hash, the used cases and their input keys, and the fit's options.
fn provenance(
    cfg: &FitConfig,
    split: &cohort::SplitRule,
    ok: &[(usize, features::CaseExtract)],
    rows: &[cohort::CohortRow],
    train: &[bool],
) -> Result<bundle::Provenance> {
    use sha2::Digest;
    let mut inputs = sha2::Sha256::new();
    for ((i, e), &t) in ok.iter().zip(train) {
        let cohort = if t { "training" } else { "test" };
        inputs.update(format!("{}\t{cohort}\t{}\n", rows[*i].id, e.key).as_bytes());
    }
    let f = &cfg.deep.finetune;
    let options = [
        ("seed", cfg.seed.to_string()),
        (
            "split",
            match split {
                cohort::SplitRule::Column => "the cohort column".to_string(),
                cohort::SplitRule::Date(d) => format!("training = examinations before {d}"),
                cohort::SplitRule::Stratified { test_fraction, seed } => {
                    format!("stratified, test fraction {test_fraction}, seed {seed}")
                }
            },
        ),
        ("t_test", if cfg.select.welch { "Welch" } else { "Student" }.to_string()),
        (
            "lasso_lambda",
            if cfg.select.one_se { "lambda.1se" } else { "lambda.min" }.to_string(),
        ),
        ("lasso_cv_folds", cfg.select.folds.to_string()),
        (
            "clinical_candidates",
            cfg.clinical_candidates
                .as_ref()
                .map_or("all".to_string(), |c| c.join(",")),
        ),
        (
            "nomogram_signatures",
            if cfg.in_sample_signatures {
                "in-sample"
            } else {
                "pre-validated (out-of-fold)"
            }
            .to_string(),
        ),
        ("calibration_bootstrap", cfg.bootstrap.to_string()),
        (
            "finetune",
            format!(
                "{:?}: up to {} epochs, batch {}, AdamW lr {} weight decay {}, {} views, validation fraction {}, \
                 patience {}, seed {}",
                f.mode,
                f.epochs,
                f.batch,
                f.learning_rate,
                f.weight_decay,
                f.views,
                f.validation_fraction,
                f.patience,
                f.seed
            ),
        ),
        (
            "vgg",
            format!(
                "{} convolutions, fc width {}, {} classes",
                cfg.deep.config.plan.iter().flatten().count(),
                cfg.deep.config.hidden,
                cfg.deep.config.classes
            ),
        ),
        (
            "device",
            if cfg.deep.device.is_cpu() { "cpu" } else { "cuda" }.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    Ok(bundle::Provenance {
        cohort_sha256: bundle::sha256_file(&cfg.cohort)?,
        inputs_sha256: hex::encode(inputs.finalize()),
        options,
    })
}

/// The bundle's f32 VGG weights (torchvision names) and their Q8_0 form, which the daemon serves.
const VGG_WEIGHTS: &str = "vgg16.safetensors";
const VGG_QUANTIZED: &str = "vgg16-q8.gguf";

/// Every usable case's signature values (`radiomics_signature`, `deep_signature`) and the raw values of each
/// selected feature.
fn signature_values(
    selections: &[Selection],
    features: &FeatureTable<'_>,
    cases: usize,
) -> (BTreeMap<String, Vec<f64>>, BTreeMap<String, Vec<f64>>) {
    let mut scores = BTreeMap::new();
    let mut selected = BTreeMap::new();
    for sig in selections.iter().filter_map(|s| s.signature.as_ref()) {
        let v: Vec<f64> = (0..cases)
            .map(|k| sig.score(|name| features.value(k, name)).unwrap_or(f64::NAN))
            .collect();
        scores.insert(format!("{}_signature", sig.name), v);
        for f in &sig.features {
            selected.insert(
                f.clone(),
                (0..cases).map(|k| features.value(k, f).unwrap_or(f64::NAN)).collect(),
            );
        }
    }
    (scores, selected)
}

/// The bundle's manifest: settings, ROI rules, signatures, the VGG files, the clinical codings and the
/// nomogram; its id is a hash of the signatures, the nomogram and the f32 weights (already written to
/// `cfg.out`).
fn manifest(
    cfg: &FitConfig,
    deep: &features::DeepOutcome,
    signatures: Signatures,
    clinical: Vec<ClinicalCoding>,
    nomogram: Nomogram,
    feature_ranges: BTreeMap<String, FeatureRange>,
    performance: serde_json::Value,
) -> Result<Manifest> {
    let id_source = serde_json::to_string(&(&signatures, &nomogram)).unwrap_or_default()
        + &bundle::sha256_file(&cfg.out.join(VGG_WEIGHTS))?;
    let bundle_id = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(id_source.as_bytes())[..8]);
    Ok(Manifest {
        schema: bundle::SCHEMA.into(),
        version: format!("{}+{bundle_id}", env!("CARGO_PKG_VERSION")),
        bundle_id,
        alnrisk_version: env!("CARGO_PKG_VERSION").into(),
        created: crate::time::utc_now(),
        radiomics_settings: cfg.settings.clone(),
        phase: cfg.inputs.phase,
        roi: RoiRules {
            segment: cfg.inputs.roi.choice.to_rule(),
            fractional_threshold: cfg.inputs.roi.fractional_threshold,
            label: cfg.settings.label,
            crop_margin: cfg.crop_margin,
        },
        signatures,
        vgg: VggEntry {
            weights: VGG_WEIGHTS.into(),
            quantized: VGG_QUANTIZED.into(),
            quantization: "Q8_0".into(),
            layer: cfg.deep.layer,
            init: deep.init.clone(),
            finetune: format!(
                "{:?}: best epoch {} of {}",
                cfg.deep.finetune.mode,
                deep.report.best_epoch + 1,
                deep.report.train_loss.len()
            ),
        },
        clinical,
        nomogram,
        feature_ranges,
        acquisition_ranges: BTreeMap::new(),
        performance,
        files: BTreeMap::new(),
        provenance: None,
    })
}

/// Largest and mean |Δp| of the nomogram over `cases` (indices into `crops`) when the deep signature reads the f32
/// network `net`'s features instead of the quantized network's.
fn q8_change(
    net: &Vgg16,
    (crops, cases): (&[(String, crate::deep::Crop)], &[usize]),
    sig: &Signature,
    nomo: &nomogram::NomogramFit,
    s: &DeepSettings,
) -> Result<(f64, f64)> {
    let col = nomo.predictors.iter().position(|n| n == "deep_signature");
    let Some(col) = col else { return Ok((0.0, 0.0)) };
    let (mut worst, mut sum) = (0.0f64, 0.0);
    for &k in cases {
        let o = net.forward(&crate::deep::batch(
            std::slice::from_ref(&crops[k].1),
            &candle_core::Device::Cpu,
        )?)?;
        let (fc6, fc7, logits) = (o.fc6, o.fc7, o.logits);
        let t = s.layer.pick(fc6, fc7, logits);
        let v: Vec<f32> = t.flatten_all().and_then(|t| t.to_vec1())?;
        let unit = |name: &str| s.layer.unit_of(name).and_then(|i| v.get(i)).map(|&x| f64::from(x));
        let score = sig
            .score(unit)
            .map_err(|missing| Error::Model(format!("deep signature feature {missing} is not a unit of the layer")))?;
        let mut row = nomo.design[k].clone();
        let before = logistic_probability(&nomo.coef, &row);
        row[col] = score;
        let after = logistic_probability(&nomo.coef, &row);
        worst = worst.max((after - before).abs());
        sum += (after - before).abs();
    }
    Ok((worst, sum / cases.len().max(1) as f64))
}

/// Convenience for callers that only need the path of the bundle manifest.
pub fn manifest_path(out: &Path) -> PathBuf {
    out.join(bundle::MANIFEST)
}
