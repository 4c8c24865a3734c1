//! Assembling 2D images into series, dynamic phases and volumes.
//!
//! **Phases.** A series is split into dynamic phases by the first rule whose groups are consistent — every
//! group holds exactly one image per slice position and all groups cover the same positions:
//! 1. TemporalPositionIdentifier;
//! 2. per-frame TemporalPositionIndex;
//! 3. AcquisitionNumber, then TriggerTime, then AcquisitionTime, then ContentTime;
//! 4. repeated ImagePositionPatient, the k-th phase being the k-th image at each position in InstanceNumber
//!    order.
//!
//! A series with one image per position is one phase.
//!
//! **Slices.** Images are sorted by the projection of ImagePositionPatient on the slice normal
//! `n = row × column` of ImageOrientationPatient, ascending (as ITK's GDCM series reader does). Two images are
//! at the same position when their projections differ by less than [`POSITION_TOLERANCE_MM`].
//!
//! **Geometry.** Direction columns are the row direction, the column direction and `n`; the origin is the first
//! slice's ImagePositionPatient; the in-plane spacing is PixelSpacing (column spacing along `i`, row spacing
//! along `j`); the slice spacing is derived from the positions, `(last − first)/(N − 1)` along `n`, never from
//! SliceThickness. Consecutive gaps that differ from it by more than [`SPACING_TOLERANCE`] (relative) are an
//! error (a gap or non-uniform spacing); smaller deviations above 1e−4 are carried as warnings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::header::{InstanceHeader, SliceHeader};
use crate::error::{Error, Result};
use crate::image::Geometry;

/// Slice positions closer than this along the normal are the same position.
pub const POSITION_TOLERANCE_MM: f64 = 0.01;
/// Relative tolerance on the uniformity of slice gaps.
pub const SPACING_TOLERANCE: f64 = 0.05;

/// Which rule split the series into phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum PhaseRule {
    /// One image per position: a single phase.
    Single,
    /// TemporalPositionIdentifier (0020,0100).
    TemporalPositionIdentifier,
    /// Per-frame TemporalPositionIndex (0020,9128).
    TemporalPositionIndex,
    /// AcquisitionNumber (0020,0012).
    AcquisitionNumber,
    /// TriggerTime (0018,1060).
    TriggerTime,
    /// AcquisitionTime (0008,0032).
    AcquisitionTime,
    /// ContentTime (0008,0033).
    ContentTime,
    /// Repeated ImagePositionPatient, ordered by InstanceNumber.
    RepeatedPosition,
    /// Separate single-phase series linked into one DCE set (Siemens-style export).
    LinkedSeries,
}

/// One series, split into phases, with its grid.
#[derive(Debug, Clone)]
pub struct Series {
    /// StudyInstanceUID.
    pub study_uid: String,
    /// SeriesInstanceUID (of the first series when linked).
    pub series_uid: String,
    /// Every SeriesInstanceUID the phases come from (one, or the members of a linked DCE set).
    pub member_series: Vec<String>,
    /// Folder the files were found in.
    pub dir: PathBuf,
    /// SeriesDescription.
    pub description: String,
    /// Modality.
    pub modality: String,
    /// SeriesNumber.
    pub series_number: Option<i64>,
    /// ImageType.
    pub image_type: Vec<String>,
    /// NumberOfTemporalPositions, when given.
    pub number_of_temporal_positions: Option<i64>,
    /// FrameOfReferenceUID.
    pub frame_of_reference_uid: Option<String>,
    /// How the phases were found.
    pub rule: PhaseRule,
    /// Phases in acquisition order; each lists its slices in slice order.
    pub phases: Vec<Vec<SliceHeader>>,
    /// The grid every phase shares.
    pub geometry: Geometry,
    /// Non-fatal findings.
    pub warnings: Vec<String>,
}

/// A study: its series.
#[derive(Debug, Clone)]
pub struct Study {
    /// StudyInstanceUID.
    pub uid: String,
    /// Series in SeriesNumber order.
    pub series: Vec<Series>,
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// The slice normal of an orientation.
pub fn normal(o: &[f64; 6]) -> [f64; 3] {
    cross([o[0], o[1], o[2]], [o[3], o[4], o[5]])
}

/// Cluster projections into distinct slice positions; returns the sorted positions.
fn distinct_positions(mut proj: Vec<f64>) -> Vec<f64> {
    proj.sort_by(|a, b| a.total_cmp(b));
    let mut out: Vec<f64> = Vec::new();
    for p in proj {
        match out.last() {
            Some(&last) if (p - last).abs() < POSITION_TOLERANCE_MM => {}
            _ => out.push(p),
        }
    }
    out
}

fn slot(positions: &[f64], p: f64) -> usize {
    let i = positions.partition_point(|&q| q < p - POSITION_TOLERANCE_MM);
    i.min(positions.len() - 1)
}

/// Check that every group has exactly one image per position and covers all positions; return the groups
/// sorted by slice.
fn consistent(groups: Vec<Vec<SliceHeader>>, positions: &[f64], n: [f64; 3]) -> Option<Vec<Vec<SliceHeader>>> {
    let mut out = Vec::with_capacity(groups.len());
    for mut g in groups {
        if g.len() != positions.len() {
            return None;
        }
        g.sort_by(|a, b| dot(a.position, n).total_cmp(&dot(b.position, n)));
        let slots: Vec<usize> = g.iter().map(|s| slot(positions, dot(s.position, n))).collect();
        if slots.iter().enumerate().any(|(i, &s)| s != i) {
            return None;
        }
        out.push(g);
    }
    Some(out)
}

fn split_by<K: PartialOrd + Copy>(
    slices: &[SliceHeader],
    key: impl Fn(&SliceHeader) -> Option<K>,
) -> Option<Vec<Vec<SliceHeader>>> {
    let mut keyed: Vec<(K, &SliceHeader)> = Vec::with_capacity(slices.len());
    for s in slices {
        keyed.push((key(s)?, s));
    }
    keyed.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    let mut groups: Vec<Vec<SliceHeader>> = Vec::new();
    let mut last: Option<K> = None;
    for (k, s) in keyed {
        if last != Some(k) {
            groups.push(Vec::new());
            last = Some(k);
        }
        if let Some(g) = groups.last_mut() {
            g.push(s.clone());
        }
    }
    Some(groups)
}

/// Split the images of one series into phases (see the module docs for the rules).
pub fn split_phases(slices: &[SliceHeader]) -> Option<(PhaseRule, Vec<Vec<SliceHeader>>)> {
    let n = normal(&slices.first()?.orientation);
    let positions = distinct_positions(slices.iter().map(|s| dot(s.position, n)).collect());
    if positions.len() == slices.len() {
        return consistent(vec![slices.to_vec()], &positions, n).map(|g| (PhaseRule::Single, g));
    }
    type Rule = (PhaseRule, fn(&[SliceHeader]) -> Option<Vec<Vec<SliceHeader>>>);
    let rules: [Rule; 6] = [
        (PhaseRule::TemporalPositionIdentifier, |s| {
            split_by(s, |x| x.temporal_position_identifier)
        }),
        (PhaseRule::TemporalPositionIndex, |s| {
            split_by(s, |x| x.temporal_position_index)
        }),
        (PhaseRule::AcquisitionNumber, |s| split_by(s, |x| x.acquisition_number)),
        (PhaseRule::TriggerTime, |s| split_by(s, |x| x.trigger_time)),
        (PhaseRule::AcquisitionTime, |s| split_by(s, |x| x.acquisition_time)),
        (PhaseRule::ContentTime, |s| split_by(s, |x| x.content_time)),
    ];
    for (rule, f) in rules {
        let groups = f(slices).filter(|g| g.len() > 1);
        if let Some(g) = groups.and_then(|g| consistent(g, &positions, n)) {
            return Some((rule, g));
        }
    }
    // Repeated positions: the k-th image (by InstanceNumber) at each position belongs to phase k.
    let mut at: BTreeMap<usize, Vec<SliceHeader>> = BTreeMap::new();
    for s in slices {
        at.entry(slot(&positions, dot(s.position, n)))
            .or_default()
            .push(s.clone());
    }
    let count = at.values().next()?.len();
    if at.values().any(|v| v.len() != count) {
        return None;
    }
    let mut phases = vec![Vec::new(); count];
    for v in at.values_mut() {
        v.sort_by_key(|s| (s.instance_number.unwrap_or(i64::MAX), s.frame));
        for (k, s) in v.iter().enumerate() {
            phases[k].push(s.clone());
        }
    }
    consistent(phases, &positions, n).map(|g| (PhaseRule::RepeatedPosition, g))
}

/// An image as a series reason names it: by InstanceNumber (and frame), never by file name — reasons reach the
/// daemon's events, and consoles name files after patients. The error itself names the folder.
fn image_name(s: &SliceHeader) -> String {
    match (s.instance_number, s.frame) {
        (Some(n), 0) => format!("image {n}"),
        (Some(n), f) => format!("image {n} frame {}", f + 1),
        (None, f) => format!("an image without InstanceNumber (frame {})", f + 1),
    }
}

/// Build the grid of a phase (its slices sorted), checking orientation, size and spacing.
pub fn grid(series: &str, dir: &Path, slices: &[SliceHeader]) -> Result<(Geometry, Vec<String>)> {
    let err = |reason: String| Error::Series {
        series: series.to_string(),
        dir: dir.to_path_buf(),
        reason,
    };
    let first = slices.first().ok_or_else(|| err("no images".into()))?;
    let mut warnings = Vec::new();
    for s in slices {
        if s.rows != first.rows || s.columns != first.columns {
            return Err(err(format!(
                "inconsistent Rows/Columns: {}×{} in {} vs {}×{} in {}",
                s.rows,
                s.columns,
                image_name(s),
                first.rows,
                first.columns,
                image_name(first)
            )));
        }
        if s.orientation
            .iter()
            .zip(&first.orientation)
            .any(|(a, b)| (a - b).abs() > 1e-4)
        {
            return Err(err(format!(
                "mixed orientations: {} differs from {}",
                image_name(s),
                image_name(first)
            )));
        }
        if s.pixel_spacing
            .iter()
            .zip(&first.pixel_spacing)
            .any(|(a, b)| (a - b).abs() > 1e-4 * b)
        {
            return Err(err(format!(
                "mixed PixelSpacing: {} differs from {}",
                image_name(s),
                image_name(first)
            )));
        }
    }
    let o = first.orientation;
    let n = normal(&o);
    let proj: Vec<f64> = slices.iter().map(|s| dot(s.position, n)).collect();
    let mut spacing_z = 1.0;
    if slices.len() > 1 {
        spacing_z = (proj[proj.len() - 1] - proj[0]) / (proj.len() - 1) as f64;
        if spacing_z < POSITION_TOLERANCE_MM {
            return Err(err("duplicate slice positions within a phase".into()));
        }
        for w in proj.windows(2) {
            let gap = w[1] - w[0];
            let dev = (gap - spacing_z).abs() / spacing_z;
            if dev > SPACING_TOLERANCE {
                return Err(err(format!(
                    "non-uniform slice spacing: a gap of {gap:.4} mm where the mean is {spacing_z:.4} mm (missing slice or mixed stacks)"
                )));
            }
            if dev > 1e-4 {
                warnings.push(format!(
                    "slice gap {gap:.5} mm deviates from the mean {spacing_z:.5} mm"
                ));
            }
        }
        // in-plane drift of positions along the stack
        for s in slices {
            let d = [
                s.position[0] - first.position[0],
                s.position[1] - first.position[1],
                s.position[2] - first.position[2],
            ];
            let along = dot(d, n);
            let off =
                ((d[0] - along * n[0]).powi(2) + (d[1] - along * n[1]).powi(2) + (d[2] - along * n[2]).powi(2)).sqrt();
            if off > 1e-2 {
                return Err(err(format!(
                    "slices are not stacked along the normal (in-plane offset {off:.3} mm in {})",
                    image_name(s)
                )));
            }
        }
    }
    let geometry = Geometry {
        size: [first.columns as usize, first.rows as usize, slices.len()],
        spacing: [first.pixel_spacing[1], first.pixel_spacing[0], spacing_z],
        origin: first.position,
        direction: [[o[0], o[3], n[0]], [o[1], o[4], n[1]], [o[2], o[5], n[2]]],
    };
    Ok((geometry, warnings))
}

/// Group instances into studies and series, split phases and build grids. Series that cannot be assembled are
/// returned as errors next to the studies.
pub fn assemble(dir: &Path, instances: Vec<InstanceHeader>) -> (Vec<Study>, Vec<Error>) {
    let mut by_series: BTreeMap<(String, String), Vec<InstanceHeader>> = BTreeMap::new();
    for inst in instances {
        by_series
            .entry((inst.study_uid.clone(), inst.series_uid.clone()))
            .or_default()
            .push(inst);
    }
    let mut studies: BTreeMap<String, Vec<Series>> = BTreeMap::new();
    let mut errors = Vec::new();
    for ((study, series_uid), insts) in by_series {
        let head = &insts[0];
        let slices: Vec<SliceHeader> = insts.iter().flat_map(|i| i.slices.iter().cloned()).collect();
        let Some((rule, phases)) = split_phases(&slices) else {
            errors.push(Error::Series {
                series: series_uid.clone(),
                dir: dir.to_path_buf(),
                reason: format!(
                    "{} images cannot be split into phases with one image per slice position (duplicate positions or missing slices)",
                    slices.len()
                ),
            });
            continue;
        };
        match grid(&series_uid, dir, &phases[0]) {
            Ok((geometry, warnings)) => studies.entry(study.clone()).or_default().push(Series {
                study_uid: study,
                member_series: vec![series_uid.clone()],
                series_uid,
                dir: dir.to_path_buf(),
                description: head.series_description.clone(),
                modality: head.modality.clone(),
                series_number: head.series_number,
                image_type: head.image_type.clone(),
                number_of_temporal_positions: head.number_of_temporal_positions,
                frame_of_reference_uid: head.frame_of_reference_uid.clone(),
                rule,
                phases,
                geometry,
                warnings,
            }),
            Err(e) => errors.push(e),
        }
    }
    let studies = studies
        .into_iter()
        .map(|(uid, mut series)| {
            series.sort_by_key(|s| (s.series_number.unwrap_or(i64::MAX), s.series_uid.clone()));
            Study { uid, series }
        })
        .collect();
    (studies, errors)
}

/// How [`assemble_one`] puts a series together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assembly {
    /// The series as it is (multi-phase, or a single phase).
    Alone,
    /// The DCE set that the single-phase series heads, linked with the other single-phase series of its study
    /// ([`link_with`]).
    Linked,
}

/// The one series `series_uid` of `instances` (headers of one study, as the daemon's assembler or a revision
/// collects them), assembled by exactly the rules of a folder scan ([`assemble`], then [`link_with`] for a linked
/// set). The folder it names is the first image's. The error says what could not be assembled.
pub fn assemble_one(instances: Vec<InstanceHeader>, series_uid: &str, how: Assembly) -> Result<Series> {
    let dir = instances
        .first()
        .and_then(|i| i.slices.first())
        .and_then(|s| s.file.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let (studies, mut errors) = assemble(&dir, instances);
    let not_assembled = |errors: &mut Vec<Error>, reason: &str| {
        if errors.is_empty() {
            Error::Series {
                series: series_uid.to_string(),
                dir: dir.clone(),
                reason: reason.into(),
            }
        } else {
            errors.swap_remove(0)
        }
    };
    match how {
        Assembly::Alone => studies
            .into_iter()
            .flat_map(|s| s.series)
            .find(|s| s.series_uid == series_uid)
            .ok_or_else(|| not_assembled(&mut errors, "the series could not be assembled")),
        Assembly::Linked => studies
            .iter()
            .find_map(|s| link_with(s, series_uid))
            .ok_or_else(|| not_assembled(&mut errors, "the linked DCE set could not be assembled")),
    }
}

/// Link single-phase series of one study that share a grid (Siemens-style exports, one series per dynamic)
/// into one DCE set, ordered by acquisition time (then SeriesNumber). The grid is that of the first single-phase
/// series. Returns `None` when fewer than two series share it.
pub fn link_dce(study: &Study) -> Option<Series> {
    let first = study.series.iter().find(|s| s.phases.len() == 1)?;
    link_with(study, &first.series_uid)
}

/// The DCE set that the single-phase series `series_uid` belongs to: every single-phase series of the study with
/// its frame of reference, its grid and its kind of image — ImageType value 1 (ORIGINAL / DERIVED) and whether
/// it is a SUBTRACTION, so a console's subtraction or derived series on the same grid is never taken for a
/// phase — ordered by acquisition time (then SeriesNumber). `None` when `series_uid` is not a single-phase series
/// of the study or no other series shares its grid.
pub fn link_with(study: &Study, series_uid: &str) -> Option<Series> {
    let singles: Vec<&Series> = study.series.iter().filter(|s| s.phases.len() == 1).collect();
    let first = *singles.iter().find(|s| s.series_uid == series_uid)?;
    let kind = |s: &Series| {
        let value1 = s.image_type.first().map(|v| v.to_ascii_uppercase());
        let subtraction = s.image_type.iter().any(|v| v.eq_ignore_ascii_case("SUBTRACTION"));
        (value1, subtraction)
    };
    let same: Vec<&Series> = singles
        .iter()
        .copied()
        .filter(|s| {
            s.frame_of_reference_uid == first.frame_of_reference_uid
                && kind(s) == kind(first)
                && s.geometry.mismatch(&first.geometry, 1e-4).is_none()
        })
        .collect();
    if same.len() < 2 {
        return None;
    }
    let time = |s: &Series| {
        let h = &s.phases[0][0];
        h.acquisition_time.or(h.content_time).unwrap_or(f64::INFINITY)
    };
    let mut ordered = same;
    ordered.sort_by(|a, b| {
        time(a)
            .total_cmp(&time(b))
            .then(a.series_number.cmp(&b.series_number))
            .then(a.series_uid.cmp(&b.series_uid))
    });
    let mut linked = ordered[0].clone();
    linked.rule = PhaseRule::LinkedSeries;
    linked.phases = ordered.iter().map(|s| s.phases[0].clone()).collect();
    linked.member_series = ordered.iter().map(|s| s.series_uid.clone()).collect();
    linked.description = format!("DCE set of {} linked series", ordered.len());
    Some(linked)
}
