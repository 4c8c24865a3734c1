//! Hypothesis tests: two-sample t-tests (Student and Welch) and the Hosmer–Lemeshow goodness-of-fit test.

use super::{mean, var};
use statrs::distribution::{ChiSquared, ContinuousCDF, StudentsT};

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
