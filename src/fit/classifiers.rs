//! Tables 2 and 3 of the study (step 6 of [`super::run`]): the seven classifiers on each signature's selected
//! features (standardised with the training means and SDs): 5-fold stratified cross-validation on the training
//! cohort, then a refit on all of it scored on the test cohort.

use super::{ClassifierRow, FeatureTable, Selection, subset};
use crate::classify::{ClassifierKind, cross_validate};
use crate::stats::evaluation::{ClassificationMetrics, classification_metrics};

/// One row per signature and classifier. `tr_idx` / `te_idx` index the usable cases of `features`; `labels`
/// are theirs. Folds: 5, or fewer when a training class is smaller (at least 2).
pub(super) fn rows(
    selections: &[Selection],
    features: &FeatureTable<'_>,
    labels: &[bool],
    (tr_idx, te_idx): (&[usize], &[usize]),
    seed: u64,
) -> Vec<ClassifierRow> {
    let (y_tr, y_te) = (subset(labels, tr_idx), subset(labels, te_idx));
    let mut rows = Vec::new();
    for s in selections {
        let Some(sig) = &s.signature else { continue };
        let x: Vec<Vec<f64>> = (0..labels.len())
            .map(|k| {
                sig.features
                    .iter()
                    .enumerate()
                    .map(|(j, f)| (features.value(k, f).unwrap_or(f64::NAN) - sig.means[j]) / sig.sds[j])
                    .collect()
            })
            .collect();
        let (xtr, xte) = (subset(&x, tr_idx), subset(&x, te_idx));
        let folds = 5
            .min(y_tr.iter().filter(|&&b| b).count())
            .min(y_tr.iter().filter(|&&b| !b).count())
            .max(2);
        for kind in ClassifierKind::ALL {
            let cv = cross_validate(kind, &xtr, &y_tr, folds, seed);
            let model = kind.fit(&xtr, &y_tr, seed);
            let test_prob: Vec<f64> = xte.iter().map(|r| model.predict_proba(r)).collect();
            let test = if te_idx.is_empty() {
                ClassificationMetrics::default()
            } else {
                classification_metrics(&test_prob, &y_te, 0.5)
            };
            rows.push(ClassifierRow {
                modality: sig.name.clone(),
                model: kind.label().into(),
                cv,
                test,
                test_prob,
            });
        }
    }
    rows
}
