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

use super::texture::{DiscreteRoi, EmphasisStats, angles};
use super::{FeatureValues, TextureOptions};

/// Feature names and deprecated flags.
pub const FEATURES: &[(&str, bool)] = &[
    ("DependenceEntropy", false),
    ("DependenceNonUniformity", false),
    ("DependenceNonUniformityNormalized", false),
    ("DependenceVariance", false),
    ("GrayLevelNonUniformity", false),
    ("GrayLevelNonUniformityNormalized", true),
    ("GrayLevelVariance", false),
    ("HighGrayLevelEmphasis", false),
    ("LargeDependenceEmphasis", false),
    ("LargeDependenceHighGrayLevelEmphasis", false),
    ("LargeDependenceLowGrayLevelEmphasis", false),
    ("LowGrayLevelEmphasis", false),
    ("SmallDependenceEmphasis", false),
    ("SmallDependenceHighGrayLevelEmphasis", false),
    ("SmallDependenceLowGrayLevelEmphasis", false),
];

/// The dependence matrix, sparse: `(gray level, dependence j ≥ 1) → count`.
pub struct GldmMatrix {
    /// Counts.
    pub cells: BTreeMap<(u32, usize), f64>,
}

/// Count dependences.
pub fn matrix(roi: &DiscreteRoi, opts: &TextureOptions) -> GldmMatrix {
    let offsets = angles(opts.image_size, &opts.distances, opts.out_of_plane, true);
    let mut cells = BTreeMap::new();
    for (p, _, l) in roi.voxels() {
        let dep = offsets
            .iter()
            .filter_map(|off| roi.neighbour_level(p, *off))
            .filter(|&lq| lq > 0 && (l as f64 - lq as f64).abs() <= opts.gldm_a)
            .count();
        *cells.entry((l, dep + 1)).or_insert(0.0) += 1.0;
    }
    GldmMatrix { cells }
}

/// Compute all GLDM features.
pub fn compute(roi: &DiscreteRoi, opts: &TextureOptions) -> FeatureValues {
    let g = matrix(roi, opts);
    let cells: Vec<(f64, f64, f64)> = g.cells.iter().map(|(&(l, j), &c)| (l as f64, j as f64, c)).collect();
    let e = EmphasisStats::from_cells(&cells);
    let nz = if e.n.is_nan() { 1.0 } else { e.n };
    let vals = [
        e.entropy,
        e.j_nonuniformity,
        e.j_nonuniformity / nz,
        e.j_variance,
        e.gray_nonuniformity,
        e.gray_nonuniformity / nz,
        e.gray_variance,
        e.high_gray,
        e.large,
        e.large_high_gray,
        e.large_low_gray,
        e.low_gray,
        e.small,
        e.small_high_gray,
        e.small_low_gray,
    ];
    FeatureValues::from_table(FEATURES, vals)
}
