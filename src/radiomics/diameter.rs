//! Maximum pairwise distances over mesh vertices, without the O(n²) all-pairs search.
//!
//! A point that is not extreme along some axis-parallel line through the point set (it lies strictly between
//! two others on that line) is not a vertex of the convex hull, and the largest distance between points of a
//! set is always attained between hull vertices. We therefore keep only points that are extreme on every
//! axis-parallel line through them, then search pairs in order of decreasing distance from the centroid,
//! stopping as soon as `r_a + r_b` cannot beat the best distance found. The result is exactly the all-pairs
//! maximum (same squared distances, compared exactly), in a small fraction of the time.

/// Points on a half-voxel lattice: integer coordinates are `2 × index`, so grouping is exact.
pub type LatticePoint<const D: usize> = [i64; D];

/// Keep the points that are extreme (min or max) along every axis among points sharing their other
/// coordinates, in their given order. The points must be distinct (mesh vertices are: one per edge).
///
/// Per axis, the extremes of every line come from a table over the points' bounding box, indexed by the other
/// coordinates: one pass to fill it, one to test each point. A box too sparse for a table (more than
/// `TABLE_CELLS_PER_POINT` cells a point) sorts the points along each line instead; both keep the same points.
pub fn hull_candidates<const D: usize>(points: &[LatticePoint<D>]) -> Vec<LatticePoint<D>> {
    let Some((lo, hi)) = bounding_box(points) else {
        return Vec::new();
    };
    let extent: [usize; D] = std::array::from_fn(|d| (hi[d] - lo[d]) as usize + 1);
    let mut keep = vec![true; points.len()];
    for axis in 0..D {
        let cells: usize = (0..D).filter(|&d| d != axis).map(|d| extent[d]).product();
        // (a few thousand cells are cheap whatever the number of points)
        if cells > TABLE_CELLS_PER_POINT * points.len() + 4096 {
            keep_line_extremes_sorted(points, axis, &mut keep);
            continue;
        }
        // the cell of a point's line: its other coordinates, row-major within the box
        let cell = |p: &LatticePoint<D>| {
            (0..D)
                .filter(|&d| d != axis)
                .fold(0usize, |c, d| c * extent[d] + (p[d] - lo[d]) as usize)
        };
        let mut extremes = vec![(i64::MAX, i64::MIN); cells];
        for p in points {
            let e = &mut extremes[cell(p)];
            *e = (e.0.min(p[axis]), e.1.max(p[axis]));
        }
        for (k, p) in keep.iter_mut().zip(points) {
            let (min, max) = extremes[cell(p)];
            *k &= p[axis] == min || p[axis] == max;
        }
    }
    points.iter().zip(&keep).filter(|(_, k)| **k).map(|(p, _)| *p).collect()
}

/// Table cells a point that [`hull_candidates`] allows before it sorts instead (the table costs a pass over the
/// cells, the sort `n log n` comparisons).
const TABLE_CELLS_PER_POINT: usize = 64;

/// The smallest and largest coordinate on each axis; `None` for no points.
fn bounding_box<const D: usize>(points: &[LatticePoint<D>]) -> Option<([i64; D], [i64; D])> {
    let first = points.first()?;
    Some(points.iter().fold((*first, *first), |(mut lo, mut hi), p| {
        for d in 0..D {
            lo[d] = lo[d].min(p[d]);
            hi[d] = hi[d].max(p[d]);
        }
        (lo, hi)
    }))
}

/// [`hull_candidates`]' test along `axis` by sorting: points sorted by their other coordinates, then by this axis;
/// the points strictly inside a run sharing the other coordinates are dropped from `keep`.
fn keep_line_extremes_sorted<const D: usize>(points: &[LatticePoint<D>], axis: usize, keep: &mut [bool]) {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        let (pa, pb) = (&points[a], &points[b]);
        for d in 0..D {
            if d != axis && pa[d] != pb[d] {
                return pa[d].cmp(&pb[d]);
            }
        }
        pa[axis].cmp(&pb[axis])
    });
    let same_line = |a: usize, b: usize| (0..D).all(|d| d == axis || points[a][d] == points[b][d]);
    let mut s = 0;
    while s < order.len() {
        let mut e = s + 1;
        while e < order.len() && same_line(order[s], order[e]) {
            e += 1;
        }
        for &i in &order[s + 1..e.saturating_sub(1).max(s + 1)] {
            keep[i] = false;
        }
        s = e;
    }
}

/// Largest squared physical distance between any two points (`scale` = physical size of one lattice step
/// per axis). Returns 0 for fewer than two points.
pub fn max_squared_distance<const D: usize>(points: &[LatticePoint<D>], scale: [f64; D]) -> f64 {
    if points.len() < 2 {
        return 0.0;
    }
    let phys: Vec<[f64; D]> = points
        .iter()
        .map(|p| {
            let mut q = [0.0; D];
            for d in 0..D {
                q[d] = p[d] as f64 * scale[d];
            }
            q
        })
        .collect();
    let mut c = [0.0; D];
    for p in &phys {
        for d in 0..D {
            c[d] += p[d];
        }
    }
    for v in c.iter_mut() {
        *v /= phys.len() as f64;
    }
    let dist = |a: &[f64; D], b: &[f64; D]| {
        let mut s = 0.0;
        for d in 0..D {
            let t = a[d] - b[d];
            s += t * t;
        }
        s
    };
    let mut by_r: Vec<(f64, usize)> = phys.iter().enumerate().map(|(i, p)| (dist(p, &c).sqrt(), i)).collect();
    by_r.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let mut best = 0.0f64;
    for (ia, &(ra, a)) in by_r.iter().enumerate() {
        if 2.0 * ra < best.sqrt() * (1.0 - 1e-12) {
            break;
        }
        for &(rb, b) in &by_r[ia + 1..] {
            if ra + rb < best.sqrt() * (1.0 - 1e-12) {
                break;
            }
            let d = dist(&phys[a], &phys[b]);
            if d > best {
                best = d;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_brute_force() {
        // deterministic pseudo-random lattice points
        let mut s = 12345u64;
        let mut pts = Vec::new();
        for _ in 0..400 {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let x = ((s >> 33) % 40) as i64;
            let y = ((s >> 45) % 30) as i64;
            let z = ((s >> 20) % 10) as i64;
            pts.push([z, y, x]);
        }
        let scale = [1.3, 0.7, 0.5];
        let mut brute = 0.0f64;
        for a in &pts {
            for b in &pts {
                let d: f64 = (0..3).map(|k| ((a[k] - b[k]) as f64 * scale[k]).powi(2)).sum();
                brute = brute.max(d);
            }
        }
        let fast = max_squared_distance(&hull_candidates(&pts), scale);
        assert_eq!(fast, brute);
    }

    /// The points the table keeps are the ones sorting along each line keeps, in the same order, in 2-D and 3-D,
    /// on dense clouds and on sparse ones whose box is too large for a table; and each is a hull candidate for the
    /// brute-force maximum.
    #[test]
    fn the_line_table_keeps_what_sorting_keeps() {
        fn sorted<const D: usize>(pts: &[LatticePoint<D>]) -> Vec<LatticePoint<D>> {
            let mut keep = vec![true; pts.len()];
            for axis in 0..D {
                keep_line_extremes_sorted(pts, axis, &mut keep);
            }
            pts.iter().zip(&keep).filter(|(_, k)| **k).map(|(p, _)| *p).collect()
        }
        fn distinct<const D: usize>(n: usize, span: [u64; D], seed: u64) -> Vec<LatticePoint<D>> {
            let mut s = seed;
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::new();
            while out.len() < n {
                let p: LatticePoint<D> = std::array::from_fn(|d| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((s >> 33) % span[d]) as i64 - 7
                });
                if seen.insert(p) {
                    out.push(p);
                }
            }
            out
        }
        for (n, span, seed) in [
            (500, [12, 20, 30], 1),
            (300, [5, 9, 400], 2),
            (40, [100_000, 3, 100_000], 3),
        ] {
            let pts = distinct::<3>(n, span, seed);
            let kept = hull_candidates(&pts);
            assert_eq!(kept, sorted(&pts), "3-D {span:?}");
            assert!(kept.len() < pts.len() || n < 100, "nothing dropped on {span:?}");
        }
        for (n, span, seed) in [(400, [25, 40], 4), (60, [1_000_000, 1_000_000], 5), (1, [3, 3], 6)] {
            let pts = distinct::<2>(n, span, seed);
            assert_eq!(hull_candidates(&pts), sorted(&pts), "2-D {span:?}");
        }
        assert!(hull_candidates::<3>(&[]).is_empty());
    }
}
