//! Acquisition descriptors: how an examination was acquired, as far as the features depend on it, so that a
//! bundle can say when a series comes from outside the acquisitions it was fitted on.
//!
//! The study's radiomics are taken from the original image (no resampling, no intensity normalisation) with a
//! fixed bin width of 25. Texture features then depend on the voxel size, and every gray-level matrix on the
//! intensity scale the scanner wrote: the same tumour scanned with a finer matrix, or exported by a console that
//! scales intensities 4× lower, gives other features and another risk — without any single selected feature
//! necessarily leaving its training range. A protocol change at the scanner is the commonest way a deployed model
//! meets data it was not validated on, so `fit` records the training cohort's range of each descriptor in the
//! bundle (`acquisition_ranges`) and every prediction flags a series outside it (its `out_of_distribution` list,
//! `acquisition <name>: <value> outside [min, max]`). A flag does not withhold the answer: it tells the reader
//! that the model was not validated on such a series.
//!
//! The descriptors ([`describe`]):
//! - `pixel_spacing_mm`: the larger of the two in-plane spacings (columns `i`, rows `j`), mm;
//! - `slice_spacing_mm`: the spacing between slices (`k`), mm;
//! - `image_intensity_p99`: the 99th percentile (nearest rank) of every voxel of the image, the scale the scanner
//!   or console wrote the intensities on — first-order features and the gray levels follow it. The ROI's own
//!   intensities mostly tell the tumour's enhancement; the whole image is mostly fat and parenchyma, whose signal
//!   a protocol fixes;
//! - `roi_gray_levels`: how many gray levels the ROI spans at the bundle's bin width (the bins of
//!   [`crate::radiomics::discretize::bin_edges`]), i.e. the size of the texture matrices. It varies from tumour
//!   to tumour, so it flags only texture matrices larger or smaller than any the model was fitted on.
//!
//! The intensity descriptors are left out when the bundle normalises intensities (`normalize`), and the gray
//! levels also with a fixed bin count: the features then do not see the scale.
//!
//! The spacings are compared with a relative tolerance ([`SPACING_TOLERANCE`], 10%): a cohort acquired with one
//! protocol has one spacing, and the small differences of routine field-of-view adjustments (e.g. 0.70 vs
//! 0.703 mm) are not a change of protocol. The intensity descriptors vary from patient to patient and are compared
//! with the training range itself, as the features are.

use std::collections::BTreeMap;

use super::bundle::FeatureRange;
use super::ood::OodFlag;
use crate::image::Volume;
use crate::radiomics::Settings;
use crate::radiomics::discretize::{Binning, bin_edges, digitize};

/// Name of the in-plane spacing descriptor (mm).
pub const PIXEL_SPACING: &str = "pixel_spacing_mm";
/// Name of the slice spacing descriptor (mm).
pub const SLICE_SPACING: &str = "slice_spacing_mm";
/// Name of the image's intensity scale descriptor (99th percentile of every voxel).
pub const IMAGE_INTENSITY_P99: &str = "image_intensity_p99";
/// Name of the ROI's gray-level count at the bundle's bin width.
pub const ROI_GRAY_LEVELS: &str = "roi_gray_levels";
/// Relative tolerance of the spacing comparisons.
pub const SPACING_TOLERANCE: f64 = 0.10;

/// The acquisition descriptors of one examination: its image, its ROI (`label` in `mask`), and the radiomics
/// settings it is computed with. A ROI without a voxel has no gray-level count.
pub fn describe(image: &Volume<f64>, mask: &Volume<f64>, label: f64, settings: &Settings) -> BTreeMap<String, f64> {
    let s = image.geometry.spacing;
    let mut out = BTreeMap::from([
        (PIXEL_SPACING.to_string(), s[0].max(s[1])),
        (SLICE_SPACING.to_string(), s[2]),
    ]);
    if settings.normalize {
        return out;
    }
    if let Some(p99) = nearest_rank(&image.data, 0.99) {
        out.insert(IMAGE_INTENSITY_P99.to_string(), p99);
    }
    if let Binning::Width(w) = settings.binning() {
        let values: Vec<f64> = image
            .data
            .iter()
            .zip(&mask.data)
            .filter(|(_, m)| **m == label)
            .map(|(v, _)| *v)
            .collect();
        if !values.is_empty() {
            // The ROI's minimum lies in level 1, so the level of its maximum is the number of levels it spans.
            let edges = bin_edges(&values, Binning::Width(w));
            let top = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let levels = digitize(top, &edges);
            out.insert(ROI_GRAY_LEVELS.to_string(), f64::from(levels));
        }
    }
    out
}

/// The `q`-quantile of `values` by nearest rank (the value at rank `round(q·(n−1))` in ascending order; NaN
/// values are left out), in linear time; `None` when there is no value. When every value is a whole number (MR
/// pixel data), a histogram finds the rank without copying the image: ≈ 29 ms instead of ≈ 55 ms for
/// copy-and-select on UCSF-BR-06's 3.9 M voxels (build machine, one thread; the predictor runs it beside the
/// radiomics).
fn nearest_rank(values: &[f64], q: f64) -> Option<f64> {
    let (mut lo, mut hi, mut whole) = (f64::INFINITY, f64::NEG_INFINITY, true);
    for &x in values.iter().filter(|x| !x.is_nan()) {
        lo = lo.min(x);
        hi = hi.max(x);
        whole &= x == (x as i64) as f64; // (not `fract`: a libm call per voxel on baseline x86-64)
    }
    if lo > hi {
        return None;
    }
    if whole && hi - lo < (1 << 20) as f64 {
        // (at most 8 MB of counts: 16-bit pixel data spans 65,536 values)
        let mut counts = vec![0u64; (hi - lo) as usize + 1];
        for &x in values.iter().filter(|x| !x.is_nan()) {
            counts[(x - lo) as usize] += 1;
        }
        let n: u64 = counts.iter().sum();
        let rank = (q * (n - 1) as f64).round() as u64;
        let mut seen = 0;
        for (i, c) in counts.iter().enumerate() {
            seen += c;
            if seen > rank {
                return Some(lo + i as f64);
            }
        }
    }
    let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    let rank = (q * (v.len() - 1) as f64).round() as usize;
    let (_, x, _) = v.select_nth_unstable_by(rank, f64::total_cmp);
    Some(*x)
}

/// The training cohort's range of each descriptor (`per_case`: one map per training case; a descriptor that a
/// case lacks is left out of that case).
pub fn ranges(per_case: &[&BTreeMap<String, f64>]) -> BTreeMap<String, FeatureRange> {
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for case in per_case {
        for (name, v) in *case {
            values.entry(name.clone()).or_default().push(*v);
        }
    }
    values
        .into_iter()
        .map(|(name, v)| (name, FeatureRange::of(&v)))
        .collect()
}

/// The out-of-distribution flags of one examination's descriptors against the bundle's ranges (a descriptor the
/// bundle has no range for is not judged).
pub fn flags(ranges: &BTreeMap<String, FeatureRange>, descriptors: &BTreeMap<String, f64>) -> Vec<OodFlag> {
    let mut out = Vec::new();
    for (name, &v) in descriptors {
        let Some(r) = ranges.get(name) else { continue };
        let (lo, hi) = if name.ends_with("_spacing_mm") {
            (r.min * (1.0 - SPACING_TOLERANCE), r.max * (1.0 + SPACING_TOLERANCE))
        } else {
            (r.min, r.max)
        };
        if !(lo..=hi).contains(&v) {
            out.push(OodFlag::acquisition(name, v, r.min, r.max));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Geometry, PixelType};

    fn volume(spacing: [f64; 3], data: Vec<f64>) -> Volume<f64> {
        Volume {
            geometry: Geometry {
                size: [data.len(), 1, 1],
                spacing,
                origin: [0.0; 3],
                direction: [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
            },
            data,
            pixel_type: PixelType::F64,
        }
    }

    #[test]
    fn descriptors_of_a_small_image_worked_by_hand() {
        // ROI intensities 10, 60, 74 at bin width 25: bins [0,25) [25,50) [50,75) → 3 levels; the 999 outside the
        // ROI does not count.
        let image = volume([0.5, 0.8, 3.0], vec![10.0, 60.0, 74.0, 999.0]);
        let mask = volume([0.5, 0.8, 3.0], vec![1.0, 1.0, 1.0, 0.0]);
        let d = describe(&image, &mask, 1.0, &Settings::default());
        assert_eq!(d[PIXEL_SPACING], 0.8);
        assert_eq!(d[SLICE_SPACING], 3.0);
        assert_eq!(d[ROI_GRAY_LEVELS], 3.0);
        // four voxels: rank round(0.99 · 3) = 3, the largest
        assert_eq!(d[IMAGE_INTENSITY_P99], 999.0);
        // 75 starts a fourth bin; intensities 4× lower span one bin.
        let image = volume([0.5, 0.8, 3.0], vec![10.0, 60.0, 75.0, 999.0]);
        assert_eq!(describe(&image, &mask, 1.0, &Settings::default())[ROI_GRAY_LEVELS], 4.0);
        let image = volume([0.5, 0.8, 3.0], vec![2.5, 15.0, 18.5, 999.0]);
        assert_eq!(describe(&image, &mask, 1.0, &Settings::default())[ROI_GRAY_LEVELS], 1.0);
        // normalised intensities or a fixed bin count: the scale does not reach the features
        let normalised = Settings {
            normalize: true,
            ..Settings::default()
        };
        let d = describe(&image, &mask, 1.0, &normalised);
        assert!(!d.contains_key(ROI_GRAY_LEVELS) && !d.contains_key(IMAGE_INTENSITY_P99));
        assert_eq!(d.len(), 2, "the spacings stay");
        let count = Settings {
            bin_count: Some(32),
            ..Settings::default()
        };
        let d = describe(&image, &mask, 1.0, &count);
        assert!(!d.contains_key(ROI_GRAY_LEVELS) && d.contains_key(IMAGE_INTENSITY_P99));
        // an empty ROI has no gray levels (and no panic)
        let empty = volume([0.5, 0.8, 3.0], vec![0.0; 4]);
        assert!(!describe(&image, &empty, 1.0, &Settings::default()).contains_key(ROI_GRAY_LEVELS));
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<f64> = (1..=201).rev().map(f64::from).collect(); // 201 … 1
        assert_eq!(nearest_rank(&v, 0.99), Some(199.0)); // rank round(0.99 · 200) = 198 → 199
        assert_eq!(nearest_rank(&v, 0.0), Some(1.0));
        assert_eq!(nearest_rank(&v, 1.0), Some(201.0));
        assert_eq!(nearest_rank(&[f64::NAN, 3.0], 0.99), Some(3.0));
        assert_eq!(nearest_rank(&[], 0.5), None);
        assert_eq!(nearest_rank(&[f64::NAN], 0.5), None);
        // whole numbers (the histogram) and the same values made fractional (the selection) agree
        let mut rng = crate::rng::Rng::new(5);
        let v: Vec<f64> = (0..10_001).map(|_| (rng.uniform() * 700.0).floor() - 200.0).collect();
        let shifted: Vec<f64> = v.iter().map(|x| x + 0.5).collect();
        for q in [0.0, 0.01, 0.5, 0.99, 1.0] {
            let whole = nearest_rank(&v, q).unwrap();
            assert_eq!(nearest_rank(&shifted, q), Some(whole + 0.5), "q = {q}");
        }
    }

    #[test]
    fn spacings_are_judged_with_the_tolerance_and_gray_levels_by_the_range() {
        let cases = [
            BTreeMap::from([(PIXEL_SPACING.into(), 0.7), (ROI_GRAY_LEVELS.into(), 40.0)]),
            BTreeMap::from([(PIXEL_SPACING.into(), 0.7), (ROI_GRAY_LEVELS.into(), 90.0)]),
        ];
        let r = ranges(&cases.iter().collect::<Vec<_>>());
        assert_eq!((r[PIXEL_SPACING].min, r[PIXEL_SPACING].max), (0.7, 0.7));
        let judge = |spacing: f64, levels: f64| {
            flags(
                &r,
                &BTreeMap::from([
                    (PIXEL_SPACING.into(), spacing),
                    (ROI_GRAY_LEVELS.into(), levels),
                    (SLICE_SPACING.into(), 9.0), // no range in the bundle: not judged
                ]),
            )
            .iter()
            .map(|f| f.to_string())
            .collect::<Vec<_>>()
        };
        assert!(judge(0.703125, 40.0).is_empty(), "a routine FOV difference");
        assert!(judge(0.76, 90.0).is_empty());
        assert_eq!(
            judge(0.78, 65.0),
            ["acquisition pixel_spacing_mm: 0.78 outside [0.7, 0.7]"]
        );
        assert_eq!(judge(0.5, 65.0).len(), 1);
        assert_eq!(judge(0.7, 39.0), ["acquisition roi_gray_levels: 39 outside [40, 90]"]);
        assert_eq!(judge(0.7, 91.0).len(), 1);
        assert_eq!(judge(0.7, f64::NAN).len(), 1, "a value that is not a number is flagged");
    }
}
