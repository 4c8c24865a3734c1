//! C-support vector classification with the RBF kernel `K(a, b) = exp(−γ ‖a − b‖²)` and Platt probabilities, as
//! libsvm (and so scikit-learn's `SVC(probability=True)`) computes them:
//!
//! - the dual `min ½ αᵀQα − Σα`, `Qᵢⱼ = yᵢyⱼKᵢⱼ`, `0 ≤ α ≤ C`, `yᵀα = 0`, solved by SMO with second-order working-set
//!   selection (Fan, Chen & Lin, JMLR 6:1889, 2005), stopping at a maximal violation below 1e-3;
//! - the decision value `f(x) = Σ αᵢyᵢK(xᵢ, x) − ρ`, with ρ the mean of `yᵢ∇ᵢ` over free support vectors;
//! - `P(y = 1 | f) = 1 / (1 + exp(A f + B))`, with A, B fitted by Newton's method with backtracking (Lin, Lin &
//!   Weng, Mach. Learn. 68:267, 2007) to decision values from an internal 5-fold cross-validation, with Platt's
//!   smoothed targets `(N₊ + 1)/(N₊ + 2)` and `1/(N₋ + 2)`.
//!
//! γ defaults to scikit-learn's `"scale"`: `1 / (p · Var(X))` over all training entries.

use super::Classifier;
use crate::rng::Rng;

/// A fitted SVC with its Platt sigmoid.
#[derive(Debug, Clone)]
pub struct Svc {
    decision: Decision,
    gamma: f64,
    platt: (f64, f64),
}

fn rbf(a: &[f64], b: &[f64], gamma: f64) -> f64 {
    (-gamma * a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>()).exp()
}

/// Decision function without Platt: support vectors, `αᵢyᵢ`, ρ.
#[derive(Debug, Clone)]
struct Decision {
    support: Vec<Vec<f64>>,
    coef: Vec<f64>,
    rho: f64,
}

impl Decision {
    fn value(&self, row: &[f64], gamma: f64) -> f64 {
        self.support
            .iter()
            .zip(&self.coef)
            .map(|(s, c)| c * rbf(s, row, gamma))
            .sum::<f64>()
            - self.rho
    }
}

/// SMO for the C-SVC dual.
fn solve(x: &[Vec<f64>], y: &[bool], c: f64, gamma: f64) -> Decision {
    let n = x.len();
    let ys: Vec<f64> = y.iter().map(|&b| if b { 1.0 } else { -1.0 }).collect();
    let k: Vec<f64> = (0..n * n).map(|t| rbf(&x[t / n], &x[t % n], gamma)).collect();
    let mut alpha = vec![0.0; n];
    let mut grad = vec![-1.0; n];
    let up = |a: f64, yy: f64| (yy > 0.0 && a < c) || (yy < 0.0 && a > 0.0);
    let low = |a: f64, yy: f64| (yy > 0.0 && a > 0.0) || (yy < 0.0 && a < c);
    for _ in 0..(100 * n).max(10_000) {
        // i: maximal −y∇ over I_up
        let mut gmax = f64::NEG_INFINITY;
        let mut i = usize::MAX;
        for t in 0..n {
            if up(alpha[t], ys[t]) && -ys[t] * grad[t] >= gmax {
                gmax = -ys[t] * grad[t];
                i = t;
            }
        }
        // j: second-order choice over I_low
        let mut gmax2 = f64::NEG_INFINITY;
        let mut j = usize::MAX;
        let mut best = f64::INFINITY;
        for t in 0..n {
            if !low(alpha[t], ys[t]) {
                continue;
            }
            gmax2 = gmax2.max(ys[t] * grad[t]);
            if i == usize::MAX {
                continue;
            }
            let b = gmax + ys[t] * grad[t];
            if b > 0.0 {
                let a = (k[i * n + i] + k[t * n + t] - 2.0 * k[i * n + t]).max(1e-12);
                if -b * b / a <= best {
                    best = -b * b / a;
                    j = t;
                }
            }
        }
        if i == usize::MAX || j == usize::MAX || gmax + gmax2 < 1e-3 {
            break;
        }
        // move along α_i += y_i t, α_j −= y_j t
        let a = (k[i * n + i] + k[j * n + j] - 2.0 * k[i * n + j]).max(1e-12);
        let mut t = (gmax + ys[j] * grad[j]) / a;
        let (lo_i, hi_i) = if ys[i] > 0.0 {
            (-alpha[i], c - alpha[i])
        } else {
            (alpha[i] - c, alpha[i])
        };
        let (lo_j, hi_j) = if ys[j] > 0.0 {
            (alpha[j] - c, alpha[j])
        } else {
            (-alpha[j], c - alpha[j])
        };
        t = t.clamp(lo_i.max(lo_j), hi_i.min(hi_j));
        let (di, dj) = (ys[i] * t, -ys[j] * t);
        alpha[i] += di;
        alpha[j] += dj;
        for m in 0..n {
            grad[m] += ys[m] * (ys[i] * k[m * n + i] * di + ys[j] * k[m * n + j] * dj);
        }
    }
    // ρ
    let (mut ub, mut lb, mut sum_free, mut nfree) = (f64::INFINITY, f64::NEG_INFINITY, 0.0, 0);
    for t in 0..n {
        let yg = ys[t] * grad[t];
        if alpha[t] >= c {
            if ys[t] < 0.0 { ub = ub.min(yg) } else { lb = lb.max(yg) }
        } else if alpha[t] <= 0.0 {
            if ys[t] > 0.0 { ub = ub.min(yg) } else { lb = lb.max(yg) }
        } else {
            sum_free += yg;
            nfree += 1;
        }
    }
    let rho = if nfree > 0 {
        sum_free / f64::from(nfree)
    } else {
        (ub + lb) / 2.0
    };
    let sv: Vec<usize> = (0..n).filter(|&t| alpha[t] > 0.0).collect();
    Decision {
        support: sv.iter().map(|&t| x[t].clone()).collect(),
        coef: sv.iter().map(|&t| alpha[t] * ys[t]).collect(),
        rho,
    }
}

/// Platt's sigmoid `(A, B)` for decision values `f` (Lin, Lin & Weng's Newton method).
fn platt(f: &[f64], y: &[bool]) -> (f64, f64) {
    let prior1 = y.iter().filter(|&&b| b).count() as f64;
    let prior0 = y.len() as f64 - prior1;
    let (hi, lo) = ((prior1 + 1.0) / (prior1 + 2.0), 1.0 / (prior0 + 2.0));
    let t: Vec<f64> = y.iter().map(|&b| if b { hi } else { lo }).collect();
    let (mut a, mut b) = (0.0, ((prior0 + 1.0) / (prior1 + 1.0)).ln());
    let objective = |a: f64, b: f64| -> f64 {
        f.iter()
            .zip(&t)
            .map(|(&fi, &ti)| {
                let z = fi * a + b;
                if z >= 0.0 {
                    ti * z + (1.0 + (-z).exp()).ln()
                } else {
                    (ti - 1.0) * z + (1.0 + z.exp()).ln()
                }
            })
            .sum()
    };
    let mut fval = objective(a, b);
    for _ in 0..100 {
        let (mut h11, mut h22, mut h21, mut g1, mut g2) = (1e-12, 1e-12, 0.0, 0.0, 0.0);
        for (&fi, &ti) in f.iter().zip(&t) {
            let z = fi * a + b;
            let (p, q) = if z >= 0.0 {
                let e = (-z).exp();
                (e / (1.0 + e), 1.0 / (1.0 + e))
            } else {
                let e = z.exp();
                (1.0 / (1.0 + e), e / (1.0 + e))
            };
            let d2 = p * q;
            h11 += fi * fi * d2;
            h22 += d2;
            h21 += fi * d2;
            let d1 = ti - p;
            g1 += fi * d1;
            g2 += d1;
        }
        if g1.abs() < 1e-5 && g2.abs() < 1e-5 {
            break;
        }
        let det = h11 * h22 - h21 * h21;
        let (da, db) = (-(h22 * g1 - h21 * g2) / det, -(-h21 * g1 + h11 * g2) / det);
        let gd = g1 * da + g2 * db;
        let mut step = 1.0;
        while step >= 1e-10 {
            let (na, nb) = (a + step * da, b + step * db);
            let nf = objective(na, nb);
            if nf < fval + 1e-4 * step * gd {
                a = na;
                b = nb;
                fval = nf;
                break;
            }
            step /= 2.0;
        }
        if step < 1e-10 {
            break;
        }
    }
    (a, b)
}

impl Svc {
    /// Fit with cost `c`; `seed` drives the fold assignment of the internal Platt cross-validation.
    pub fn fit(x: &[Vec<f64>], y: &[bool], c: f64, seed: u64) -> Svc {
        let p = x.first().map_or(1, Vec::len) as f64;
        let all: Vec<f64> = x.iter().flatten().copied().collect();
        let m = all.iter().sum::<f64>() / all.len() as f64;
        let var = all.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / all.len() as f64;
        let gamma = if var > 0.0 { 1.0 / (p * var) } else { 1.0 };
        // internal 5-fold decision values for Platt
        let mut perm: Vec<usize> = (0..x.len()).collect();
        Rng::new(seed).shuffle(&mut perm);
        let folds = 5.min(x.len());
        let mut dec = vec![0.0; x.len()];
        for f in 0..folds {
            let test: Vec<usize> = perm.iter().copied().skip(f).step_by(folds).collect();
            let train: Vec<usize> = perm.iter().copied().filter(|i| !test.contains(i)).collect();
            let yt: Vec<bool> = train.iter().map(|&i| y[i]).collect();
            let npos = yt.iter().filter(|&&b| b).count();
            if npos == 0 || npos == yt.len() {
                for &i in &test {
                    dec[i] = if npos > 0 { 1.0 } else { -1.0 };
                }
                continue;
            }
            let xt: Vec<Vec<f64>> = train.iter().map(|&i| x[i].clone()).collect();
            let d = solve(&xt, &yt, c, gamma);
            for &i in &test {
                dec[i] = d.value(&x[i], gamma);
            }
        }
        let platt = platt(&dec, y);
        Svc {
            decision: solve(x, y, c, gamma),
            gamma,
            platt,
        }
    }

    /// Decision value `f(x)` (positive: the positive class).
    pub fn decision(&self, row: &[f64]) -> f64 {
        self.decision.value(row, self.gamma)
    }
}

impl Classifier for Svc {
    fn predict_proba(&self, row: &[f64]) -> f64 {
        let f = self.decision(row);
        let z = self.platt.0 * f + self.platt.1;
        if z >= 0.0 {
            let e = (-z).exp();
            e / (1.0 + e)
        } else {
            1.0 / (1.0 + z.exp())
        }
    }
}
