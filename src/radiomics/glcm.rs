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

use super::texture::{DiscreteRoi, EPS, angle_weight, angles, nanmean};
use super::{FeatureValues, TextureOptions};
use crate::linalg::symmetric_eigenvalues;

/// Feature names and deprecated flags.
pub const FEATURES: &[(&str, bool)] = &[
    ("Autocorrelation", false),
    ("ClusterProminence", false),
    ("ClusterShade", false),
    ("ClusterTendency", false),
    ("Contrast", false),
    ("Correlation", false),
    ("DifferenceAverage", false),
    ("DifferenceEntropy", false),
    ("DifferenceVariance", false),
    ("Id", false),
    ("Idm", false),
    ("Idmn", false),
    ("Idn", false),
    ("Imc1", false),
    ("Imc2", false),
    ("InverseVariance", false),
    ("JointAverage", false),
    ("JointEnergy", false),
    ("JointEntropy", false),
    ("MCC", false),
    ("MaximumProbability", false),
    ("SumAverage", false),
    ("SumEntropy", false),
    ("SumSquares", false),
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
    for (p, _, li) in roi.voxels() {
        let ri = idx[li as usize];
        for (a, off) in offsets.iter().enumerate() {
            if let Some(lj) = roi.neighbour_level(p, *off).filter(|&l| l > 0) {
                mats[a][ri * n + idx[lj as usize]] += 1.0;
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
        let sum_k = &sum_k[2..];
        let hx = entropy(&px);
        let hy = entropy(&py);
        let da: f64 = diff_k.iter().enumerate().map(|(k, &v)| k as f64 * v).sum();
        let dv: f64 = diff_k
            .iter()
            .enumerate()
            .map(|(k, &v)| (k as f64 - da).powi(2) * v)
            .sum();
        let sigxy = sigx2.sqrt() * sigy2.sqrt();
        let corr = if sigxy == 0.0 { 1.0 } else { corm / (sigxy + EPS) };
        let div = hx.max(hy);
        let imc1 = if div == 0.0 { 0.0 } else { (hxy - hxy1) / div };
        let imc2 = if hxy2 == hxy {
            0.0
        } else {
            (1.0 - (-2.0 * (hxy2 - hxy)).exp()).sqrt()
        };
        let kf = |k: usize| k as f64;
        let idm: f64 = diff_k.iter().enumerate().map(|(k, &v)| v / (1.0 + kf(k) * kf(k))).sum();
        let idmn: f64 = diff_k
            .iter()
            .enumerate()
            .map(|(k, &v)| v / (1.0 + kf(k) * kf(k) / (ngf * ngf)))
            .sum();
        let id: f64 = diff_k.iter().enumerate().map(|(k, &v)| v / (1.0 + kf(k))).sum();
        let idn: f64 = diff_k.iter().enumerate().map(|(k, &v)| v / (1.0 + kf(k) / ngf)).sum();
        let iv: f64 = diff_k
            .iter()
            .enumerate()
            .skip(1)
            .map(|(k, &v)| v / (kf(k) * kf(k)))
            .sum();
        let sa: f64 = sum_k.iter().enumerate().map(|(k, &v)| (k as f64 + 2.0) * v).sum();
        let se = entropy(sum_k);
        let de = entropy(&diff_k);
        let mcc = mcc(p, &px, &py, n);
        let vals = [
            ac, cp, cs, ct, cont, corr, da, de, dv, id, idm, idmn, idn, imc1, imc2, iv, ux, ene, hxy, mcc, maxp, sa,
            se, ss,
        ];
        for (slot, v) in per.iter_mut().zip(vals) {
            slot.push(v);
        }
    }
    let values = FEATURES
        .iter()
        .zip(&per)
        .map(|((name, _), vals)| if *name == "MCC" && n < 2 { 1.0 } else { nanmean(vals) });
    FeatureValues::from_table(FEATURES, values)
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
