//! One examination's image and ROI, read from files (NRRD / NIfTI image and label map) or from a DICOM folder (one
//! MR series, the configured phase, and a SEG / RTSTRUCT / label-map ROI on its grid). The single loader that
//! `extract`, `deep`, `fit`, `predict` and the daemon share, so every path turns files into voxels the same way:
//! a folder is scanned and its one series chosen ([`load_case`]); the daemon hands the series its assembler
//! collected ([`crate::ingest::series::assemble_one`]) to [`from_series`], the same function the folder path ends
//! in.

use std::path::Path;

use crate::error::Result;
use crate::image::Volume;
use crate::ingest::{self, PhaseSelector, Series};
use crate::roi::{self, RoiOptions};

/// How DICOM inputs become an image and a mask.
#[derive(Debug, Clone, Default)]
pub struct CaseInputs {
    /// Which dynamic phase (or subtraction) is the image.
    pub phase: PhaseSelector,
    /// Which segment / structure, and the fractional-SEG threshold.
    pub roi: RoiOptions,
}

/// An image and its ROI, with notes on where they came from (`diagnostics_*` entries).
#[derive(Debug, Clone)]
pub struct LoadedCase {
    /// The image.
    pub image: Volume<f64>,
    /// The ROI as a label map on the image grid.
    pub mask: Volume<f64>,
    /// Provenance: series UID, phase, ROI source.
    pub notes: Vec<(String, String)>,
}

/// Read an image (file or DICOM folder) and its ROI.
pub fn load_case(image: &Path, mask: &Path, input: &CaseInputs) -> Result<LoadedCase> {
    if image.is_dir() {
        let scan = ingest::scan_dir(image)?;
        let series = ingest::single_series(image, &scan)?;
        return from_series(&series, mask, input);
    }
    Ok(LoadedCase {
        image: crate::io::read_volume(image)?,
        mask: crate::io::read_volume(mask)?,
        notes: Vec::new(),
    })
}

/// The case of one assembled series and its ROI file: the phase `input` selects, the ROI on the series' grid,
/// and where they came from. A folder ([`load_case`]) and the daemon (a series its assembler collected, a revision)
/// both end here.
pub fn from_series(series: &Series, mask: &Path, input: &CaseInputs) -> Result<LoadedCase> {
    let img = input.phase.load(series)?;
    let roi = roi::load(mask, series, &input.roi)?;
    let notes = vec![
        ("diagnostics_Image-dicom_Series".into(), series.series_uid.clone()),
        (
            "diagnostics_Image-dicom_Phase".into(),
            format!(
                "{} of {} (split by {:?})",
                input.phase,
                series.phases.len(),
                series.rule
            ),
        ),
        ("diagnostics_Mask-dicom_Source".into(), roi.source),
    ];
    Ok(LoadedCase {
        image: img,
        mask: roi.volume,
        notes,
    })
}
