//! Gray Level Size Zone Matrix (GLSZM) features.
//!
//! `P(i,j)` counts zones — connected components (26-connected in 3D, 8-connected in-plane with `force2D`) of
//! ROI voxels sharing gray level `i` — of size `j` voxels. `N_z` is the number of zones, `N_p` the number of
//! ROI voxels and `p(i,j) = P/N_z`. Thibault et al., Pattern Recognition and Image Analysis 2013; PyRadiomics
//! documentation "Gray Level Size Zone Matrix (GLSZM) Features".
//!
//! | feature | formula |
//! |---|---|
//! | SmallAreaEmphasis | `Σ P(i,j)/j² / N_z` |
//! | LargeAreaEmphasis | `Σ P(i,j) j² / N_z` |
//! | GrayLevelNonUniformity | `Σᵢ (Σⱼ P)² / N_z` |
//! | GrayLevelNonUniformityNormalized | `Σᵢ (Σⱼ P)² / N_z²` |
//! | SizeZoneNonUniformity | `Σⱼ (Σᵢ P)² / N_z` |
//! | SizeZoneNonUniformityNormalized | `Σⱼ (Σᵢ P)² / N_z²` |
//! | ZonePercentage | `N_z / N_p` |
//! | GrayLevelVariance | `Σ p(i,j)(i − μ)²`, `μ = Σ p i` |
//! | ZoneVariance | `Σ p(i,j)(j − μ)²`, `μ = Σ p j` |
//! | ZoneEntropy | `−Σ p log₂(p + ε)` |
//! | LowGrayLevelZoneEmphasis | `Σ P/i² / N_z` |
//! | HighGrayLevelZoneEmphasis | `Σ P i² / N_z` |
//! | SmallAreaLowGrayLevelEmphasis | `Σ P/(i² j²) / N_z` |
//! | SmallAreaHighGrayLevelEmphasis | `Σ P i²/j² / N_z` |
//! | LargeAreaLowGrayLevelEmphasis | `Σ P j²/i² / N_z` |
//! | LargeAreaHighGrayLevelEmphasis | `Σ P i² j² / N_z` |

use std::collections::BTreeMap;

use super::texture::{DiscreteRoi, Emphasis, EmphasisStats, PaddedLevels, angles};
use super::{Feature, FeatureValues, TextureOptions};

/// The class: each feature with its name, deprecated flag and formula (see the table above).
pub const FEATURES: &[Feature<Emphasis>] = &[
    Feature::new("GrayLevelNonUniformity", |c| c.e.gray_nonuniformity),
    Feature::new("GrayLevelNonUniformityNormalized", |c| c.e.gray_nonuniformity / c.n),
    Feature::new("GrayLevelVariance", |c| c.e.gray_variance),
    Feature::new("HighGrayLevelZoneEmphasis", |c| c.e.high_gray),
    Feature::new("LargeAreaEmphasis", |c| c.e.large),
    Feature::new("LargeAreaHighGrayLevelEmphasis", |c| c.e.large_high_gray),
    Feature::new("LargeAreaLowGrayLevelEmphasis", |c| c.e.large_low_gray),
    Feature::new("LowGrayLevelZoneEmphasis", |c| c.e.low_gray),
    Feature::new("SizeZoneNonUniformity", |c| c.e.j_nonuniformity),
    Feature::new("SizeZoneNonUniformityNormalized", |c| c.e.j_nonuniformity / c.n),
    Feature::new("SmallAreaEmphasis", |c| c.e.small),
    Feature::new("SmallAreaHighGrayLevelEmphasis", |c| c.e.small_high_gray),
    Feature::new("SmallAreaLowGrayLevelEmphasis", |c| c.e.small_low_gray),
    Feature::new("ZoneEntropy", |c| c.e.entropy),
    Feature::new("ZonePercentage", |c| c.e.n / c.voxels),
    Feature::new("ZoneVariance", |c| c.e.j_variance),
];

/// The zones as a sparse matrix: `(gray level, zone size) → count`.
pub struct GlszmMatrix {
    /// Zone counts.
    pub zones: BTreeMap<(u32, usize), f64>,
}

/// Find the zones by flood fill.
pub fn matrix(roi: &DiscreteRoi, opts: &TextureOptions) -> GlszmMatrix {
    // distance 1 whatever `distances` says: PyRadiomics 3.1.0 gives GLSZM no distances (zones are 26-connected)
    let offsets = angles(opts.image_size, &[1], opts.out_of_plane, true);
    let padded = roi.padded(&offsets);
    let deltas: Vec<isize> = offsets.iter().map(|off| padded.delta(*off)).collect();
    let mut seen = vec![false; padded.levels.len()];
    let mut zones = BTreeMap::new();
    let mut stack = Vec::new();
    for (_, o, l) in padded.voxels() {
        if seen[o] {
            continue;
        }
        seen[o] = true;
        stack.push(o);
        let mut size = 0usize;
        while let Some(p) = stack.pop() {
            size += 1;
            for &d in &deltas {
                // (the border reads 0, never a level, so a zone never leaves the box)
                let q = PaddedLevels::at(p, d);
                if !seen[q] && padded.levels[q] == l {
                    seen[q] = true;
                    stack.push(q);
                }
            }
        }
        *zones.entry((l, size)).or_insert(0.0) += 1.0;
    }
    GlszmMatrix { zones }
}

/// Compute all GLSZM features.
pub fn compute(roi: &DiscreteRoi, opts: &TextureOptions) -> FeatureValues {
    let g = matrix(roi, opts);
    let cells: Vec<(f64, f64, f64)> = g.zones.iter().map(|(&(l, s), &c)| (l as f64, s as f64, c)).collect();
    let e = EmphasisStats::from_cells(&cells);
    let n = if e.n.is_nan() { 1.0 } else { e.n };
    let voxels = roi.n_voxels as f64;
    FeatureValues::from_features(FEATURES, &Emphasis { e, n, voxels })
}
