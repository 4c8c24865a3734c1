//! NIfTI / NRRD label maps (e.g. saved by ITK-SNAP next to the series) → [`Mask`].
//!
//! The label map must lie on the series grid: same size, and spacing, origin and direction equal within
//! [`GEOMETRY_TOLERANCE`] (relative to the spacing for coordinates, absolute for direction cosines — NIfTI
//! stores geometry in single precision). It is then taken voxel for voxel onto the series grid; any larger
//! difference is refused rather than silently resampled. Labels are kept (the extraction `label` picks one).

use std::path::Path;

use super::Mask;
use crate::error::{Error, Result};
use crate::ingest::Series;

/// Tolerance for "the same grid".
pub const GEOMETRY_TOLERANCE: f64 = 1e-3;

/// Read a label map for `series`.
pub fn read(path: &Path, series: &Series) -> Result<Mask> {
    let vol = crate::io::read_volume(path)?;
    if let Some(reason) = series.geometry.mismatch(&vol.geometry, GEOMETRY_TOLERANCE) {
        return Err(Error::GeometryMismatch {
            image: series.dir.clone(),
            mask: path.to_path_buf(),
            reason,
        });
    }
    let mut mask = Mask::empty(&series.geometry, format!("label map {}", path.display()));
    for (m, v) in mask.volume.data.iter_mut().zip(&vol.data) {
        *m = *v;
    }
    if mask.voxels() == 0 {
        return Err(Error::InvalidRoi {
            path: path.to_path_buf(),
            reason: "the label map is empty".into(),
        });
    }
    Ok(mask)
}
