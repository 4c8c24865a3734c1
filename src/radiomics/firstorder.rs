//! First-order statistics: the distribution of intensities inside the ROI.
//!
//! Let `X` be the `N_p` ROI intensities, `c` the `voxelArrayShift`, `V` the voxel volume, `P(i)` the
//! discretised histogram with `N_g` levels and `p(i) = P(i)/N_p`, `ε = 2.2·10⁻¹⁶`. Features, in PyRadiomics'
//! definitions (pyradiomics.readthedocs.io, "First Order Features"; IBSI sections 3.3–3.4):
//!
//! | feature | formula |
//! |---|---|
//! | Energy | `Σ (X(i) + c)²` |
//! | TotalEnergy | `V · Σ (X(i) + c)²` |
//! | Entropy | `−Σ p(i) log₂(p(i) + ε)` |
//! | Minimum, Maximum | `min X`, `max X` |
//! | 10Percentile, 90Percentile | numpy linear-interpolation percentiles |
//! | Mean | `X̄ = (1/N_p) Σ X(i)` |
//! | Median | numpy median |
//! | InterquartileRange | `P₇₅ − P₂₅` |
//! | Range | `max X − min X` |
//! | MeanAbsoluteDeviation | `(1/N_p) Σ |X(i) − X̄|` |
//! | RobustMeanAbsoluteDeviation | MAD of the values with `P₁₀ ≤ X ≤ P₉₀`, about their own mean |
//! | RootMeanSquared | `√((1/N_p) Σ (X(i) + c)²)` |
//! | StandardDeviation (deprecated) | `√((1/N_p) Σ (X(i) − X̄)²)` |
//! | Skewness | `μ₃ / μ₂^{3/2}` (0 when `μ₂ = 0`) |
//! | Kurtosis | `μ₄ / μ₂²` (0 when `μ₂ = 0`) |
//! | Variance | `(1/N_p) Σ (X(i) − X̄)²` |
//! | Uniformity | `Σ p(i)²` |
//!
//! `μ_k` are central moments with denominator `N_p`.

use super::FeatureValues;

/// Names in PyRadiomics order (alphabetical in its output), with the deprecated flag.
pub const FEATURES: &[(&str, bool)] = &[
    ("10Percentile", false),
    ("90Percentile", false),
    ("Energy", false),
    ("Entropy", false),
    ("InterquartileRange", false),
    ("Kurtosis", false),
    ("Maximum", false),
    ("Mean", false),
    ("MeanAbsoluteDeviation", false),
    ("Median", false),
    ("Minimum", false),
    ("Range", false),
    ("RobustMeanAbsoluteDeviation", false),
    ("RootMeanSquared", false),
    ("Skewness", false),
    ("StandardDeviation", true),
    ("TotalEnergy", false),
    ("Uniformity", false),
    ("Variance", false),
];

/// numpy's `percentile(..., method='linear')` on sorted data.
pub fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let vi = (q / 100.0) * (n - 1) as f64;
    let prev = vi.floor().clamp(0.0, (n - 1) as f64) as usize;
    let next = (prev + 1).min(n - 1);
    let gamma = vi - prev as f64;
    let (a, b) = (sorted[prev], sorted[next]);
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

/// Sum with compensation (more accurate than naive summation; agrees with numpy's pairwise sum to ~1e-15).
fn sum(values: impl Iterator<Item = f64>) -> f64 {
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for v in values {
        let t = s + v;
        if s.abs() >= v.abs() {
            c += (s - t) + v;
        } else {
            c += (v - t) + s;
        }
        s = t;
    }
    s + c
}

/// Compute the first-order features.
///
/// `values` are the ROI intensities, `levels` their gray levels, `voxel_volume` the product of the spacing,
/// `shift` the `voxelArrayShift`.
pub fn compute(values: &[f64], levels: &[u32], voxel_volume: f64, shift: f64) -> FeatureValues {
    let n = values.len() as f64;
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let mean = sum(values.iter().copied()) / n;
    let moment = |k: i32| sum(values.iter().map(|&x| (x - mean).powi(k))) / n;
    let m2 = moment(2);
    let m3 = moment(3);
    let m4 = moment(4);
    let energy = sum(values.iter().map(|&x| (x + shift) * (x + shift)));

    let p10 = percentile_sorted(&sorted, 10.0);
    let p90 = percentile_sorted(&sorted, 90.0);
    let robust: Vec<f64> = values.iter().copied().filter(|&x| x >= p10 && x <= p90).collect();
    let robust_mean = sum(robust.iter().copied()) / robust.len() as f64;
    let rmad = sum(robust.iter().map(|&x| (x - robust_mean).abs())) / robust.len() as f64;

    let mut counts = std::collections::BTreeMap::new();
    for &l in levels {
        *counts.entry(l).or_insert(0usize) += 1;
    }
    let total: usize = counts.values().sum();
    let p: Vec<f64> = counts.values().map(|&c| c as f64 / total.max(1) as f64).collect();

    let std = m2.sqrt();
    let median = if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        let h = sorted.len() / 2;
        (sorted[h - 1] + sorted[h]) / 2.0
    };
    let min = sorted[0];
    let max = sorted[sorted.len() - 1];

    let mut out = FeatureValues::new();
    out.push("10Percentile", p10);
    out.push("90Percentile", p90);
    out.push("Energy", energy);
    out.push(
        "Entropy",
        -p.iter().map(|&pi| pi * (pi + super::texture::EPS).log2()).sum::<f64>(),
    );
    out.push(
        "InterquartileRange",
        percentile_sorted(&sorted, 75.0) - percentile_sorted(&sorted, 25.0),
    );
    out.push("Kurtosis", if m2 == 0.0 { 0.0 } else { m4 / (m2 * m2) });
    out.push("Maximum", max);
    out.push("Mean", mean);
    out.push(
        "MeanAbsoluteDeviation",
        sum(values.iter().map(|&x| (x - mean).abs())) / n,
    );
    out.push("Median", median);
    out.push("Minimum", min);
    out.push("Range", max - min);
    out.push("RobustMeanAbsoluteDeviation", rmad);
    out.push("RootMeanSquared", if n == 0.0 { 0.0 } else { (energy / n).sqrt() });
    out.push("Skewness", if m2 == 0.0 { 0.0 } else { m3 / m2.powf(1.5) });
    out.push("StandardDeviation", std);
    out.push("TotalEnergy", voxel_volume * energy);
    out.push("Uniformity", p.iter().map(|&pi| pi * pi).sum());
    out.push("Variance", std * std);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_match_numpy_linear() {
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile_sorted(&s, 50.0), 2.5);
        assert!((percentile_sorted(&s, 10.0) - 1.3).abs() < 1e-12);
        assert!((percentile_sorted(&s, 90.0) - 3.7).abs() < 1e-12);
    }
}
