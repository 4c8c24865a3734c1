//! RT Structure Set → [`Mask`], by rasterising closed planar contours onto the series grid.
//!
//! Convention (that of plastimatch, which PyRadiomics users rely on through its RTSTRUCT conversion): a voxel
//! is inside when its **centre** is inside the polygon by the even–odd rule; several contours on one slice
//! combine by even–odd too (so an inner contour is a hole). Edges use the half-open rule — an edge counts for
//! the scan line through voxel row `j` when exactly one of its end points has `y ≤ j` — so a centre on a shared
//! edge is counted once. Contour points are converted to continuous voxel indices; a contour's slice is
//! `round_half_up` of its mean slice index, and must lie within 0.25 of a slice.

use std::path::Path;

use dicom_dictionary_std::tags;

use super::{Mask, RoiOptions, round_half_up};
use crate::error::{Error, Result};
use crate::ingest::Series;
use crate::ingest::tags::{Dataset, floats, int, items, string};

/// Fill one polygon (continuous `(i, j)` vertices) into slice `k` by the even–odd rule (toggling).
pub fn fill_polygon(mask: &mut Mask, k: usize, poly: &[[f64; 2]]) {
    let g = mask.volume.geometry.clone();
    let n = poly.len();
    if n < 3 {
        return;
    }
    for j in 0..g.size[1] {
        let y = j as f64;
        let mut xs: Vec<f64> = Vec::new();
        for e in 0..n {
            let (a, b) = (poly[e], poly[(e + 1) % n]);
            if (a[1] <= y) != (b[1] <= y) {
                xs.push(a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1]));
            }
        }
        xs.sort_by(|p, q| p.total_cmp(q));
        for pair in xs.chunks_exact(2) {
            // voxel centres with x in [pair[0], pair[1])
            let start = pair[0].ceil().max(0.0) as i64;
            let end = (pair[1].ceil() as i64).min(g.size[0] as i64);
            for i in start..end {
                let o = g.offset(i as usize, j, k);
                mask.volume.data[o] = 1.0 - mask.volume.data[o];
            }
        }
    }
}

/// Read an RTSTRUCT onto the grid of `series`.
pub fn read(path: &Path, series: &Series, opts: &RoiOptions) -> Result<Mask> {
    let obj = crate::ingest::guard::open(path, false)?;
    let ds: &Dataset = &obj;
    let bad = |reason: String| Error::invalid_roi(path, reason);
    let rois: Vec<(i64, String)> =
        super::numbered(ds, tags::STRUCTURE_SET_ROI_SEQUENCE, tags::ROI_NUMBER, tags::ROI_NAME);
    let (chosen, name) = opts.choice.pick(&rois).cloned().ok_or_else(|| {
        bad(format!(
            "no matching structure ({:?}); structures: {rois:?}",
            opts.choice
        ))
    })?;
    let structure = items(ds, tags::STRUCTURE_SET_ROI_SEQUENCE)
        .iter()
        .find(|r| int(r, tags::ROI_NUMBER) == Some(chosen));
    let referenced = structure.and_then(|r| string(r, tags::REFERENCED_FRAME_OF_REFERENCE_UID));
    super::check_frame_of_reference(path, referenced, series)?;
    let g = &series.geometry;
    let mut mask = Mask::empty(g, String::new());
    let mut contours = 0;
    for rc in items(ds, tags::ROI_CONTOUR_SEQUENCE) {
        if int(rc, tags::REFERENCED_ROI_NUMBER) != Some(chosen) {
            continue;
        }
        for c in items(rc, tags::CONTOUR_SEQUENCE) {
            let pts = floats(c, tags::CONTOUR_DATA).unwrap_or_default();
            if pts.len() < 9 || !pts.len().is_multiple_of(3) {
                return Err(bad(format!("contour {} has {} coordinates", contours + 1, pts.len())));
            }
            let idx: Vec<[f64; 3]> = pts
                .chunks_exact(3)
                .map(|p| g.physical_to_continuous_index([p[0], p[1], p[2]]))
                .collect();
            let kz = idx.iter().map(|p| p[2]).sum::<f64>() / idx.len() as f64;
            let k = round_half_up(kz);
            if (kz - k as f64).abs() > 0.25 || k < 0 || k as usize >= g.size[2] {
                return Err(bad(format!(
                    "contour {} (slice index {kz:.3}) lies on no slice of the series",
                    contours + 1
                )));
            }
            let poly: Vec<[f64; 2]> = idx.iter().map(|p| [p[0], p[1]]).collect();
            fill_polygon(&mut mask, k as usize, &poly);
            contours += 1;
        }
    }
    if mask.voxels() == 0 {
        return Err(bad(format!("structure {chosen} is empty ({contours} contour(s))")));
    }
    mask.source = format!(
        "RTSTRUCT {} ROI {chosen} '{name}' ({contours} contours)",
        path.display()
    );
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Geometry;

    #[test]
    fn half_open_rule_on_exact_vertices() {
        // square with corners on voxel centres (2,2)–(5,5): centres with x, y in [2, 5) → {2,3,4}²
        let g = Geometry::new([8, 8, 1], [1.0; 3], [0.0; 3]);
        let mut m = Mask::empty(&g, String::new());
        fill_polygon(&mut m, 0, &[[2.0, 2.0], [5.0, 2.0], [5.0, 5.0], [2.0, 5.0]]);
        for j in 0..8 {
            for i in 0..8 {
                let expect = (2..5).contains(&i) && (2..5).contains(&j);
                assert_eq!(m.volume.at(i, j, 0) == 1.0, expect, "({i},{j})");
            }
        }
        // two squares sharing the edge x = 4: each shared-edge centre is counted once (no gaps, no overlap)
        let mut m = Mask::empty(&g, String::new());
        fill_polygon(&mut m, 0, &[[1.0, 1.0], [4.0, 1.0], [4.0, 3.0], [1.0, 3.0]]);
        fill_polygon(&mut m, 0, &[[4.0, 1.0], [7.0, 1.0], [7.0, 3.0], [4.0, 3.0]]);
        for i in 1..7 {
            assert_eq!(m.volume.at(i, 1, 0), 1.0, "x = {i}");
        }
        assert_eq!(m.volume.at(7, 1, 0), 0.0);
    }
}
