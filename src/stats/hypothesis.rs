//! Hypothesis tests: two-sample t-tests (Student and Welch), the Mann–Whitney U test, Pearson's chi-square test of
//! independence, Fisher's exact test, the Shapiro–Wilk normality test, and the Hosmer–Lemeshow goodness-of-fit test.
//! Each follows the scipy function named in its doc, and is checked against it by `tests/stats_golden.rs`.

use super::{mean, var};
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal, StudentsT};

/// `(statistic, degrees of freedom, two-sided p)`.
pub type TestResult = (f64, f64, f64);

/// Two-sample t-test of `a` vs `b`: Student (pooled variance, `df = n₁ + n₂ − 2`) or Welch (`df` by
/// Welch–Satterthwaite), as `scipy.stats.ttest_ind(a, b, equal_var=!welch)`.
pub fn t_test(a: &[f64], b: &[f64], welch: bool) -> TestResult {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let ((m1, v1), (m2, v2)) = ((mean(a), var(a)), (mean(b), var(b)));
    let (t, df) = if welch {
        let (s1, s2) = (v1 / n1, v2 / n2);
        (
            (m1 - m2) / (s1 + s2).sqrt(),
            (s1 + s2).powi(2) / (s1 * s1 / (n1 - 1.0) + s2 * s2 / (n2 - 1.0)),
        )
    } else {
        let sp = ((n1 - 1.0) * v1 + (n2 - 1.0) * v2) / (n1 + n2 - 2.0);
        ((m1 - m2) / (sp * (1.0 / n1 + 1.0 / n2)).sqrt(), n1 + n2 - 2.0)
    };
    let p = StudentsT::new(0.0, 1.0, df)
        .map(|d| 2.0 * d.sf(t.abs()))
        .unwrap_or(f64::NAN);
    (t, df, p)
}

/// Hosmer–Lemeshow test with `g` groups: cases sorted by predicted probability and split into `g` groups of
/// (nearly) equal size (`numpy.array_split` of the sorted order); `H = Σ (O − E)² / (E (1 − E/n))` over groups;
/// `df = g − 2`.
pub fn hosmer_lemeshow(prob: &[f64], y: &[bool], g: usize) -> TestResult {
    let mut idx: Vec<usize> = (0..prob.len()).collect();
    idx.sort_by(|&a, &b| prob[a].total_cmp(&prob[b]));
    let n = idx.len();
    let (base, extra) = (n / g, n % g);
    let mut h = 0.0;
    let mut start = 0;
    for k in 0..g {
        let size = base + usize::from(k < extra);
        let group = &idx[start..start + size];
        start += size;
        let o: f64 = group.iter().filter(|&&i| y[i]).count() as f64;
        let e: f64 = group.iter().map(|&i| prob[i]).sum();
        let m = group.len() as f64;
        if e > 0.0 && e < m {
            h += (o - e).powi(2) / (e * (1.0 - e / m));
        }
    }
    let df = g as f64 - 2.0;
    let p = ChiSquared::new(df).map(|d| d.sf(h)).unwrap_or(f64::NAN);
    (h, df, p)
}

/// Mann–Whitney U test, two-sided, normal approximation with tie correction and continuity correction, as
/// `scipy.stats.mannwhitneyu(a, b, method="asymptotic")`. Returns `(U of a, z, p)`. The exact distribution (which
/// scipy's `method="auto"` uses for very small tie-free samples) is not implemented; `fit` uses this test on cohorts
/// of dozens of patients per group.
pub fn mann_whitney(a: &[f64], b: &[f64]) -> TestResult {
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let all: Vec<f64> = a.iter().chain(b).copied().collect();
    let (ranks, tie_term) = mid_ranks(&all);
    let r1: f64 = ranks[..a.len()].iter().sum();
    let u1 = r1 - n1 * (n1 + 1.0) / 2.0;
    let u = u1.max(n1 * n2 - u1);
    let n = n1 + n2;
    let sigma = (n1 * n2 / 12.0 * ((n + 1.0) - tie_term / (n * (n - 1.0)))).sqrt();
    let z = (u - n1 * n2 / 2.0 - 0.5) / sigma;
    let p = (2.0 * standard_normal().sf(z)).min(1.0);
    (u1, z, p)
}

/// Mid-ranks (1-based) of `v` and the tie term `Σ (t³ − t)` over tied groups.
fn mid_ranks(v: &[f64]) -> (Vec<f64>, f64) {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut tie = 0.0;
    let mut s = 0;
    while s < idx.len() {
        let mut e = s + 1;
        while e < idx.len() && v[idx[e]] == v[idx[s]] {
            e += 1;
        }
        let t = (e - s) as f64;
        tie += t * t * t - t;
        for &i in &idx[s..e] {
            ranks[i] = (s + e + 1) as f64 / 2.0;
        }
        s = e;
    }
    (ranks, tie)
}

fn standard_normal() -> Normal {
    Normal::standard()
}

/// Pearson's chi-square test of independence on an `r × c` table of counts (rows of equal length), with Yates'
/// continuity correction when `df = 1`, as `scipy.stats.chi2_contingency(table)`. Returns `(χ², df, p)` and the
/// smallest expected count (the caller switches to Fisher's test when it is below 5).
pub fn chi_square(table: &[Vec<u64>]) -> (TestResult, f64) {
    let rows: Vec<f64> = table.iter().map(|r| r.iter().sum::<u64>() as f64).collect();
    let ncol = table.first().map_or(0, Vec::len);
    let cols: Vec<f64> = (0..ncol).map(|c| table.iter().map(|r| r[c] as f64).sum()).collect();
    let n: f64 = rows.iter().sum();
    let df = (rows.len().saturating_sub(1) * ncol.saturating_sub(1)) as f64;
    let mut stat = 0.0;
    let mut min_expected = f64::INFINITY;
    for (r, row) in table.iter().enumerate() {
        for (c, &o) in row.iter().enumerate() {
            let e = rows[r] * cols[c] / n;
            min_expected = min_expected.min(e);
            let mut d = (o as f64 - e).abs();
            if df == 1.0 {
                d = (d - 0.5).max(0.0);
            }
            stat += d * d / e;
        }
    }
    if df == 0.0 {
        return ((0.0, 0.0, 1.0), min_expected);
    }
    let p = ChiSquared::new(df).map(|d| d.sf(stat)).unwrap_or(f64::NAN);
    ((stat, df, p), min_expected)
}

/// Fisher's exact test, two-sided, of the 2 × 2 table `[[a, b], [c, d]]`, as `scipy.stats.fisher_exact` (statrs).
pub fn fisher_exact(table: [[u64; 2]; 2]) -> f64 {
    let t = [table[0][0], table[0][1], table[1][0], table[1][1]];
    statrs::stats_tests::fisher::fishers_exact(&t, statrs::stats_tests::Alternative::TwoSided).unwrap_or(f64::NAN)
}

/// Shapiro–Wilk W test of normality (3 ≤ n ≤ 5000) by Royston's algorithm AS R94 (Appl. Statist. 44:547, 1995),
/// without censoring, in double precision, as R's `shapiro.test`. Returns `(W, p)`, or `None` for fewer than 3
/// values or zero range. Agrees with `scipy.stats.shapiro` (same algorithm) to better than 1e-8.
pub fn shapiro_wilk(values: &[f64]) -> Option<(f64, f64)> {
    let mut x: Vec<f64> = values.to_vec();
    x.sort_by(f64::total_cmp);
    let n = x.len();
    if n < 3 {
        return None;
    }
    let range = x[n - 1] - x[0];
    if range <= 1e-19 {
        return None;
    }
    let an = n as f64;
    let half = n / 2;
    // coefficients a[0..half] for the lower half (antisymmetric: a[n-1-i] = -a[i])
    let mut a = vec![0.0; half];
    if n == 3 {
        a[0] = std::f64::consts::FRAC_1_SQRT_2;
    } else {
        let norm = standard_normal();
        let m: Vec<f64> = (1..=half)
            .map(|i| norm.inverse_cdf((i as f64 - 0.375) / (an + 0.25)))
            .collect();
        let summ2 = 2.0 * m.iter().map(|v| v * v).sum::<f64>();
        let ssumm2 = summ2.sqrt();
        let rsn = 1.0 / an.sqrt();
        let a1 = poly(&[0.0, 0.221157, -0.147981, -2.07119, 4.434685, -2.706056], rsn) - m[0] / ssumm2;
        let (first_free, fac) = if n > 5 {
            let a2 = -m[1] / ssumm2 + poly(&[0.0, 0.042981, -0.293762, -1.752461, 5.682633, -3.582633], rsn);
            let fac = ((summ2 - 2.0 * m[0] * m[0] - 2.0 * m[1] * m[1]) / (1.0 - 2.0 * a1 * a1 - 2.0 * a2 * a2)).sqrt();
            a[1] = a2;
            (2, fac)
        } else {
            (1, ((summ2 - 2.0 * m[0] * m[0]) / (1.0 - 2.0 * a1 * a1)).sqrt())
        };
        a[0] = a1;
        for i in first_free..half {
            a[i] = -m[i] / fac;
        }
    }
    // W as the squared correlation of the ordered sample with the coefficients (full vector, sign convention of
    // AS R94: a[i] for the lower half is negative-going)
    let coef = |i: usize| -> f64 {
        if i < half {
            -a[i]
        } else if n % 2 == 1 && i == half {
            0.0
        } else {
            a[n - 1 - i]
        }
    };
    let xs: Vec<f64> = x.iter().map(|v| v / range).collect();
    let (ma, mx) = ((0..n).map(coef).sum::<f64>() / an, xs.iter().sum::<f64>() / an);
    let (mut ssa, mut ssx, mut sax) = (0.0, 0.0, 0.0);
    for (i, xv) in xs.iter().enumerate() {
        let (da, dx) = (coef(i) - ma, xv - mx);
        ssa += da * da;
        ssx += dx * dx;
        sax += da * dx;
    }
    let root = (ssa * ssx).sqrt();
    let w1 = (root - sax) * (root + sax) / (ssa * ssx);
    let w = 1.0 - w1;
    if n == 3 {
        let p = 6.0 / std::f64::consts::PI * (w.sqrt().asin() - (0.75f64).sqrt().asin());
        return Some((w, p.max(0.0)));
    }
    let mut y = w1.ln();
    let ln_n = an.ln();
    let (m, s) = if n <= 11 {
        let gamma = poly(&[-2.273, 0.459], an);
        if y >= gamma {
            return Some((w, 1e-99));
        }
        y = -(gamma - y).ln();
        (
            poly(&[0.544, -0.39978, 0.025054, -6.714e-4], an),
            poly(&[1.3822, -0.77857, 0.062767, -0.0020322], an).exp(),
        )
    } else {
        (
            poly(&[-1.5861, -0.31082, -0.083751, 0.0038915], ln_n),
            poly(&[-0.4803, -0.082676, 0.0030302], ln_n).exp(),
        )
    };
    Some((w, standard_normal().sf((y - m) / s)))
}

/// `c[0] + c[1] x + c[2] x² + …`.
fn poly(c: &[f64], x: f64) -> f64 {
    c.iter().rev().fold(0.0, |acc, &k| acc * x + k)
}
