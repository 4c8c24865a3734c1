//! Statistics shared by `synth` (the planted-signal check) and, later, `fit`: ROC AUC and logistic
//! regression by Newton–Raphson (IRLS). Pure functions, no I/O.

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

/// Unpenalised logistic regression with an intercept. `x` holds one row per observation. Returns the
/// coefficients `[intercept, β₁, …]`, or `None` if Newton–Raphson does not converge (e.g. separation).
pub fn logistic(x: &[Vec<f64>], y: &[bool]) -> Option<Vec<f64>> {
    let p = x.first()?.len() + 1;
    let mut beta = vec![0.0; p];
    for _ in 0..100 {
        let mut grad = vec![0.0; p];
        let mut hess = vec![0.0; p * p];
        for (row, &yi) in x.iter().zip(y) {
            let xi: Vec<f64> = std::iter::once(1.0).chain(row.iter().copied()).collect();
            let eta: f64 = xi.iter().zip(&beta).map(|(a, b)| a * b).sum();
            let mu = 1.0 / (1.0 + (-eta).exp());
            let w = mu * (1.0 - mu);
            for a in 0..p {
                grad[a] += xi[a] * (if yi { 1.0 } else { 0.0 } - mu);
                for b in 0..p {
                    hess[a * p + b] += w * xi[a] * xi[b];
                }
            }
        }
        let step = solve(hess, grad, p)?;
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

/// Solve `A x = b` (Gaussian elimination with partial pivoting).
fn solve(mut a: Vec<f64>, mut b: Vec<f64>, n: usize) -> Option<Vec<f64>> {
    for c in 0..n {
        let piv = (c..n).max_by(|&i, &j| a[i * n + c].abs().total_cmp(&a[j * n + c].abs()))?;
        if a[piv * n + c].abs() < 1e-300 {
            return None;
        }
        for k in 0..n {
            a.swap(c * n + k, piv * n + k);
        }
        b.swap(c, piv);
        for r in c + 1..n {
            let f = a[r * n + c] / a[c * n + c];
            for k in c..n {
                a[r * n + k] -= f * a[c * n + k];
            }
            b[r] -= f * b[c];
        }
    }
    let mut x = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| a[r * n + k] * x[k]).sum();
        x[r] = (b[r] - s) / a[r * n + r];
    }
    Some(x)
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
