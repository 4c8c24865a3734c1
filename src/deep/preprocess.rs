//! From an image and its ROI to the VGG-16 input tensor, with conventions anyone can reproduce in PyTorch
//! (`tests/golden/make_vgg_fixture.py` does exactly this):
//!
//! 1. the slice along the acquisition axis (ITK `k`) with the largest ROI area, lowest index on ties
//!    ([`crate::image::largest_slice`], the same slice shape2D uses);
//! 2. the ROI's 2D bounding box on that slice, grown by `margin` voxels (clipped to the image), keeping the
//!    stored orientation: height = image rows (`j`), width = columns (`i`), i.e. numpy's `arr[k, r0:r1, c0:c1]`
//!    of a SimpleITK array;
//! 3. min–max scaling to [0, 1] and three identical channels;
//! 4. bilinear resizing to 224 × 224 with `align_corners=False` and no antialiasing, as
//!    `torch.nn.functional.interpolate` (source coordinate `(d + ½)·(in/out) − ½`, clamped at 0);
//! 5. normalisation with the ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).
//!
//! All arithmetic is in `f32`, in PyTorch's order, so the tensor agrees with PyTorch's to rounding.

use crate::error::{Error, Result};
use crate::image::{Volume, largest_slice};

/// Network input side.
pub const INPUT_SIZE: usize = 224;
/// ImageNet channel means.
pub const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A 2D crop, row-major (`rows × cols`).
#[derive(Debug, Clone, PartialEq)]
pub struct Crop {
    /// Height (image rows).
    pub rows: usize,
    /// Width (image columns).
    pub cols: usize,
    /// Values, row-major.
    pub values: Vec<f32>,
    /// Slice index `k` it was taken from.
    pub slice: usize,
}

/// Crop the largest ROI cross-section of `image` (ROI voxels: `mask == label`).
pub fn crop_largest_slice(image: &Volume<f64>, mask: &Volume<f64>, label: f64, margin: usize) -> Result<Crop> {
    let g = &image.geometry;
    let inside: Vec<bool> = mask.data.iter().map(|&v| v == label).collect();
    let (k, count) = largest_slice(g.size, &inside, 2);
    let invalid = |reason: String| Error::InvalidRoi {
        path: "deep-feature crop".into(),
        reason,
    };
    if count == 0 {
        return Err(invalid("the ROI is empty".into()));
    }
    let (mut r0, mut r1, mut c0, mut c1) = (usize::MAX, 0, usize::MAX, 0);
    for j in 0..g.size[1] {
        for i in 0..g.size[0] {
            if inside[g.offset(i, j, k)] {
                r0 = r0.min(j);
                r1 = r1.max(j);
                c0 = c0.min(i);
                c1 = c1.max(i);
            }
        }
    }
    if r1 - r0 + 1 < 2 || c1 - c0 + 1 < 2 {
        return Err(invalid(format!(
            "the ROI's largest cross-section (slice {k}) is {}×{} voxels; at least 2×2 is needed",
            r1 - r0 + 1,
            c1 - c0 + 1
        )));
    }
    let (r0, c0) = (r0.saturating_sub(margin), c0.saturating_sub(margin));
    let (r1, c1) = ((r1 + margin).min(g.size[1] - 1), (c1 + margin).min(g.size[0] - 1));
    let (rows, cols) = (r1 - r0 + 1, c1 - c0 + 1);
    let mut values = Vec::with_capacity(rows * cols);
    for j in r0..=r1 {
        for i in c0..=c1 {
            values.push(image.at(i, j, k) as f32);
        }
    }
    Ok(Crop {
        rows,
        cols,
        values,
        slice: k,
    })
}

/// PyTorch's bilinear source index and weight (`align_corners=False`).
fn source(dst: usize, scale: f32, len: usize) -> (usize, usize, f32) {
    let s = scale * (dst as f32 + 0.5) - 0.5;
    let s = if s < 0.0 { 0.0 } else { s };
    let i0 = s as usize;
    let i1 = if i0 < len - 1 { i0 + 1 } else { i0 };
    (i0, i1, s - i0 as f32)
}

/// The `3 × 224 × 224` input of one crop (CHW, row-major).
pub fn to_input(crop: &Crop) -> Vec<f32> {
    normalize(&resized_plane(crop))
}

/// Steps 3–4: the min–max scaled crop resized to one 224 × 224 plane in [0, 1].
pub fn resized_plane(crop: &Crop) -> Vec<f32> {
    let (min, max) = crop
        .values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let range = max - min;
    // a flat crop carries no texture: all zeros rather than PyTorch's 0/0
    let scaled: Vec<f32> = crop
        .values
        .iter()
        .map(|&v| if range > 0.0 { (v - min) / range } else { 0.0 })
        .collect();
    let (sh, sw) = (
        crop.rows as f32 / INPUT_SIZE as f32,
        crop.cols as f32 / INPUT_SIZE as f32,
    );
    let cols: Vec<(usize, usize, f32)> = (0..INPUT_SIZE).map(|x| source(x, sw, crop.cols)).collect();
    let mut plane = vec![0f32; INPUT_SIZE * INPUT_SIZE];
    for y in 0..INPUT_SIZE {
        let (h0, h1, l1) = source(y, sh, crop.rows);
        let l0 = 1.0 - l1;
        for (x, &(w0, w1, m1)) in cols.iter().enumerate() {
            let m0 = 1.0 - m1;
            let at = |r: usize, c: usize| scaled[r * crop.cols + c];
            plane[y * INPUT_SIZE + x] =
                l0 * (m0 * at(h0, w0) + m1 * at(h0, w1)) + l1 * (m0 * at(h1, w0) + m1 * at(h1, w1));
        }
    }
    plane
}

/// Step 5: three channels normalised with the ImageNet mean and std.
pub fn normalize(plane: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(3 * plane.len());
    for c in 0..3 {
        out.extend(plane.iter().map(|&v| (v - MEAN[c]) / STD[c]));
    }
    out
}
