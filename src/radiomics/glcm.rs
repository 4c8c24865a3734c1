//! Gray Level Co-occurrence Matrix (GLCM) features.
//!
//! `P(i,j|δ,α)` counts ROI voxel pairs with levels `i` and `j` at offset `α` (infinity-norm distance `δ`);
//! PyRadiomics makes it symmetric (`P + Pᵀ`) and normalises each angle to `p(i,j)`. Features are computed per
//! angle and averaged (numpy `nanmean`); with `weightingNorm` the angle matrices are first merged with weights
//! `exp(−‖d‖²)`. Empty angles are dropped. Haralick et al., IEEE SMC 1973; PyRadiomics documentation "Gray
//! Level Co-occurrence Matrix (GLCM) Features".
//!
//! With `p_x(i) = Σⱼ p(i,j)`, `p_y(j) = Σᵢ p(i,j)`, `μ_x = Σ p(i,j) i`, `μ_y = Σ p(i,j) j`,
//! `p_{x+y}(k) = Σ_{i+j=k} p(i,j)` (k = 2…2N_g), `p_{x−y}(k) = Σ_{|i−j|=k} p(i,j)` (k = 0…N_g−1),
//! `HX, HY` the entropies of `p_x, p_y`, `HXY = −Σ p log₂(p+ε)`, `HXY1 = −Σ p log₂(p_x p_y + ε)`,
//! `HXY2 = −Σ p_x p_y log₂(p_x p_y + ε)`, and `N_g` the largest gray level in the ROI:
//!
//! | feature | formula |
//! |---|---|
//! | Autocorrelation | `Σ p(i,j) i j` |
//! | JointAverage | `μ_x` |
//! | ClusterProminence / Shade / Tendency | `Σ (i + j − μ_x − μ_y)^{4/3/2} p(i,j)` |
//! | Contrast | `Σ (i − j)² p(i,j)` |
//! | Correlation | `(Σ p(i,j) i j − μ_x μ_y) / (σ_x σ_y)` (1 when `σ_x σ_y = 0`) |
//! | DifferenceAverage (DA) | `Σ k p_{x−y}(k)` |
//! | DifferenceEntropy | `−Σ p_{x−y}(k) log₂(p_{x−y}(k) + ε)` |
//! | DifferenceVariance | `Σ (k − DA)² p_{x−y}(k)` |
//! | JointEnergy | `Σ p(i,j)²` |
//! | JointEntropy | `HXY` |
//! | Imc1 | `(HXY − HXY1) / max(HX, HY)` (0 when the max is 0) |
//! | Imc2 | `√(1 − e^{−2(HXY2 − HXY)})` (0 when equal) |
//! | Idm | `Σ p_{x−y}(k) / (1 + k²)` |
//! | MCC | `√(second largest eigenvalue of Q)`, `Q(i,j) = Σ_k p(i,k) p(j,k) / (p_x(i) p_y(k))` (1 if one level) |
//! | Idmn | `Σ p_{x−y}(k) / (1 + k²/N_g²)` |
//! | Id | `Σ p_{x−y}(k) / (1 + k)` |
//! | Idn | `Σ p_{x−y}(k) / (1 + k/N_g)` |
//! | InverseVariance | `Σ_{k≥1} p_{x−y}(k) / k²` |
//! | MaximumProbability | `max p(i,j)` |
//! | SumAverage | `Σ k p_{x+y}(k)` |
//! | SumEntropy | `−Σ p_{x+y}(k) log₂(p_{x+y}(k) + ε)` |
//! | SumSquares | `Σ (i − μ_x)² p(i,j)` |

use super::texture::{DiscreteRoi, EPS, PaddedLevels, angle_weight, angles, nanmean};
use super::{Feature, FeatureValues, TextureOptions};
use crate::linalg::symmetric_eigenvalues;

/// What the features of one angle's normalised matrix `p(i,j)` are computed from: its sums over `(i, j)`, its
/// marginal entropies, and the distributions `p_{x+y}(k)` and `p_{x−y}(k)`.
pub struct GlcmAngle {
    /// `N_g`.
    ng: f64,
    /// `μ_x` (the joint average).
    ux: f64,
    /// `Σ p i j`.
    autocorrelation: f64,
    /// `Σ p (i + j − μ_x − μ_y)^k` for k = 4, 3, 2.
    prominence: f64,
    shade: f64,
    tendency: f64,
    /// `Σ p (i − j)²`.
    contrast: f64,
    /// `Σ p (i − μ_x)(j − μ_y)`, `σ_x²`, `σ_y²`.
    covariance: f64,
    sigx2: f64,
    sigy2: f64,
    /// `Σ p²`.
    energy: f64,
    /// `HXY`, `HXY1`, `HXY2`, `HX`, `HY`.
    hxy: f64,
    hxy1: f64,
    hxy2: f64,
    hx: f64,
    hy: f64,
    /// `max p`.
    max_p: f64,
    /// `Σ p (i − μ_x)²`.
    sum_squares: f64,
    /// `p_{x+y}(k)` for k = 2 … 2 N_g.
    sum_k: Vec<f64>,
    /// `p_{x−y}(k)` for k = 0 … N_g − 1.
    diff_k: Vec<f64>,
    /// The maximal correlation coefficient ([`mcc`]).
    mcc: f64,
}

impl GlcmAngle {
    /// `Σ_k p_{x−y}(k) w(k)`.
    fn over_diff(&self, w: impl Fn(f64) -> f64) -> f64 {
        self.diff_k.iter().enumerate().map(|(k, &v)| v * w(k as f64)).sum()
    }
    fn difference_average(&self) -> f64 {
        self.over_diff(|k| k)
    }
}

/// The class: each feature with its name, deprecated flag and formula (see the table above), for one angle.
pub const FEATURES: &[Feature<GlcmAngle>] = &[
    Feature::new("Autocorrelation", |a| a.autocorrelation),
    Feature::new("ClusterProminence", |a| a.prominence),
    Feature::new("ClusterShade", |a| a.shade),
    Feature::new("ClusterTendency", |a| a.tendency),
    Feature::new("Contrast", |a| a.contrast),
    Feature::new("Correlation", |a| {
        let sigxy = a.sigx2.sqrt() * a.sigy2.sqrt();
        if sigxy == 0.0 {
            1.0
        } else {
            a.covariance / (sigxy + EPS)
        }
    }),
    Feature::new("DifferenceAverage", |a| a.difference_average()),
    Feature::new("DifferenceEntropy", |a| entropy(&a.diff_k)),
    Feature::new("DifferenceVariance", |a| {
        let da = a.difference_average();
        a.over_diff(|k| (k - da).powi(2))
    }),
    Feature::new("Id", |a| a.over_diff(|k| 1.0 / (1.0 + k))),
    Feature::new("Idm", |a| a.over_diff(|k| 1.0 / (1.0 + k * k))),
    Feature::new("Idmn", |a| a.over_diff(|k| 1.0 / (1.0 + k * k / (a.ng * a.ng)))),
    Feature::new("Idn", |a| a.over_diff(|k| 1.0 / (1.0 + k / a.ng))),
    Feature::new("Imc1", |a| {
        let div = a.hx.max(a.hy);
        if div == 0.0 { 0.0 } else { (a.hxy - a.hxy1) / div }
    }),
    Feature::new("Imc2", |a| {
        if a.hxy2 == a.hxy {
            0.0
        } else {
            (1.0 - (-2.0 * (a.hxy2 - a.hxy)).exp()).sqrt()
        }
    }),
    Feature::new("InverseVariance", |a| {
        a.diff_k
            .iter()
            .enumerate()
            .skip(1)
            .map(|(k, &v)| v / (k as f64 * k as f64))
            .sum()
    }),
    Feature::new("JointAverage", |a| a.ux),
    Feature::new("JointEnergy", |a| a.energy),
    Feature::new("JointEntropy", |a| a.hxy),
    Feature::new("MCC", |a| a.mcc),
    Feature::new("MaximumProbability", |a| a.max_p),
    Feature::new("SumAverage", |a| {
        a.sum_k.iter().enumerate().map(|(k, &v)| (k as f64 + 2.0) * v).sum()
    }),
    Feature::new("SumEntropy", |a| entropy(&a.sum_k)),
    Feature::new("SumSquares", |a| a.sum_squares),
];

/// The per-angle normalised co-occurrence matrices over the gray levels present.
pub struct GlcmMatrix {
    /// Levels present (matrix rows/columns), ascending.
    pub levels: Vec<f64>,
    /// One `n×n` row-major matrix per (kept) angle, normalised to sum 1.
    pub angles: Vec<Vec<f64>>,
}

/// Count co-occurrences.
pub fn matrix(roi: &DiscreteRoi, opts: &TextureOptions) -> GlcmMatrix {
    let offsets = angles(opts.image_size, &opts.distances, opts.out_of_plane, false);
    let idx = roi.level_index();
    let n = roi.gray_levels.len();
    let mut mats: Vec<Vec<f64>> = vec![vec![0.0; n * n]; offsets.len()];
    let padded = roi.padded(&offsets);
    let deltas: Vec<isize> = offsets.iter().map(|off| padded.delta(*off)).collect();
    for (_, o, li) in padded.voxels() {
        let ri = idx[li as usize];
        for (m, &d) in mats.iter_mut().zip(&deltas) {
            let lj = padded.levels[PaddedLevels::at(o, d)];
            if lj > 0 {
                m[ri * n + idx[lj as usize]] += 1.0;
            }
        }
    }
    if opts.symmetrical_glcm {
        for m in &mut mats {
            for i in 0..n {
                for j in i..n {
                    let s = m[i * n + j] + m[j * n + i];
                    m[i * n + j] = s;
                    m[j * n + i] = s;
                }
            }
        }
    }
    if let Some(norm) = &opts.weighting_norm {
        let mut merged = vec![0.0; n * n];
        for (m, off) in mats.iter().zip(&offsets) {
            let w = angle_weight(norm, *off, roi.spacing, true);
            for (t, v) in merged.iter_mut().zip(m) {
                *t += v * w;
            }
        }
        mats = vec![merged];
    }
    if mats.len() > 1 {
        mats.retain(|m| m.iter().sum::<f64>() != 0.0);
    }
    for m in &mut mats {
        let s: f64 = m.iter().sum();
        for v in m.iter_mut() {
            *v = if s == 0.0 { f64::NAN } else { *v / s };
        }
    }
    GlcmMatrix {
        levels: roi.gray_levels.iter().map(|&g| g as f64).collect(),
        angles: mats,
    }
}

fn entropy(p: &[f64]) -> f64 {
    -p.iter().map(|&v| v * (v + EPS).log2()).sum::<f64>()
}

/// Compute all GLCM features.
pub fn compute(roi: &DiscreteRoi, opts: &TextureOptions) -> FeatureValues {
    let glcm = matrix(roi, opts);
    let ng = roi.ng_max() as usize;
    let ngf = ng as f64;
    let n = glcm.levels.len();
    let lv = &glcm.levels;
    let mut per: Vec<Vec<f64>> = vec![Vec::new(); FEATURES.len()];
    for p in &glcm.angles {
        let mut px = vec![0.0; n];
        let mut py = vec![0.0; n];
        for i in 0..n {
            for j in 0..n {
                px[i] += p[i * n + j];
                py[j] += p[i * n + j];
            }
        }
        let (mut ux, mut uy) = (0.0, 0.0);
        for i in 0..n {
            for j in 0..n {
                ux += lv[i] * p[i * n + j];
                uy += lv[j] * p[i * n + j];
            }
        }
        let mut sum_k = vec![0.0; 2 * ng.max(1) + 1]; // index k (i + j)
        let mut diff_k = vec![0.0; ng.max(1)]; // index k = |i − j|
        let (mut ac, mut cp, mut cs, mut ct, mut cont, mut ene, mut hxy, mut hxy1, mut hxy2) =
            (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
        let (mut sigx2, mut sigy2, mut corm, mut maxp, mut ss) = (0.0, 0.0, 0.0, 0.0f64, 0.0);
        for i in 0..n {
            for j in 0..n {
                let v = p[i * n + j];
                let (gi, gj) = (lv[i], lv[j]);
                ac += v * gi * gj;
                let t = gi + gj - ux - uy;
                cp += v * t.powi(4);
                cs += v * t.powi(3);
                ct += v * t * t;
                cont += v * (gi - gj) * (gi - gj);
                ene += v * v;
                hxy -= v * (v + EPS).log2();
                let pxy = px[i] * py[j];
                hxy1 -= v * (pxy + EPS).log2();
                hxy2 -= pxy * (pxy + EPS).log2();
                sigx2 += v * (gi - ux) * (gi - ux);
                sigy2 += v * (gj - uy) * (gj - uy);
                corm += v * (gi - ux) * (gj - uy);
                maxp = maxp.max(v);
                ss += v * (gi - ux) * (gi - ux);
                sum_k[(gi + gj) as usize] += v;
                diff_k[(gi - gj).abs() as usize] += v;
            }
        }
        let angle = GlcmAngle {
            ng: ngf,
            ux,
            autocorrelation: ac,
            prominence: cp,
            shade: cs,
            tendency: ct,
            contrast: cont,
            covariance: corm,
            sigx2,
            sigy2,
            energy: ene,
            hxy,
            hxy1,
            hxy2,
            hx: entropy(&px),
            hy: entropy(&py),
            max_p: maxp,
            sum_squares: ss,
            sum_k: sum_k[2..].to_vec(),
            mcc: mcc(p, &px, &py, n),
            diff_k,
        };
        let vals = FEATURES.iter().map(|f| (f.value)(&angle));
        for (slot, v) in per.iter_mut().zip(vals) {
            slot.push(v);
        }
    }
    // the mean over angles; MCC of a matrix with one gray level is 1, as PyRadiomics has it
    let entries = FEATURES
        .iter()
        .zip(&per)
        .map(|(f, vals)| (f.name, if f.name == "MCC" && n < 2 { 1.0 } else { nanmean(vals) }))
        .collect();
    FeatureValues { entries }
}

/// Maximal correlation coefficient of one normalised matrix: the square root of the second largest eigenvalue
/// of `Q = D_x⁻¹ P D_y⁻¹ Pᵀ`, computed on the similar symmetric matrix `D_x^{-½} P D_y⁻¹ Pᵀ D_x^{-½}`
/// over the rows with `p_x > 0` (the others contribute zero eigenvalues).
fn mcc(p: &[f64], px: &[f64], py: &[f64], n: usize) -> f64 {
    if n < 2 {
        return 1.0;
    }
    let rows: Vec<usize> = (0..n).filter(|&i| px[i] > 0.0).collect();
    let m = rows.len();
    let mut s = vec![0.0; m * m];
    for (a, &i) in rows.iter().enumerate() {
        for (b, &j) in rows.iter().enumerate().skip(a) {
            let mut acc = 0.0;
            for k in 0..n {
                if py[k] > 0.0 {
                    acc += p[i * n + k] * p[j * n + k] / (py[k] + EPS / px[i].max(EPS));
                }
            }
            let v = acc / (px[i].sqrt() * px[j].sqrt());
            s[a * m + b] = v;
            s[b * m + a] = v;
        }
    }
    let mut ev = symmetric_eigenvalues(s, m);
    // zero eigenvalues from dropped rows
    while ev.len() < n {
        ev.insert(0, 0.0);
    }
    let second = ev[ev.len() - 2];
    if second < 0.0 {
        if second > -1e-12 { 0.0 } else { f64::NAN }
    } else {
        second.sqrt()
    }
}
