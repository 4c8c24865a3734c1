//! Outlines of a binary slice as closed polygons along pixel edges, for writing RTSTRUCTs that rasterise
//! back to exactly the same pixels.
//!
//! Each ROI pixel contributes its four edges, oriented counter-clockwise; edges shared by two ROI pixels cancel;
//! the rest are chained into loops (outer boundaries and holes). Vertices lie on half-integer pixel
//! coordinates, so no voxel centre sits on an edge and the even–odd, centre-inside rasterisation of
//! [`crate::roi::rtstruct`] returns the original pixels.

use std::collections::{BTreeMap, BTreeSet};

/// Loops of vertices in continuous pixel index `(i, j)` for the slice `inside(i, j)` of `nx × ny` pixels.
pub fn outlines(nx: usize, ny: usize, inside: impl Fn(usize, usize) -> bool) -> Vec<Vec<[f64; 2]>> {
    // vertices on the doubled lattice: pixel (i, j) has corners (2i−1..2i+1, 2j−1..2j+1), stored +1 to stay ≥ 0
    let mut edges: BTreeSet<((i64, i64), (i64, i64))> = BTreeSet::new();
    for j in 0..ny {
        for i in 0..nx {
            if !inside(i, j) {
                continue;
            }
            let (x0, x1, y0, y1) = (2 * i as i64, 2 * i as i64 + 2, 2 * j as i64, 2 * j as i64 + 2);
            let quad = [
                ((x0, y0), (x1, y0)),
                ((x1, y0), (x1, y1)),
                ((x1, y1), (x0, y1)),
                ((x0, y1), (x0, y0)),
            ];
            for (a, b) in quad {
                if !edges.remove(&(b, a)) {
                    edges.insert((a, b));
                }
            }
        }
    }
    let mut next: BTreeMap<(i64, i64), Vec<(i64, i64)>> = BTreeMap::new();
    for (a, b) in &edges {
        next.entry(*a).or_default().push(*b);
    }
    let mut loops = Vec::new();
    while let Some((&start, _)) = next.iter().find(|(_, v)| !v.is_empty()) {
        let mut lp = vec![start];
        let mut cur = start;
        while let Some(nxt) = next.get_mut(&cur).and_then(|outs| outs.pop()) {
            if nxt == start {
                break;
            }
            lp.push(nxt);
            cur = nxt;
        }
        // drop collinear vertices, convert to pixel coordinates (corner = index ± 0.5)
        let m = lp.len();
        let pts: Vec<[f64; 2]> = (0..m)
            .filter(|&t| {
                let (p, c, n) = (lp[(t + m - 1) % m], lp[t], lp[(t + 1) % m]);
                (c.0 - p.0) * (n.1 - c.1) != (c.1 - p.1) * (n.0 - c.0)
            })
            .map(|t| [lp[t].0 as f64 / 2.0 - 0.5, lp[t].1 as f64 / 2.0 - 0.5])
            .collect();
        if pts.len() >= 3 {
            loops.push(pts);
        }
        next.retain(|_, v| !v.is_empty());
    }
    loops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Geometry;
    use crate::roi::{Mask, rtstruct::fill_polygon};

    #[test]
    fn outlines_rasterise_back_to_the_same_pixels() {
        // a ring (with a hole), a diagonal pair (touching corners) and an isolated pixel
        let pix = |i: usize, j: usize| {
            let ring = (2..7).contains(&i) && (2..7).contains(&j) && !((4..5).contains(&i) && (4..5).contains(&j));
            ring || (i, j) == (9, 9) || (i, j) == (10, 10) || (i, j) == (0, 11)
        };
        let g = Geometry::new([12, 12, 1], [1.0; 3], [0.0; 3]);
        let mut m = Mask::empty(&g, String::new());
        for poly in outlines(12, 12, pix) {
            fill_polygon(&mut m, 0, &poly);
        }
        for j in 0..12 {
            for i in 0..12 {
                assert_eq!(m.volume.at(i, j, 0) == 1.0, pix(i, j), "({i},{j})");
            }
        }
    }
}
