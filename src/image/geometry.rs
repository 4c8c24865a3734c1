//! Grid geometry: size, spacing, origin and direction, with ITK's index ↔ physical transforms.

/// Where the voxels of a volume lie in patient (LPS) space.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Geometry {
    /// Number of voxels along `(i, j, k)`.
    pub size: [usize; 3],
    /// Voxel spacing in mm along `(i, j, k)`.
    pub spacing: [f64; 3],
    /// Physical position (LPS, mm) of the centre of voxel `(0, 0, 0)`.
    pub origin: [f64; 3],
    /// Direction cosines, row-major: `direction[r][c]` is component `r` of the unit vector of axis `c`.
    pub direction: [[f64; 3]; 3],
}

/// An axis-aligned box in index space: first index and size along `(i, j, k)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BoundingBox {
    /// First index inside the box.
    pub start: [usize; 3],
    /// Extent of the box.
    pub size: [usize; 3],
}

impl BoundingBox {
    /// Last index inside the box (inclusive).
    pub fn end(&self) -> [usize; 3] {
        [
            self.start[0] + self.size[0] - 1,
            self.start[1] + self.size[1] - 1,
            self.start[2] + self.size[2] - 1,
        ]
    }

    /// Grow the box by `pad` voxels on every side, clipped to a grid of `limit` voxels.
    pub fn padded(&self, pad: usize, limit: [usize; 3]) -> BoundingBox {
        let mut start = [0; 3];
        let mut size = [0; 3];
        for d in 0..3 {
            let lo = self.start[d].saturating_sub(pad);
            let hi = (self.start[d] + self.size[d] - 1 + pad).min(limit[d] - 1);
            start[d] = lo;
            size[d] = hi - lo + 1;
        }
        BoundingBox { start, size }
    }

    /// PyRadiomics' text form: `(x, y, z, sx, sy, sz)`.
    pub fn to_pyradiomics_string(&self) -> String {
        format!(
            "({}, {}, {}, {}, {}, {})",
            self.start[0], self.start[1], self.start[2], self.size[0], self.size[1], self.size[2]
        )
    }
}

impl Geometry {
    /// A geometry with identity direction.
    pub fn new(size: [usize; 3], spacing: [f64; 3], origin: [f64; 3]) -> Self {
        Geometry {
            size,
            spacing,
            origin,
            direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
        }
    }

    /// Number of voxels.
    pub fn len(&self) -> usize {
        self.size[0] * self.size[1] * self.size[2]
    }

    /// Whether the grid has no voxels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Linear offset of index `(i, j, k)`.
    #[inline]
    pub fn offset(&self, i: usize, j: usize, k: usize) -> usize {
        i + self.size[0] * (j + self.size[1] * k)
    }

    /// DICOM ImageOrientationPatient of the `(i, j)` plane: the row direction (axis `i`) then the column
    /// direction (axis `j`).
    pub fn orientation_cosines(&self) -> [f64; 6] {
        let d = &self.direction;
        [d[0][0], d[1][0], d[2][0], d[0][1], d[1][1], d[2][1]]
    }

    /// The index → physical matrix `D · diag(spacing)` (row-major).
    pub fn index_to_physical_matrix(&self) -> [[f64; 3]; 3] {
        let mut m = [[0.0; 3]; 3];
        for (r, row) in m.iter_mut().enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = self.direction[r][c] * self.spacing[c];
            }
        }
        m
    }

    /// The physical → index matrix, the inverse of [`Geometry::index_to_physical_matrix`].
    pub fn physical_to_index_matrix(&self) -> [[f64; 3]; 3] {
        invert3(&self.index_to_physical_matrix())
    }

    /// Physical point of a continuous index (ITK `TransformContinuousIndexToPhysicalPoint`).
    pub fn continuous_index_to_physical(&self, index: [f64; 3]) -> [f64; 3] {
        let m = self.index_to_physical_matrix();
        let mut p = [0.0; 3];
        for r in 0..3 {
            let mut s = 0.0;
            for c in 0..3 {
                s += m[r][c] * index[c];
            }
            p[r] = self.origin[r] + s;
        }
        p
    }

    /// Continuous index of a physical point (ITK `TransformPhysicalPointToContinuousIndex`).
    pub fn physical_to_continuous_index(&self, point: [f64; 3]) -> [f64; 3] {
        let m = self.physical_to_index_matrix();
        let d = [
            point[0] - self.origin[0],
            point[1] - self.origin[1],
            point[2] - self.origin[2],
        ];
        let mut idx = [0.0; 3];
        for r in 0..3 {
            idx[r] = m[r][0] * d[0] + m[r][1] * d[1] + m[r][2] * d[2];
        }
        idx
    }

    /// The geometry of the sub-grid `bb`.
    pub fn cropped(&self, bb: &BoundingBox) -> Geometry {
        let start = [bb.start[0] as f64, bb.start[1] as f64, bb.start[2] as f64];
        Geometry {
            size: bb.size,
            spacing: self.spacing,
            origin: self.continuous_index_to_physical(start),
            direction: self.direction,
        }
    }

    /// Compare two grids the way SimpleITK's `LabelStatisticsImageFilter` (used by PyRadiomics' `checkMask`)
    /// does: sizes must be equal, and origin, spacing and direction must agree within `tolerance`
    /// (ITK's coordinate tolerance is relative to the spacing; the direction tolerance is absolute).
    /// Returns a description of the first difference found.
    pub fn mismatch(&self, other: &Geometry, tolerance: f64) -> Option<String> {
        if self.size != other.size {
            return Some(format!("size {:?} vs {:?}", self.size, other.size));
        }
        let coordinate_tol = tolerance * self.spacing[0].abs();
        for d in 0..3 {
            if (self.spacing[d] - other.spacing[d]).abs() > coordinate_tol {
                return Some(format!("spacing {:?} vs {:?}", self.spacing, other.spacing));
            }
        }
        for d in 0..3 {
            if (self.origin[d] - other.origin[d]).abs() > coordinate_tol {
                return Some(format!("origin {:?} vs {:?}", self.origin, other.origin));
            }
        }
        for r in 0..3 {
            for c in 0..3 {
                if (self.direction[r][c] - other.direction[r][c]).abs() > tolerance {
                    return Some(format!("direction {:?} vs {:?}", self.direction, other.direction));
                }
            }
        }
        None
    }
}

/// Invert a 3×3 matrix by the adjugate. Returns zeros for a singular matrix (callers validate directions
/// when reading, so this cannot happen for a volume that was read successfully).
pub fn invert3(m: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let c00 = m[1][1] * m[2][2] - m[1][2] * m[2][1];
    let c01 = m[1][2] * m[2][0] - m[1][0] * m[2][2];
    let c02 = m[1][0] * m[2][1] - m[1][1] * m[2][0];
    let det = m[0][0] * c00 + m[0][1] * c01 + m[0][2] * c02;
    if det == 0.0 {
        return [[0.0; 3]; 3];
    }
    let inv = 1.0 / det;
    [
        [
            c00 * inv,
            (m[0][2] * m[2][1] - m[0][1] * m[2][2]) * inv,
            (m[0][1] * m[1][2] - m[0][2] * m[1][1]) * inv,
        ],
        [
            c01 * inv,
            (m[0][0] * m[2][2] - m[0][2] * m[2][0]) * inv,
            (m[0][2] * m[1][0] - m[0][0] * m[1][2]) * inv,
        ],
        [
            c02 * inv,
            (m[0][1] * m[2][0] - m[0][0] * m[2][1]) * inv,
            (m[0][0] * m[1][1] - m[0][1] * m[1][0]) * inv,
        ],
    ]
}

/// Determinant of a 3×3 matrix.
pub fn det3(m: &[[f64; 3]; 3]) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_physical_round_trip_oblique() {
        let s = std::f64::consts::FRAC_1_SQRT_2;
        let g = Geometry {
            size: [4, 5, 6],
            spacing: [0.7, 0.8, 2.0],
            origin: [10.0, -5.0, 3.0],
            direction: [[s, -s, 0.0], [s, s, 0.0], [0.0, 0.0, 1.0]],
        };
        let idx = [1.5, 2.0, 3.25];
        let p = g.continuous_index_to_physical(idx);
        let back = g.physical_to_continuous_index(p);
        for d in 0..3 {
            assert!((back[d] - idx[d]).abs() < 1e-12);
        }
        // axis 0 moves along (s, s, 0) scaled by 0.7
        let p0 = g.continuous_index_to_physical([1.0, 0.0, 0.0]);
        assert!((p0[0] - (10.0 + 0.7 * s)).abs() < 1e-12);
        assert!((p0[1] - (-5.0 + 0.7 * s)).abs() < 1e-12);
    }

    #[test]
    fn padded_box_is_clipped() {
        let bb = BoundingBox {
            start: [1, 0, 5],
            size: [2, 3, 1],
        };
        let p = bb.padded(5, [10, 10, 8]);
        assert_eq!(p.start, [0, 0, 0]);
        assert_eq!(p.end(), [7, 7, 7]);
    }
}
