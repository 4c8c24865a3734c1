//! DICOM ingestion: from a folder of files exported by an MRI console to studies, series, dynamic phases and
//! volumes on the project's [`crate::image::Volume`] type.
//!
//! - [`header`]: one header per 2D image (classic MR or a frame of Enhanced MR), read without pixel data;
//! - [`series`]: grouping by Study/Series UID, phase splitting rules, slice ordering and grid checks;
//! - [`pixels`]: decoding (each file once) with rescale / real-world value mapping;
//! - [`phase`]: [`PhaseSelector`], which image the features use.
//!
//! ROI objects (SEG, RTSTRUCT, label maps) live in [`crate::roi`].

pub mod guard;
pub mod header;
pub mod phase;
pub mod pixels;
pub mod series;
pub mod sop_class;
pub mod tags;

use std::path::{Path, PathBuf};

pub use phase::PhaseSelector;
pub use series::{PhaseRule, Series, Study};
pub use sop_class::InstanceKind;

use crate::error::{Error, Result};

/// What a folder scan found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Studies with their series.
    pub studies: Vec<Study>,
    /// DICOM objects that are not images: SEG and RTSTRUCT files, by path and kind.
    pub roi_objects: Vec<(PathBuf, InstanceKind)>,
    /// Files or series that could not be used, with the reason.
    pub problems: Vec<Error>,
}

/// All regular files below `dir`, sorted (file names are not a reliable order; tags decide later).
pub fn list_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))?;
        for e in entries {
            let e = e.map_err(|err| Error::io(&d, err))?;
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Scan a folder: read every file's header, keep MR images, note ROI objects, assemble series.
pub fn scan_dir(dir: &Path) -> Result<Scan> {
    use rayon::prelude::*;
    let files = list_files(dir)?;
    let results: Vec<(PathBuf, Result<header::DicomFile>)> =
        files.par_iter().map(|f| (f.clone(), header::read_dicom(f))).collect();
    let mut scan = Scan::default();
    let mut instances = Vec::new();
    for (path, r) in results {
        match r {
            Ok(header::DicomFile::Image(h)) => instances.push(*h),
            Ok(header::DicomFile::Roi(kind)) => scan.roi_objects.push((path, kind)),
            Ok(header::DicomFile::Other(kind)) => scan.problems.push(header::not_an_image(&path, &kind)),
            Err(e) => scan.problems.push(e),
        }
    }
    let (studies, errors) = series::assemble(dir, instances);
    scan.studies = studies;
    scan.problems.extend(errors);
    Ok(scan)
}

/// The one MR series of a folder holding a single examination: the multi-phase series, or the DCE set linked
/// from single-phase series, or the only series. Errors when the choice is ambiguous or nothing was found.
pub fn single_series(dir: &Path, scan: &Scan) -> Result<Series> {
    let err = |reason: String| Error::Series {
        series: "(folder)".into(),
        dir: dir.to_path_buf(),
        reason,
    };
    if scan.studies.len() != 1 {
        let first = scan
            .problems
            .first()
            .map(|e| format!("; first problem: {e}"))
            .unwrap_or_default();
        return Err(err(format!("expected one study, found {}{first}", scan.studies.len())));
    }
    let study = &scan.studies[0];
    let multi: Vec<&Series> = study.series.iter().filter(|s| s.phases.len() > 1).collect();
    match (multi.len(), study.series.len()) {
        (1, _) => Ok(multi[0].clone()),
        (0, 1) => Ok(study.series[0].clone()),
        (0, _) => {
            series::link_dce(study).ok_or_else(|| err("several single-phase series that do not share a grid".into()))
        }
        (n, _) => Err(err(format!("{n} multi-phase series; pick one with --series"))),
    }
}
