//! 3D shape features, from a marching-cubes mesh of the ROI and from its voxels.
//!
//! The mask (cropped to its bounding box and padded by one empty voxel) is meshed with marching cubes with
//! vertices at edge midpoints ([`super::mc_table`]). `V` is the mesh volume (sum of signed tetrahedra from the
//! origin, `Σ a·(b×c)/6`), `A` the mesh area (`Σ ½|(a−c)×(b−c)|`), `N_v` the voxel count, and `λ₁ ≥ λ₂ ≥ λ₃`
//! the eigenvalues of the covariance of the physical voxel coordinates. PyRadiomics documentation "Shape
//! Features (3D)"; Lorensen & Cline, SIGGRAPH 1987.
//!
//! | feature | formula |
//! |---|---|
//! | MeshVolume | `V` |
//! | VoxelVolume | `N_v · Δx Δy Δz` |
//! | SurfaceArea | `A` |
//! | SurfaceVolumeRatio | `A / V` |
//! | Sphericity | `(36 π V²)^{1/3} / A` |
//! | Compactness1 (deprecated) | `V / √(π A³)` |
//! | Compactness2 (deprecated) | `36 π V² / A³` |
//! | SphericalDisproportion (deprecated) | `A / (36 π V²)^{1/3}` |
//! | Maximum3DDiameter | largest distance between mesh vertices |
//! | Maximum2DDiameterSlice / Column / Row | the same within planes of equal z / y / x |
//! | MajorAxisLength / MinorAxisLength / LeastAxisLength | `4√λ₁`, `4√λ₂`, `4√λ₃` |
//! | Elongation | `√(λ₂/λ₁)` |
//! | Flatness | `√(λ₃/λ₁)` |

use super::diameter::{hull_candidates, max_squared_distance};
use super::mc_table::{CORNERS, EDGE_MIDPOINTS, TRIANGLES};
use super::{Feature, FeatureValues};
use crate::linalg::symmetric_eigenvalues;

/// What the features are computed from: the mesh, the eigenvalues of the voxel coordinates' covariance, the
/// voxel count.
pub struct ShapeStats {
    /// Mesh surface area `A` and volume `V`.
    area: f64,
    volume: f64,
    /// Eigenvalues `λ_least ≤ λ_minor ≤ λ_major`.
    l3: f64,
    l2: f64,
    l1: f64,
    /// Maximum diameters of the mesh.
    diameter_column: f64,
    diameter_row: f64,
    diameter_slice: f64,
    diameter_3d: f64,
    /// `N_v × voxel volume`.
    voxel_volume: f64,
}

/// An axis length: `4 √λ` (NaN for a negative eigenvalue of a degenerate ROI).
fn axis(l: f64) -> f64 {
    if l < 0.0 { f64::NAN } else { l.sqrt() * 4.0 }
}

/// `√(a / b)`, NaN where PyRadiomics gives NaN.
fn ratio(a: f64, b: f64) -> f64 {
    if a < 0.0 || b <= 0.0 { f64::NAN } else { (a / b).sqrt() }
}

const PI: f64 = std::f64::consts::PI;

/// The class: each feature with its name, deprecated flag and formula (see the table above).
pub const FEATURES: &[Feature<ShapeStats>] = &[
    Feature::deprecated("Compactness1", |s| s.volume / (PI * s.area * s.area * s.area).sqrt()),
    Feature::deprecated("Compactness2", |s| {
        36.0 * PI * s.volume * s.volume / (s.area * s.area * s.area)
    }),
    Feature::new("Elongation", |s| ratio(s.l2, s.l1)),
    Feature::new("Flatness", |s| ratio(s.l3, s.l1)),
    Feature::new("LeastAxisLength", |s| axis(s.l3)),
    Feature::new("MajorAxisLength", |s| axis(s.l1)),
    Feature::new("Maximum2DDiameterColumn", |s| s.diameter_column),
    Feature::new("Maximum2DDiameterRow", |s| s.diameter_row),
    Feature::new("Maximum2DDiameterSlice", |s| s.diameter_slice),
    Feature::new("Maximum3DDiameter", |s| s.diameter_3d),
    Feature::new("MeshVolume", |s| s.volume),
    Feature::new("MinorAxisLength", |s| axis(s.l2)),
    Feature::deprecated("SphericalDisproportion", |s| {
        s.area / (36.0 * PI * s.volume * s.volume).cbrt()
    }),
    Feature::new("Sphericity", |s| (36.0 * PI * s.volume * s.volume).cbrt() / s.area),
    Feature::new("SurfaceArea", |s| s.area),
    Feature::new("SurfaceVolumeRatio", |s| s.area / s.volume),
    Feature::new("VoxelVolume", |s| s.voxel_volume),
];

/// A binary mask in numpy order: `at(z, y, x)`.
pub struct BinaryMask {
    /// Sizes `(z, y, x)`.
    pub dims: [usize; 3],
    /// Row-major `z, y, x` values.
    pub data: Vec<bool>,
}

impl BinaryMask {
    /// Build from a mask in ITK layout (`size` = `(x, y, z)`, x fastest), padding one empty voxel on each side.
    pub fn padded_from_itk(size: [usize; 3], inside: impl Fn(usize) -> bool) -> Self {
        let dims = [size[2] + 2, size[1] + 2, size[0] + 2];
        let mut data = vec![false; dims[0] * dims[1] * dims[2]];
        for z in 0..size[2] {
            for y in 0..size[1] {
                for x in 0..size[0] {
                    if inside(x + size[0] * (y + size[1] * z)) {
                        data[((z + 1) * dims[1] + (y + 1)) * dims[2] + x + 1] = true;
                    }
                }
            }
        }
        BinaryMask { dims, data }
    }

    /// Value at `(z, y, x)`.
    #[inline]
    pub fn at(&self, z: usize, y: usize, x: usize) -> bool {
        self.data[(z * self.dims[1] + y) * self.dims[2] + x]
    }
}

/// Mesh measurements of a padded mask.
pub struct MeshMeasures {
    /// Surface area (mm²).
    pub area: f64,
    /// Enclosed volume (mm³).
    pub volume: f64,
    /// Largest vertex distance overall, then within equal-z, equal-y and equal-x planes.
    pub diameter_3d: f64,
    /// Within planes of equal z (axial for an axial acquisition).
    pub diameter_slice: f64,
    /// Within planes of equal y.
    pub diameter_column: f64,
    /// Within planes of equal x.
    pub diameter_row: f64,
}

/// Run marching cubes over the padded mask. `spacing` is `(z, y, x)`.
pub fn mesh(mask: &BinaryMask, spacing: [f64; 3]) -> MeshMeasures {
    let [nz, ny, nx] = mask.dims;
    let (mut area, mut volume6) = (0.0, 0.0);
    for iz in 0..nz - 1 {
        for iy in 0..ny - 1 {
            for ix in 0..nx - 1 {
                let mut idx = 0u8;
                for (b, c) in CORNERS.iter().enumerate() {
                    if mask.at(iz + c[0], iy + c[1], ix + c[2]) {
                        idx |= 1 << b;
                    }
                }
                let (cfg, sign) = if idx & 0x80 != 0 {
                    (idx ^ 0xff, -1.0)
                } else {
                    (idx, 1.0)
                };
                let tris = TRIANGLES[cfg as usize];
                for t in tris.chunks_exact(3) {
                    let vert = |e: u8| {
                        let m = EDGE_MIDPOINTS[e as usize];
                        [
                            (iz as f64 + m[0]) * spacing[0],
                            (iy as f64 + m[1]) * spacing[1],
                            (ix as f64 + m[2]) * spacing[2],
                        ]
                    };
                    let (a, b, c) = (vert(t[0]), vert(t[1]), vert(t[2]));
                    let ab = cross(a, b);
                    volume6 += sign * (ab[0] * c[0] + ab[1] * c[1] + ab[2] * c[2]);
                    let u = [a[0] - c[0], a[1] - c[1], a[2] - c[2]];
                    let v = [b[0] - c[0], b[1] - c[1], b[2] - c[2]];
                    let n = cross(u, v);
                    area += 0.5 * (n[0] * n[0] + n[1] * n[1] + n[2] * n[2]).sqrt();
                }
            }
        }
    }
    // Vertices: midpoints of every edge joining an ROI voxel to a background voxel, on a half-voxel lattice.
    let mut pts: Vec<[i64; 3]> = Vec::new();
    for z in 0..nz {
        for y in 0..ny {
            for x in 0..nx {
                let v = mask.at(z, y, x);
                let (z2, y2, x2) = (2 * z as i64, 2 * y as i64, 2 * x as i64);
                if x + 1 < nx && mask.at(z, y, x + 1) != v {
                    pts.push([z2, y2, x2 + 1]);
                }
                if y + 1 < ny && mask.at(z, y + 1, x) != v {
                    pts.push([z2, y2 + 1, x2]);
                }
                if z + 1 < nz && mask.at(z + 1, y, x) != v {
                    pts.push([z2 + 1, y2, x2]);
                }
            }
        }
    }
    let half = [spacing[0] / 2.0, spacing[1] / 2.0, spacing[2] / 2.0];
    let d3 = max_squared_distance(&hull_candidates(&pts), half).sqrt();
    // the largest diameter within each plane normal to `axis`: the points bucketed by their `axis` coordinate
    let planar = |axis: usize| -> f64 {
        let others: Vec<usize> = (0..3).filter(|&d| d != axis).collect();
        let (lo, hi) = pts
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), p| (lo.min(p[axis]), hi.max(p[axis])));
        let mut planes: Vec<Vec<[i64; 2]>> = vec![Vec::new(); if lo <= hi { (hi - lo) as usize + 1 } else { 0 }];
        for p in &pts {
            planes[(p[axis] - lo) as usize].push([p[others[0]], p[others[1]]]);
        }
        let scale = [half[others[0]], half[others[1]]];
        planes
            .iter()
            .map(|plane| max_squared_distance(&hull_candidates(plane), scale))
            .fold(0.0f64, f64::max)
            .sqrt()
    };
    MeshMeasures {
        area,
        volume: (volume6 / 6.0).abs(),
        diameter_3d: d3,
        diameter_slice: planar(0),
        diameter_column: planar(1),
        diameter_row: planar(2),
    }
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - b[1] * a[2],
        a[2] * b[0] - b[2] * a[0],
        a[0] * b[1] - b[0] * a[1],
    ]
}

/// Eigenvalues (ascending) of the covariance of the physical coordinates of the ROI voxels, normalised by
/// the voxel count as PyRadiomics does. Tiny negative values from rounding (> −1e−10) are set to 0.
pub fn coordinate_eigenvalues<const D: usize>(coords: &[[f64; D]]) -> Vec<f64> {
    let n = coords.len() as f64;
    let mut mean = [0.0; D];
    for c in coords {
        for d in 0..D {
            mean[d] += c[d];
        }
    }
    for m in mean.iter_mut() {
        *m /= n;
    }
    let mut cov = vec![0.0; D * D];
    for c in coords {
        for a in 0..D {
            for b in 0..D {
                cov[a * D + b] += (c[a] - mean[a]) * (c[b] - mean[b]) / n;
            }
        }
    }
    let mut ev = symmetric_eigenvalues(cov, D);
    for v in ev.iter_mut() {
        if *v < 0.0 && *v > -1e-10 {
            *v = 0.0;
        }
    }
    ev
}

/// Compute the 3D shape features of `mask` (ITK layout, `size` `(x, y, z)`, `spacing` `(x, y, z)`).
pub fn compute(size: [usize; 3], spacing: [f64; 3], inside: impl Fn(usize) -> bool) -> FeatureValues {
    let mask = BinaryMask::padded_from_itk(size, &inside);
    let zyx = [spacing[2], spacing[1], spacing[0]];
    let m = mesh(&mask, zyx);
    let mut coords = Vec::new();
    for z in 0..size[2] {
        for y in 0..size[1] {
            for x in 0..size[0] {
                if inside(x + size[0] * (y + size[1] * z)) {
                    coords.push([z as f64 * zyx[0], y as f64 * zyx[1], x as f64 * zyx[2]]);
                }
            }
        }
    }
    let nv = coords.len() as f64;
    let ev = coordinate_eigenvalues(&coords);
    let stats = ShapeStats {
        area: m.area,
        volume: m.volume,
        l3: ev[0],
        l2: ev[1],
        l1: ev[2],
        diameter_column: m.diameter_column,
        diameter_row: m.diameter_row,
        diameter_slice: m.diameter_slice,
        diameter_3d: m.diameter_3d,
        voxel_volume: nv * spacing[0] * spacing[1] * spacing[2],
    };
    FeatureValues::from_features(FEATURES, &stats)
}
