//! Reading the headers of DICOM files (pixel data is not read here): one [`SliceHeader`] per 2D image,
//! i.e. per classic MR instance or per frame of an Enhanced MR instance.

use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;

use super::sop_class::InstanceKind;
use super::tags::{Dataset, float, floats, int, item, items, string, time_seconds};
use crate::error::{Error, Result};

/// The largest pixel payload (bytes) an instance may declare.
pub const MAX_PIXEL_BYTES: u64 = 2 << 30;

/// One 2D image of a series and what places it in space and time.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceHeader {
    /// File holding it.
    pub file: PathBuf,
    /// Frame number within the file (0 for classic instances).
    pub frame: u32,
    /// SOPInstanceUID of the instance.
    pub sop_instance_uid: String,
    /// ImagePositionPatient (mm, LPS).
    pub position: [f64; 3],
    /// ImageOrientationPatient: row direction then column direction.
    pub orientation: [f64; 6],
    /// PixelSpacing: (between rows, between columns) in mm.
    pub pixel_spacing: [f64; 2],
    /// Rows.
    pub rows: u32,
    /// Columns.
    pub columns: u32,
    /// InstanceNumber.
    pub instance_number: Option<i64>,
    /// TemporalPositionIdentifier.
    pub temporal_position_identifier: Option<i64>,
    /// Per-frame TemporalPositionIndex (Enhanced MR).
    pub temporal_position_index: Option<i64>,
    /// AcquisitionNumber.
    pub acquisition_number: Option<i64>,
    /// TriggerTime (ms).
    pub trigger_time: Option<f64>,
    /// AcquisitionTime (s since midnight).
    pub acquisition_time: Option<f64>,
    /// ContentTime (s since midnight).
    pub content_time: Option<f64>,
}

/// The Patient and General Study attributes (PS3.3 C.7.1.1, C.7.2.1) besides the name, ID, accession number and
/// StudyInstanceUID that [`InstanceHeader`] names: what a DICOM Structured Report filed into the same study copies
/// (identifying; they stay on the box except in that report).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StudyAttributes {
    /// PatientBirthDate.
    pub patient_birth_date: Option<String>,
    /// PatientSex.
    pub patient_sex: Option<String>,
    /// StudyDate.
    pub study_date: Option<String>,
    /// StudyTime.
    pub study_time: Option<String>,
    /// StudyID.
    pub study_id: Option<String>,
    /// ReferringPhysicianName.
    pub referring_physician_name: Option<String>,
    /// StudyDescription.
    pub study_description: Option<String>,
}

impl StudyAttributes {
    /// Read from a header.
    pub fn of(ds: &crate::ingest::tags::Dataset) -> StudyAttributes {
        StudyAttributes {
            patient_birth_date: string(ds, tags::PATIENT_BIRTH_DATE),
            patient_sex: string(ds, tags::PATIENT_SEX),
            study_date: string(ds, tags::STUDY_DATE),
            study_time: string(ds, tags::STUDY_TIME),
            study_id: string(ds, tags::STUDY_ID),
            referring_physician_name: string(ds, tags::REFERRING_PHYSICIAN_NAME),
            study_description: string(ds, tags::STUDY_DESCRIPTION),
        }
    }
}

/// What one image file contributes.
#[derive(Debug, Clone)]
pub struct InstanceHeader {
    /// What it is (SOPClassUID): an MR or Enhanced MR image.
    pub kind: InstanceKind,
    /// StudyInstanceUID.
    pub study_uid: String,
    /// SeriesInstanceUID.
    pub series_uid: String,
    /// FrameOfReferenceUID.
    pub frame_of_reference_uid: Option<String>,
    /// Modality.
    pub modality: String,
    /// SeriesDescription.
    pub series_description: String,
    /// SeriesNumber.
    pub series_number: Option<i64>,
    /// ImageType values.
    pub image_type: Vec<String>,
    /// NumberOfTemporalPositions.
    pub number_of_temporal_positions: Option<i64>,
    /// ImagesInAcquisition.
    pub images_in_acquisition: Option<i64>,
    /// AccessionNumber (identifying: leaves the box only when the daemon's `phi.include_identifiers` says so).
    pub accession_number: Option<String>,
    /// PatientName (identifying, as above).
    pub patient_name: Option<String>,
    /// PatientID (identifying: shown on the console page only with `console.show_identifiers`).
    pub patient_id: Option<String>,
    /// The rest of the Patient and General Study modules, which a report filed into the study copies.
    pub study: StudyAttributes,
    /// The 2D images it holds.
    pub slices: Vec<SliceHeader>,
}

/// Open a DICOM file's header (everything before Pixel Data), after the length check of [`super::guard`].
pub fn open_header(path: &Path) -> Result<dicom_object::DefaultDicomObject> {
    super::guard::open(path, true)
}

fn required<T>(path: &Path, v: Option<T>, what: &str) -> Result<T> {
    v.ok_or_else(|| Error::dicom(path, format!("missing or invalid {what}")))
}

/// One DICOM file, read as far as its kind needs: an image's header, or the kind of anything else.
#[derive(Debug, Clone)]
pub enum DicomFile {
    /// An MR or Enhanced MR image.
    Image(Box<InstanceHeader>),
    /// A SEG or RTSTRUCT (read by [`crate::roi`]).
    Roi(InstanceKind),
    /// A SOP class alnrisk does not read.
    Other(InstanceKind),
}

/// The SOP class of an open file: SOPClassUID, else the file meta's MediaStorageSOPClassUID.
pub fn kind_of(obj: &dicom_object::DefaultDicomObject) -> InstanceKind {
    let uid = string(obj, tags::SOP_CLASS_UID).unwrap_or_else(|| obj.meta().media_storage_sop_class_uid().to_string());
    InstanceKind::from_uid(&uid)
}

/// Read a DICOM file's header and tell what it is ([`InstanceKind`]); an image's header is read in full.
pub fn read_dicom(path: &Path) -> Result<DicomFile> {
    let obj = open_header(path)?;
    let kind = kind_of(&obj);
    if kind.is_image() {
        image_header(path, &obj, kind).map(|h| DicomFile::Image(Box::new(h)))
    } else if kind.is_roi() {
        Ok(DicomFile::Roi(kind))
    } else {
        Ok(DicomFile::Other(kind))
    }
}

/// Read the header of an MR image file (classic or Enhanced). Other SOP classes are reported as
/// [`Error::Unsupported`] naming the class.
pub fn read_instance(path: &Path) -> Result<InstanceHeader> {
    match read_dicom(path)? {
        DicomFile::Image(h) => Ok(*h),
        DicomFile::Roi(kind) | DicomFile::Other(kind) => Err(not_an_image(path, &kind)),
    }
}

/// The error for a file of SOP class `kind` where an MR image was needed.
pub fn not_an_image(path: &Path, kind: &InstanceKind) -> Error {
    Error::Unsupported {
        path: path.to_path_buf(),
        reason: format!("SOP class {} ({kind}) is not an MR image", kind.uid()),
    }
}

fn image_header(path: &Path, obj: &dicom_object::DefaultDicomObject, kind: InstanceKind) -> Result<InstanceHeader> {
    let ds: &Dataset = obj;
    let rows = required(path, int(ds, tags::ROWS), "Rows (0028,0010)")?;
    let columns = required(path, int(ds, tags::COLUMNS), "Columns (0028,0011)")?;
    let frames = int(ds, tags::NUMBER_OF_FRAMES).unwrap_or(1);
    let bits = int(ds, tags::BITS_ALLOCATED).unwrap_or(16);
    let samples = int(ds, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
    if rows <= 0 || columns <= 0 || frames <= 0 || !(1..=64).contains(&bits) {
        return Err(Error::dicom(
            path,
            format!("absurd image size: {rows}×{columns}×{frames} frames, {bits} bits"),
        ));
    }
    let bytes = rows as u64 * columns as u64 * frames as u64 * (bits as u64).div_ceil(8) * samples.max(1) as u64;
    if bytes > MAX_PIXEL_BYTES || rows > 65535 || columns > 65535 {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            declared_bytes: bytes as u128,
            limit_bytes: MAX_PIXEL_BYTES as u128,
        });
    }
    if samples != 1 {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            reason: format!("{samples} samples per pixel (only grayscale is supported)"),
        });
    }
    let sop_instance_uid = required(path, string(ds, tags::SOP_INSTANCE_UID), "SOPInstanceUID")?;
    let mut slices = Vec::new();
    if kind == InstanceKind::EnhancedMrImage {
        let shared = item(ds, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
        let per_frame = items(ds, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
        if per_frame.len() != frames as usize {
            return Err(Error::dicom(
                path,
                format!("{} per-frame functional groups for {frames} frames", per_frame.len()),
            ));
        }
        for (f, pf) in per_frame.iter().enumerate() {
            // a functional group: the per-frame item first, then the shared one
            let group = |seq| item(pf, seq).or_else(|| shared.and_then(|s| item(s, seq)));
            let position = group(tags::PLANE_POSITION_SEQUENCE).and_then(|g| floats(g, tags::IMAGE_POSITION_PATIENT));
            let orientation =
                group(tags::PLANE_ORIENTATION_SEQUENCE).and_then(|g| floats(g, tags::IMAGE_ORIENTATION_PATIENT));
            let spacing = group(tags::PIXEL_MEASURES_SEQUENCE).and_then(|g| floats(g, tags::PIXEL_SPACING));
            let content = item(pf, tags::FRAME_CONTENT_SEQUENCE);
            slices.push(SliceHeader {
                file: path.to_path_buf(),
                frame: f as u32,
                sop_instance_uid: sop_instance_uid.clone(),
                position: vec3(path, position, "per-frame ImagePositionPatient")?,
                orientation: vec6(path, orientation)?,
                pixel_spacing: vec2(path, spacing)?,
                rows: rows as u32,
                columns: columns as u32,
                instance_number: int(ds, tags::INSTANCE_NUMBER),
                temporal_position_identifier: None,
                temporal_position_index: content.and_then(|c| int(c, tags::TEMPORAL_POSITION_INDEX)),
                acquisition_number: None,
                trigger_time: None,
                acquisition_time: content.and_then(|c| time_seconds(c, tags::FRAME_ACQUISITION_DATE_TIME)),
                content_time: None,
            });
        }
    } else {
        slices.push(SliceHeader {
            file: path.to_path_buf(),
            frame: 0,
            sop_instance_uid,
            position: vec3(
                path,
                floats(ds, tags::IMAGE_POSITION_PATIENT),
                "ImagePositionPatient (0020,0032)",
            )?,
            orientation: vec6(path, floats(ds, tags::IMAGE_ORIENTATION_PATIENT))?,
            pixel_spacing: vec2(path, floats(ds, tags::PIXEL_SPACING))?,
            rows: rows as u32,
            columns: columns as u32,
            instance_number: int(ds, tags::INSTANCE_NUMBER),
            temporal_position_identifier: int(ds, tags::TEMPORAL_POSITION_IDENTIFIER),
            temporal_position_index: None,
            acquisition_number: int(ds, tags::ACQUISITION_NUMBER),
            trigger_time: float(ds, tags::TRIGGER_TIME),
            acquisition_time: time_seconds(ds, tags::ACQUISITION_TIME),
            content_time: time_seconds(ds, tags::CONTENT_TIME),
        });
    }
    Ok(InstanceHeader {
        kind,
        study_uid: required(path, string(ds, tags::STUDY_INSTANCE_UID), "StudyInstanceUID")?,
        series_uid: required(path, string(ds, tags::SERIES_INSTANCE_UID), "SeriesInstanceUID")?,
        frame_of_reference_uid: string(ds, tags::FRAME_OF_REFERENCE_UID),
        modality: string(ds, tags::MODALITY).unwrap_or_default(),
        series_description: string(ds, tags::SERIES_DESCRIPTION).unwrap_or_default(),
        series_number: int(ds, tags::SERIES_NUMBER),
        image_type: string(ds, tags::IMAGE_TYPE)
            .map(|s| s.split('\\').map(|x| x.trim().to_string()).collect())
            .unwrap_or_default(),
        number_of_temporal_positions: int(ds, tags::NUMBER_OF_TEMPORAL_POSITIONS),
        images_in_acquisition: int(ds, tags::IMAGES_IN_ACQUISITION),
        accession_number: string(ds, tags::ACCESSION_NUMBER),
        patient_name: string(ds, tags::PATIENT_NAME),
        patient_id: string(ds, tags::PATIENT_ID),
        study: StudyAttributes::of(ds),
        slices,
    })
}

fn vec3(path: &Path, v: Option<Vec<f64>>, what: &str) -> Result<[f64; 3]> {
    match v {
        Some(v) if v.len() == 3 => Ok([v[0], v[1], v[2]]),
        _ => Err(Error::dicom(path, format!("missing or invalid {what}"))),
    }
}

fn vec6(path: &Path, v: Option<Vec<f64>>) -> Result<[f64; 6]> {
    match v {
        Some(v) if v.len() == 6 => {
            let o = [v[0], v[1], v[2], v[3], v[4], v[5]];
            let n1 = (o[0] * o[0] + o[1] * o[1] + o[2] * o[2]).sqrt();
            let n2 = (o[3] * o[3] + o[4] * o[4] + o[5] * o[5]).sqrt();
            let dot = o[0] * o[3] + o[1] * o[4] + o[2] * o[5];
            if (n1 - 1.0).abs() > 1e-3 || (n2 - 1.0).abs() > 1e-3 || dot.abs() > 1e-3 {
                return Err(Error::dicom(
                    path,
                    "ImageOrientationPatient is not two orthonormal vectors",
                ));
            }
            Ok(o)
        }
        _ => Err(Error::dicom(
            path,
            "missing or invalid ImageOrientationPatient (0020,0037)",
        )),
    }
}

fn vec2(path: &Path, v: Option<Vec<f64>>) -> Result<[f64; 2]> {
    match v {
        Some(v) if v.len() == 2 && v[0] > 0.0 && v[1] > 0.0 => Ok([v[0], v[1]]),
        _ => Err(Error::dicom(path, "missing or invalid PixelSpacing (0028,0030)")),
    }
}
