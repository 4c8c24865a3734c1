//! 2D shape features of one slice, from a marching-squares contour.
//!
//! The slice mask (padded by one empty pixel) is contoured with marching squares, vertices at edge midpoints,
//! saddle squares resolved with the two inside corners kept apart (as PyRadiomics does). `A` is the area
//! enclosed by the contour (shoelace sum of the oriented segments), `P` its length, `N_p` the pixel count and
//! `λ₁ ≥ λ₂` the eigenvalues of the covariance of the physical pixel coordinates. PyRadiomics documentation
//! "Shape Features (2D)".
//!
//! | feature | formula |
//! |---|---|
//! | MeshSurface | `A` |
//! | PixelSurface | `N_p · Δ₁ Δ₂` |
//! | Perimeter | `P` |
//! | PerimeterSurfaceRatio | `P / A` |
//! | Sphericity | `2√(π A) / P` |
//! | SphericalDisproportion (deprecated) | `P / (2√(π A))` |
//! | MaximumDiameter | largest distance between contour vertices |
//! | MajorAxisLength / MinorAxisLength | `4√λ₁`, `4√λ₂` |
//! | Elongation | `√(λ₂/λ₁)` |
//!
//! When the ROI spans several slices we use the slice with the largest ROI area along the chosen axis
//! (lowest index on ties), and say so in the diagnostics; PyRadiomics refuses that case.

use super::diameter::{hull_candidates, max_squared_distance};
use super::shape::coordinate_eigenvalues;
use super::{Feature, FeatureValues};

/// What the features are computed from: the contour's area and perimeter, its maximum diameter, the
/// eigenvalues of the pixel coordinates' covariance, the pixel count.
pub struct Shape2dStats {
    /// Mesh surface `A` and perimeter `P`.
    area: f64,
    perimeter: f64,
    diameter: f64,
    /// Eigenvalues `λ_minor ≤ λ_major`.
    l2: f64,
    l1: f64,
    /// `N_p × pixel area`.
    pixel_surface: f64,
}

const PI: f64 = std::f64::consts::PI;

/// The class: each feature with its name, deprecated flag and formula (see the table above).
pub const FEATURES: &[Feature<Shape2dStats>] = &[
    Feature::new("Elongation", |s| {
        if s.l2 < 0.0 || s.l1 <= 0.0 {
            f64::NAN
        } else {
            (s.l2 / s.l1).sqrt()
        }
    }),
    Feature::new(
        "MajorAxisLength",
        |s| if s.l1 < 0.0 { f64::NAN } else { 4.0 * s.l1.sqrt() },
    ),
    Feature::new("MaximumDiameter", |s| s.diameter),
    Feature::new("MeshSurface", |s| s.area),
    Feature::new(
        "MinorAxisLength",
        |s| if s.l2 < 0.0 { f64::NAN } else { 4.0 * s.l2.sqrt() },
    ),
    Feature::new("Perimeter", |s| s.perimeter),
    Feature::new("PerimeterSurfaceRatio", |s| s.perimeter / s.area),
    Feature::new("PixelSurface", |s| s.pixel_surface),
    Feature::deprecated("SphericalDisproportion", |s| s.perimeter / (2.0 * (PI * s.area).sqrt())),
    Feature::new("Sphericity", |s| 2.0 * (PI * s.area).sqrt() / s.perimeter),
];

/// Square corners `(row, col)`: q0 (0,0), q1 (0,1), q2 (1,1), q3 (1,0); edge midpoints m0 q0–q1, m1 q1–q2,
/// m2 q2–q3, m3 q3–q0.
const CORNERS: [[usize; 2]; 4] = [[0, 0], [0, 1], [1, 1], [1, 0]];
const MIDPOINTS: [[f64; 2]; 4] = [[0.0, 0.5], [0.5, 1.0], [1.0, 0.5], [0.5, 0.0]];

/// The contour segments of one square configuration, oriented with the inside on the left of `a → b` in
/// `(row, col)` coordinates (i.e. `(b − a) × (inside − a) > 0`).
fn segments(cfg: u8) -> Vec<(usize, usize)> {
    let inside = |c: usize| cfg & (1 << c) != 0;
    // edge e joins corners e and (e + 1) % 4
    let crossing: Vec<usize> = (0..4).filter(|&e| inside(e) != inside((e + 1) % 4)).collect();
    let pairs: Vec<(usize, usize)> = match crossing.len() {
        2 => vec![(crossing[0], crossing[1])],
        4 => (0..4).filter(|&c| inside(c)).map(|c| ((c + 3) % 4, c)).collect(),
        _ => vec![],
    };
    pairs
        .into_iter()
        .map(|(e1, e2)| {
            // a reference inside point: the centroid of inside corners adjacent to this segment's cut
            let (a, b) = (MIDPOINTS[e1], MIDPOINTS[e2]);
            let ins: Vec<[f64; 2]> = (0..4)
                .filter(|&c| inside(c))
                .filter(|&c| crossing.len() != 4 || c == e2)
                .map(|c| [CORNERS[c][0] as f64, CORNERS[c][1] as f64])
                .collect();
            let q = [
                ins.iter().map(|p| p[0]).sum::<f64>() / ins.len() as f64,
                ins.iter().map(|p| p[1]).sum::<f64>() / ins.len() as f64,
            ];
            let cr = (b[0] - a[0]) * (q[1] - a[1]) - (b[1] - a[1]) * (q[0] - a[0]);
            if cr > 0.0 { (e1, e2) } else { (e2, e1) }
        })
        .collect()
}

/// Compute shape2D features of a slice: `rows × cols` pixels (row-major), `spacing` = (row, col) mm.
pub fn compute(rows: usize, cols: usize, spacing: [f64; 2], inside: impl Fn(usize, usize) -> bool) -> FeatureValues {
    let (nr, nc) = (rows + 2, cols + 2);
    let at = |r: usize, c: usize| r >= 1 && c >= 1 && r <= rows && c <= cols && inside(r - 1, c - 1);
    let table: Vec<Vec<(usize, usize)>> = (0..16u8).map(segments).collect();
    let (mut twice_area, mut perimeter) = (0.0, 0.0);
    for r in 0..nr - 1 {
        for c in 0..nc - 1 {
            let mut cfg = 0u8;
            for (b, k) in CORNERS.iter().enumerate() {
                if at(r + k[0], c + k[1]) {
                    cfg |= 1 << b;
                }
            }
            for &(e1, e2) in &table[cfg as usize] {
                let a = [
                    (r as f64 + MIDPOINTS[e1][0]) * spacing[0],
                    (c as f64 + MIDPOINTS[e1][1]) * spacing[1],
                ];
                let b = [
                    (r as f64 + MIDPOINTS[e2][0]) * spacing[0],
                    (c as f64 + MIDPOINTS[e2][1]) * spacing[1],
                ];
                twice_area += a[0] * b[1] - b[0] * a[1];
                perimeter += ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2)).sqrt();
            }
        }
    }
    let area = (twice_area / 2.0).abs();
    let mut pts = Vec::new();
    let mut coords = Vec::new();
    for r in 0..nr {
        for c in 0..nc {
            let v = at(r, c);
            if v {
                coords.push([(r as f64) * spacing[0], (c as f64) * spacing[1]]);
            }
            if c + 1 < nc && at(r, c + 1) != v {
                pts.push([2 * r as i64, 2 * c as i64 + 1]);
            }
            if r + 1 < nr && at(r + 1, c) != v {
                pts.push([2 * r as i64 + 1, 2 * c as i64]);
            }
        }
    }
    let diameter = max_squared_distance(&hull_candidates(&pts), [spacing[0] / 2.0, spacing[1] / 2.0]).sqrt();
    let ev = coordinate_eigenvalues(&coords);
    let stats = Shape2dStats {
        area,
        perimeter,
        diameter,
        l2: ev[0],
        l1: ev[1],
        pixel_surface: coords.len() as f64 * spacing[0] * spacing[1],
    };
    FeatureValues::from_features(FEATURES, &stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_pixel_is_a_diamond() {
        let f = compute(1, 1, [1.0, 1.0], |_, _| true);
        assert!((f.get("MeshSurface").unwrap() - 0.5).abs() < 1e-12);
        assert!((f.get("Perimeter").unwrap() - 4.0 * 0.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(f.get("PixelSurface"), Some(1.0));
    }

    #[test]
    fn saddles_keep_inside_corners_apart() {
        // checkerboard 2×2: two diagonal pixels → two diamonds
        let f = compute(2, 2, [1.0, 1.0], |r, c| r == c);
        assert!((f.get("MeshSurface").unwrap() - 1.0).abs() < 1e-12);
    }
}
