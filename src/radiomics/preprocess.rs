//! Image and mask preparation before feature extraction, as PyRadiomics' `imageoperations` does it:
//! geometry check, label selection, ROI checks (`minimumROIDimensions`, `minimumROISize`), normalisation,
//! resegmentation and the resampling grid.

use std::path::Path;

use super::resample::resample;
use super::settings::{ResegmentMode, Settings};
use crate::error::{Error, Result};
use crate::image::{BoundingBox, Geometry, PixelType, Volume};

/// Check that the mask defines a usable ROI and return its bounding box and voxel count (PyRadiomics
/// `checkMask`). One pass over the mask, no allocation proportional to the image.
pub fn check_roi(mask_path: &Path, mask: &Volume<f64>, settings: &Settings) -> Result<(BoundingBox, usize)> {
    let size = mask.geometry.size;
    check_roi_rows(mask_path, size, settings, |f| {
        for (r, row) in mask.data.chunks_exact(size[0].max(1)).enumerate() {
            f(r, row)
        }
        Ok(())
    })
}

/// [`check_roi`] of a mask of `size` given row by row (`rows` calls its argument with each row along `i` and the
/// row's number `j + size_j · k`, in storage order, and may leave out rows that hold only zeros; it may be called
/// twice, the second time only to name the labels present when the one asked for is not; its error, reading the
/// mask, is returned).
pub fn check_roi_rows(
    mask_path: &Path,
    size: [usize; 3],
    settings: &Settings,
    rows: impl Fn(&mut dyn FnMut(usize, &[f64])) -> Result<()>,
) -> Result<(BoundingBox, usize)> {
    let invalid = |reason: String| Error::InvalidRoi {
        path: mask_path.to_path_buf(),
        reason,
    };
    let l = settings.label as f64;
    let (mut lo, mut hi) = ([usize::MAX; 3], [0usize; 3]);
    let (mut count, mut any_label) = (0usize, false);
    rows(&mut |r, line: &[f64]| {
        if !line.iter().any(|&v| v != 0.0) {
            return;
        }
        any_label = true;
        let (j, k) = (r % size[1], r / size[1]);
        for (i, &v) in line.iter().enumerate() {
            if v == l {
                count += 1;
                let p = [i, j, k];
                for d in 0..3 {
                    lo[d] = lo[d].min(p[d]);
                    hi[d] = hi[d].max(p[d]);
                }
            }
        }
    })?;
    if !any_label {
        return Err(invalid("the mask is empty (no labelled voxels)".into()));
    }
    if count == 0 {
        let mut labels: Vec<i64> = Vec::new();
        rows(&mut |_, line: &[f64]| labels.extend(line.iter().filter(|&&v| v != 0.0).map(|&v| v as i64)))?;
        labels.sort_unstable();
        labels.dedup();
        labels.truncate(20);
        return Err(invalid(format!(
            "label {} is not present; labels found: {labels:?}",
            settings.label
        )));
    }
    let bb = BoundingBox {
        start: lo,
        size: [hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1],
    };
    let dims = bb.size.iter().filter(|&&s| s > 1).count();
    if count == 1 {
        return Err(invalid("the ROI is a single voxel".into()));
    }
    if dims < settings.minimum_roi_dimensions {
        return Err(invalid(format!(
            "the ROI has {dims} dimension(s) with more than one voxel (bounding box {:?}); minimumROIDimensions is {}",
            bb.size, settings.minimum_roi_dimensions
        )));
    }
    if let Some(min) = settings.minimum_roi_size.filter(|&min| count < min) {
        return Err(invalid(format!("the ROI has {count} voxels; minimumROISize is {min}")));
    }
    Ok((bb, count))
}

/// Reject NaN or infinite intensities inside the ROI.
pub fn check_finite(image_path: &Path, values: &[f64], inside: &[bool]) -> Result<()> {
    let count = values.iter().zip(inside).filter(|(v, m)| **m && !v.is_finite()).count();
    if count > 0 {
        return Err(Error::NonFinite {
            path: image_path.to_path_buf(),
            count,
        });
    }
    Ok(())
}

/// `sitk.Normalize` (whole image, sample standard deviation), optional outlier clamp, then scale.
pub fn normalize(image: &Volume<f64>, scale: f64, outliers: Option<f64>) -> Volume<f64> {
    let n = image.data.len() as f64;
    let (mut sum, mut c1, mut sq, mut c2) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for &v in &image.data {
        let y = v - c1;
        let t = sum + y;
        c1 = (t - sum) - y;
        sum = t;
        let y2 = v * v - c2;
        let t2 = sq + y2;
        c2 = (t2 - sq) - y2;
        sq = t2;
    }
    let mean = sum / n;
    let var = (sq - sum * sum / n) / (n - 1.0);
    let inv_sigma = 1.0 / var.sqrt();
    image.map(
        |v| {
            let mut x = (v - mean) * inv_sigma;
            if let Some(o) = outliers {
                x = x.clamp(-o, o);
            }
            x * scale
        },
        PixelType::F64,
    )
}

/// PyRadiomics `resegmentMask`: keep ROI voxels within the threshold(s). Errors when one voxel or fewer remain.
pub fn resegment(mask_path: &Path, values: &[f64], inside: &[bool], settings: &Settings) -> Result<Vec<bool>> {
    let Some(range) = &settings.resegment_range else {
        return Ok(inside.to_vec());
    };
    let mut sorted = range.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let roi: Vec<f64> = values
        .iter()
        .zip(inside)
        .filter(|(_, m)| **m)
        .map(|(v, _)| *v)
        .collect();
    let thresholds: Vec<f64> = match settings.resegment_mode {
        ResegmentMode::Absolute => sorted,
        ResegmentMode::Relative => {
            let max = roi.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            sorted.iter().map(|t| max * t).collect()
        }
        ResegmentMode::Sigma => {
            let n = roi.len() as f64;
            let mean = roi.iter().sum::<f64>() / n;
            let sd = (roi.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
            sorted.iter().map(|t| mean + sd * t).collect()
        }
    };
    let out: Vec<bool> = values
        .iter()
        .zip(inside)
        .map(|(&v, &m)| m && v >= thresholds[0] && (thresholds.len() < 2 || v <= thresholds[1]))
        .collect();
    let kept = out.iter().filter(|&&b| b).count();
    if kept <= 1 {
        return Err(Error::InvalidRoi {
            path: mask_path.to_path_buf(),
            reason: format!("resegmentation excluded too many voxels (retained {kept})"),
        });
    }
    Ok(out)
}

/// The resampled grid PyRadiomics' `resampleImage` builds around the ROI bounding box `bb`. Returns `None`
/// when the new spacing equals the image's (then only the mask would be resampled).
pub fn resampling_grid(mask: &Geometry, image: &Geometry, bb: &BoundingBox, settings: &Settings) -> Option<Geometry> {
    let requested = settings.resampled_pixel_spacing?;
    let mut spacing = [0.0; 3];
    for d in 0..3 {
        spacing[d] = if requested[d] == 0.0 {
            mask.spacing[d]
        } else {
            requested[d]
        };
        // do not resample along an axis where the label map spans a single slice
        if bb.size[d] == 1 {
            spacing[d] = mask.spacing[d];
        }
    }
    let close = (0..3).all(|d| (image.spacing[d] - spacing[d]).abs() <= 1e-8 + 1e-5 * spacing[d].abs());
    if close {
        return None;
    }
    let pad = settings.pad_distance as f64;
    let mut size = [0usize; 3];
    let mut lbound = [0.0; 3];
    for d in 0..3 {
        let ratio = mask.spacing[d] / spacing[d];
        let lo = ((bb.start[d] as f64 - 0.5) * ratio - pad).floor();
        let hi = (((bb.start[d] + bb.size[d]) as f64 - 0.5) * ratio + pad).ceil();
        let max_hi = (mask.size[d] as f64 * ratio).ceil() - 1.0;
        let lo = lo.max(0.0);
        let hi = hi.min(max_hi);
        size[d] = (hi - lo + 1.0) as usize;
        lbound[d] = lo / ratio;
    }
    let mut origin_index = [0.0; 3];
    for d in 0..3 {
        origin_index[d] = 0.5 * (spacing[d] - mask.spacing[d]) / mask.spacing[d] + lbound[d];
    }
    Some(Geometry {
        size,
        spacing,
        origin: mask.continuous_index_to_physical(origin_index),
        direction: mask.direction,
    })
}

/// Resample image (with the configured interpolator) and mask (nearest neighbour) onto `grid`.
pub fn resample_pair(
    image: &Volume<f64>,
    mask: &Volume<f64>,
    grid: &Geometry,
    settings: &Settings,
) -> (Volume<f64>, Volume<f64>) {
    let img = resample(image, grid, settings.interpolator, image.pixel_type);
    let msk = resample(
        mask,
        grid,
        super::settings::Interpolator::NearestNeighbor,
        mask.pixel_type,
    );
    (img, msk)
}
