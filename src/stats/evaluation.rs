//! Evaluation of a risk score: classification metrics at a threshold, the Youden cutoff, decision-curve net benefit
//! (Vickers & Elkin, Med. Decis. Making 26:565, 2006), grouped calibration, LOWESS, and the bootstrap
//! optimism-corrected calibration curve of a logistic model (as `rms::calibrate`, Harrell 2015, §5.3).

use super::{logistic, logistic_probability};
use crate::rng::Rng;

/// Metrics of `prob ≥ threshold` as the positive call.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct ClassificationMetrics {
    /// ROC AUC of the scores (threshold-free).
    pub auc: f64,
    /// (TP + TN) / n.
    pub accuracy: f64,
    /// TP / (TP + FP); 0 when nothing is called positive (as scikit-learn's `zero_division=0`).
    pub precision: f64,
    /// Sensitivity, TP / (TP + FN).
    pub recall: f64,
    /// TN / (TN + FP).
    pub specificity: f64,
    /// Harmonic mean of precision and recall; 0 when both are 0.
    pub f1: f64,
}

/// [`ClassificationMetrics`] of scores at a threshold.
pub fn classification_metrics(prob: &[f64], y: &[bool], threshold: f64) -> ClassificationMetrics {
    let (mut tp, mut fp, mut tn, mut fneg) = (0.0, 0.0, 0.0, 0.0);
    for (&p, &yi) in prob.iter().zip(y) {
        match (p >= threshold, yi) {
            (true, true) => tp += 1.0,
            (true, false) => fp += 1.0,
            (false, false) => tn += 1.0,
            (false, true) => fneg += 1.0,
        }
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fneg);
    ClassificationMetrics {
        auc: super::auc(prob, y),
        accuracy: ratio(tp + tn, tp + tn + fp + fneg),
        precision,
        recall,
        specificity: ratio(tn, tn + fp),
        f1: ratio(2.0 * precision * recall, precision + recall),
    }
}

/// The cutoff maximising Youden's J = sensitivity + specificity − 1 over the observed scores (a case is positive
/// when its score ≥ cutoff). On a tie, the higher cutoff.
pub fn youden_cutoff(score: &[f64], y: &[bool]) -> f64 {
    let mut cands: Vec<f64> = score.to_vec();
    cands.sort_by(f64::total_cmp);
    cands.dedup();
    let mut best = (f64::NEG_INFINITY, cands.first().copied().unwrap_or(0.5));
    for &c in &cands {
        let m = classification_metrics(score, y, c);
        let j = m.recall + m.specificity - 1.0;
        if j >= best.0 {
            best = (j, c);
        }
    }
    best.1
}

/// Net benefit of treating when `prob ≥ pt`: `TP/n − FP/n · pt/(1 − pt)`. Treat-all is `prob = 1` for everyone,
/// treat-none is 0.
pub fn net_benefit(prob: &[f64], y: &[bool], pt: f64) -> f64 {
    let n = prob.len() as f64;
    let (mut tp, mut fp) = (0.0, 0.0);
    for (&p, &yi) in prob.iter().zip(y) {
        if p >= pt {
            if yi { tp += 1.0 } else { fp += 1.0 }
        }
    }
    tp / n - fp / n * pt / (1.0 - pt)
}

/// One calibration group: mean predicted probability, observed event fraction, size.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct CalibrationGroup {
    /// Mean predicted probability.
    pub predicted: f64,
    /// Observed fraction of events.
    pub observed: f64,
    /// Cases in the group.
    pub n: usize,
}

/// Cases sorted by predicted probability and split into `g` groups of nearly equal size (the same grouping as
/// [`super::hypothesis::hosmer_lemeshow`]).
pub fn calibration_groups(prob: &[f64], y: &[bool], g: usize) -> Vec<CalibrationGroup> {
    let mut idx: Vec<usize> = (0..prob.len()).collect();
    idx.sort_by(|&a, &b| prob[a].total_cmp(&prob[b]));
    let n = idx.len();
    let (base, extra) = (n / g, n % g);
    let mut out = Vec::with_capacity(g);
    let mut start = 0;
    for k in 0..g {
        let size = base + usize::from(k < extra);
        let grp = &idx[start..start + size];
        start += size;
        if grp.is_empty() {
            continue;
        }
        out.push(CalibrationGroup {
            predicted: grp.iter().map(|&i| prob[i]).sum::<f64>() / size as f64,
            observed: grp.iter().filter(|&&i| y[i]).count() as f64 / size as f64,
            n: size,
        });
    }
    out
}

/// LOWESS without robustness iterations (Cleveland 1979; R's `lowess(x, y, f, iter = 0)` as `rms::calibrate`
/// uses): at each point of `at`, a tricube-weighted straight line through the `⌈f n⌉` nearest `x`.
pub fn lowess(x: &[f64], y: &[f64], f: f64, at: &[f64]) -> Vec<f64> {
    let n = x.len();
    let k = ((f * n as f64).ceil() as usize).clamp(2.min(n), n);
    at.iter()
        .map(|&a| {
            let mut d: Vec<f64> = x.iter().map(|&xi| (xi - a).abs()).collect();
            let mut sorted = d.clone();
            sorted.sort_by(f64::total_cmp);
            let h = sorted.get(k.saturating_sub(1)).copied().unwrap_or(0.0).max(1e-12);
            d.iter_mut().for_each(|di| {
                let u = (*di / h).min(1.0);
                *di = (1.0 - u * u * u).powi(3);
            });
            let sw: f64 = d.iter().sum();
            if sw <= 0.0 {
                return f64::NAN;
            }
            let mx = d.iter().zip(x).map(|(w, v)| w * v).sum::<f64>() / sw;
            let my = d.iter().zip(y).map(|(w, v)| w * v).sum::<f64>() / sw;
            let sxx = d.iter().zip(x).map(|(w, v)| w * (v - mx) * (v - mx)).sum::<f64>();
            let sxy = d
                .iter()
                .zip(x.iter().zip(y))
                .map(|(w, (u, v))| w * (u - mx) * (v - my))
                .sum::<f64>();
            if sxx <= 1e-12 * sw {
                my
            } else {
                my + sxy / sxx * (a - mx)
            }
        })
        .collect()
}

/// Bootstrap calibration of a logistic model on predictors `x`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BootstrapCalibration {
    /// Grid of predicted probabilities.
    pub predicted: Vec<f64>,
    /// Apparent calibration (LOWESS of outcome on prediction, on the fitting data).
    pub apparent: Vec<f64>,
    /// Bias-corrected calibration: apparent minus the mean bootstrap optimism.
    pub corrected: Vec<f64>,
    /// Bootstrap replicates that converged and were used.
    pub replicates: usize,
}

/// `rms::calibrate(method = "boot", B)`: refit the logistic model on `b` bootstrap samples; the optimism at each grid
/// point is the calibration on the bootstrap sample minus that of the bootstrap model on the original data.
/// Replicates where the refit fails (separation) are skipped and counted out.
pub fn bootstrap_calibration(x: &[Vec<f64>], y: &[bool], b: usize, seed: u64) -> Option<BootstrapCalibration> {
    let coef = logistic(x, y)?;
    let prob: Vec<f64> = x.iter().map(|r| logistic_probability(&coef, r)).collect();
    let (lo, hi) = prob
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &p| (a.min(p), b.max(p)));
    let grid: Vec<f64> = (0..50).map(|i| lo + (hi - lo) * i as f64 / 49.0).collect();
    let yf: Vec<f64> = y.iter().map(|&v| f64::from(u8::from(v))).collect();
    let apparent = lowess(&prob, &yf, 2.0 / 3.0, &grid);
    let mut rng = Rng::new(seed);
    let mut optimism = vec![0.0; grid.len()];
    let mut used = 0;
    for _ in 0..b {
        let idx: Vec<usize> = (0..x.len()).map(|_| rng.below(x.len())).collect();
        let xb: Vec<Vec<f64>> = idx.iter().map(|&i| x[i].clone()).collect();
        let yb: Vec<bool> = idx.iter().map(|&i| y[i]).collect();
        let Some(cb) = logistic(&xb, &yb) else { continue };
        let pb: Vec<f64> = xb.iter().map(|r| logistic_probability(&cb, r)).collect();
        let ybf: Vec<f64> = yb.iter().map(|&v| f64::from(u8::from(v))).collect();
        let on_boot = lowess(&pb, &ybf, 2.0 / 3.0, &grid);
        let po: Vec<f64> = x.iter().map(|r| logistic_probability(&cb, r)).collect();
        let on_orig = lowess(&po, &yf, 2.0 / 3.0, &grid);
        for g in 0..grid.len() {
            optimism[g] += on_boot[g] - on_orig[g];
        }
        used += 1;
    }
    if used == 0 {
        return None;
    }
    let corrected = apparent
        .iter()
        .zip(&optimism)
        .map(|(a, o)| (a - o / used as f64).clamp(0.0, 1.0))
        .collect();
    Some(BootstrapCalibration {
        predicted: grid,
        apparent,
        corrected,
        replicates: used,
    })
}
