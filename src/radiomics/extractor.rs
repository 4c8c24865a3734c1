//! The extraction pipeline: from an image and a label map to a named feature set plus diagnostics.

use std::borrow::Cow;
use std::path::Path;

use rayon::prelude::*;

use super::discretize::{bin_edges, digitize};
use super::preprocess::{
    check_finite, check_roi, check_roi_rows, normalize, resample_pair, resampling_grid, resegment,
};
use super::settings::{Interpolator, Settings};
use super::texture::DiscreteRoi;
use super::{FeatureSet, FeatureValues, TextureOptions, class_features};
use crate::error::{Error, Result};
use crate::image::{BoundingBox, Volume, largest_slice};
use crate::io::{StoredVolume, ValueSummary};

/// ROI voxels from which the feature classes of one extraction run in parallel.
const PARALLEL_CLASSES_FROM: usize = 10_000;

/// The result of one extraction.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Extraction {
    /// Feature values, PyRadiomics names (`original_<class>_<Feature>`).
    pub features: FeatureSet,
    /// `diagnostics_*` entries (text values, as PyRadiomics prints them).
    pub diagnostics: Vec<(String, String)>,
}

fn tuple3(v: [f64; 3]) -> String {
    format!("({:?}, {:?}, {:?})", v[0], v[1], v[2])
}

fn tuple3u(v: [usize; 3]) -> String {
    format!("({}, {}, {})", v[0], v[1], v[2])
}

fn grid_stats(kind: &str, prefix: &str, g: &crate::image::Geometry, diag: &mut Vec<(String, String)>) {
    diag.push((format!("diagnostics_{kind}-{prefix}_Spacing"), tuple3(g.spacing)));
    diag.push((format!("diagnostics_{kind}-{prefix}_Size"), tuple3u(g.size)));
}

fn image_stats(prefix: &str, img: &Volume<f64>, diag: &mut Vec<(String, String)>) {
    let mut summary = ValueSummary::empty();
    summary.add(&img.data);
    image_stats_of(prefix, &img.geometry, &summary, diag);
}

/// Size, spacing, mean, minimum and maximum of a whole image.
fn image_stats_of(
    prefix: &str,
    geometry: &crate::image::Geometry,
    summary: &ValueSummary,
    diag: &mut Vec<(String, String)>,
) {
    grid_stats("Image", prefix, geometry, diag);
    let ValueSummary { min, max, .. } = *summary;
    diag.push((
        format!("diagnostics_Image-{prefix}_Mean"),
        format!("{:?}", summary.mean()),
    ));
    diag.push((format!("diagnostics_Image-{prefix}_Minimum"), format!("{min:?}")));
    diag.push((format!("diagnostics_Image-{prefix}_Maximum"), format!("{max:?}")));
}

fn mask_stats(
    prefix: &str,
    mask: &crate::image::Geometry,
    bb: &BoundingBox,
    count: usize,
    diag: &mut Vec<(String, String)>,
) {
    grid_stats("Mask", prefix, mask, diag);
    diag.push((
        format!("diagnostics_Mask-{prefix}_BoundingBox"),
        bb.to_pyradiomics_string(),
    ));
    diag.push((format!("diagnostics_Mask-{prefix}_VoxelNum"), count.to_string()));
    if let Some(faces) = border_faces(bb, mask.size) {
        diag.push((
            format!("diagnostics_Mask-{prefix}_TouchesImageBorder"),
            format!(
                "{faces}: the ROI reaches the edge of the image array; as in PyRadiomics 3.1.0 the mask is padded with \
                 one empty voxel before meshing, so the mesh is closed across the cut and the shape features include \
                 the cut face"
            ),
        ));
    }
}

/// The faces of the image array the bounding box reaches (`i-`, `i+`, `j-`, …), `None` when it is inside.
fn border_faces(bb: &BoundingBox, size: [usize; 3]) -> Option<String> {
    let end = bb.end();
    let mut faces = Vec::new();
    for (axis, name) in ["i", "j", "k"].iter().enumerate() {
        if bb.start[axis] == 0 {
            faces.push(format!("{name}-"));
        }
        if end[axis] + 1 >= size[axis] {
            faces.push(format!("{name}+"));
        }
    }
    (!faces.is_empty()).then(|| faces.join(" "))
}

/// Which features of `class` to report; errors on unknown names.
fn selected(class: &str, settings: &Settings) -> Result<Option<Vec<&'static str>>> {
    let Some(choice) = settings.enabled.get(class) else {
        return Ok(None);
    };
    let all = class_features(class);
    match choice {
        None => Ok(Some(all.iter().filter(|(_, dep)| !dep).map(|(n, _)| *n).collect())),
        Some(names) => {
            let mut out = Vec::new();
            for n in names {
                match all.iter().find(|(f, _)| f == n) {
                    Some((f, _)) => out.push(*f),
                    None => {
                        return Err(Error::Settings {
                            origin: "featureClass".into(),
                            reason: format!("class '{class}' has no feature '{n}'"),
                        });
                    }
                }
            }
            Ok(Some(out))
        }
    }
}

/// Extract features. The paths are used in error messages and diagnostics only.
pub fn extract(
    image_path: &Path,
    image: &Volume<f64>,
    mask_path: &Path,
    mask: &Volume<f64>,
    settings: &Settings,
) -> Result<Extraction> {
    let mut diag = Vec::new();
    let mut mask = Cow::Borrowed(mask);
    if let Some(reason) = image.geometry.mismatch(&mask.geometry, settings.geometry_tolerance) {
        if settings.correct_mask {
            mask = Cow::Owned(super::resample::resample(
                &mask,
                &image.geometry,
                Interpolator::NearestNeighbor,
                mask.pixel_type,
            ));
            diag.push((
                "diagnostics_Mask-corrected".into(),
                format!("resampled onto the image grid ({reason})"),
            ));
        } else {
            return Err(Error::GeometryMismatch {
                image: image_path.to_path_buf(),
                mask: mask_path.to_path_buf(),
                reason,
            });
        }
    }
    // Validate the classes first, so a typo fails fast.
    let classes = selected_classes(settings)?;

    image_stats("original", image, &mut diag);
    let (mut bb, count) = check_roi(mask_path, &mask, settings)?;
    mask_stats("original", &mask.geometry, &bb, count, &mut diag);

    let mut image = Cow::Borrowed(image);
    if settings.normalize {
        image = Cow::Owned(normalize(&image, settings.normalize_scale, settings.remove_outliers));
    }
    if let Some(grid) = resampling_grid(&mask.geometry, &image.geometry, &bb, settings) {
        let (img, msk) = resample_pair(&image, &mask, &grid, settings);
        image = Cow::Owned(img);
        mask = Cow::Owned(msk);
        let (b, n) = check_roi(mask_path, &mask, settings)?;
        bb = b;
        image_stats("interpolated", &image, &mut diag);
        mask_stats("interpolated", &mask.geometry, &bb, n, &mut diag);
    }

    // Crop to the ROI bounding box: from here on, memory is proportional to the ROI, not the image.
    let grid = (image.geometry.size, image.geometry.spacing);
    let crop = image.crop(&bb);
    let label = settings.label as f64;
    let crop_inside: Vec<bool> = mask.crop(&bb).data.iter().map(|&v| v == label).collect();
    drop(image);
    drop(mask);
    let paths = (image_path, mask_path);
    from_crop(paths, crop, crop_inside, bb, grid, &classes, settings, diag)
}

/// [`extract`] from images as their files store them ([`StoredVolume`]): the whole-image diagnostics and the
/// ROI's bounding box are taken row by row, and only the box is decoded to `f64`, so a large image costs its
/// stored size rather than eight bytes a voxel twice (the image and the label map). Where a setting needs the
/// whole image in `f64` (normalisation, resampling, a mask on another grid) it is decoded and [`extract`] runs.
/// The result is the same, to the bit.
pub fn extract_stored(
    image_path: &Path,
    image: &StoredVolume,
    mask_path: &Path,
    mask: &StoredVolume,
    settings: &Settings,
) -> Result<Extraction> {
    let same_grid = image
        .geometry
        .mismatch(&mask.geometry, settings.geometry_tolerance)
        .is_none();
    // (resampling_grid resamples exactly when resampledPixelSpacing is set)
    if !same_grid || settings.normalize || settings.resampled_pixel_spacing.is_some() {
        return extract(image_path, &image.to_volume()?, mask_path, &mask.to_volume()?, settings);
    }
    let classes = selected_classes(settings)?;
    let mut diag = Vec::new();
    image_stats_of("original", &image.geometry, &image.summary()?, &mut diag);
    let (bb, count) = check_roi_rows(mask_path, mask.geometry.size, settings, |f| mask.nonzero_rows(f))?;
    mask_stats("original", &mask.geometry, &bb, count, &mut diag);
    let crop = image.region(&bb)?;
    let label = settings.label as f64;
    let crop_inside: Vec<bool> = mask.region(&bb)?.data.iter().map(|&v| v == label).collect();
    let grid = (image.geometry.size, image.geometry.spacing);
    from_crop(
        (image_path, mask_path),
        crop,
        crop_inside,
        bb,
        grid,
        &classes,
        settings,
        diag,
    )
}

/// The classes to compute and their features; errors on unknown names.
fn selected_classes(settings: &Settings) -> Result<Vec<(&'static str, Vec<&'static str>)>> {
    super::settings::CLASSES
        .iter()
        .filter_map(|c| selected(c, settings).transpose().map(|r| r.map(|v| (*c, v))))
        .collect()
}

/// Everything after the crop: the ROI's box of the image (`crop`), which of its voxels are in the ROI, the box,
/// and the whole image's size and spacing.
#[allow(clippy::too_many_arguments)]
fn from_crop(
    (image_path, mask_path): (&Path, &Path),
    crop: Volume<f64>,
    crop_inside: Vec<bool>,
    bb: BoundingBox,
    (image_size, spacing): ([usize; 3], [f64; 3]),
    classes: &[(&'static str, Vec<&'static str>)],
    settings: &Settings,
    mut diag: Vec<(String, String)>,
) -> Result<Extraction> {
    check_finite(image_path, &crop.data, &crop_inside)?;
    // Resegmentation narrows the texture/first-order ROI; shape keeps the drawn ROI unless `resegmentShape`.
    let resegmented = match settings.resegment_range {
        Some(_) => Some(resegment(mask_path, &crop.data, &crop_inside, settings)?),
        None => None,
    };
    if let Some(r) = &resegmented {
        let count = r.iter().filter(|&&b| b).count();
        diag.push(("diagnostics_Mask-resegmented_VoxelNum".into(), count.to_string()));
    }
    let roi_inside: &[bool] = resegmented.as_deref().unwrap_or(&crop_inside);
    let shape_inside: &[bool] = if settings.resegment_shape {
        roi_inside
    } else {
        &crop_inside
    };

    // Discretise.
    let values: Vec<f64> = crop
        .data
        .iter()
        .zip(roi_inside)
        .filter(|(_, m)| **m)
        .map(|(v, _)| *v)
        .collect();
    let edges = bin_edges(&values, settings.binning());
    let levels: Vec<u32> = crop
        .data
        .iter()
        .zip(roi_inside)
        .map(|(&v, &m)| if m { digitize(v, &edges) } else { 0 })
        .collect();
    let roi = DiscreteRoi::new(bb.size, levels, spacing);
    let roi_levels: Vec<u32> = roi.levels.iter().copied().filter(|&l| l > 0).collect();
    let opts = TextureOptions {
        image_size,
        distances: settings.distances.clone(),
        out_of_plane: settings.force2d.then_some(2 - settings.force2d_dimension),
        weighting_norm: settings.weighting_norm.clone(),
        symmetrical_glcm: settings.symmetrical_glcm,
        gldm_a: settings.gldm_a,
    };

    // shape2D slice: along the force2D axis (numpy axis 0 = k by default), largest ROI area, lowest index on ties.
    let axis = 2 - settings.force2d_dimension;
    let slice_info = largest_slice(bb.size, shape_inside, axis);
    diag.push((
        "diagnostics_shape2D_Slice".into(),
        format!(
            "index {} along ITK axis {} (bounding-box start {}), the slice with the largest ROI area ({} voxels){}",
            bb.start[axis] + slice_info.0,
            axis,
            bb.start[axis],
            slice_info.1,
            if bb.size[axis] > 1 {
                "; PyRadiomics would refuse shape2D on this multi-slice mask"
            } else {
                ""
            }
        ),
    ));

    let voxel_volume = spacing[0] * spacing[1] * spacing[2];
    let compute = |(class, _): &(&'static str, Vec<&'static str>)| {
        let fv = match *class {
            "firstorder" => super::firstorder::compute(&values, &roi_levels, voxel_volume, settings.voxel_array_shift),
            "shape" => super::shape::compute(bb.size, spacing, |o| shape_inside[o]),
            "shape2D" => shape2d_of_slice(bb.size, spacing, shape_inside, axis, slice_info.0),
            "glcm" => super::glcm::compute(&roi, &opts),
            "glrlm" => super::glrlm::compute(&roi, &opts),
            "glszm" => super::glszm::compute(&roi, &opts),
            "gldm" => super::gldm::compute(&roi, &opts),
            "ngtdm" => super::ngtdm::compute(&roi, &opts),
            _ => FeatureValues::new(),
        };
        (*class, fv)
    };
    // The classes run in parallel only where that pays for the threads: a small ROI's take a few milliseconds in
    // all, less than starting a pool.
    let results: Vec<(&str, FeatureValues)> = if roi_levels.len() >= PARALLEL_CLASSES_FROM {
        classes.par_iter().map(compute).collect()
    } else {
        classes.iter().map(compute).collect()
    };

    let mut features = FeatureSet::default();
    for &class in super::settings::CLASSES {
        let Some((_, names)) = classes.iter().find(|(c, _)| *c == class) else {
            continue;
        };
        let Some((_, fv)) = results.iter().find(|(c, _)| *c == class) else {
            continue;
        };
        for n in names {
            if let Some(v) = fv.get(n) {
                features.entries.push((format!("original_{class}_{n}"), v));
            }
        }
    }
    Ok(Extraction {
        features,
        diagnostics: diag,
    })
}

fn shape2d_of_slice(size: [usize; 3], spacing: [f64; 3], inside: &[bool], axis: usize, slice: usize) -> FeatureValues {
    // remaining ITK axes in numpy order (slowest first): rows = the higher ITK axis, cols = the lower
    let rest: Vec<usize> = (0..3).rev().filter(|&a| a != axis).collect();
    let (ra, ca) = (rest[0], rest[1]);
    super::shape2d::compute(size[ra], size[ca], [spacing[ra], spacing[ca]], |r, c| {
        let mut p = [0usize; 3];
        p[axis] = slice;
        p[ra] = r;
        p[ca] = c;
        inside[p[0] + size[0] * (p[1] + size[1] * p[2])]
    })
}
