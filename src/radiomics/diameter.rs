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
/// coordinates.
pub fn hull_candidates<const D: usize>(points: &[LatticePoint<D>]) -> Vec<LatticePoint<D>> {
    let mut keep = vec![true; points.len()];
    let mut order: Vec<usize> = (0..points.len()).collect();
    for axis in 0..D {
        // sort by the other coordinates, then by this axis
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
    points.iter().zip(&keep).filter(|(_, k)| **k).map(|(p, _)| *p).collect()
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
}
