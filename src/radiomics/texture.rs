//! What the texture classes share: the discretised ROI and the neighbour offsets ("angles").
//!
//! Offsets follow PyRadiomics' `generate_angles`: every offset whose infinity norm is one of `distances`,
//! skipping axes where the image is too small (size ≤ distance limits the offset to size − 1) and, with
//! `force2D`, the out-of-plane axis. GLCM and GLRLM use one of each ± pair (13 in 3D at distance 1);
//! GLSZM, GLDM and NGTDM use both (26-connectivity). GLRLM and GLSZM take distance 1 whatever `distances` says,
//! as PyRadiomics 3.1.0 does (it passes them no distances).
//!
//! The matrices look neighbours up in [`PaddedLevels`]: the levels inside a border of zeros as wide as the largest
//! offset, so that a neighbour is one load at a fixed linear distance.

/// A discretised ROI, cropped to its bounding box. `levels[o]` is the gray level (≥ 1) of voxel `o`, or 0
/// when the voxel is outside the mask. Layout and index order as [`crate::image::Volume`].
#[derive(Debug, Clone)]
pub struct DiscreteRoi {
    /// Size `(x, y, z)`.
    pub size: [usize; 3],
    /// Gray level per voxel, 0 outside the ROI.
    pub levels: Vec<u32>,
    /// The gray levels present in the ROI, ascending.
    pub gray_levels: Vec<u32>,
    /// Voxel spacing `(x, y, z)`.
    pub spacing: [f64; 3],
    /// Number of ROI voxels.
    pub n_voxels: usize,
}

impl DiscreteRoi {
    /// Build from per-voxel levels (0 = outside).
    pub fn new(size: [usize; 3], levels: Vec<u32>, spacing: [f64; 3]) -> Self {
        let (gray_levels, n_voxels) = present_levels(&levels);
        DiscreteRoi {
            size,
            levels,
            gray_levels,
            spacing,
            n_voxels,
        }
    }

    /// The largest gray level present (PyRadiomics' `Ng` coefficient).
    pub fn ng_max(&self) -> u32 {
        self.gray_levels.last().copied().unwrap_or(0)
    }

    /// Map from gray level to its row in a matrix that keeps only the levels present.
    pub fn level_index(&self) -> Vec<usize> {
        let mut idx = vec![usize::MAX; self.ng_max() as usize + 1];
        for (r, &g) in self.gray_levels.iter().enumerate() {
            idx[g as usize] = r;
        }
        idx
    }

    /// Linear offset of `(x, y, z)`.
    #[inline]
    pub fn offset(&self, x: usize, y: usize, z: usize) -> usize {
        x + self.size[0] * (y + self.size[1] * z)
    }

    /// The neighbour of `(x, y, z)` at `a`, if it lies inside the box.
    #[inline]
    pub fn step(&self, p: [usize; 3], a: [isize; 3]) -> Option<[usize; 3]> {
        let mut q = [0usize; 3];
        for d in 0..3 {
            let v = p[d] as isize + a[d];
            if v < 0 || v >= self.size[d] as isize {
                return None;
            }
            q[d] = v as usize;
        }
        Some(q)
    }
}

/// A [`DiscreteRoi`]'s levels inside a border of zeros `pad` voxels wide on every side: a neighbour at any
/// offset whose components are at most `pad` is then one load at a fixed linear distance ([`Self::delta`]),
/// with no bounds test per axis, and a neighbour outside the box reads 0, as one outside the ROI does. The
/// texture matrices walk neighbours this way.
pub struct PaddedLevels {
    /// Gray level per padded voxel (0 in the border and outside the ROI).
    pub levels: Vec<u32>,
    /// Padded size `(x, y, z)`.
    size: [usize; 3],
    /// The unpadded box's size.
    inner: [usize; 3],
    pad: usize,
}

impl PaddedLevels {
    /// The linear distance of the neighbour at `off` (every component at most `pad` in magnitude).
    pub fn delta(&self, off: [isize; 3]) -> isize {
        debug_assert!(off.iter().all(|c| c.unsigned_abs() <= self.pad));
        off[0] + self.size[0] as isize * (off[1] + self.size[1] as isize * off[2])
    }

    /// The padded offset `o + d` of the neighbour at linear distance `d` (from [`Self::delta`]).
    #[inline]
    pub fn at(o: usize, d: isize) -> usize {
        o.wrapping_add_signed(d)
    }

    /// The ROI's voxels in the box's storage order (x fastest, as every texture matrix scans them): their index
    /// `[x, y, z]` in the unpadded box, their padded offset, and their level.
    pub fn voxels(&self) -> impl Iterator<Item = ([usize; 3], usize, u32)> + '_ {
        let [nx, ny, nz] = self.inner;
        let pad = self.pad;
        (0..nz)
            .flat_map(move |z| (0..ny).map(move |y| (y, z)))
            .flat_map(move |(y, z)| {
                let row = pad + self.size[0] * (y + pad + self.size[1] * (z + pad));
                self.levels[row..row + nx]
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| **l != 0)
                    .map(move |(x, &l)| ([x, y, z], row + x, l))
            })
    }
}

impl DiscreteRoi {
    /// The levels in a border of zeros wide enough for every offset in `offsets` ([`PaddedLevels`]).
    pub fn padded(&self, offsets: &[[isize; 3]]) -> PaddedLevels {
        let pad = offsets
            .iter()
            .flat_map(|o| o.iter().map(|c| c.unsigned_abs()))
            .max()
            .unwrap_or(0);
        let [nx, ny, nz] = self.size;
        let size = [nx + 2 * pad, ny + 2 * pad, nz + 2 * pad];
        let mut levels = vec![0u32; size.iter().product()];
        for z in 0..nz {
            for y in 0..ny {
                let to = pad + size[0] * (y + pad + size[1] * (z + pad));
                let from = self.offset(0, y, z);
                levels[to..to + nx].copy_from_slice(&self.levels[from..from + nx]);
            }
        }
        PaddedLevels {
            levels,
            size,
            inner: self.size,
            pad,
        }
    }
}

/// The gray levels present in `levels` (those ≥ 1), ascending, and how many voxels have one. Levels up to
/// [`PRESENCE_TABLE_MAX`] are marked in a table, one pass and no sorting; a grid with larger levels (a huge
/// intensity range over a small bin width) sorts its levels instead of allocating a table that size.
fn present_levels(levels: &[u32]) -> (Vec<u32>, usize) {
    let max = levels.iter().copied().max().unwrap_or(0);
    if max as usize <= PRESENCE_TABLE_MAX {
        let (mut seen, mut n_voxels) = (vec![false; max as usize + 1], 0);
        for &l in levels {
            seen[l as usize] = true;
            n_voxels += usize::from(l > 0);
        }
        let present = (1..=max).filter(|&l| seen[l as usize]).collect();
        (present, n_voxels)
    } else {
        let mut present: Vec<u32> = levels.iter().copied().filter(|&l| l > 0).collect();
        let n_voxels = present.len();
        present.sort_unstable();
        present.dedup();
        (present, n_voxels)
    }
}

/// The largest gray level [`present_levels`] marks in a table (1 MB of flags).
const PRESENCE_TABLE_MAX: usize = 1 << 20;

/// Neighbour offsets `(dx, dy, dz)`.
///
/// `image_size` is the size of the image the ROI was cropped from (offsets along an axis are limited by it),
/// `out_of_plane` the ITK axis excluded by `force2D`, `bidirectional` whether both members of each ± pair
/// are returned. Unidirectional offsets are those whose first non-zero component in numpy order `(z, y, x)`
/// is positive.
pub fn angles(
    image_size: [usize; 3],
    distances: &[usize],
    out_of_plane: Option<usize>,
    bidirectional: bool,
) -> Vec<[isize; 3]> {
    let dmax = distances.iter().copied().max().unwrap_or(1) as isize;
    let mut out = Vec::new();
    for dz in -dmax..=dmax {
        for dy in -dmax..=dmax {
            for dx in -dmax..=dmax {
                let a = [dx, dy, dz];
                if a == [0, 0, 0] {
                    continue;
                }
                let norm = dx.abs().max(dy.abs()).max(dz.abs()) as usize;
                if !distances.contains(&norm) {
                    continue;
                }
                let mut ok = true;
                for d in 0..3 {
                    if Some(d) == out_of_plane && a[d] != 0 {
                        ok = false;
                    }
                    if a[d].unsigned_abs() >= image_size[d] {
                        ok = false;
                    }
                }
                if !ok {
                    continue;
                }
                if !bidirectional {
                    let first = [dz, dy, dx].into_iter().find(|&v| v != 0).unwrap_or(0);
                    if first < 0 {
                        continue;
                    }
                }
                out.push(a);
            }
        }
    }
    out
}

/// Distance weights for merging per-angle matrices (PyRadiomics `weightingNorm`). `exponential` selects the
/// GLCM form `exp(−‖d‖²)`; GLRLM uses the plain norm `‖d‖`.
pub fn angle_weight(norm: &str, a: [isize; 3], spacing: [f64; 3], exponential: bool) -> f64 {
    let v: Vec<f64> = (0..3).map(|d| a[d].unsigned_abs() as f64 * spacing[d]).collect();
    let n = match norm {
        "infinity" => v.iter().copied().fold(0.0, f64::max),
        "euclidean" => {
            let s: f64 = v.iter().map(|x| x * x).sum();
            if exponential {
                return (-s).exp();
            }
            s.sqrt()
        }
        "manhattan" => v.iter().sum(),
        _ => return 1.0,
    };
    if exponential { (-(n * n)).exp() } else { n }
}

/// Mean of the finite values (numpy `nanmean`); NaN when there are none.
pub fn nanmean(values: &[f64]) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for &v in values {
        if !v.is_nan() {
            s += v;
            n += 1;
        }
    }
    if n == 0 { f64::NAN } else { s / n as f64 }
}

/// Machine epsilon as PyRadiomics uses it (`numpy.spacing(1)`).
pub const EPS: f64 = f64::EPSILON;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thirteen_and_twenty_six_neighbours_in_3d() {
        assert_eq!(angles([10, 10, 10], &[1], None, false).len(), 13);
        assert_eq!(angles([10, 10, 10], &[1], None, true).len(), 26);
        assert_eq!(angles([10, 10, 10], &[1], Some(2), false).len(), 4);
        assert_eq!(angles([10, 10, 1], &[1], None, true).len(), 8);
        assert_eq!(angles([10, 10, 10], &[1, 2], None, false).len(), 62);
    }

    /// A box with gaps in it, levels 1–6 and 0 outside the ROI.
    fn small_roi() -> (DiscreteRoi, Vec<u32>) {
        let size = [3, 2, 4];
        let levels: Vec<u32> = (0..24).map(|i| if i % 5 == 0 { 0 } else { i % 7 }).collect();
        (DiscreteRoi::new(size, levels.clone(), [1.0; 3]), levels)
    }

    #[test]
    fn padded_voxels_are_the_roi_voxels_in_storage_order_and_neighbours_read_zero_outside() {
        let (roi, levels) = small_roi();
        let offsets = angles([3, 2, 4], &[1, 2], None, true);
        let padded = roi.padded(&offsets);
        let got: Vec<_> = padded.voxels().collect();
        let mut want = Vec::new();
        for z in 0..4 {
            for y in 0..2 {
                for x in 0..3 {
                    let l = levels[roi.offset(x, y, z)];
                    if l != 0 {
                        want.push(([x, y, z], l));
                    }
                }
            }
        }
        assert_eq!(got.iter().map(|&(p, _, l)| (p, l)).collect::<Vec<_>>(), want);
        assert_eq!(got.len(), roi.n_voxels);
        // Every neighbour at every offset: the level there, or 0 beyond the box.
        for &(p, o, l) in &got {
            assert_eq!(padded.levels[o], l);
            for a in &offsets {
                let q: Vec<isize> = (0..3).map(|d| p[d] as isize + a[d]).collect();
                let inside = (0..3).all(|d| q[d] >= 0 && q[d] < roi.size[d] as isize);
                let expected = if inside {
                    levels[roi.offset(q[0] as usize, q[1] as usize, q[2] as usize)]
                } else {
                    0
                };
                assert_eq!(
                    padded.levels[PaddedLevels::at(o, padded.delta(*a))],
                    expected,
                    "{p:?} {a:?}"
                );
            }
        }
    }

    #[test]
    fn present_levels_are_ascending_and_distinct_by_table_and_by_sorting() {
        let (roi, levels) = small_roi();
        assert_eq!(roi.gray_levels, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(roi.n_voxels, levels.iter().filter(|&&l| l > 0).count());
        assert_eq!(roi.ng_max(), 6);
        // Above the table's limit the levels are sorted instead; the same answer.
        let big = PRESENCE_TABLE_MAX as u32 + 7;
        let sparse = vec![0, big, 3, 0, big, 9, 3];
        assert_eq!(present_levels(&sparse), (vec![3, 9, big], 5));
        assert_eq!(present_levels(&[0, 0]), (vec![], 0));
        assert_eq!(present_levels(&[]), (vec![], 0));
    }
}

/// What an emphasis class' feature table reads: the [`EmphasisStats`] of one matrix, the count the normalised
/// non-uniformities divide by (`N`, or 1 where PyRadiomics replaces an empty GLSZM/GLDM's NaN), and the ROI's
/// voxel count (for ZonePercentage).
#[derive(Debug, Clone, Copy)]
pub struct Emphasis {
    /// The matrix' statistics.
    pub e: EmphasisStats,
    /// The divisor of the normalised non-uniformities.
    pub n: f64,
    /// Voxels in the ROI.
    pub voxels: f64,
}

/// The statistics shared by the matrices indexed by gray level `i` and a second index `j` (run length for
/// GLRLM, zone size for GLSZM, dependence count for GLDM). From cells `(i, j, P(i,j))`, with `N = Σ P`:
/// small/large emphasis `Σ P/j² / N`, `Σ P j² / N`; gray-level and `j` non-uniformity `Σᵢ(Σⱼ P)² / N`,
/// `Σⱼ(Σᵢ P)² / N`; variances of `i` and `j` under `p = P/N`; entropy `−Σ p log₂(p + ε)`; low/high
/// gray-level emphasis `Σ P/i² / N`, `Σ P i² / N`; and the four joint emphases `Σ P/(i²j²)`, `Σ P i²/j²`,
/// `Σ P j²/i²`, `Σ P i²j²`, each over `N`. One definition serves the three classes.
#[derive(Debug, Clone, Copy)]
pub struct EmphasisStats {
    /// `N = Σ P` (number of runs / zones / voxels).
    pub n: f64,
    /// `Σ j P` (voxels covered, for run percentage).
    pub j_weighted: f64,
    /// `Σ P/j² / N`.
    pub small: f64,
    /// `Σ P j² / N`.
    pub large: f64,
    /// `Σᵢ (Σⱼ P)² / N`.
    pub gray_nonuniformity: f64,
    /// `Σⱼ (Σᵢ P)² / N`.
    pub j_nonuniformity: f64,
    /// Variance of `i` under `p`.
    pub gray_variance: f64,
    /// Variance of `j` under `p`.
    pub j_variance: f64,
    /// `−Σ p log₂(p + ε)`.
    pub entropy: f64,
    /// `Σ P/i² / N`.
    pub low_gray: f64,
    /// `Σ P i² / N`.
    pub high_gray: f64,
    /// `Σ P/(i² j²) / N`.
    pub small_low_gray: f64,
    /// `Σ P i²/j² / N`.
    pub small_high_gray: f64,
    /// `Σ P j²/i² / N`.
    pub large_low_gray: f64,
    /// `Σ P i² j² / N`.
    pub large_high_gray: f64,
}

impl EmphasisStats {
    /// Compute from the non-zero cells `(i, j, P(i,j))`. `N = 0` yields NaN statistics (an empty angle).
    pub fn from_cells(cells: &[(f64, f64, f64)]) -> Self {
        use std::collections::BTreeMap;
        let n: f64 = cells.iter().map(|c| c.2).sum();
        let n = if n == 0.0 { f64::NAN } else { n };
        let mut pg: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        let mut pj: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        let mut s = EmphasisStats {
            n,
            j_weighted: 0.0,
            small: 0.0,
            large: 0.0,
            gray_nonuniformity: 0.0,
            j_nonuniformity: 0.0,
            gray_variance: 0.0,
            j_variance: 0.0,
            entropy: 0.0,
            low_gray: 0.0,
            high_gray: 0.0,
            small_low_gray: 0.0,
            small_high_gray: 0.0,
            large_low_gray: 0.0,
            large_high_gray: 0.0,
        };
        for &(i, j, c) in cells {
            if c == 0.0 {
                continue;
            }
            let (i2, j2) = (i * i, j * j);
            s.j_weighted += c * j;
            s.small += c / j2;
            s.large += c * j2;
            s.low_gray += c / i2;
            s.high_gray += c * i2;
            s.small_low_gray += c / (i2 * j2);
            s.small_high_gray += c * i2 / j2;
            s.large_low_gray += c * j2 / i2;
            s.large_high_gray += c * i2 * j2;
            let p = c / n;
            s.entropy -= p * (p + EPS).log2();
            pg.entry(i.to_bits()).or_insert((i, 0.0)).1 += c;
            pj.entry(j.to_bits()).or_insert((j, 0.0)).1 += c;
        }
        for v in [
            &mut s.small,
            &mut s.large,
            &mut s.low_gray,
            &mut s.high_gray,
            &mut s.small_low_gray,
            &mut s.small_high_gray,
            &mut s.large_low_gray,
            &mut s.large_high_gray,
        ] {
            *v /= n;
        }
        let moments = |m: &BTreeMap<u64, (f64, f64)>| {
            let sq: f64 = m.values().map(|(_, c)| c * c).sum();
            let mean: f64 = m.values().map(|(x, c)| c / n * x).sum();
            let var: f64 = m.values().map(|(x, c)| c / n * (x - mean).powi(2)).sum();
            (sq / n, var)
        };
        (s.gray_nonuniformity, s.gray_variance) = moments(&pg);
        (s.j_nonuniformity, s.j_variance) = moments(&pj);
        s
    }
}
