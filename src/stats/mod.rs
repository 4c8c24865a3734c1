//! Statistics shared by `synth` (the planted-signal check) and `fit`: ROC AUC with DeLong's variance, logistic
//! regression by Newton–Raphson (IRLS) with standard errors and Wald tests, LASSO logistic regression
//! ([`lasso`]), hypothesis tests ([`hypothesis`]) and evaluation of risk scores ([`evaluation`]). Pure functions, no I/O; distributions from `statrs`. Checked against scipy and
//! statsmodels by `tests/stats_golden.rs` (reference numbers written by `tests/golden/make_stats_golden.py`).

pub mod evaluation;
pub mod hypothesis;
pub mod lasso;

use crate::linalg::solve;

/// Area under the ROC curve: the probability that a random positive scores above a random negative, ties
/// counting one half (the Mann–Whitney U statistic divided by `n₊ n₋`).
pub fn auc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // mid-ranks
    let mut ranks = vec![0.0; scores.len()];
    let mut s = 0;
    while s < idx.len() {
        let mut e = s + 1;
        while e < idx.len() && scores[idx[e]] == scores[idx[s]] {
            e += 1;
        }
        let r = (s + e + 1) as f64 / 2.0;
        for &t in &idx[s..e] {
            ranks[t] = r;
        }
        s = e;
    }
    let npos = labels.iter().filter(|&&l| l).count() as f64;
    let nneg = labels.len() as f64 - npos;
    let rsum: f64 = ranks.iter().zip(labels).filter(|(_, l)| **l).map(|(r, _)| r).sum();
    (rsum - npos * (npos + 1.0) / 2.0) / (npos * nneg)
}

/// A fitted logistic regression: coefficients `[intercept, β₁, …]`, their standard errors (from the inverse
/// observed information), Wald z and two-sided p.
#[derive(Debug, Clone, PartialEq)]
pub struct LogisticFit {
    /// Coefficients.
    pub coef: Vec<f64>,
    /// Standard errors.
    pub se: Vec<f64>,
    /// Wald z = coef / se.
    pub z: Vec<f64>,
    /// Two-sided p of z under N(0, 1).
    pub p: Vec<f64>,
}

/// [`logistic`] with standard errors and Wald tests (as statsmodels' `Logit`).
pub fn logistic_fit(x: &[Vec<f64>], y: &[bool]) -> Option<LogisticFit> {
    let coef = logistic(x, y)?;
    let p = coef.len();
    let (_, info) = score_and_information(x, y, &coef);
    let mut se = Vec::with_capacity(p);
    for c in 0..p {
        let mut e = vec![0.0; p];
        e[c] = 1.0;
        let col = solve(info.clone(), e, p)?;
        se.push(col[c].sqrt());
    }
    let z: Vec<f64> = coef.iter().zip(&se).map(|(b, s)| b / s).collect();
    let pv = z.iter().map(|&z| normal_two_sided_p(z)).collect();
    Some(LogisticFit { coef, se, z, p: pv })
}

/// AUC with DeLong's variance (DeLong, DeLong & Clarke-Pearson, Biometrics 1988) and its 95 % CI
/// (`auc ± 1.96 √var`, clipped to [0, 1]).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct DelongAuc {
    /// AUC.
    pub auc: f64,
    /// DeLong variance.
    pub variance: f64,
    /// 95 % CI.
    pub ci95: (f64, f64),
}

/// Structural components `V10` (per positive) and `V01` (per negative): the fraction of the other class the case
/// beats, ties one half.
fn placements(scores: &[f64], labels: &[bool]) -> (Vec<f64>, Vec<f64>) {
    let pos: Vec<f64> = scores
        .iter()
        .zip(labels)
        .filter(|(_, l)| **l)
        .map(|(s, _)| *s)
        .collect();
    let neg: Vec<f64> = scores
        .iter()
        .zip(labels)
        .filter(|(_, l)| !**l)
        .map(|(s, _)| *s)
        .collect();
    let psi = |a: f64, b: f64| {
        if a > b {
            1.0
        } else if a == b {
            0.5
        } else {
            0.0
        }
    };
    let v10 = pos
        .iter()
        .map(|&p| neg.iter().map(|&n| psi(p, n)).sum::<f64>() / neg.len() as f64)
        .collect();
    let v01 = neg
        .iter()
        .map(|&n| pos.iter().map(|&p| psi(p, n)).sum::<f64>() / pos.len() as f64)
        .collect();
    (v10, v01)
}

/// Arithmetic mean.
pub(crate) fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Sample covariance (divisor `n − 1`).
pub(crate) fn cov(a: &[f64], b: &[f64]) -> f64 {
    let (ma, mb) = (mean(a), mean(b));
    a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum::<f64>() / (a.len() as f64 - 1.0)
}

/// Sample variance (divisor `n − 1`).
pub(crate) fn var(v: &[f64]) -> f64 {
    cov(v, v)
}

/// Two-sided p of a standard-normal statistic.
fn normal_two_sided_p(z: f64) -> f64 {
    use statrs::distribution::{ContinuousCDF, Normal};
    Normal::new(0.0, 1.0).map(|d| 2.0 * d.sf(z.abs())).unwrap_or(f64::NAN)
}

/// DeLong AUC and variance.
pub fn delong(scores: &[f64], labels: &[bool]) -> DelongAuc {
    let (v10, v01) = placements(scores, labels);
    let auc = mean(&v10);
    let variance = var(&v10) / v10.len() as f64 + var(&v01) / v01.len() as f64;
    let h = 1.959_963_984_540_054 * variance.sqrt();
    DelongAuc {
        auc,
        variance,
        ci95: ((auc - h).max(0.0), (auc + h).min(1.0)),
    }
}

/// Paired DeLong test of two scores on the same cases: `(z, two-sided p)`.
pub fn delong_paired(a: &[f64], b: &[f64], labels: &[bool]) -> (f64, f64) {
    let (a10, a01) = placements(a, labels);
    let (b10, b01) = placements(b, labels);
    let (m, n) = (a10.len() as f64, a01.len() as f64);
    let (auc_a, auc_b) = (mean(&a10), mean(&b10));
    let v = (var(&a10) + var(&b10) - 2.0 * cov(&a10, &b10)) / m + (var(&a01) + var(&b01) - 2.0 * cov(&a01, &b01)) / n;
    let z = (auc_a - auc_b) / v.sqrt();
    (z, normal_two_sided_p(z))
}

/// Probability `1 / (1 + e^(−η))`, `η = coef[0] + Σ coef[k+1] row[k]`, of a logistic model with an intercept.
pub fn logistic_probability(coef: &[f64], row: &[f64]) -> f64 {
    sigmoid(coef[0] + row.iter().zip(&coef[1..]).map(|(a, b)| a * b).sum::<f64>())
}

/// The logistic function `1 / (1 + e^(−x))`.
pub fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Unpenalised logistic regression with an intercept. `x` holds one row per observation. Returns the
/// coefficients `[intercept, β₁, …]`, or `None` if Newton–Raphson does not converge (e.g. separation).
pub fn logistic(x: &[Vec<f64>], y: &[bool]) -> Option<Vec<f64>> {
    let p = x.first()?.len() + 1;
    let mut beta = vec![0.0; p];
    for _ in 0..100 {
        let (grad, info) = score_and_information(x, y, &beta);
        let step = solve(info, grad, p)?;
        let mut change = 0.0f64;
        for (b, s) in beta.iter_mut().zip(&step) {
            *b += s;
            change = change.max(s.abs());
        }
        if change < 1e-10 {
            return Some(beta);
        }
        if beta.iter().any(|b| b.abs() > 1e6 || !b.is_finite()) {
            return None;
        }
    }
    None
}

/// Score (gradient of the log-likelihood) and Fisher information `Σ μ(1−μ) xᵢxᵢᵀ` (row-major `p×p`) of the
/// logistic model with an intercept at `beta`.
fn score_and_information(x: &[Vec<f64>], y: &[bool], beta: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let p = beta.len();
    let mut grad = vec![0.0; p];
    let mut info = vec![0.0; p * p];
    for (row, &yi) in x.iter().zip(y) {
        let xi: Vec<f64> = std::iter::once(1.0).chain(row.iter().copied()).collect();
        let eta: f64 = xi.iter().zip(beta).map(|(a, b)| a * b).sum();
        let mu = 1.0 / (1.0 + (-eta).exp());
        let w = mu * (1.0 - mu);
        for a in 0..p {
            grad[a] += xi[a] * (f64::from(u8::from(yi)) - mu);
            for b in 0..p {
                info[a * p + b] += w * xi[a] * xi[b];
            }
        }
    }
    (grad, info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_of_a_known_ranking() {
        // positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4),(0.8>0.1),(0.4=0.4 → ½),(0.4>0.1) → 3.5/4
        assert_eq!(auc(&[0.8, 0.4, 0.4, 0.1], &[true, true, false, false]), 0.875);
    }

    #[test]
    fn logistic_recovers_a_saturated_model() {
        // one binary covariate: the MLE reproduces the observed log-odds in each group
        let x: Vec<Vec<f64>> = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
            .iter()
            .map(|&v| vec![v])
            .collect();
        let y = [true, false, false, false, true, true, true, false];
        let b = logistic(&x, &y).unwrap();
        assert!((b[0] - (1.0f64 / 3.0).ln()).abs() < 1e-9);
        assert!((b[0] + b[1] - 3.0f64.ln()).abs() < 1e-9);
    }
}
