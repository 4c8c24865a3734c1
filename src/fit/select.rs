//! Feature selection per modality, as the study did, on the training cohort only:
//!
//! 1. z-score every feature with the training mean and standard deviation (constant features are dropped);
//! 2. two-sample t-test between ALN+ and ALN− (Student by default, Welch optional); keep p < 0.05;
//! 3. LASSO logistic regression on the survivors with glmnet's λ path and 10-fold stratified CV deviance
//!    ([`crate::stats::lasso`]), λ.min by default or λ.1se;
//! 4. the features with non-zero coefficients form the signature `intercept + Σ β z`.

use serde::Serialize;

use crate::model::Signature;
use crate::stats::hypothesis::t_test;
use crate::stats::lasso::{LassoCv, lasso_cv};

/// Selection options.
#[derive(Debug, Clone, Copy)]
pub struct SelectOptions {
    /// Welch instead of Student.
    pub welch: bool,
    /// λ.1se instead of λ.min.
    pub one_se: bool,
    /// CV folds (reduced when a class is smaller).
    pub folds: usize,
    /// Seed of the fold assignment.
    pub seed: u64,
}

/// What happened to one modality.
#[derive(Debug, Clone, Serialize)]
pub struct Selection {
    /// Modality (`radiomics` / `deep`).
    pub name: String,
    /// Features entering (non-constant).
    pub candidates: usize,
    /// Names that passed the t-test, with their p.
    pub passed_ttest: Vec<(String, f64)>,
    /// The LASSO cross-validation (absent when nothing passed the t-test).
    #[serde(skip)]
    pub cv: Option<LassoCv>,
    /// The signature (absent when nothing was selected).
    pub signature: Option<Signature>,
    /// The signature's pre-validated (out-of-fold) value for each training row, from the LASSO CV fits at the
    /// chosen λ: what `fit` gives the nomogram by default, so that an over-fitted signature is not over-weighted.
    #[serde(skip)]
    pub out_of_fold: Option<Vec<f64>>,
    /// Human-readable account, including warnings (fewer folds, nothing selected).
    pub notes: Vec<String>,
}

/// Mean and sample standard deviation of column `j`.
pub fn mean_sd(x: &[Vec<f64>], j: usize) -> (f64, f64) {
    let col: Vec<f64> = x.iter().map(|r| r[j]).collect();
    (crate::stats::mean(&col), crate::stats::var(&col).sqrt())
}

/// Select features of one modality from training rows `x` (columns named `names`) and labels `y`.
pub fn select(name: &str, names: &[String], x: &[Vec<f64>], y: &[bool], opt: &SelectOptions) -> Selection {
    let mut notes = Vec::new();
    let p = names.len();
    let stats: Vec<(f64, f64)> = (0..p).map(|j| mean_sd(x, j)).collect();
    let usable: Vec<usize> = (0..p)
        .filter(|&j| stats[j].1 > 0.0 && stats[j].1.is_finite() && x.iter().all(|r| r[j].is_finite()))
        .collect();
    let z = |r: &[f64], j: usize| (r[j] - stats[j].0) / stats[j].1;
    let mut passed = Vec::new();
    for &j in &usable {
        let a: Vec<f64> = x.iter().zip(y).filter(|(_, l)| **l).map(|(r, _)| z(r, j)).collect();
        let b: Vec<f64> = x.iter().zip(y).filter(|(_, l)| !**l).map(|(r, _)| z(r, j)).collect();
        let (_, _, pv) = t_test(&a, &b, opt.welch);
        if pv < 0.05 {
            passed.push((j, pv));
        }
    }
    notes.push(format!(
        "{name}: {} features, {} non-constant, {} with t-test p < 0.05 ({})",
        p,
        usable.len(),
        passed.len(),
        if opt.welch { "Welch" } else { "Student" }
    ));
    let passed_ttest = passed.iter().map(|&(j, pv)| (names[j].clone(), pv)).collect();
    if passed.is_empty() {
        notes.push(format!(
            "{name}: no feature passed the t-test; the nomogram is fitted without this signature"
        ));
        return Selection {
            name: name.into(),
            candidates: usable.len(),
            passed_ttest,
            cv: None,
            signature: None,
            out_of_fold: None,
            notes,
        };
    }
    let zx: Vec<Vec<f64>> = x
        .iter()
        .map(|r| passed.iter().map(|&(j, _)| z(r, j)).collect())
        .collect();
    let cv = lasso_cv(&zx, y, opt.folds, opt.seed);
    if cv.folds < opt.folds {
        notes.push(format!(
            "{name}: only {} cases in the smaller class: LASSO CV uses {} folds instead of {}",
            y.iter().filter(|&&b| b).count().min(y.iter().filter(|&&b| !b).count()),
            cv.folds,
            opt.folds
        ));
    }
    let k = if opt.one_se { cv.index_1se } else { cv.index_min };
    let fit = &cv.path[k];
    let chosen: Vec<usize> = (0..passed.len()).filter(|&c| fit.beta[c] != 0.0).collect();
    notes.push(format!(
        "{name}: LASSO {} = {:.4e} (CV deviance {:.4}), {} feature(s) selected",
        if opt.one_se { "λ.1se" } else { "λ.min" },
        fit.lambda,
        cv.cv_mean[k],
        chosen.len()
    ));
    let signature = if chosen.is_empty() {
        notes.push(format!(
            "{name}: LASSO kept no feature; the nomogram is fitted without this signature"
        ));
        None
    } else {
        Some(Signature {
            name: name.into(),
            features: chosen.iter().map(|&c| names[passed[c].0].clone()).collect(),
            means: chosen.iter().map(|&c| stats[passed[c].0].0).collect(),
            sds: chosen.iter().map(|&c| stats[passed[c].0].1).collect(),
            coefficients: chosen.iter().map(|&c| fit.beta[c]).collect(),
            intercept: fit.intercept,
            lambda: fit.lambda,
        })
    };
    let out_of_fold = signature.as_ref().map(|_| cv.prevalidated[k].clone());
    Selection {
        name: name.into(),
        candidates: usable.len(),
        passed_ttest,
        cv: Some(cv),
        signature,
        out_of_fold,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn opts() -> SelectOptions {
        SelectOptions {
            welch: false,
            one_se: false,
            folds: 10,
            seed: 1,
        }
    }

    #[test]
    fn noise_passes_no_test_and_gives_no_signature() {
        let mut rng = Rng::new(5);
        let y: Vec<bool> = (0..60).map(|i| i % 2 == 0).collect();
        let x: Vec<Vec<f64>> = (0..60).map(|_| vec![rng.normal(), rng.normal()]).collect();
        let names = vec!["a".to_string(), "b".to_string()];
        let s = select("radiomics", &names, &x, &y, &opts());
        // the premise, checked: neither column differs between the groups
        for j in 0..2 {
            let a: Vec<f64> = x.iter().zip(&y).filter(|(_, l)| **l).map(|(r, _)| r[j]).collect();
            let b: Vec<f64> = x.iter().zip(&y).filter(|(_, l)| !**l).map(|(r, _)| r[j]).collect();
            assert!(t_test(&a, &b, false).2 >= 0.05);
        }
        assert!(s.signature.is_none());
        assert!(
            s.notes.iter().any(|n| n.contains("no feature passed the t-test")),
            "{:?}",
            s.notes
        );
    }

    #[test]
    fn few_positives_reduce_the_folds_with_a_warning() {
        let mut rng = Rng::new(6);
        let y: Vec<bool> = (0..50).map(|i| i < 6).collect();
        let x: Vec<Vec<f64>> = y
            .iter()
            .map(|&l| vec![rng.normal() + if l { 2.5 } else { 0.0 }, rng.normal()])
            .collect();
        let names = vec!["signal".to_string(), "noise".to_string()];
        let s = select("radiomics", &names, &x, &y, &opts());
        assert_eq!(s.cv.as_ref().unwrap().folds, 6);
        assert!(
            s.notes.iter().any(|n| n.contains("uses 6 folds instead of 10")),
            "{:?}",
            s.notes
        );
        assert_eq!(s.signature.unwrap().features[0], "signal");
    }
}
