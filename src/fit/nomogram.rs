//! The nomogram's multivariable logistic regression (step 8 of [`super::run`]): the signatures and the clinical
//! factors that entered, fitted on the training cohort, with the coefficient table and the Youden cutoff.

use std::collections::BTreeMap;

use super::{CoefficientRow, Selection, subset};
use crate::model::Nomogram;
use crate::model::bundle::ClinicalCoding;
use crate::stats::evaluation::youden_cutoff;
use crate::stats::{logistic_fit, logistic_probability};

/// The fitted nomogram and what it was fitted on.
pub(super) struct NomogramFit {
    /// Predictor names, in the nomogram's order (the signatures, then the clinical codings).
    pub predictors: Vec<String>,
    /// Every usable case's predictor values.
    pub design: Vec<Vec<f64>>,
    /// The training rows the regression saw (signatures out-of-fold unless `in_sample_signatures`).
    pub design_fit: Vec<Vec<f64>>,
    /// Intercept, then one β per predictor.
    pub coef: Vec<f64>,
    /// The points scale, with the training Youden cutoff.
    pub nomogram: Nomogram,
    /// Every usable case's nomogram probability.
    pub probability: Vec<f64>,
    /// The coefficient table (β, SE, Wald z and p, OR with 95 % CI).
    pub coefficients: Vec<CoefficientRow>,
}

/// Fit the nomogram on the training cases `tr_idx` (labels `y_tr`) from `scores` (name → value per case). The
/// regression sees each signature's pre-validated (out-of-fold) training values unless `in_sample_signatures`:
/// an in-sample LASSO signature chosen among thousands of deep features is optimistic on the very cases it was
/// fitted to, and the regression would over-weight it (README "Fitting"). `Err` says why nothing can be fitted.
pub(super) fn fit(
    selections: &[Selection],
    codings: &[ClinicalCoding],
    scores: &BTreeMap<String, Vec<f64>>,
    (tr_idx, y_tr): (&[usize], &[bool]),
    in_sample_signatures: bool,
    notes: &mut Vec<String>,
) -> Result<NomogramFit, String> {
    let mut predictors: Vec<String> = selections
        .iter()
        .filter(|s| s.signature.is_some())
        .map(|s| format!("{}_signature", s.name))
        .collect();
    predictors.extend(codings.iter().map(|c| c.name.clone()));
    if predictors.is_empty() {
        return Err("no signature and no clinical factor was selected: there is no nomogram to fit".into());
    }
    let cases = scores[&predictors[0]].len();
    let design: Vec<Vec<f64>> = (0..cases)
        .map(|k| predictors.iter().map(|n| scores[n][k]).collect())
        .collect();
    let design_tr = subset(&design, tr_idx);
    let mut design_fit = design_tr.clone();
    if !in_sample_signatures {
        for s in selections {
            let (Some(oof), Some(c)) = (
                &s.out_of_fold,
                predictors.iter().position(|n| *n == format!("{}_signature", s.name)),
            ) else {
                continue;
            };
            for (row, v) in design_fit.iter_mut().zip(oof) {
                row[c] = *v;
            }
        }
        notes.push("nomogram fitted on the signatures' out-of-fold (pre-validated) training values".into());
    }
    let fit = logistic_fit(&design_fit, y_tr)
        .ok_or("the nomogram's logistic regression did not converge (complete separation?)")?;
    let probability: Vec<f64> = design.iter().map(|r| logistic_probability(&fit.coef, r)).collect();
    let cutoff = youden_cutoff(&subset(&probability, tr_idx), y_tr);
    let nomogram = Nomogram::new(&predictors, &fit.coef, &fit.se, &fit.p, &design_tr, cutoff);
    let z95 = 1.959_964;
    let coefficients = std::iter::once("(intercept)".to_string())
        .chain(predictors.iter().cloned())
        .enumerate()
        .map(|(k, term)| CoefficientRow {
            term,
            coefficient: fit.coef[k],
            se: fit.se[k],
            z: fit.z[k],
            p: fit.p[k],
            odds_ratio: fit.coef[k].exp(),
            or_ci: (
                (fit.coef[k] - z95 * fit.se[k]).exp(),
                (fit.coef[k] + z95 * fit.se[k]).exp(),
            ),
        })
        .collect();
    Ok(NomogramFit {
        predictors,
        design,
        design_fit,
        coef: fit.coef,
        nomogram,
        probability,
        coefficients,
    })
}
