//! Neighbouring Gray Tone Difference Matrix (NGTDM) features.
//!
//! For each ROI voxel of level `i`, `Ā` is the mean level of its neighbours inside the ROI (26-connected in
//! 3D, 8 in-plane with `force2D`); `s_i = Σ |i − Ā|` over voxels of level `i` (a voxel without ROI neighbours
//! adds 0), `n_i` their count, `N_vp = Σ n_i`, `p_i = n_i/N_vp`, `N_gp` the number of levels with `p_i > 0`.
//! Amadasun & King, IEEE SMC 1989; PyRadiomics documentation "Neighbouring Gray Tone Difference Matrix
//! (NGTDM) Features".
//!
//! | feature | formula |
//! |---|---|
//! | Coarseness | `1 / Σ p_i s_i` (10⁶ when the sum is 0) |
//! | Contrast | `(Σᵢ Σⱼ p_i p_j (i − j)²) / (N_gp(N_gp − 1)) · Σ s_i / N_vp` (0 when `N_gp = 1`) |
//! | Busyness | `Σ p_i s_i / Σᵢ Σⱼ |i p_i − j p_j|` (0 when the denominator is 0) |
//! | Complexity | `Σᵢ Σⱼ |i − j| (p_i s_i + p_j s_j)/(p_i + p_j) / N_vp` |
//! | Strength | `Σᵢ Σⱼ (p_i + p_j)(i − j)² / Σ s_i` (0 when `Σ s_i = 0`) |

use super::texture::{DiscreteRoi, PaddedLevels, angles};
use super::{Feature, FeatureValues, TextureOptions};

/// The sums the features are formed from (`p_i`, `s_i` and `i` over the levels present).
pub struct NgtdmSums {
    /// `N_{v,p}`: voxels with at least one neighbour (here: every ROI voxel counted in the matrix).
    nvp: f64,
    /// `N_{g,p}`: gray levels with `p_i > 0`.
    ngp: f64,
    /// `Σ p_i s_i`.
    sum_ps: f64,
    /// `Σ s_i`.
    sum_s: f64,
    /// `Σᵢ Σⱼ p_i p_j (i − j)²`.
    contrast: f64,
    /// `Σᵢ Σⱼ |i p_i − j p_j|`.
    absdiff: f64,
    /// `Σᵢ Σⱼ |i − j| (p_i s_i + p_j s_j) / (p_i + p_j)`.
    complexity: f64,
    /// `Σᵢ Σⱼ (p_i + p_j)(i − j)²`.
    strength: f64,
}

/// The class: each feature with its name, deprecated flag and formula (see the table above).
pub const FEATURES: &[Feature<NgtdmSums>] = &[
    Feature::new(
        "Busyness",
        |s| if s.absdiff != 0.0 { s.sum_ps / s.absdiff } else { 0.0 },
    ),
    Feature::new("Coarseness", |s| if s.sum_ps != 0.0 { 1.0 / s.sum_ps } else { 1e6 }),
    Feature::new("Complexity", |s| s.complexity / s.nvp),
    Feature::new("Contrast", |s| {
        let div = s.ngp * (s.ngp - 1.0);
        if div != 0.0 {
            s.contrast * s.sum_s / s.nvp / div
        } else {
            0.0
        }
    }),
    Feature::new("Strength", |s| if s.sum_s != 0.0 { s.strength / s.sum_s } else { 0.0 }),
];

/// Per gray level present: `(level, n_i, s_i)`.
pub struct NgtdmMatrix {
    /// Rows for the levels present.
    pub rows: Vec<(f64, f64, f64)>,
}

/// Compute the matrix.
pub fn matrix(roi: &DiscreteRoi, opts: &TextureOptions) -> NgtdmMatrix {
    let offsets = angles(opts.image_size, &opts.distances, opts.out_of_plane, true);
    let idx = roi.level_index();
    let mut rows: Vec<(f64, f64, f64)> = roi.gray_levels.iter().map(|&g| (g as f64, 0.0, 0.0)).collect();
    let padded = roi.padded(&offsets);
    let deltas: Vec<isize> = offsets.iter().map(|off| padded.delta(*off)).collect();
    // (in the box's storage order, as before: the sum of differences below is order-dependent)
    for (_, o, l) in padded.voxels() {
        let (mut count, mut sum) = (0.0f64, 0.0f64);
        for lq in deltas.iter().map(|&d| padded.levels[PaddedLevels::at(o, d)]) {
            if lq > 0 {
                count += 1.0;
                sum += lq as f64;
            }
        }
        let diff = if count == 0.0 {
            0.0
        } else {
            (l as f64 - sum / count).abs()
        };
        let r = &mut rows[idx[l as usize]];
        r.1 += 1.0;
        r.2 += diff;
    }
    rows.retain(|r| r.1 > 0.0);
    NgtdmMatrix { rows }
}

/// Compute all NGTDM features.
pub fn compute(roi: &DiscreteRoi, opts: &TextureOptions) -> FeatureValues {
    let m = matrix(roi, opts);
    let nvp: f64 = m.rows.iter().map(|r| r.1).sum();
    let p: Vec<f64> = m.rows.iter().map(|r| r.1 / nvp).collect();
    let s: Vec<f64> = m.rows.iter().map(|r| r.2).collect();
    let iv: Vec<f64> = m.rows.iter().map(|r| r.0).collect();
    let ngp = p.iter().filter(|&&v| v > 0.0).count() as f64;
    let sum_ps: f64 = p.iter().zip(&s).map(|(a, b)| a * b).sum();
    let sum_s: f64 = s.iter().sum();
    let n = p.len();

    let (mut contrast, mut absdiff, mut complexity, mut strength) = (0.0, 0.0, 0.0, 0.0);
    for i in 0..n {
        for j in 0..n {
            let d = iv[i] - iv[j];
            contrast += p[i] * p[j] * d * d;
            absdiff += (iv[i] * p[i] - iv[j] * p[j]).abs();
            let div = p[i] + p[j];
            let div = if div == 0.0 { 1.0 } else { div };
            complexity += d.abs() * (p[i] * s[i] + p[j] * s[j]) / div;
            strength += (p[i] + p[j]) * d * d;
        }
    }
    let sums = NgtdmSums {
        nvp,
        ngp,
        sum_ps,
        sum_s,
        contrast,
        absdiff,
        complexity,
        strength,
    };
    FeatureValues::from_features(FEATURES, &sums)
}
