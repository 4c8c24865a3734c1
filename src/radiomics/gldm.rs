//! Gray Level Dependence Matrix (GLDM) features.
//!
//! A neighbour (26-connected in 3D, 8 in-plane with `force2D`) inside the ROI is *dependent* on the centre
//! voxel when `|i − level(neighbour)| ≤ α` (`gldm_a`, default 0). `P(i,j)` counts ROI voxels of level `i` with
//! `j − 1` dependent neighbours (PyRadiomics indexes dependence from 1). `N_z = Σ P = N_p`,
//! `p(i,j) = P/N_z`. Sun & Wee, Computer Graphics and Image Processing 1983; PyRadiomics documentation "Gray
//! Level Dependence Matrix (GLDM) Features".
//!
//! | feature | formula |
//! |---|---|
//! | SmallDependenceEmphasis | `Σ P/j² / N_z` |
//! | LargeDependenceEmphasis | `Σ P j² / N_z` |
//! | GrayLevelNonUniformity | `Σᵢ (Σⱼ P)² / N_z` |
//! | GrayLevelNonUniformityNormalized (deprecated) | `Σᵢ (Σⱼ P)² / N_z²` |
//! | DependenceNonUniformity | `Σⱼ (Σᵢ P)² / N_z` |
//! | DependenceNonUniformityNormalized | `Σⱼ (Σᵢ P)² / N_z²` |
//! | GrayLevelVariance | `Σ p (i − μ)²`, `μ = Σ p i` |
//! | DependenceVariance | `Σ p (j − μ)²`, `μ = Σ p j` |
//! | DependenceEntropy | `−Σ p log₂(p + ε)` |
//! | LowGrayLevelEmphasis | `Σ P/i² / N_z` |
//! | HighGrayLevelEmphasis | `Σ P i² / N_z` |
//! | SmallDependenceLowGrayLevelEmphasis | `Σ P/(i² j²) / N_z` |
//! | SmallDependenceHighGrayLevelEmphasis | `Σ P i²/j² / N_z` |
//! | LargeDependenceLowGrayLevelEmphasis | `Σ P j²/i² / N_z` |
//! | LargeDependenceHighGrayLevelEmphasis | `Σ P i² j² / N_z` |

use std::collections::BTreeMap;

use super::texture::{DiscreteRoi, Emphasis, EmphasisStats, PaddedLevels, angles};
use super::{Feature, FeatureValues, TextureOptions};

/// The class: each feature with its name, deprecated flag and formula (see the table above).
pub const FEATURES: &[Feature<Emphasis>] = &[
    Feature::new("DependenceEntropy", |c| c.e.entropy),
    Feature::new("DependenceNonUniformity", |c| c.e.j_nonuniformity),
    Feature::new("DependenceNonUniformityNormalized", |c| c.e.j_nonuniformity / c.n),
    Feature::new("DependenceVariance", |c| c.e.j_variance),
    Feature::new("GrayLevelNonUniformity", |c| c.e.gray_nonuniformity),
    Feature::deprecated("GrayLevelNonUniformityNormalized", |c| c.e.gray_nonuniformity / c.n),
    Feature::new("GrayLevelVariance", |c| c.e.gray_variance),
    Feature::new("HighGrayLevelEmphasis", |c| c.e.high_gray),
    Feature::new("LargeDependenceEmphasis", |c| c.e.large),
    Feature::new("LargeDependenceHighGrayLevelEmphasis", |c| c.e.large_high_gray),
    Feature::new("LargeDependenceLowGrayLevelEmphasis", |c| c.e.large_low_gray),
    Feature::new("LowGrayLevelEmphasis", |c| c.e.low_gray),
    Feature::new("SmallDependenceEmphasis", |c| c.e.small),
    Feature::new("SmallDependenceHighGrayLevelEmphasis", |c| c.e.small_high_gray),
    Feature::new("SmallDependenceLowGrayLevelEmphasis", |c| c.e.small_low_gray),
];

/// The dependence matrix, sparse: `(gray level, dependence j ≥ 1) → count`.
pub struct GldmMatrix {
    /// Counts.
    pub cells: BTreeMap<(u32, usize), f64>,
}

/// Count dependences.
pub fn matrix(roi: &DiscreteRoi, opts: &TextureOptions) -> GldmMatrix {
    let offsets = angles(opts.image_size, &opts.distances, opts.out_of_plane, true);
    let padded = roi.padded(&offsets);
    let deltas: Vec<isize> = offsets.iter().map(|off| padded.delta(*off)).collect();
    // counts per (level row, dependence − 1), gathered into the sparse matrix at the end
    let (idx, width) = (roi.level_index(), deltas.len() + 1);
    let mut counts = vec![0u64; roi.gray_levels.len() * width];
    for (_, o, l) in padded.voxels() {
        let dep = deltas
            .iter()
            .map(|&d| padded.levels[PaddedLevels::at(o, d)])
            .filter(|&lq| lq > 0 && (l as f64 - lq as f64).abs() <= opts.gldm_a)
            .count();
        counts[idx[l as usize] * width + dep] += 1;
    }
    let mut cells = BTreeMap::new();
    for (r, row) in counts.chunks(width).enumerate() {
        for (dep, &c) in row.iter().enumerate().filter(|(_, c)| **c > 0) {
            cells.insert((roi.gray_levels[r], dep + 1), c as f64);
        }
    }
    GldmMatrix { cells }
}

/// Compute all GLDM features.
pub fn compute(roi: &DiscreteRoi, opts: &TextureOptions) -> FeatureValues {
    let g = matrix(roi, opts);
    let cells: Vec<(f64, f64, f64)> = g.cells.iter().map(|(&(l, j), &c)| (l as f64, j as f64, c)).collect();
    let e = EmphasisStats::from_cells(&cells);
    let n = if e.n.is_nan() { 1.0 } else { e.n };
    let voxels = roi.n_voxels as f64;
    FeatureValues::from_features(FEATURES, &Emphasis { e, n, voxels })
}
