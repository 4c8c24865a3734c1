//! Region-of-interest objects brought onto a series grid: DICOM SEG ([`seg`]), RTSTRUCT ([`rtstruct`]) and
//! label maps saved next to the series ([`labelmap`]). Every reader yields a [`Mask`]: a label map on exactly
//! the series' [`Geometry`] (value 1 inside for SEG and RTSTRUCT; label maps keep their labels, chosen with the
//! extraction `label` setting), plus a note of where it came from.

pub mod labelmap;
pub mod rtstruct;
pub mod seg;

use std::path::Path;

use crate::error::{Error, Result};
use crate::image::{Geometry, Volume};
use crate::ingest::{InstanceKind, Series};

/// Which segment / structure to use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RoiChoice {
    /// The first one.
    #[default]
    First,
    /// By segment / ROI number.
    Number(i64),
    /// By label / ROI name.
    Label(String),
}

impl std::str::FromStr for RoiChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s.parse::<i64>() {
            Ok(n) => RoiChoice::Number(n),
            Err(_) => RoiChoice::Label(s.to_string()),
        })
    }
}

impl RoiChoice {
    /// As written in a bundle: empty for the first, else the number or label.
    pub fn to_rule(&self) -> String {
        match self {
            RoiChoice::First => String::new(),
            RoiChoice::Number(n) => n.to_string(),
            RoiChoice::Label(l) => l.clone(),
        }
    }

    /// Inverse of [`RoiChoice::to_rule`].
    pub fn from_rule(s: &str) -> RoiChoice {
        if s.is_empty() {
            RoiChoice::First
        } else {
            s.parse().unwrap_or_default()
        }
    }

    /// Choose among `(number, label)` entries (SEG segments, RTSTRUCT structures).
    pub fn pick<'a>(&self, entries: &'a [(i64, String)]) -> Option<&'a (i64, String)> {
        match self {
            RoiChoice::First => entries.first(),
            RoiChoice::Number(n) => entries.iter().find(|e| e.0 == *n),
            RoiChoice::Label(l) => entries.iter().find(|e| &e.1 == l),
        }
    }
}

/// `(number, label)` of every item of a sequence (SEG segments, RTSTRUCT structures).
pub(crate) fn numbered(
    ds: &crate::ingest::tags::Dataset,
    sequence: dicom_core::Tag,
    number: dicom_core::Tag,
    label: dicom_core::Tag,
) -> Vec<(i64, String)> {
    use crate::ingest::tags::{int, items, string};
    items(ds, sequence)
        .iter()
        .map(|it| (int(it, number).unwrap_or(0), string(it, label).unwrap_or_default()))
        .collect()
}

/// Options for reading ROI objects.
#[derive(Debug, Clone)]
pub struct RoiOptions {
    /// Segment or structure.
    pub choice: RoiChoice,
    /// FRACTIONAL SEG: a voxel is inside when its value is > 0 and ≥ `threshold × MaximumFractionalValue`
    /// (default 0.5; 0 keeps every non-zero voxel).
    pub fractional_threshold: f64,
}

impl Default for RoiOptions {
    fn default() -> Self {
        RoiOptions {
            choice: RoiChoice::First,
            fractional_threshold: 0.5,
        }
    }
}

/// A binary ROI on a series grid.
#[derive(Debug, Clone)]
pub struct Mask {
    /// Label map: 0 outside; 1 inside (SEG, RTSTRUCT) or the file's labels (label maps).
    pub volume: Volume<f64>,
    /// Where it came from (file, segment, rule), for diagnostics.
    pub source: String,
}

impl Mask {
    /// An empty mask on `grid`.
    pub fn empty(grid: &Geometry, source: String) -> Self {
        Mask {
            volume: Volume {
                geometry: grid.clone(),
                data: vec![0.0; grid.len()],
                pixel_type: crate::image::PixelType::U8,
            },
            source,
        }
    }

    /// Number of ROI voxels.
    pub fn voxels(&self) -> usize {
        self.volume.data.iter().filter(|&&v| v != 0.0).count()
    }
}

/// Load a ROI for `series` from a SEG, an RTSTRUCT, or a NIfTI/NRRD label map, chosen by content.
pub fn load(path: &Path, series: &Series, opts: &RoiOptions) -> Result<Mask> {
    if crate::io::VolumeFormat::of(path).is_some() {
        return labelmap::read(path, series);
    }
    let obj = crate::ingest::header::open_header(path)?;
    match crate::ingest::header::kind_of(&obj) {
        InstanceKind::Segmentation => seg::read(path, series, opts),
        InstanceKind::RtStructureSet => rtstruct::read(path, series, opts),
        other => Err(not_a_roi(path, &other)),
    }
}

fn not_a_roi(path: &Path, kind: &InstanceKind) -> Error {
    Error::Unsupported {
        path: path.to_path_buf(),
        reason: format!("SOP class {} ({kind}) is not a SEG or RTSTRUCT", kind.uid()),
    }
}

/// What a SEG or RTSTRUCT says it was drawn on, read from its header (no pixel data), for matching a ROI that
/// arrives in an export folder to its series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoiReferences {
    /// StudyInstanceUID of the ROI object.
    pub study_uid: Option<String>,
    /// FrameOfReferenceUID (SEG) or the referenced one (RTSTRUCT).
    pub frame_of_reference_uid: Option<String>,
    /// SeriesInstanceUIDs named in its reference sequences.
    pub series_uids: Vec<String>,
    /// Referenced SOP Instance UIDs (source images, contour images).
    pub instance_uids: Vec<String>,
    /// SOPInstanceUID of the ROI object itself: its identity (a revised ROI is a new object with a new UID).
    pub sop_instance_uid: Option<String>,
    /// SOPClassUID of the ROI object (SEG or RTSTRUCT).
    pub sop_class_uid: Option<String>,
    /// SeriesInstanceUID of the ROI object itself (not of the images it was drawn on).
    pub own_series_uid: Option<String>,
    /// When the ROI was drawn, as [`dicom_date_time`] writes it: ContentDate/Time (SEG), StructureSetDate/Time
    /// (RTSTRUCT), else InstanceCreationDate/Time, else SeriesDate/Time. Orders two revisions of one ROI.
    pub drawn_at: Option<String>,
}

/// A DICOM date (DA, `YYYYMMDD`) and time (TM, `HH[MM[SS[.F{1,6}]]]`) as `YYYYMMDDHHMMSS.ffffff`, which sorts
/// as time does; `None` unless both are well formed. (No time zone: both ROIs of one series come from one site.)
pub fn dicom_date_time(date: &str, time: &str) -> Option<String> {
    let date = date.trim();
    let time = time.trim();
    let (whole, frac) = time.split_once('.').unwrap_or((time, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if date.len() != 8 || !digits(date) || whole.is_empty() || whole.len() > 6 || whole.len() % 2 != 0 {
        return None;
    }
    if !digits(whole) || frac.len() > 6 || !digits(frac) {
        return None;
    }
    Some(format!("{date}{whole:0<6}.{frac:0<6}"))
}

fn collect_references(ds: &crate::ingest::tags::Dataset, depth: usize, out: &mut RoiReferences) {
    use dicom_dictionary_std::tags;
    for elem in ds.iter() {
        let tag = elem.header().tag;
        if depth > 0 && tag == tags::SERIES_INSTANCE_UID {
            if let Ok(v) = elem.to_str() {
                let v = v.trim().trim_end_matches('\0').to_string();
                if !v.is_empty() && !out.series_uids.contains(&v) {
                    out.series_uids.push(v);
                }
            }
        } else if tag == tags::REFERENCED_SOP_INSTANCE_UID {
            if let Ok(v) = elem.to_str() {
                out.instance_uids.push(v.trim().trim_end_matches('\0').to_string());
            }
        } else if tag == tags::REFERENCED_FRAME_OF_REFERENCE_UID && out.frame_of_reference_uid.is_none() {
            out.frame_of_reference_uid = elem.to_str().ok().map(|v| v.trim().trim_end_matches('\0').to_string());
        } else if let Some(items) = elem.items()
            && depth < 8
        {
            for it in items {
                collect_references(it, depth + 1, out);
            }
        }
    }
}

/// Read the references of a SEG or RTSTRUCT (errors for other files).
pub fn references(path: &Path) -> Result<RoiReferences> {
    use crate::ingest::tags::string;
    use dicom_dictionary_std::tags;
    let obj = crate::ingest::header::open_header(path)?;
    let kind = crate::ingest::header::kind_of(&obj);
    if !kind.is_roi() {
        return Err(not_a_roi(path, &kind));
    }
    let drawn_at = [
        (tags::CONTENT_DATE, tags::CONTENT_TIME),
        (tags::STRUCTURE_SET_DATE, tags::STRUCTURE_SET_TIME),
        (tags::INSTANCE_CREATION_DATE, tags::INSTANCE_CREATION_TIME),
        (tags::SERIES_DATE, tags::SERIES_TIME),
    ]
    .into_iter()
    .find_map(|(d, t)| dicom_date_time(&string(&obj, d)?, &string(&obj, t)?));
    let mut out = RoiReferences {
        study_uid: string(&obj, tags::STUDY_INSTANCE_UID),
        frame_of_reference_uid: string(&obj, tags::FRAME_OF_REFERENCE_UID),
        sop_instance_uid: string(&obj, tags::SOP_INSTANCE_UID),
        sop_class_uid: Some(kind.uid().to_string()),
        own_series_uid: string(&obj, tags::SERIES_INSTANCE_UID),
        drawn_at,
        ..Default::default()
    };
    collect_references(&obj, 0, &mut out);
    out.instance_uids.sort();
    out.instance_uids.dedup();
    Ok(out)
}

/// A ROI object must be drawn in the series' frame of reference (when both state one).
pub(crate) fn check_frame_of_reference(path: &Path, referenced: Option<String>, series: &Series) -> Result<()> {
    if let (Some(a), Some(b)) = (referenced, &series.frame_of_reference_uid)
        && &a != b
    {
        return Err(Error::InvalidRoi {
            path: path.to_path_buf(),
            reason: format!("references another frame of reference ({a}; the series is in {b})"),
        });
    }
    Ok(())
}

/// Round half up (`floor(x + ½)`), the tie rule used for matching positions to slices. (Rust's `f64::round`
/// rounds half away from zero, numpy half to even; neither is what ITK's nearest-neighbour uses.)
pub(crate) fn round_half_up(x: f64) -> i64 {
    (x + 0.5).floor() as i64
}

#[cfg(test)]
mod tests {
    use super::dicom_date_time;

    #[test]
    fn dicom_date_and_time_become_one_sortable_text() {
        assert_eq!(
            dicom_date_time("20190307", "101500").as_deref(),
            Some("20190307101500.000000")
        );
        // TM may stop after the hour or the minute, and carry up to six fraction digits
        assert_eq!(
            dicom_date_time("20190307", "10").as_deref(),
            Some("20190307100000.000000")
        );
        assert_eq!(
            dicom_date_time("20190307", "1015.5").as_deref(),
            Some("20190307101500.500000")
        );
        assert!(dicom_date_time("20190307", "095959.999999") < dicom_date_time("20190307", "10"));
        for (d, t) in [
            ("2019037", "10"),
            ("20190307", ""),
            ("20190307", "101"),
            ("20190307", "10:15"),
            ("2019-03-07", "10"),
        ] {
            assert_eq!(dicom_date_time(d, t), None, "{d} {t}");
        }
    }
}
