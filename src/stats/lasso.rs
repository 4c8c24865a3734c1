//! L1-penalised (LASSO) logistic regression with glmnet's objective, λ path and cross-validation
//! (Friedman, Hastie & Tibshirani, "Regularization paths for generalized linear models via coordinate descent",
//! J. Stat. Softw. 33(1), 2010).
//!
//! Objective, for rows `xᵢ` (already z-scored by the caller; no further standardisation is applied) and 0/1 `yᵢ`:
//!
//! ```text
//!   minimise over (β₀, β):  −(1/n) Σᵢ [ yᵢ ηᵢ − log(1 + e^ηᵢ) ] + λ Σⱼ |βⱼ|,   ηᵢ = β₀ + xᵢᵀβ
//! ```
//!
//! The intercept is not penalised. Solved by glmnet's scheme: an outer IRLS (quadratic approximation with weights
//! `wᵢ = μᵢ(1 − μᵢ)`, working response `zᵢ = ηᵢ + (yᵢ − μᵢ)/wᵢ`), an inner cyclic coordinate descent with soft
//! thresholding, and warm starts down the path.
//!
//! λ path: `λ_max = maxⱼ |(1/n) Σᵢ (xᵢⱼ − x̄ⱼ)(yᵢ − ȳ)|` (the smallest λ with all βⱼ = 0), then 100 values
//! log-spaced down to `ratio · λ_max`, `ratio = 0.01` when `n < p` and `1e-4` otherwise (glmnet's
//! `lambda.min.ratio`). Cross-validation: stratified K folds, binomial deviance on the held-out fold for each λ of the
//! full-data path (as `cv.glmnet(type.measure = "deviance")`: each fold fits its own default path, read at the
//! full data's λ by linear interpolation, [`interpolate_path`]), `λ.min` the minimiser of the mean and `λ.1se` the
//! largest λ within one standard error of it.

use rayon::prelude::*;

use crate::rng::Rng;

/// Coefficients of one fit: `intercept + Σ beta[j] · x[j]`.
#[derive(Debug, Clone, PartialEq)]
pub struct LassoFit {
    /// λ this fit is for.
    pub lambda: f64,
    /// Unpenalised intercept.
    pub intercept: f64,
    /// One coefficient per column of `x`; exact zeros for unselected columns.
    pub beta: Vec<f64>,
}

impl LassoFit {
    /// Linear predictor for one row.
    pub fn linear_predictor(&self, row: &[f64]) -> f64 {
        self.intercept + row.iter().zip(&self.beta).map(|(x, b)| x * b).sum::<f64>()
    }
}

/// The path is not stopped before this many λ (glmnet's `mnlam`).
const MIN_PATH: usize = 5;

/// Solver tolerances (on the largest coefficient change, scaled as glmnet's `thresh`).
const INNER_TOL: f64 = 1e-10;
const OUTER_TOL: f64 = 1e-9;

/// The design matrix stored column by column (each column contiguous), built once per path: the coordinate
/// updates read one column at a time.
struct Columns {
    n: usize,
    p: usize,
    data: Vec<f64>,
}

impl Columns {
    fn new(x: &[Vec<f64>]) -> Self {
        let n = x.len();
        let p = x.first().map_or(0, Vec::len);
        let mut data = vec![0.0; n * p];
        for (i, row) in x.iter().enumerate() {
            for (j, &v) in row.iter().enumerate().take(p) {
                data[j * n + i] = v;
            }
        }
        Self { n, p, data }
    }

    fn col(&self, j: usize) -> &[f64] {
        &self.data[j * self.n..(j + 1) * self.n]
    }

    /// `(1/n) Σᵢ xᵢⱼ (yᵢ − μᵢ)` for every column: the negative gradient of the unpenalised loss, which the
    /// optimality (KKT) conditions compare with λ.
    fn score(&self, residual: &[f64]) -> Vec<f64> {
        let nf = self.n as f64;
        (0..self.p).map(|j| dot(self.col(j), residual) / nf).collect()
    }
}

/// `Σ aᵢ bᵢ` in four interleaved partial sums (a fixed order, the same on every CPU, that the compiler can keep in
/// vector registers).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    let tail: f64 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// `Σ aᵢ bᵢ cᵢ`, in the same order as [`dot`].
fn dot3(a: &[f64], b: &[f64], c: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (ca, cb, cc) = (a.chunks_exact(4), b.chunks_exact(4), c.chunks_exact(4));
    let (ra, rb, rc) = (ca.remainder(), cb.remainder(), cc.remainder());
    for ((x, y), z) in ca.zip(cb).zip(cc) {
        for l in 0..4 {
            acc[l] += x[l] * y[l] * z[l];
        }
    }
    let tail: f64 = ra.iter().zip(rb).zip(rc).map(|((x, y), z)| x * y * z).sum();
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Fit at one λ, starting from `start` (warm start) or zeros.
pub fn lasso_logistic(x: &[Vec<f64>], y: &[bool], lambda: f64, start: Option<&LassoFit>) -> LassoFit {
    let cols = Columns::new(x);
    let yv: Vec<f64> = y.iter().map(|&b| f64::from(u8::from(b))).collect();
    // with no previous λ, the screen keeps the columns whose score already exceeds λ (the KKT check adds any
    // the screen missed)
    solve(&cols, &yv, lambda, lambda, start).0
}

/// The fit at `lambda` and its linear predictor, warm-started from `start` (the fit at the path's previous λ,
/// `lambda_prev`).
///
/// The coordinate descent runs on a working set, glmnet's way of not sweeping thousands of columns that stay at
/// zero (Tibshirani et al., "Strong rules for discarding predictors in lasso-type problems", JRSS B 74(2), 2012):
/// the start's non-zero columns plus those the sequential strong rule keeps, `|scoreⱼ| ≥ 2λ − λ_prev`. At the
/// working set's solution the optimality condition `|scoreⱼ| ≤ λ` is checked on every other column; any column
/// that violates it joins the set and the fit is resumed. So the result solves the whole problem; the screen
/// only saves work.
fn solve(cols: &Columns, y: &[f64], lambda: f64, lambda_prev: f64, start: Option<&LassoFit>) -> (LassoFit, Vec<f64>) {
    let (n, p) = (cols.n, cols.p);
    let (mut b0, mut beta) = match start {
        Some(s) => (s.intercept, s.beta.clone()),
        None => {
            let ybar = (y.iter().sum::<f64>() / n as f64).clamp(1e-6, 1.0 - 1e-6);
            ((ybar / (1.0 - ybar)).ln(), vec![0.0; p])
        }
    };
    let mut eta = vec![b0; n];
    for (j, &b) in beta.iter().enumerate() {
        if b != 0.0 {
            for (e, &v) in eta.iter_mut().zip(cols.col(j)) {
                *e += b * v;
            }
        }
    }
    let residual = |eta: &[f64]| -> Vec<f64> { eta.iter().zip(y).map(|(&e, &yi)| yi - super::sigmoid(e)).collect() };
    let score = cols.score(&residual(&eta));
    let threshold = 2.0 * lambda - lambda_prev;
    let mut in_set: Vec<bool> = (0..p).map(|j| beta[j] != 0.0 || score[j].abs() >= threshold).collect();
    loop {
        let working: Vec<usize> = (0..p).filter(|&j| in_set[j]).collect();
        irls(cols, y, lambda, &working, &mut b0, &mut beta, &mut eta);
        // optimality outside the working set
        let score = cols.score(&residual(&eta));
        let violators: Vec<usize> = (0..p)
            .filter(|&j| !in_set[j] && soft_threshold(score[j], lambda) != 0.0)
            .collect();
        if violators.is_empty() {
            break;
        }
        for j in violators {
            in_set[j] = true;
        }
    }
    (
        LassoFit {
            lambda,
            intercept: b0,
            beta,
        },
        eta,
    )
}

/// glmnet's outer IRLS loop (a quadratic approximation with weights `wᵢ = μᵢ(1 − μᵢ)` and working response
/// `zᵢ = ηᵢ + (yᵢ − μᵢ)/wᵢ`) around its inner cyclic coordinate descent, on the columns `working` only; `eta` is
/// kept equal to `b0 + Xβ`.
fn irls(cols: &Columns, y: &[f64], lambda: f64, working: &[usize], b0: &mut f64, beta: &mut [f64], eta: &mut [f64]) {
    let n = cols.n;
    let nf = n as f64;
    for _outer in 0..200 {
        let mu: Vec<f64> = eta.iter().map(|&e| super::sigmoid(e)).collect();
        let w: Vec<f64> = mu.iter().map(|&m| (m * (1.0 - m)).max(1e-5)).collect();
        let z: Vec<f64> = (0..n).map(|i| eta[i] + (y[i] - mu[i]) / w[i]).collect();
        // residual of the working response
        let mut r: Vec<f64> = (0..n).map(|i| z[i] - eta[i]).collect();
        let xw: Vec<f64> = working
            .iter()
            .map(|&j| dot3(cols.col(j), cols.col(j), &w) / nf)
            .collect();
        let wsum: f64 = w.iter().sum::<f64>() / nf;
        let old_b0 = *b0;
        let old_beta: Vec<f64> = working.iter().map(|&j| beta[j]).collect();
        // glmnet's active-set cycling: sweep every coordinate once, then only the non-zero ones until they
        // converge, then a full sweep again; done when a full sweep changes nothing beyond the tolerance.
        let mut full_sweep = true;
        for _inner in 0..100_000 {
            let mut max_change = 0.0f64;
            // intercept
            let d0 = dot(&r, &w) / nf / wsum;
            if d0 != 0.0 {
                *b0 += d0;
                r.iter_mut().for_each(|ri| *ri -= d0);
                max_change = max_change.max(wsum * d0 * d0);
            }
            for (k, &j) in working.iter().enumerate() {
                if xw[k] == 0.0 || (!full_sweep && beta[j] == 0.0) {
                    continue;
                }
                let c = cols.col(j);
                let g = dot3(&w, c, &r) / nf + xw[k] * beta[j];
                let new = soft_threshold(g, lambda) / xw[k];
                let d = new - beta[j];
                if d != 0.0 {
                    beta[j] = new;
                    for (ri, &ci) in r.iter_mut().zip(c) {
                        *ri -= d * ci;
                    }
                    max_change = max_change.max(xw[k] * d * d);
                }
            }
            if max_change < INNER_TOL {
                if full_sweep {
                    break;
                }
                full_sweep = true;
            } else {
                full_sweep = false;
            }
        }
        for i in 0..n {
            eta[i] = z[i] - r[i];
        }
        let change = std::iter::once((*b0 - old_b0).abs())
            .chain(working.iter().zip(&old_beta).map(|(&j, b)| (beta[j] - b).abs()))
            .fold(0.0f64, f64::max);
        if change < OUTER_TOL {
            break;
        }
    }
}

/// `sign(g) (|g| − λ)₊`, with a relative 1e-12 dead band so that `λ_max` itself (computed in a different
/// summation order) gives exact zeros.
fn soft_threshold(g: f64, lambda: f64) -> f64 {
    if g.abs() <= lambda * (1.0 + 1e-12) {
        0.0
    } else if g > lambda {
        g - lambda
    } else if g < -lambda {
        g + lambda
    } else {
        0.0
    }
}

/// glmnet's λ sequence for `x`, `y`: `count` values from `λ_max` down to `ratio · λ_max`, log-spaced.
pub fn lambda_path(x: &[Vec<f64>], y: &[bool], count: usize) -> Vec<f64> {
    let n = x.len();
    let p = x.first().map_or(0, Vec::len);
    let ybar = y.iter().filter(|&&b| b).count() as f64 / n as f64;
    let lmax = (0..p)
        .map(|j| {
            let xbar = x.iter().map(|r| r[j]).sum::<f64>() / n as f64;
            (x.iter()
                .zip(y)
                .map(|(r, &yi)| (r[j] - xbar) * (f64::from(u8::from(yi)) - ybar))
                .sum::<f64>()
                / n as f64)
                .abs()
        })
        .fold(0.0f64, f64::max);
    let ratio: f64 = if n < p { 0.01 } else { 1e-4 };
    (0..count)
        .map(|k| lmax * ratio.powf(k as f64 / (count - 1).max(1) as f64))
        .collect()
}

/// The path with warm starts, stopped early as glmnet's binomial path stops (`glmnet.control()`: `mnlam = 5`,
/// `devmax = 0.999`, `fdev = 1e-5`): from the fifth λ on, once the fraction of null deviance explained exceeds
/// 0.999 (the fit is saturated), or a step down the path raises that fraction by less than 1e-5 (an absolute
/// change, as glmnet's logistic path compares it; its Gaussian path compares a relative one). The returned path
/// may therefore be shorter than `lambdas`.
pub fn lasso_path(x: &[Vec<f64>], y: &[bool], lambdas: &[f64]) -> Vec<LassoFit> {
    let cols = Columns::new(x);
    let yv: Vec<f64> = y.iter().map(|&b| f64::from(u8::from(b))).collect();
    let mut out: Vec<LassoFit> = Vec::with_capacity(lambdas.len());
    let ybar = (y.iter().filter(|&&b| b).count() as f64 / y.len().max(1) as f64).clamp(1e-12, 1.0 - 1e-12);
    let null_dev = binomial_deviance_raw(&vec![(ybar / (1.0 - ybar)).ln(); y.len()], y);
    let mut last_ratio = 0.0;
    for (k, &l) in lambdas.iter().enumerate() {
        let lambda_prev = if k == 0 { l } else { lambdas[k - 1] };
        let (fit, eta) = solve(&cols, &yv, l, lambda_prev, out.last());
        let ratio = 1.0 - binomial_deviance_raw(&eta, y) / null_dev;
        out.push(fit);
        if k + 1 >= MIN_PATH && (ratio > 0.999 || ratio - last_ratio < 1e-5) {
            break;
        }
        last_ratio = ratio;
    }
    out
}

/// Unclipped binomial deviance per observation (for the path's stopping rule).
fn binomial_deviance_raw(eta: &[f64], y: &[bool]) -> f64 {
    let s: f64 = eta
        .iter()
        .zip(y)
        .map(|(&e, &yi)| {
            // log(1 + e^η) − y η, stably
            let softplus = if e > 0.0 {
                e + (-e).exp().ln_1p()
            } else {
                e.exp().ln_1p()
            };
            softplus - if yi { e } else { 0.0 }
        })
        .sum();
    2.0 * s / eta.len().max(1) as f64
}

/// The fit at `s` read from a path at `lambdas` (decreasing) as glmnet's `predict(fit, s = s)` reads it
/// (`lambda.interp`): `s` held within the path's range, then the coefficients interpolated linearly in λ between
/// the two fits around it.
pub fn interpolate_path(lambdas: &[f64], path: &[LassoFit], s: f64) -> LassoFit {
    let (Some(&first), Some(&last)) = (lambdas.first(), lambdas.last()) else {
        return LassoFit {
            lambda: s,
            intercept: 0.0,
            beta: Vec::new(),
        };
    };
    let s_in = s.clamp(last, first);
    // the first λ at or below s_in, and the one before it
    let right = lambdas.partition_point(|&l| l > s_in).min(lambdas.len() - 1);
    let left = if lambdas[right] == s_in {
        right
    } else {
        right.saturating_sub(1)
    };
    let (l, r) = (&path[left], &path[right]);
    let frac = if left == right || (lambdas[left] - lambdas[right]).abs() < f64::EPSILON {
        1.0
    } else {
        (s_in - lambdas[right]) / (lambdas[left] - lambdas[right])
    };
    LassoFit {
        lambda: s,
        intercept: l.intercept * frac + r.intercept * (1.0 - frac),
        beta: l
            .beta
            .iter()
            .zip(&r.beta)
            .map(|(a, b)| a * frac + b * (1.0 - frac))
            .collect(),
    }
}

/// Stratified fold assignment: each class shuffled with the seed, then dealt round-robin into `k` folds.
pub fn stratified_folds(y: &[bool], k: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let mut fold = vec![0; y.len()];
    let mut next = 0;
    for class in [true, false] {
        let mut idx: Vec<usize> = (0..y.len()).filter(|&i| y[i] == class).collect();
        rng.shuffle(&mut idx);
        for i in idx {
            fold[i] = next % k;
            next += 1;
        }
    }
    fold
}

/// Cross-validated LASSO path.
#[derive(Debug, Clone)]
pub struct LassoCv {
    /// The λ path (decreasing).
    pub lambdas: Vec<f64>,
    /// Fits on all rows along the path.
    pub path: Vec<LassoFit>,
    /// Mean held-out binomial deviance per λ.
    pub cv_mean: Vec<f64>,
    /// Its standard error across folds.
    pub cv_se: Vec<f64>,
    /// Index of λ.min.
    pub index_min: usize,
    /// Index of λ.1se.
    pub index_1se: usize,
    /// Number of folds actually used.
    pub folds: usize,
    /// Pre-validated linear predictors (glmnet's `keep = TRUE`): `[λ index][row]`, each row's value from the fit
    /// of the fold that held it out.
    pub prevalidated: Vec<Vec<f64>>,
}

/// Binomial deviance per observation, `−2 mean[y log μ + (1 − y) log(1 − μ)]`, μ clipped to `[1e-5, 1 − 1e-5]`
/// as glmnet does.
pub fn binomial_deviance(eta: &[f64], y: &[bool]) -> f64 {
    let s: f64 = eta
        .iter()
        .zip(y)
        .map(|(&e, &yi)| {
            let mu = (1.0 / (1.0 + (-e).exp())).clamp(1e-5, 1.0 - 1e-5);
            if yi { mu.ln() } else { (1.0 - mu).ln() }
        })
        .sum();
    -2.0 * s / eta.len() as f64
}

/// `cv.glmnet`-style cross-validation with `k` stratified folds (reduced to the minority class size when that is
/// smaller; the caller is told through [`LassoCv::folds`]).
pub fn lasso_cv(x: &[Vec<f64>], y: &[bool], k: usize, seed: u64) -> LassoCv {
    let minority = y.iter().filter(|&&b| b).count().min(y.iter().filter(|&&b| !b).count());
    let k = k.min(minority).max(2);
    lasso_cv_on_folds(x, y, &stratified_folds(y, k, seed))
}

/// Cross-validation on given folds (`fold[i]` in `0..k`: `cv.glmnet(foldid = fold + 1)`), on the full data's
/// λ path.
pub fn lasso_cv_on_folds(x: &[Vec<f64>], y: &[bool], fold: &[usize]) -> LassoCv {
    let mut lambdas = lambda_path(x, y, 100);
    let path = lasso_path(x, y, &lambdas);
    lambdas.truncate(path.len());
    let k = fold.iter().max().map_or(1, |m| m + 1);
    // per fold: held-out deviance per λ, held-out size, and each held-out row's linear predictor per λ
    type FoldResult = (Vec<f64>, f64, Vec<(usize, Vec<f64>)>);
    let per_fold: Vec<FoldResult> = (0..k)
        .into_par_iter()
        .map(|f| {
            let mut dev_f = vec![0.0; lambdas.len()];
            let train: Vec<usize> = (0..y.len()).filter(|&i| fold[i] != f).collect();
            let test: Vec<usize> = (0..y.len()).filter(|&i| fold[i] == f).collect();
            let xt: Vec<Vec<f64>> = train.iter().map(|&i| x[i].clone()).collect();
            let yt: Vec<bool> = train.iter().map(|&i| y[i]).collect();
            // the fold's own default path (stopped early as glmnet stops it), read at the full data's λ by
            // interpolation, as cv.glmnet does when it is not given a λ sequence
            let fold_lambdas = lambda_path(&xt, &yt, 100);
            let fold_path = lasso_path(&xt, &yt, &fold_lambdas);
            let fits: Vec<LassoFit> = lambdas
                .iter()
                .map(|&s| interpolate_path(&fold_lambdas[..fold_path.len()], &fold_path, s))
                .collect();
            let yv: Vec<bool> = test.iter().map(|&i| y[i]).collect();
            let mut held_out: Vec<(usize, Vec<f64>)> = test.iter().map(|&i| (i, vec![0.0; lambdas.len()])).collect();
            for (l, d) in dev_f.iter_mut().enumerate() {
                let Some(fit) = fits.get(l) else {
                    continue;
                };
                let eta: Vec<f64> = test.iter().map(|&i| fit.linear_predictor(&x[i])).collect();
                for (h, e) in held_out.iter_mut().zip(&eta) {
                    h.1[l] = *e;
                }
                *d = binomial_deviance(&eta, &yv);
            }
            (dev_f, test.len() as f64, held_out)
        })
        .collect();
    let mut prevalidated = vec![vec![0.0; y.len()]; lambdas.len()];
    let mut dev = Vec::with_capacity(k);
    let mut sizes = Vec::with_capacity(k);
    for (d, size, held_out) in per_fold {
        dev.push(d);
        sizes.push(size);
        for (i, etas) in held_out {
            for (l, e) in etas.into_iter().enumerate() {
                prevalidated[l][i] = e;
            }
        }
    }
    let total: f64 = sizes.iter().sum();
    let mut cv_mean = vec![0.0; lambdas.len()];
    let mut cv_se = vec![0.0; lambdas.len()];
    for l in 0..lambdas.len() {
        let m = (0..k).map(|f| dev[f][l] * sizes[f]).sum::<f64>() / total;
        let v = (0..k).map(|f| (dev[f][l] - m).powi(2) * sizes[f]).sum::<f64>() / total / (k as f64 - 1.0);
        cv_mean[l] = m;
        cv_se[l] = v.sqrt();
    }
    let index_min = (0..lambdas.len())
        .min_by(|&a, &b| cv_mean[a].total_cmp(&cv_mean[b]))
        .unwrap_or(0);
    let bound = cv_mean[index_min] + cv_se[index_min];
    let index_1se = (0..=index_min).find(|&l| cv_mean[l] <= bound).unwrap_or(index_min);
    LassoCv {
        lambdas,
        path,
        cv_mean,
        cv_se,
        index_min,
        index_1se,
        folds: k,
        prevalidated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_max_zeroes_every_coefficient_and_smaller_lambda_does_not() {
        let mut rng = Rng::new(3);
        let x: Vec<Vec<f64>> = (0..80).map(|_| vec![rng.normal(), rng.normal()]).collect();
        let y: Vec<bool> = x.iter().map(|r| r[0] + 0.5 * rng.normal() > 0.0).collect();
        let path = lambda_path(&x, &y, 100);
        let at_max = lasso_logistic(&x, &y, path[0], None);
        assert!(at_max.beta.iter().all(|&b| b == 0.0));
        let below = lasso_logistic(&x, &y, path[0] * 0.9, None);
        assert!(below.beta[0] > 0.0);
    }

    #[test]
    fn the_optimality_check_recovers_columns_the_screen_wrongly_discards() {
        let mut rng = Rng::new(21);
        let x: Vec<Vec<f64>> = (0..70).map(|_| (0..30).map(|_| rng.normal()).collect()).collect();
        let y: Vec<bool> = x
            .iter()
            .map(|r| r[3] - r[17] + 0.5 * r[29] + rng.normal() > 0.0)
            .collect();
        let cols = Columns::new(&x);
        let yv: Vec<f64> = y.iter().map(|&b| f64::from(u8::from(b))).collect();
        let lambda = lambda_path(&x, &y, 100)[20];
        // λ_prev below λ: the screen threshold 2λ − λ_prev exceeds every score, so the working set starts empty
        let (screened, _) = solve(&cols, &yv, lambda, -10.0, None);
        // λ_prev far above λ: a negative threshold keeps every column, no screening at all
        let (unscreened, _) = solve(&cols, &yv, lambda, 1e6, None);
        assert!(unscreened.beta.iter().filter(|&&b| b != 0.0).count() >= 3);
        for (a, b) in screened.beta.iter().zip(&unscreened.beta) {
            assert_eq!(*a == 0.0, *b == 0.0, "the same support");
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
        assert!((screened.intercept - unscreened.intercept).abs() < 1e-6);
    }

    #[test]
    fn prevalidated_values_come_from_the_fold_that_held_the_row_out() {
        let mut rng = Rng::new(9);
        let x: Vec<Vec<f64>> = (0..60).map(|_| (0..4).map(|_| rng.normal()).collect()).collect();
        let y: Vec<bool> = x.iter().map(|r| r[0] - 0.5 * r[1] + rng.normal() > 0.0).collect();
        let cv = lasso_cv(&x, &y, 5, 3);
        let fold = stratified_folds(&y, cv.folds, 3);
        let l = cv.index_min;
        for f in 0..cv.folds {
            let train: Vec<usize> = (0..y.len()).filter(|&i| fold[i] != f).collect();
            let xt: Vec<Vec<f64>> = train.iter().map(|&i| x[i].clone()).collect();
            let yt: Vec<bool> = train.iter().map(|&i| y[i]).collect();
            // the fold's own path, read at the full data's λ (cv.glmnet's way)
            let fold_lambdas = lambda_path(&xt, &yt, 100);
            let fits = lasso_path(&xt, &yt, &fold_lambdas);
            let fit = interpolate_path(&fold_lambdas[..fits.len()], &fits, cv.lambdas[l]);
            for i in (0..y.len()).filter(|&i| fold[i] == f) {
                assert!((cv.prevalidated[l][i] - fit.linear_predictor(&x[i])).abs() < 1e-12);
            }
        }
        // and they differ from the in-sample linear predictor of the full-data fit
        let full = &cv.path[l];
        assert!((0..y.len()).any(|i| (cv.prevalidated[l][i] - full.linear_predictor(&x[i])).abs() > 1e-3));
    }

    #[test]
    fn a_path_is_read_between_its_lambdas_linearly_and_held_at_its_ends() {
        let fit = |lambda: f64, b0: f64, b: f64| LassoFit {
            lambda,
            intercept: b0,
            beta: vec![b],
        };
        let lambdas = [1.0, 0.5, 0.25];
        let path = [fit(1.0, 0.1, 0.0), fit(0.5, 0.2, 1.0), fit(0.25, 0.4, 3.0)];
        let at = |s: f64| interpolate_path(&lambdas, &path, s);
        assert_eq!(
            (at(0.5).intercept, at(0.5).beta[0]),
            (0.2, 1.0),
            "at a λ of the path: that fit"
        );
        // 0.375 is halfway between 0.5 and 0.25 in λ
        assert!((at(0.375).intercept - 0.3).abs() < 1e-15 && (at(0.375).beta[0] - 2.0).abs() < 1e-15);
        // 0.9 is 0.8 of the way from 0.5 to 1.0
        assert!((at(0.9).beta[0] - 0.2).abs() < 1e-15);
        assert_eq!(at(5.0).beta[0], 0.0, "above the path: its first fit");
        assert_eq!(at(0.01).beta[0], 3.0, "below it: its last");
        assert_eq!(at(0.01).lambda, 0.01);
    }
}
