//! How well the nomogram and the signatures do (step 9 of [`super::run`]), per cohort: AUC with DeLong 95 % CI
//! and the paired DeLong test against the nomogram, the nomogram at the training Youden cutoff, decile
//! calibration and Hosmer–Lemeshow; on the training cohort the bootstrap-corrected calibration curve; on the
//! whole cohort the decision curves (net benefit at thresholds 0.01…0.99, with treat-all and treat-none).

use std::collections::BTreeMap;

use super::nomogram::NomogramFit;
use super::{CohortEvaluation, Selection, dca_thresholds, subset};
use crate::stats::evaluation::{
    BootstrapCalibration, bootstrap_calibration, calibration_groups, classification_metrics, net_benefit,
};
use crate::stats::hypothesis::hosmer_lemeshow;
use crate::stats::{delong, delong_paired, sigmoid};

/// The evaluation's results.
pub(super) struct Evaluation {
    /// Per cohort with both classes (training, test).
    pub cohorts: Vec<CohortEvaluation>,
    /// Bootstrap-corrected calibration of the nomogram (training).
    pub calibration_curve: Option<BootstrapCalibration>,
    /// Score name → net benefit per threshold of [`dca_thresholds`].
    pub decision_curves: BTreeMap<String, Vec<f64>>,
}

/// Evaluate `nomo` and the signatures (`scores`: name → value per case) on the training (`tr_idx`) and test
/// (`te_idx`) cases. A cohort with a single class gets no ROC evaluation (noted).
pub(super) fn evaluate(
    nomo: &NomogramFit,
    selections: &[Selection],
    scores: &BTreeMap<String, Vec<f64>>,
    labels: &[bool],
    (tr_idx, te_idx): (&[usize], &[usize]),
    (bootstrap, seed): (usize, u64),
    notes: &mut Vec<String>,
) -> Evaluation {
    let score_names: Vec<String> = std::iter::once("nomogram".to_string())
        .chain(
            selections
                .iter()
                .filter(|s| s.signature.is_some())
                .map(|s| format!("{}_signature", s.name)),
        )
        .collect();
    let mut cohorts = Vec::new();
    for (name, idx) in [("training", tr_idx), ("test", te_idx)] {
        let y = subset(labels, idx);
        if y.iter().all(|&b| b) || y.iter().all(|&b| !b) {
            notes.push(format!("{name} cohort has a single class: no ROC evaluation"));
            continue;
        }
        let p = subset(&nomo.probability, idx);
        let mut auc = BTreeMap::new();
        let mut paired = BTreeMap::new();
        for s in &score_names {
            let v = subset(&scores[s], idx);
            auc.insert(s.clone(), delong(&v, &y));
            if s != "nomogram" {
                paired.insert(s.clone(), delong_paired(&p, &v, &y).1);
            }
        }
        cohorts.push(CohortEvaluation {
            cohort: name.into(),
            n: y.len(),
            auc,
            delong_vs_nomogram: paired,
            at_cutoff: classification_metrics(&p, &y, nomo.nomogram.cutoff),
            calibration: calibration_groups(&p, &y, 10.min(y.len())),
            hosmer_lemeshow: hosmer_lemeshow(&p, &y, 10),
        });
    }
    let y_tr = subset(labels, tr_idx);
    let calibration_curve = bootstrap_calibration(&nomo.design_fit, &y_tr, bootstrap, seed);
    let thresholds = dca_thresholds();
    let mut decision_curves = BTreeMap::new();
    for s in &score_names {
        let prob: Vec<f64> = if s == "nomogram" {
            nomo.probability.clone()
        } else {
            scores[s].iter().map(|&v| sigmoid(v)).collect()
        };
        decision_curves.insert(
            s.clone(),
            thresholds.iter().map(|&t| net_benefit(&prob, labels, t)).collect(),
        );
    }
    decision_curves.insert(
        "treat all".into(),
        thresholds
            .iter()
            .map(|&t| net_benefit(&vec![1.0; labels.len()], labels, t))
            .collect(),
    );
    decision_curves.insert("treat none".into(), vec![0.0; thresholds.len()]);
    Evaluation {
        cohorts,
        calibration_curve,
        decision_curves,
    }
}
