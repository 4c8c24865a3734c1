//! Gray Level Run Length Matrix (GLRLM) features.
//!
//! `P(i,j|θ)` counts runs — maximal sequences of consecutive ROI voxels with gray level `i` along direction
//! `θ` — of length `j`. Per angle, `N_r(θ)` is the number of runs and `N_p(θ) = Σ j P(i,j|θ)` the voxel count;
//! `p(i,j|θ) = P/N_r`. An angle along which no line meets more than one ROI voxel is dropped (PyRadiomics'
//! handling of flat ROIs), as are empty angles; with `weightingNorm` the angles are merged with weights `‖d‖`.
//! Features are averaged over angles. Galloway, Computer Graphics and Image Processing 1975; Chu et al. 1990;
//! Dasarathy & Holder 1991; PyRadiomics documentation "Gray Level Run Length Matrix (GLRLM) Features".
//!
//! | feature | formula |
//! |---|---|
//! | ShortRunEmphasis | `Σ P(i,j)/j² / N_r` |
//! | LongRunEmphasis | `Σ P(i,j) j² / N_r` |
//! | GrayLevelNonUniformity | `Σᵢ (Σⱼ P(i,j))² / N_r` |
//! | GrayLevelNonUniformityNormalized | `Σᵢ (Σⱼ P(i,j))² / N_r²` |
//! | RunLengthNonUniformity | `Σⱼ (Σᵢ P(i,j))² / N_r` |
//! | RunLengthNonUniformityNormalized | `Σⱼ (Σᵢ P(i,j))² / N_r²` |
//! | RunPercentage | `N_r / N_p` |
//! | GrayLevelVariance | `Σ p(i,j)(i − μ)²`, `μ = Σ p(i,j) i` |
//! | RunVariance | `Σ p(i,j)(j − μ)²`, `μ = Σ p(i,j) j` |
//! | RunEntropy | `−Σ p(i,j) log₂(p(i,j) + ε)` |
//! | LowGrayLevelRunEmphasis | `Σ P(i,j)/i² / N_r` |
//! | HighGrayLevelRunEmphasis | `Σ P(i,j) i² / N_r` |
//! | ShortRunLowGrayLevelEmphasis | `Σ P(i,j)/(i² j²) / N_r` |
//! | ShortRunHighGrayLevelEmphasis | `Σ P(i,j) i²/j² / N_r` |
//! | LongRunLowGrayLevelEmphasis | `Σ P(i,j) j²/i² / N_r` |
//! | LongRunHighGrayLevelEmphasis | `Σ P(i,j) i² j² / N_r` |

use super::texture::{DiscreteRoi, Emphasis, EmphasisStats, PaddedLevels, angle_weight, angles, nanmean};
use super::{Feature, FeatureValues, TextureOptions};

/// The class: each feature with its name, deprecated flag and formula (see the table above).
pub const FEATURES: &[Feature<Emphasis>] = &[
    Feature::new("GrayLevelNonUniformity", |c| c.e.gray_nonuniformity),
    Feature::new("GrayLevelNonUniformityNormalized", |c| c.e.gray_nonuniformity / c.n),
    Feature::new("GrayLevelVariance", |c| c.e.gray_variance),
    Feature::new("HighGrayLevelRunEmphasis", |c| c.e.high_gray),
    Feature::new("LongRunEmphasis", |c| c.e.large),
    Feature::new("LongRunHighGrayLevelEmphasis", |c| c.e.large_high_gray),
    Feature::new("LongRunLowGrayLevelEmphasis", |c| c.e.large_low_gray),
    Feature::new("LowGrayLevelRunEmphasis", |c| c.e.low_gray),
    Feature::new("RunEntropy", |c| c.e.entropy),
    Feature::new("RunLengthNonUniformity", |c| c.e.j_nonuniformity),
    Feature::new("RunLengthNonUniformityNormalized", |c| c.e.j_nonuniformity / c.n),
    Feature::new("RunPercentage", |c| c.e.n / c.e.j_weighted),
    Feature::new("RunVariance", |c| c.e.j_variance),
    Feature::new("ShortRunEmphasis", |c| c.e.small),
    Feature::new("ShortRunHighGrayLevelEmphasis", |c| c.e.small_high_gray),
    Feature::new("ShortRunLowGrayLevelEmphasis", |c| c.e.small_low_gray),
];

/// Run-length matrices, one per kept angle, rows = gray levels present, columns = run length − 1.
pub struct GlrlmMatrix {
    /// Gray levels present.
    pub levels: Vec<f64>,
    /// Longest possible run (columns).
    pub max_run: usize,
    /// Row-major `levels × max_run` count matrices.
    pub angles: Vec<Vec<f64>>,
}

/// Count runs.
pub fn matrix(roi: &DiscreteRoi, opts: &TextureOptions) -> GlrlmMatrix {
    // distance 1 whatever `distances` says: PyRadiomics 3.1.0 gives GLRLM no distances (runs are of adjacent voxels)
    let offsets = angles(opts.image_size, &[1], opts.out_of_plane, false);
    let idx = roi.level_index();
    let n = roi.gray_levels.len();
    let max_run = *roi.size.iter().max().unwrap_or(&1);
    let mut mats = Vec::with_capacity(offsets.len());
    let padded = roi.padded(&offsets);
    for off in &offsets {
        let d = padded.delta(*off);
        let mut m = vec![0.0; n * max_run];
        let mut multi = false;
        for (start, o, l) in padded.voxels() {
            // A run starts where the previous voxel along the line is not part of it (the border reads 0).
            if padded.levels[PaddedLevels::at(o, -d)] == l {
                continue;
            }
            let mut len = 1;
            let mut p = PaddedLevels::at(o, d);
            while padded.levels[p] == l {
                len += 1;
                p = PaddedLevels::at(p, d);
            }
            if len > 1 {
                multi = true;
            }
            m[idx[l as usize] * max_run + len - 1] += 1.0;
            if !multi {
                // Does this line hold another ROI voxel further on (not necessarily adjacent)?
                let mut p = start;
                while let Some(q) = roi.step(p, *off) {
                    if roi.levels[roi.offset(q[0], q[1], q[2])] > 0 {
                        multi = true;
                        break;
                    }
                    p = q;
                }
            }
        }
        if !multi {
            m.iter_mut().for_each(|v| *v = 0.0);
        }
        mats.push(m);
    }
    if let Some(norm) = &opts.weighting_norm {
        let mut merged = vec![0.0; n * max_run];
        for (m, off) in mats.iter().zip(&offsets) {
            let w = angle_weight(norm, *off, roi.spacing, false);
            for (t, v) in merged.iter_mut().zip(m) {
                *t += v * w;
            }
        }
        mats = vec![merged];
    }
    if mats.len() > 1 {
        mats.retain(|m| m.iter().sum::<f64>() != 0.0);
    }
    GlrlmMatrix {
        levels: roi.gray_levels.iter().map(|&g| g as f64).collect(),
        max_run,
        angles: mats,
    }
}

/// Compute all GLRLM features.
pub fn compute(roi: &DiscreteRoi, opts: &TextureOptions) -> FeatureValues {
    let g = matrix(roi, opts);
    let cols = g.max_run;
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); FEATURES.len()];
    for m in &g.angles {
        let cells: Vec<(f64, f64, f64)> = m
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != 0.0)
            .map(|(o, &c)| (g.levels[o / cols], (o % cols + 1) as f64, c))
            .collect();
        let e = EmphasisStats::from_cells(&cells);
        let c = Emphasis {
            e,
            n: e.n,
            voxels: roi.n_voxels as f64,
        };
        let vals = FEATURES.iter().map(|f| (f.value)(&c));
        for (slot, v) in per.iter_mut().zip(vals) {
            slot.push(v);
        }
    }
    FeatureValues {
        entries: FEATURES
            .iter()
            .map(|f| f.name)
            .zip(per.iter().map(|v| nanmean(v)))
            .collect(),
    }
}
