//! `alnrisk fit`: the study's pipeline on a site's cohort, from DICOM to a signed model bundle and a report.
//!
//! Stages (each timed): cohort table → split → radiomics and VGG crops per case ([`features`]) → VGG fine-tuning
//! on the training cases and deep features → per-modality selection ([`select`]) → the seven classifiers
//! ([`crate::classify`], Tables 2 and 3) → Table 1 ([`table1`]) → nomogram (IRLS logistic regression of the
//! signatures and the significant clinical factors) → evaluation (DeLong ROC, calibration, Hosmer–Lemeshow,
//! decision curves, Youden cutoff) → bundle ([`crate::model::bundle`]) and report ([`report`]).
//!
//! The test cohort is never used to fit, standardise or select anything: it is only scored.

pub mod cohort;
pub mod features;
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
use crate::classify::{ClassifierKind, CvMetrics, cross_validate};
use crate::deep::Vgg16;
use crate::error::{Error, Result};
use crate::model::bundle::{self, ClinicalCoding, FeatureRange, Manifest, RoiRules, Signatures, VggEntry};
use crate::model::{Nomogram, Signature};
use crate::radiomics::Settings;
use crate::stats::evaluation::{
    BootstrapCalibration, CalibrationGroup, ClassificationMetrics, bootstrap_calibration, calibration_groups,
    classification_metrics, net_benefit, youden_cutoff,
};
use crate::stats::hypothesis::hosmer_lemeshow;
use crate::stats::{DelongAuc, delong, delong_paired, logistic_fit, logistic_probability, sigmoid};

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
    /// Largest and mean |Δ probability| of the nomogram if the f32 dense layers were served instead of the Q8_0
    /// ones it was fitted on, over all cases.
    pub q8_probability_change: Option<(f64, f64)>,
}

/// Decision-curve thresholds 0.01…0.99.
pub fn dca_thresholds() -> Vec<f64> {
    (1..100).map(|k| f64::from(k) / 100.0).collect()
}

fn subset<T: Clone>(v: &[T], idx: &[usize]) -> Vec<T> {
    idx.iter().map(|&i| v[i].clone()).collect()
}

/// Run the whole pipeline.
pub fn run(cfg: &FitConfig) -> Result<FitOutcome> {
    let mut timings = Vec::new();
    let mut notes = Vec::new();
    let mut clock = Instant::now();
    let mut lap = |name: &str, timings: &mut Vec<(String, f64)>| {
        let s = clock.elapsed().as_secs_f64();
        eprintln!("  stage {name}: {s:.1} s");
        timings.push((name.to_string(), s));
        clock = Instant::now();
    };

    // 1–2. cohort and split
    let table = cohort::read_cohort(&cfg.cohort)?;
    let (train_flag, split) = cohort::split(&table, cfg.split_date.as_deref(), cfg.seed)?;
    let bad = |reason: String| Error::Cohort {
        path: cfg.cohort.clone(),
        reason,
    };
    let train_pos = table
        .rows
        .iter()
        .zip(&train_flag)
        .filter(|(r, t)| **t && r.label)
        .count();
    let train_n = train_flag.iter().filter(|&&t| t).count();
    if train_pos == 0 || train_pos == train_n {
        return Err(bad(format!(
            "the training cohort has a single class ({train_pos} of {train_n} cases ALN+): nothing to fit"
        )));
    }
    lap("cohort", &mut timings);

    // 3. radiomics and crops
    let extracted = features::extract_all(
        &table.rows,
        &cfg.settings,
        &cfg.inputs,
        cfg.crop_margin,
        cfg.cache.as_deref(),
    );
    let mut failed = Vec::new();
    let mut ok: Vec<(usize, features::CaseExtract)> = Vec::new();
    for (i, r) in extracted.into_iter().enumerate() {
        match r {
            Ok(e) => ok.push((i, e)),
            Err(reason) => {
                let row = &table.rows[i];
                eprintln!("case {} (row {}): feature extraction failed: {reason}", row.id, row.row);
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
    let y_te = subset(&labels, &te_idx);
    if y_tr.iter().all(|&b| b) || y_tr.iter().all(|&b| !b) {
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
    lap("radiomics", &mut timings);

    // 4. deep features
    let crops: Vec<(String, crate::deep::Crop)> = ok.iter().map(|(_, e)| (e.key.clone(), e.crop())).collect();
    let deep = features::deep_features(&crops, &tr_idx, &labels, &cfg.deep, cfg.cache.as_deref())?;
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
    lap("deep features", &mut timings);

    // 5. selection
    let mut selections = Vec::new();
    for (name, names, x) in [("radiomics", &rad_names, &rad), ("deep", &deep_names, &deep.features)] {
        let s = select::select(name, names, &subset(x, &tr_idx), &y_tr, &cfg.select);
        notes.extend(s.notes.clone());
        selections.push(s);
    }
    lap("selection", &mut timings);

    // signature values for every case
    let (rad_names_ref, deep_names_ref, rad_ref, deep_ref) = (&rad_names, &deep_names, &rad, &deep.features);
    let lookup_row = |k: usize| {
        move |name: &str| -> Option<f64> {
            rad_names_ref
                .iter()
                .position(|n| n == name)
                .map(|j| rad_ref[k][j])
                .or_else(|| deep_names_ref.iter().position(|n| n == name).map(|j| deep_ref[k][j]))
        }
    };
    let mut scores: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut selected_values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for s in &selections {
        if let Some(sig) = &s.signature {
            let v: Vec<f64> = (0..ok.len())
                .map(|k| sig.score(lookup_row(k)).unwrap_or(f64::NAN))
                .collect();
            scores.insert(format!("{}_signature", sig.name), v);
            for f in &sig.features {
                selected_values.insert(
                    f.clone(),
                    (0..ok.len()).map(|k| lookup_row(k)(f).unwrap_or(f64::NAN)).collect(),
                );
            }
        }
    }

    // 6. classifiers on the selected features, per modality
    let mut classifiers = Vec::new();
    for s in &selections {
        let Some(sig) = &s.signature else { continue };
        let x: Vec<Vec<f64>> = (0..ok.len())
            .map(|k| {
                sig.features
                    .iter()
                    .enumerate()
                    .map(|(j, f)| (lookup_row(k)(f).unwrap_or(f64::NAN) - sig.means[j]) / sig.sds[j])
                    .collect()
            })
            .collect();
        let (xtr, xte) = (subset(&x, &tr_idx), subset(&x, &te_idx));
        let folds = 5
            .min(y_tr.iter().filter(|&&b| b).count())
            .min(y_tr.iter().filter(|&&b| !b).count())
            .max(2);
        for kind in ClassifierKind::ALL {
            let cv = cross_validate(kind, &xtr, &y_tr, folds, cfg.seed);
            let model = kind.fit(&xtr, &y_tr, cfg.seed);
            let test_prob: Vec<f64> = xte.iter().map(|r| model.predict_proba(r)).collect();
            let test = if te_idx.is_empty() {
                ClassificationMetrics::default()
            } else {
                classification_metrics(&test_prob, &y_te, 0.5)
            };
            classifiers.push(ClassifierRow {
                modality: sig.name.clone(),
                model: kind.label().into(),
                cv,
                test,
                test_prob,
            });
        }
    }
    lap("classifiers", &mut timings);

    // 7. Table 1 and clinical factors
    let rows_tr: Vec<&cohort::CohortRow> = tr_idx.iter().map(|&k| rows[k]).collect();
    let rows_te: Vec<&cohort::CohortRow> = te_idx.iter().map(|&k| rows[k]).collect();
    let t1_train = table1::table1("training", &rows_tr, &table.clinical_columns);
    let t1_test = table1::table1("test", &rows_te, &table.clinical_columns);
    let mut clinical_codings = Vec::new();
    for (col, &p) in &t1_train.p {
        if p >= 0.05 {
            continue;
        }
        if let Some(c) = &cfg.clinical_candidates
            && !c.contains(col)
        {
            notes.push(format!(
                "clinical factor {col} has p = {p:.2e} in training but is not a nomogram candidate"
            ));
            continue;
        }
        if table1::is_numeric(&rows_tr, col) {
            clinical_codings.push(ClinicalCoding {
                name: col.clone(),
                column: col.clone(),
                level: None,
            });
        } else {
            let mut levels: Vec<String> = rows
                .iter()
                .filter_map(|r| r.clinical.get(col).cloned())
                .filter(|v| !v.is_empty())
                .collect();
            levels.sort();
            levels.dedup();
            // binary factors code their "positive"/"yes"/"1" level (else the second level) as 1; others: one
            // indicator per non-reference level
            let positive = levels
                .iter()
                .find(|l| ["positive", "yes", "1", "true"].contains(&l.to_lowercase().as_str()));
            if levels.len() == 2 {
                let lvl = positive.cloned().unwrap_or_else(|| levels[1].clone());
                clinical_codings.push(ClinicalCoding {
                    name: col.clone(),
                    column: col.clone(),
                    level: Some(lvl),
                });
            } else {
                for l in levels.iter().skip(1) {
                    clinical_codings.push(ClinicalCoding {
                        name: format!("{col}={l}"),
                        column: col.clone(),
                        level: Some(l.clone()),
                    });
                }
            }
        }
        notes.push(format!(
            "clinical factor {col} (training p = {p:.2e}) enters the nomogram"
        ));
    }
    let clinical_value = |r: &cohort::CohortRow, c: &ClinicalCoding| -> f64 {
        let v = r.clinical.get(&c.column).cloned().unwrap_or_default();
        match &c.level {
            Some(l) => f64::from(u8::from(&v == l)),
            None => v.parse().unwrap_or(f64::NAN),
        }
    };
    for c in &clinical_codings {
        scores.insert(c.name.clone(), rows.iter().map(|r| clinical_value(r, c)).collect());
    }

    // 8. nomogram
    let mut predictor_names: Vec<String> = selections
        .iter()
        .filter(|s| s.signature.is_some())
        .map(|s| format!("{}_signature", s.name))
        .collect();
    predictor_names.extend(clinical_codings.iter().map(|c| c.name.clone()));
    if predictor_names.is_empty() {
        return Err(bad(
            "no signature and no clinical factor was selected: there is no nomogram to fit".into(),
        ));
    }
    let design: Vec<Vec<f64>> = (0..ok.len())
        .map(|k| predictor_names.iter().map(|n| scores[n][k]).collect())
        .collect();
    let design_tr = subset(&design, &tr_idx);
    // The nomogram is fitted on each signature's pre-validated (out-of-fold) training values unless
    // `in_sample_signatures`: an in-sample LASSO signature chosen among thousands of deep features is optimistic on
    // the very cases it was fitted to, and the regression would over-weight it (README "Fitting").
    let mut design_fit = design_tr.clone();
    if !cfg.in_sample_signatures {
        for s in &selections {
            let (Some(oof), Some(c)) = (
                &s.out_of_fold,
                predictor_names
                    .iter()
                    .position(|n| *n == format!("{}_signature", s.name)),
            ) else {
                continue;
            };
            for (row, v) in design_fit.iter_mut().zip(oof) {
                row[c] = *v;
            }
        }
        notes.push("nomogram fitted on the signatures' out-of-fold (pre-validated) training values".into());
    }
    let fit = logistic_fit(&design_fit, &y_tr)
        .ok_or_else(|| bad("the nomogram's logistic regression did not converge (complete separation?)".into()))?;
    let nomo_prob: Vec<f64> = design.iter().map(|r| logistic_probability(&fit.coef, r)).collect();
    let cutoff = youden_cutoff(&subset(&nomo_prob, &tr_idx), &y_tr);
    let nomogram = Nomogram::new(&predictor_names, &fit.coef, &fit.se, &fit.p, &design_tr, cutoff);
    scores.insert("nomogram".into(), nomo_prob.clone());
    let mut coefficients = Vec::new();
    for (k, term) in std::iter::once("(intercept)".to_string())
        .chain(predictor_names.iter().cloned())
        .enumerate()
    {
        coefficients.push(CoefficientRow {
            term,
            coefficient: fit.coef[k],
            se: fit.se[k],
            z: fit.z[k],
            p: fit.p[k],
            odds_ratio: fit.coef[k].exp(),
            or_ci: (
                (fit.coef[k] - 1.959_964 * fit.se[k]).exp(),
                (fit.coef[k] + 1.959_964 * fit.se[k]).exp(),
            ),
        });
    }
    lap("nomogram", &mut timings);

    // 9. evaluation
    let score_names: Vec<String> = std::iter::once("nomogram".to_string())
        .chain(
            selections
                .iter()
                .filter(|s| s.signature.is_some())
                .map(|s| format!("{}_signature", s.name)),
        )
        .collect();
    let mut evaluations = Vec::new();
    for (name, idx) in [("training", &tr_idx), ("test", &te_idx)] {
        let y = subset(&labels, idx);
        if y.iter().all(|&b| b) || y.iter().all(|&b| !b) {
            notes.push(format!("{name} cohort has a single class: no ROC evaluation"));
            continue;
        }
        let p = subset(&nomo_prob, idx);
        let mut auc = BTreeMap::new();
        let mut paired = BTreeMap::new();
        for s in &score_names {
            let v = subset(&scores[s], idx);
            auc.insert(s.clone(), delong(&v, &y));
            if s != "nomogram" {
                paired.insert(s.clone(), delong_paired(&p, &v, &y).1);
            }
        }
        evaluations.push(CohortEvaluation {
            cohort: name.into(),
            n: y.len(),
            auc,
            delong_vs_nomogram: paired,
            at_cutoff: classification_metrics(&p, &y, cutoff),
            calibration: calibration_groups(&p, &y, 10.min(y.len())),
            hosmer_lemeshow: hosmer_lemeshow(&p, &y, 10),
        });
    }
    let calibration_curve = bootstrap_calibration(&design_fit, &y_tr, cfg.bootstrap, cfg.seed);
    let thresholds = dca_thresholds();
    let mut decision_curves = BTreeMap::new();
    for s in &score_names {
        let prob: Vec<f64> = if s == "nomogram" {
            nomo_prob.clone()
        } else {
            scores[s].iter().map(|&v| sigmoid(v)).collect()
        };
        decision_curves.insert(
            s.clone(),
            thresholds.iter().map(|&t| net_benefit(&prob, &labels, t)).collect(),
        );
    }
    decision_curves.insert(
        "treat all".into(),
        thresholds
            .iter()
            .map(|&t| net_benefit(&vec![1.0; labels.len()], &labels, t))
            .collect(),
    );
    decision_curves.insert("treat none".into(), vec![0.0; thresholds.len()]);
    lap("evaluation", &mut timings);

    // 10. bundle
    std::fs::create_dir_all(&cfg.out).map_err(|e| Error::io(&cfg.out, e))?;
    let weights = "vgg16.safetensors".to_string();
    let quantized = "vgg16-q8.gguf".to_string();
    let weights_path = cfg.out.join(&weights);
    candle_core::safetensors::save(&deep.f32_weights, &weights_path)
        .map_err(|e| Error::io(&weights_path, std::io::Error::other(e.to_string())))?;
    deep.net.save_gguf(&cfg.out.join(&quantized))?;
    // The model was fitted on the Q8_0 features it serves; how much the nomogram probability would move with the
    // f32 dense layers instead (the size of the quantization effect, reported, not served).
    let deep_sig = selections
        .iter()
        .find(|s| s.name == "deep")
        .and_then(|s| s.signature.clone());
    let f32_net = Vgg16::from_tensors(
        deep.net.config.clone(),
        &deep.f32_weights,
        &weights_path,
        &deep.net.device,
    )?;
    let q8_probability_change = match &deep_sig {
        Some(sig) => Some(q8_change(
            (&f32_net, deep.pool5.as_deref()),
            &crops,
            sig,
            &predictor_names,
            &design,
            &fit.coef,
            &cfg.deep,
        )?),
        None => None,
    };
    let mut feature_ranges = BTreeMap::new();
    for (name, v) in selected_values.iter().chain(scores.iter()) {
        if name == "nomogram" {
            continue;
        }
        feature_ranges.insert(name.clone(), FeatureRange::of(&subset(v, &tr_idx)));
    }
    let performance = serde_json::json!({
        "evaluations": evaluations,
        "split": split,
        "cases": {"training": tr_idx.len(), "test": te_idx.len(), "failed": failed.len()},
        "q8_probability_change": q8_probability_change,
    });
    let signatures = Signatures {
        radiomics: selections
            .iter()
            .find(|s| s.name == "radiomics")
            .and_then(|s| s.signature.clone()),
        deep: deep_sig,
    };
    let id_source = serde_json::to_string(&(&signatures, &nomogram)).unwrap_or_default()
        + &bundle::sha256_file(&cfg.out.join(&weights))?;
    let bundle_id = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(id_source.as_bytes())[..8]);
    let mut manifest = Manifest {
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
            weights,
            quantized,
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
        clinical: clinical_codings,
        nomogram,
        feature_ranges,
        performance,
        files: BTreeMap::new(),
    };
    let bundle_sha256 = bundle::write_bundle(&cfg.out, &mut manifest, cfg.key.as_ref())?;
    if cfg.key.is_none() {
        notes.push("the bundle is UNSIGNED (no --key): the daemon loads it only with --allow-unsigned".into());
    }
    lap("bundle", &mut timings);

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
        coefficients,
        evaluations,
        calibration_curve,
        decision_curves,
        cases,
        timings,
        notes,
        finetune_losses: (deep.report.train_loss.clone(), deep.report.validation_loss.clone()),
        q8_probability_change,
    };
    if let Some(dir) = &cfg.report {
        report::write_report(dir, &outcome)?;
        let s = clock.elapsed().as_secs_f64();
        eprintln!("  stage report: {s:.1} s");
        outcome.timings.push(("report".into(), s));
    }
    Ok(outcome)
}

/// Largest and mean |Δp| of the nomogram when the deep signature reads the Q8_0 network's features.
/// `(net, pool5)`: the f32 network, and pool5 of every crop when the trunk was frozen (head mode).
fn q8_change(
    (net, pool5): (&Vgg16, Option<&[Vec<f32>]>),
    crops: &[(String, crate::deep::Crop)],
    sig: &Signature,
    names: &[String],
    design: &[Vec<f64>],
    coef: &[f64],
    s: &DeepSettings,
) -> Result<(f64, f64)> {
    let col = names.iter().position(|n| n == "deep_signature");
    let Some(col) = col else { return Ok((0.0, 0.0)) };
    let idx: Vec<usize> = sig.features.iter().filter_map(|f| s.layer.unit_of(f)).collect();
    let (mut worst, mut sum) = (0.0f64, 0.0);
    for (k, (_, crop)) in crops.iter().enumerate() {
        let (fc6, fc7, logits) = match pool5 {
            Some(p) => {
                let t = candle_core::Tensor::from_vec(p[k].clone(), (1, p[k].len()), &candle_core::Device::Cpu)
                    .and_then(|t| t.to_device(&net.device))
                    .map_err(|e| Error::Compute(e.to_string()))?;
                net.head(&t)?
            }
            None => {
                let o = net.forward(&crate::deep::batch(
                    std::slice::from_ref(crop),
                    &candle_core::Device::Cpu,
                )?)?;
                (o.fc6, o.fc7, o.logits)
            }
        };
        let t = s.layer.pick(fc6, fc7, logits);
        let v: Vec<f32> = t
            .flatten_all()
            .and_then(|t| t.to_vec1())
            .map_err(|e| Error::Compute(e.to_string()))?;
        let score = sig.intercept
            + idx
                .iter()
                .enumerate()
                .map(|(j, &i)| sig.coefficients[j] * (f64::from(v[i]) - sig.means[j]) / sig.sds[j])
                .sum::<f64>();
        let mut row = design[k].clone();
        let before = logistic_probability(coef, &row);
        row[col] = score;
        let after = logistic_probability(coef, &row);
        worst = worst.max((after - before).abs());
        sum += (after - before).abs();
    }
    Ok((worst, sum / crops.len().max(1) as f64))
}

/// Convenience for callers that only need the path of the bundle manifest.
pub fn manifest_path(out: &Path) -> PathBuf {
    out.join(bundle::MANIFEST)
}
