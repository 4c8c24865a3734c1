//! One synthetic breast DCE-MRI examination: tissue, one tumour driven by the patient's latent traits,
//! contrast kinetics across phases, and Rician noise.
//!
//! - **Grid**: axial (rows along +x, columns along +y, slices along +z, LPS), 0.7 mm in-plane, 2 mm slices.
//! - **Tissue**: an elliptical body in air; inside, fat, with fibroglandular tissue where a smooth random field
//!   (trilinear interpolation of normals on a 12 mm lattice) exceeds a threshold (≈30 % density).
//! - **Tumour**: an ellipsoid of radius `R = 9 mm · e^{0.35·size}` whose surface is lobulated by three random
//!   harmonics with amplitude `0.25 · σ(irregularity)`, with 3–7 tapering spicules when `irregularity > 0.5`, and a
//!   non-enhancing necrotic core (radius 0.4 R) in half of the large tumours (`size > 0.5`). Internal
//!   heterogeneity: peak enhancement × (1 + h · T), `T` a correlated field on a 2.1 mm lattice, `h =
//!   0.12 · e^{0.5·heterogeneity}`. Rim enhancement: × (0.6 + 0.8 (r/R)²).
//! - **Kinetics** (phase `p`, 1.5 min apart; phase 1 pre-contrast): relative enhancement `E = E_peak · u(p) ·
//!   (1 + s (p − 2))` for `p ≥ 2`, uptake `u = 1 − e^{−t/0.6 min}`, late slope `s` = +0.10 (type I, persistent),
//!   0 (type II, plateau), −0.12 (type III, washout). Fibroglandular tissue enhances slowly (0.15, persistent),
//!   fat barely (0.02).
//! - **Signal** `S = S₀ (1 + E)` with `S₀` = 80 (fat-suppressed fat), 200 (fibroglandular), 220 (tumour), 150
//!   (necrosis); **Rician noise** `√((S + σn₁)² + (σn₂)²)`, `σ = 200 / SNR`, `n` approximately standard normal.

use crate::image::Geometry;
use crate::rng::Rng;

/// Contrast kinetic curve type (Kuhl's types I–III).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Kinetic {
    /// Type I: persistent enhancement.
    Persistent,
    /// Type II: plateau.
    Plateau,
    /// Type III: washout.
    Washout,
}

impl Kinetic {
    fn late_slope(self) -> f64 {
        match self {
            Kinetic::Persistent => 0.10,
            Kinetic::Plateau => 0.0,
            Kinetic::Washout => -0.12,
        }
    }
}

/// A patient's latent tumour traits (standardised scores and categories).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Traits {
    /// Size score (standard normal).
    pub size: f64,
    /// Margin irregularity score (standard normal).
    pub irregularity: f64,
    /// Internal heterogeneity score (standard normal).
    pub heterogeneity: f64,
    /// Rim enhancement present.
    pub rim: bool,
    /// Kinetic curve type.
    pub kinetic: Kinetic,
}

/// Image size and quality.
#[derive(Debug, Clone, Copy)]
pub struct PhantomSpec {
    /// In-plane matrix (rows = columns).
    pub matrix: usize,
    /// Slices.
    pub slices: usize,
    /// Dynamic phases (first pre-contrast).
    pub phases: usize,
    /// Signal-to-noise ratio of fibroglandular tissue before contrast.
    pub snr: f64,
}

impl Default for PhantomSpec {
    /// The study-sized examination: 256 × 256 × 60, three phases, SNR 20.
    fn default() -> Self {
        PhantomSpec {
            matrix: 256,
            slices: 60,
            phases: 3,
            snr: 20.0,
        }
    }
}

/// The rendered examination.
pub struct Phantom {
    /// The grid.
    pub grid: Geometry,
    /// Stored values per phase, x fastest.
    pub phases: Vec<Vec<i16>>,
    /// The true tumour.
    pub tumour: Vec<bool>,
    /// Tumour radius (mm) before lobulation.
    pub radius_mm: f64,
}

/// A smooth random field: normals on a coarse lattice, trilinearly interpolated.
struct SmoothField {
    dims: [usize; 3],
    cell: [f64; 3],
    v: Vec<f32>,
}

impl SmoothField {
    fn new(rng: &mut Rng, extent_mm: [f64; 3], cell_mm: f64) -> Self {
        let dims = [0, 1, 2].map(|d| (extent_mm[d] / cell_mm).ceil() as usize + 2);
        let v = (0..dims[0] * dims[1] * dims[2]).map(|_| rng.normal() as f32).collect();
        SmoothField {
            dims,
            cell: [cell_mm; 3],
            v,
        }
    }

    #[inline]
    fn at(&self, p: [f64; 3]) -> f64 {
        let mut i0 = [0usize; 3];
        let mut f = [0.0; 3];
        for d in 0..3 {
            let x = (p[d] / self.cell[d]).clamp(0.0, (self.dims[d] - 2) as f64);
            let b = x.floor().min((self.dims[d] - 2) as f64);
            i0[d] = b as usize;
            f[d] = x - b;
        }
        let idx = |x: usize, y: usize, z: usize| self.v[x + self.dims[0] * (y + self.dims[1] * z)] as f64;
        let mut s = 0.0;
        for c in 0..8 {
            let (dx, dy, dz) = (c & 1, (c >> 1) & 1, (c >> 2) & 1);
            let w = (if dx == 1 { f[0] } else { 1.0 - f[0] })
                * (if dy == 1 { f[1] } else { 1.0 - f[1] })
                * (if dz == 1 { f[2] } else { 1.0 - f[2] });
            s += w * idx(i0[0] + dx, i0[1] + dy, i0[2] + dz);
        }
        // trilinear interpolation of independent normals shrinks the variance; rescale to ≈ unit variance
        s * 1.6
    }
}

/// Render one examination.
pub fn render(spec: &PhantomSpec, t: &Traits, rng: &mut Rng) -> Phantom {
    let (n, nz) = (spec.matrix, spec.slices);
    let spacing = [0.7, 0.7, 2.0];
    let extent = [n as f64 * spacing[0], n as f64 * spacing[1], nz as f64 * spacing[2]];
    let grid = Geometry::new(
        [n, n, nz],
        spacing,
        [-extent[0] / 2.0, -extent[1] / 2.0, -extent[2] / 2.0],
    );
    let tissue = SmoothField::new(rng, extent, 12.0);
    let texture = SmoothField::new(rng, extent, 2.1);

    // tumour geometry
    let max_r = 0.22 * extent[0].min(extent[1]).min(extent[2] * 1.5);
    let radius = (9.0 * (0.35 * t.size).exp()).min(max_r);
    let axes = [radius, radius * rng.range(0.75, 1.0), radius * rng.range(0.7, 1.0)];
    let lob_amp = 0.25 * crate::stats::sigmoid(t.irregularity);
    let harmonics: Vec<([f64; 3], f64, f64)> = (0..3)
        .map(|_| {
            let v = [rng.normal(), rng.normal(), rng.normal()];
            let l = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt().max(1e-9);
            (
                [v[0] / l, v[1] / l, v[2] / l],
                rng.range(2.0, 4.0),
                rng.range(0.0, std::f64::consts::TAU),
            )
        })
        .collect();
    let n_spicules = if t.irregularity > 0.5 {
        (3.0 + 4.0 * crate::stats::sigmoid(2.0 * (t.irregularity - 0.5))).round() as usize
    } else {
        0
    };
    let spicules: Vec<([f64; 3], f64)> = (0..n_spicules)
        .map(|_| {
            let v = [rng.normal(), rng.normal(), 0.3 * rng.normal()];
            let l = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt().max(1e-9);
            ([v[0] / l, v[1] / l, v[2] / l], radius * rng.range(0.5, 1.0))
        })
        .collect();
    let necrotic = t.size > 0.5 && rng.bernoulli(0.5);
    let body = [0.46 * extent[0], 0.42 * extent[1]];
    let reach = radius * 1.6 + 3.0;
    let centre = [
        rng.range(-0.2, 0.2) * extent[0],
        rng.range(-0.15, 0.15) * extent[1],
        rng.range(-0.5, 0.5) * (extent[2] / 2.0 - reach).max(0.0),
    ];
    let peak = 1.6 * rng.range(0.85, 1.15);
    let h = 0.12 * (0.5 * t.heterogeneity).exp();

    // per-voxel baseline signal and peak enhancement
    let len = grid.len();
    let mut s0 = vec![0f32; len];
    let mut epk = vec![0f32; len];
    let mut kind = vec![0u8; len]; // 0 air, 1 fat, 2 fgt, 3 tumour
    let mut tumour = vec![false; len];
    for k in 0..nz {
        for j in 0..n {
            for i in 0..n {
                let o = i + n * (j + n * k);
                let p = [i as f64 * spacing[0], j as f64 * spacing[1], k as f64 * spacing[2]];
                let c = [p[0] - extent[0] / 2.0, p[1] - extent[1] / 2.0];
                if (c[0] / body[0]).powi(2) + (c[1] / body[1]).powi(2) > 1.0 {
                    continue;
                }
                if tissue.at(p) > 0.5 {
                    s0[o] = 200.0;
                    epk[o] = 0.15;
                    kind[o] = 2;
                } else {
                    s0[o] = 80.0;
                    epk[o] = 0.02;
                    kind[o] = 1;
                }
                let d = [c[0] - centre[0], c[1] - centre[1], p[2] - extent[2] / 2.0 - centre[2]];
                if d[0].abs() > reach * 1.3 || d[1].abs() > reach * 1.3 || d[2].abs() > reach * 1.3 {
                    continue;
                }
                let q = [d[0] / axes[0], d[1] / axes[1], d[2] / axes[2]];
                let r = (q[0] * q[0] + q[1] * q[1] + q[2] * q[2]).sqrt();
                let u = if r > 0.0 {
                    [q[0] / r, q[1] / r, q[2] / r]
                } else {
                    [1.0, 0.0, 0.0]
                };
                let lob: f64 = harmonics
                    .iter()
                    .map(|(kv, f, ph)| (f * (kv[0] * u[0] + kv[1] * u[1] + kv[2] * u[2]) + ph).sin())
                    .sum::<f64>()
                    / 3.0;
                let mut inside = r <= 1.0 + lob_amp * lob;
                if !inside {
                    for (v, l) in &spicules {
                        let along = d[0] * v[0] + d[1] * v[1] + d[2] * v[2];
                        if along > 0.0 && along < radius + l {
                            let perp = ((d[0] - along * v[0]).powi(2)
                                + (d[1] - along * v[1]).powi(2)
                                + (d[2] - along * v[2]).powi(2))
                            .sqrt();
                            if perp < 1.0 * (1.0 - along / (radius + l)) + 0.35 {
                                inside = true;
                                break;
                            }
                        }
                    }
                }
                if !inside {
                    continue;
                }
                tumour[o] = true;
                kind[o] = 3;
                if necrotic && r < 0.4 {
                    s0[o] = 150.0;
                    epk[o] = 0.0;
                    continue;
                }
                s0[o] = 220.0;
                let mut e = peak * (1.0 + h * texture.at(p)).max(0.05);
                if t.rim {
                    e *= 0.6 + 0.8 * r.min(1.2).powi(2);
                }
                epk[o] = e as f32;
            }
        }
    }
    let sigma = 200.0 / spec.snr;
    let slope = t.kinetic.late_slope();
    let phases = (0..spec.phases)
        .map(|p| {
            let tmin = 1.5 * p as f64;
            let uptake = if p == 0 { 0.0 } else { 1.0 - (-tmin / 0.6).exp() };
            let late = |s: f64| if p >= 2 { 1.0 + s * (p as f64 - 1.0) } else { 1.0 };
            let (f_t, f_bg) = (uptake * late(slope), uptake * late(0.10));
            (0..len)
                .map(|o| {
                    let f = if kind[o] == 3 { f_t } else { f_bg };
                    let s = s0[o] as f64 * (1.0 + epk[o] as f64 * f);
                    let (a, b) = (s + sigma * rng.fast_normal(), sigma * rng.fast_normal());
                    (a * a + b * b).sqrt().round().min(i16::MAX as f64) as i16
                })
                .collect()
        })
        .collect();
    Phantom {
        grid,
        phases,
        tumour,
        radius_mm: radius,
    }
}

/// Erode (`-1`) or dilate (`+1`) a mask by one voxel with 6-connectivity (the reader's ROI jitter).
pub fn jitter(mask: &[bool], size: [usize; 3], step: i32) -> Vec<bool> {
    if step == 0 {
        return mask.to_vec();
    }
    let [nx, ny, nz] = size;
    let mut out = mask.to_vec();
    for k in 0..nz {
        for j in 0..ny {
            for i in 0..nx {
                let o = i + nx * (j + ny * k);
                let neighbours = [
                    (i > 0).then(|| o - 1),
                    (i + 1 < nx).then(|| o + 1),
                    (j > 0).then(|| o - nx),
                    (j + 1 < ny).then(|| o + nx),
                    (k > 0).then(|| o - nx * ny),
                    (k + 1 < nz).then(|| o + nx * ny),
                ];
                if step < 0 && mask[o] {
                    out[o] = neighbours.iter().all(|n| n.is_some_and(|n| mask[n]));
                } else if step > 0 && !mask[o] {
                    out[o] = neighbours.iter().any(|n| n.is_some_and(|n| mask[n]));
                }
            }
        }
    }
    out
}
