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

/// LOWESS without robustness iterations, as R's `lowess(x, y, f, iter = 0)` computes it (Cleveland 1979, the
/// algorithm of his `lowess` Fortran that R's C port follows), evaluated at `at` by linear interpolation as
/// `rms::calibrate` does (`approx(lowess(x, y, iter = 0), xout = at, ties = first)`; NaN outside the range of
/// `x`, as `approx` gives NA):
///
/// - the points sorted by `x` (stably); each fit uses the `ns = max(2, min(n, ⌊f n + 10⁻⁷⌋))` nearest points: the
///   window `[left, right]` slides right while that does not widen it, and takes in any further point tied
///   within 0.999 of its radius `h`;
/// - weights `(1 − (r/h)³)³` for `r = |xⱼ − x|` (1 for `r ≤ 0.001 h`), a weighted straight line unless the
///   weighted spread of `x` is at most 0.001 of the range of `x` (then the weighted mean);
/// - the line is fitted at a sorted `xᵢ`, and the points within `δ = 0.01 · range(x)` after it are interpolated
///   between fitted points (points equal to it copy its value).
pub fn lowess(x: &[f64], y: &[f64], f: f64, at: &[f64]) -> Vec<f64> {
    let (xs, fitted) = lowess_fit(x, y, f);
    at.iter().map(|&a| interpolate_first(&xs, &fitted, a)).collect()
}

/// R's `lowess(x, y, f, iter = 0)`: the sorted `x` and the fitted value at each.
fn lowess_fit(x: &[f64], y: &[f64], f: f64) -> (Vec<f64>, Vec<f64>) {
    let n = x.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let xs: Vec<f64> = order.iter().map(|&i| x[i]).collect();
    let ys: Vec<f64> = order.iter().map(|&i| y[i]).collect();
    if n < 2 {
        return (xs, ys);
    }
    let ns = ((f * n as f64 + 1e-7) as usize).clamp(2, n);
    let range = xs[n - 1] - xs[0];
    let delta = 0.01 * range;
    let mut fitted = vec![0.0; n];
    let (mut left, mut right) = (0usize, ns - 1);
    let mut last: Option<usize> = None;
    let mut i = 0usize;
    loop {
        // slide the window right while that narrows it around xs[i]
        while right + 1 < n && xs[i] - xs[left] > xs[right + 1] - xs[i] {
            left += 1;
            right += 1;
        }
        fitted[i] = local_line(&xs, &ys, xs[i], left, right, range).unwrap_or(ys[i]);
        if let Some(l) = last
            && l + 1 < i
        {
            let denom = xs[i] - xs[l];
            for j in l + 1..i {
                let alpha = (xs[j] - xs[l]) / denom;
                fitted[j] = alpha * fitted[i] + (1.0 - alpha) * fitted[l];
            }
        }
        let mut l = i;
        let cut = xs[l] + delta;
        let mut next = l + 1;
        while next < n {
            if xs[next] > cut {
                break;
            }
            if xs[next] == xs[l] {
                fitted[next] = fitted[l];
                l = next;
            }
            next += 1;
        }
        last = Some(l);
        if l + 1 >= n {
            break;
        }
        i = (l + 1).max(next - 1);
    }
    (xs, fitted)
}

/// The tricube-weighted straight line through the window `[left, right]` (and any later point within 0.999 of
/// its radius) of sorted `xs`, evaluated at `at`; `None` when every weight is zero.
fn local_line(xs: &[f64], ys: &[f64], at: f64, left: usize, right: usize, range: f64) -> Option<f64> {
    let h = (at - xs[left]).max(xs[right] - at);
    let (h9, h1) = (0.999 * h, 0.001 * h);
    let mut w = Vec::with_capacity(right - left + 2);
    let mut total = 0.0;
    for &xj in &xs[left..] {
        let r = (xj - at).abs();
        if r <= h9 {
            let wj = if r <= h1 { 1.0 } else { (1.0 - (r / h).powi(3)).powi(3) };
            w.push(wj);
            total += wj;
        } else if xj > at {
            break;
        } else {
            w.push(0.0);
        }
    }
    if total <= 0.0 {
        return None;
    }
    w.iter_mut().for_each(|wj| *wj /= total);
    let window = &xs[left..left + w.len()];
    if h > 0.0 {
        let mean: f64 = w.iter().zip(window).map(|(wj, xj)| wj * xj).sum();
        let spread: f64 = w
            .iter()
            .zip(window)
            .map(|(wj, xj)| wj * (xj - mean) * (xj - mean))
            .sum();
        if spread.sqrt() > 0.001 * range {
            let slope = (at - mean) / spread;
            w.iter_mut()
                .zip(window)
                .for_each(|(wj, xj)| *wj *= slope * (xj - mean) + 1.0);
        }
    }
    Some(w.iter().zip(&ys[left..]).map(|(wj, yj)| wj * yj).sum())
}

/// Linear interpolation of `(xs, ys)` (sorted `xs`; of tied `xs` the first `ys`) at `at`, NaN outside: R's
/// `approx(xs, ys, xout = at, ties = function(v) v[1])`.
fn interpolate_first(xs: &[f64], ys: &[f64], at: f64) -> f64 {
    let (Some(&lo), Some(&hi)) = (xs.first(), xs.last()) else {
        return f64::NAN;
    };
    if !(lo..=hi).contains(&at) {
        return f64::NAN;
    }
    // the first index whose x is ≥ at, and the first of the x just below it
    let upper = xs.partition_point(|&v| v < at);
    if xs[upper] == at {
        return ys[upper];
    }
    let below = xs[upper - 1];
    let lower = xs.partition_point(|&v| v < below);
    let t = (at - xs[lower]) / (xs[upper] - xs[lower]);
    ys[lower] + t * (ys[upper] - ys[lower])
}

/// `rms::calibrate`'s grid of predicted probabilities: 50 values evenly from the 5th smallest to the 5th largest
/// prediction (from the smallest to the largest when there are fewer than 11, where rms refuses).
fn calibration_grid(prob: &[f64]) -> Vec<f64> {
    let mut p = prob.to_vec();
    p.sort_by(f64::total_cmp);
    let n = p.len();
    let (lo, hi) = match n {
        0 => return Vec::new(),
        1..=10 => (p[0], p[n - 1]),
        _ => (p[4], p[n - 5]),
    };
    (0..50).map(|i| lo + (hi - lo) * i as f64 / 49.0).collect()
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
/// point is the calibration on the bootstrap sample minus that of the bootstrap model on the original data, and
/// the corrected curve is the apparent one minus the mean optimism (not clipped to [0, 1], as rms does not: a
/// plot clips). Replicates where the refit fails (separation) are skipped and counted out; a replicate whose
/// smooth does not reach a grid point is left out of that point's mean (rms's `predab.resample`), and a point no
/// replicate reaches is NaN. The grid (`calibration_grid`) and the smooth ([`lowess`]) are rms's.
pub fn bootstrap_calibration(x: &[Vec<f64>], y: &[bool], b: usize, seed: u64) -> Option<BootstrapCalibration> {
    let coef = logistic(x, y)?;
    let prob: Vec<f64> = x.iter().map(|r| logistic_probability(&coef, r)).collect();
    let grid = calibration_grid(&prob);
    let yf: Vec<f64> = y.iter().map(|&v| f64::from(u8::from(v))).collect();
    let apparent = lowess(&prob, &yf, 2.0 / 3.0, &grid);
    let mut rng = Rng::new(seed);
    // per grid point: the optimism summed over the replicates that have it, and their number (a replicate's
    // smooth may not reach a grid point: rms leaves it out of that point's mean, as here)
    let mut optimism = vec![0.0; grid.len()];
    let mut counted = vec![0usize; grid.len()];
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
            let o = on_boot[g] - on_orig[g];
            if o.is_finite() {
                optimism[g] += o;
                counted[g] += 1;
            }
        }
        used += 1;
    }
    if used == 0 {
        return None;
    }
    let corrected = apparent
        .iter()
        .zip(optimism.iter().zip(&counted))
        .map(|(a, (o, &k))| if k > 0 { a - o / k as f64 } else { f64::NAN })
        .collect();
    Some(BootstrapCalibration {
        predicted: grid,
        apparent,
        corrected,
        replicates: used,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Net benefit worked by hand on eight cases (Vickers & Elkin's definition, no package).
    #[test]
    fn net_benefit_of_a_hand_worked_example() {
        let prob = [0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1];
        let y = [true, true, false, true, false, true, false, false];
        // pt = 0.5: treated 0.9, 0.8, 0.7, 0.6 → TP 3, FP 1: 3/8 − 1/8 · 0.5/0.5 = 0.25
        assert!((net_benefit(&prob, &y, 0.5) - 0.25).abs() < 1e-15);
        // pt = 0.25: treated the first six → TP 4, FP 2: 4/8 − 2/8 · 0.25/0.75 = 5/12
        assert!((net_benefit(&prob, &y, 0.25) - 5.0 / 12.0).abs() < 1e-15);
        // treat all at pt = 0.25: TP 4, FP 4: 4/8 − 4/8 · 1/3 = 1/3; treat none: 0
        assert!((net_benefit(&[1.0; 8], &y, 0.25) - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!(net_benefit(&[0.0; 8], &y, 0.25), 0.0);
        // a case exactly at the threshold is treated (prob ≥ pt): 0.6 at pt = 0.6 → TP 3, FP 1: 3/8 − 1/8 · 1.5
        assert!((net_benefit(&prob, &y, 0.6) - (3.0 / 8.0 - 1.5 / 8.0)).abs() < 1e-15);
    }

    /// R's `lowess(x, y, iter = 0)` on five points, worked by hand: ns = ⌊2/3 · 5⌋ = 3 nearest points, and the
    /// `approx` between the fitted points.
    #[test]
    fn lowess_of_a_hand_worked_example() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y = [0.0, 1.0, 0.0, 1.0, 1.0];
        // At x = 3 the window is {2, 3, 4}, h = 1: weights 0 at distance 1 (≥ 0.999 h), 1 at 3 → the fit is y(3) = 0.
        // At x = 1 the window is {1, 2, 3}, h = 2: weights 1, (1 − 1/8)³ = 0.669921875, 0 → a line through the
        // two weighted points (1, 0) and (2, 1), evaluated at 1: 0.
        let fitted = lowess(&x, &y, 2.0 / 3.0, &x);
        assert!(fitted[0].abs() < 1e-12, "{fitted:?}");
        assert!(fitted[2].abs() < 1e-12, "{fitted:?}");
        // halfway between x = 1 and x = 2: the mean of their fitted values
        let mid = lowess(&x, &y, 2.0 / 3.0, &[1.5])[0];
        assert!((mid - (fitted[0] + fitted[1]) / 2.0).abs() < 1e-12);
        // outside the data: NaN, as approx gives NA
        assert!(lowess(&x, &y, 2.0 / 3.0, &[0.5])[0].is_nan());
    }
}
