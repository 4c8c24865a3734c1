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

use super::{Feature, FeatureValues};

/// What the features are computed from: the ROI's intensities (sorted), their central moments and the
/// gray-level probabilities.
pub struct FirstOrderStats {
    /// Intensities, ascending.
    sorted: Vec<f64>,
    /// `N_p`.
    n: f64,
    mean: f64,
    /// Central moments `μ₂`, `μ₃`, `μ₄` (denominator `N_p`).
    m2: f64,
    m3: f64,
    m4: f64,
    /// `Σ (X(i) + c)²`.
    energy: f64,
    /// `(1/N_p) Σ |X(i) − X̄|`.
    mad: f64,
    /// Mean absolute deviation of the values within `[P10, P90]` from their mean.
    rmad: f64,
    /// `p(i)` of each gray level present.
    p: Vec<f64>,
    voxel_volume: f64,
}

impl FirstOrderStats {
    fn percentile(&self, q: f64) -> f64 {
        percentile_sorted(&self.sorted, q)
    }
    fn min(&self) -> f64 {
        self.sorted[0]
    }
    fn max(&self) -> f64 {
        self.sorted[self.sorted.len() - 1]
    }
}

/// The class in PyRadiomics order (alphabetical in its output): each feature with its name, deprecated flag and
/// formula (see the table above).
pub const FEATURES: &[Feature<FirstOrderStats>] = &[
    Feature::new("10Percentile", |s| s.percentile(10.0)),
    Feature::new("90Percentile", |s| s.percentile(90.0)),
    Feature::new("Energy", |s| s.energy),
    Feature::new("Entropy", |s| {
        -s.p.iter()
            .map(|&pi| pi * (pi + super::texture::EPS).log2())
            .sum::<f64>()
    }),
    Feature::new("InterquartileRange", |s| s.percentile(75.0) - s.percentile(25.0)),
    Feature::new("Kurtosis", |s| if s.m2 == 0.0 { 0.0 } else { s.m4 / (s.m2 * s.m2) }),
    Feature::new("Maximum", |s| s.max()),
    Feature::new("Mean", |s| s.mean),
    Feature::new("MeanAbsoluteDeviation", |s| s.mad),
    Feature::new("Median", |s| {
        let (v, h) = (&s.sorted, s.sorted.len() / 2);
        if v.len() % 2 == 1 {
            v[h]
        } else {
            (v[h - 1] + v[h]) / 2.0
        }
    }),
    Feature::new("Minimum", |s| s.min()),
    Feature::new("Range", |s| s.max() - s.min()),
    Feature::new("RobustMeanAbsoluteDeviation", |s| s.rmad),
    Feature::new("RootMeanSquared", |s| {
        if s.n == 0.0 { 0.0 } else { (s.energy / s.n).sqrt() }
    }),
    Feature::new("Skewness", |s| if s.m2 == 0.0 { 0.0 } else { s.m3 / s.m2.powf(1.5) }),
    Feature::deprecated("StandardDeviation", |s| s.m2.sqrt()),
    Feature::new("TotalEnergy", |s| s.voxel_volume * s.energy),
    Feature::new("Uniformity", |s| s.p.iter().map(|&pi| pi * pi).sum()),
    Feature::new("Variance", |s| s.m2.sqrt() * s.m2.sqrt()),
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

    let mad = sum(values.iter().map(|&x| (x - mean).abs())) / n;
    let stats = FirstOrderStats {
        sorted,
        n,
        mean,
        m2,
        m3,
        m4,
        energy,
        mad,
        rmad,
        p,
        voxel_volume,
    };
    FeatureValues::from_features(FEATURES, &stats)
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
