//! Writing MR series (classic, one file per image; or Enhanced MR, one multi-frame file), DICOM SEG and
//! RTSTRUCT objects on a given grid. Explicit VR little endian; UIDs are `2.25.<UUID as integer>` (PS3.5 B.2)
//! with a name-based UUID (version 8, RFC 9562) derived from a seed string, so the same inputs give
//! byte-identical files.

use std::path::{Path, PathBuf};

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

use crate::error::{Error, Result};
use crate::image::Geometry;
use dicom_dictionary_std::uids::{
    ENHANCED_MR_IMAGE_STORAGE as ENHANCED_MR_IMAGE, MR_IMAGE_STORAGE as MR_IMAGE,
    RT_STRUCTURE_SET_STORAGE as RT_STRUCTURE_SET, SEGMENTATION_STORAGE as SEGMENTATION,
};

/// A deterministic DICOM UID: `2.25.` + the integer value of a version-8 UUID hashed from `seed`.
pub fn uid(seed: &str) -> String {
    // two independent 64-bit FNV-1a hashes
    let h = |basis: u64| {
        let mut x = basis;
        for b in seed.bytes() {
            x ^= b as u64;
            x = x.wrapping_mul(0x100000001b3);
        }
        x
    };
    let mut v = ((h(0xcbf29ce484222325) as u128) << 64) | h(0x84222325cbf29ce4) as u128;
    v = (v & !(0xF_u128 << 76)) | (0x8_u128 << 76); // version 8
    v = (v & !(0x3_u128 << 62)) | (0x2_u128 << 62); // RFC 9562 variant
    format!("2.25.{v}")
}

/// Patient and study attributes (all obviously synthetic).
#[derive(Debug, Clone, PartialEq)]
pub struct PatientInfo {
    /// PatientName, e.g. `SYNTHETIC^P0001`.
    pub name: String,
    /// PatientID, e.g. `SYNTH-0001`.
    pub id: String,
    /// PatientBirthDate (DA).
    pub birth_date: String,
    /// StudyDate (DA).
    pub study_date: String,
    /// AccessionNumber.
    pub accession: String,
}

impl Default for PatientInfo {
    fn default() -> Self {
        PatientInfo {
            name: "SYNTHETIC^PATIENT".into(),
            id: "SYNTH-0000".into(),
            birth_date: "19700101".into(),
            study_date: "20170101".into(),
            accession: "SYNACC0000".into(),
        }
    }
}

/// What identifies a series.
#[derive(Debug, Clone)]
pub struct SeriesIds {
    /// Patient and study attributes.
    pub patient: PatientInfo,
    /// StudyInstanceUID.
    pub study: String,
    /// SeriesInstanceUID.
    pub series: String,
    /// FrameOfReferenceUID.
    pub frame_of_reference: String,
    /// SeriesNumber.
    pub number: i64,
    /// SeriesDescription.
    pub description: String,
}

impl SeriesIds {
    /// Ids derived from a seed.
    pub fn from_seed(seed: &str, number: i64) -> Self {
        SeriesIds {
            patient: PatientInfo::default(),
            study: uid(&format!("{seed}/study")),
            series: uid(&format!("{seed}/series/{number}")),
            frame_of_reference: uid(&format!("{seed}/for")),
            number,
            description: "SYNTHETIC DCE".into(),
        }
    }
}

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, v: PrimitiveValue) {
    obj.put(DataElement::new(tag, vr, v));
}

fn put_str(obj: &mut InMemDicomObject, tag: Tag, vr: VR, s: &str) {
    put(obj, tag, vr, PrimitiveValue::from(s));
}

/// The Image Pixel module (PS3.3 C.7.6.3) of a monochrome image: `rows × columns`, `bits` allocated and stored,
/// signed or not.
fn put_image_pixel(obj: &mut InMemDicomObject, rows: usize, columns: usize, bits: u16, signed: bool) {
    put(obj, tags::ROWS, VR::US, PrimitiveValue::from(rows as u16));
    put(obj, tags::COLUMNS, VR::US, PrimitiveValue::from(columns as u16));
    put(obj, tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16));
    put_str(obj, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2");
    put(obj, tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(bits));
    put(obj, tags::BITS_STORED, VR::US, PrimitiveValue::from(bits));
    put(obj, tags::HIGH_BIT, VR::US, PrimitiveValue::from(bits - 1));
    put(
        obj,
        tags::PIXEL_REPRESENTATION,
        VR::US,
        PrimitiveValue::from(u16::from(signed)),
    );
}

fn ds(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{}", (v * 1e6).round() / 1e6))
        .collect::<Vec<_>>()
        .join("\\")
}

fn seq(obj: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    obj.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
}

fn item_with(f: impl FnOnce(&mut InMemDicomObject)) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    f(&mut o);
    o
}

/// A new single-instance object derived from the MR series `ids` (SEG, RTSTRUCT): its own series UID and
/// instance UID (derived from the MR series UID and the modality), series number `ids.number + number_offset`,
/// the common patient/study module, and the SOP class.
fn derived_object(
    ids: &SeriesIds,
    modality: &str,
    sop_class: &str,
    number_offset: i64,
    description: Option<&str>,
) -> InMemDicomObject {
    let kind = modality.to_lowercase();
    let mut derived = ids.clone();
    derived.series = uid(&format!("{}/{kind}", ids.series));
    derived.number = ids.number + number_offset;
    if let Some(d) = description {
        derived.description = d.into();
    }
    let mut obj = InMemDicomObject::new_empty();
    common(&mut obj, &derived, modality);
    put_str(&mut obj, tags::SOP_CLASS_UID, VR::UI, sop_class);
    put_str(
        &mut obj,
        tags::SOP_INSTANCE_UID,
        VR::UI,
        &uid(&format!("{}/{kind}/instance", ids.series)),
    );
    obj
}

fn common(obj: &mut InMemDicomObject, ids: &SeriesIds, modality: &str) {
    let p = &ids.patient;
    put_str(obj, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    put_str(obj, tags::PATIENT_NAME, VR::PN, &p.name);
    put_str(obj, tags::PATIENT_ID, VR::LO, &p.id);
    put_str(obj, tags::PATIENT_BIRTH_DATE, VR::DA, &p.birth_date);
    put_str(obj, tags::PATIENT_SEX, VR::CS, "F");
    put_str(obj, tags::STUDY_DATE, VR::DA, &p.study_date);
    put_str(obj, tags::STUDY_TIME, VR::TM, "100000");
    put_str(obj, tags::SERIES_DATE, VR::DA, &p.study_date);
    put_str(obj, tags::REFERRING_PHYSICIAN_NAME, VR::PN, "");
    put_str(obj, tags::STUDY_ID, VR::SH, "1");
    put_str(obj, tags::ACCESSION_NUMBER, VR::SH, &p.accession);
    put_str(obj, tags::STUDY_DESCRIPTION, VR::LO, "SYNTHETIC BREAST DCE-MRI");
    put_str(obj, tags::MANUFACTURER, VR::LO, "alnrisk synthetic");
    put_str(obj, tags::STUDY_INSTANCE_UID, VR::UI, &ids.study);
    if modality != "RTSTRUCT" {
        put_str(obj, tags::CONTENT_DATE, VR::DA, &p.study_date);
    }
    put_str(obj, tags::SERIES_INSTANCE_UID, VR::UI, &ids.series);
    put_str(obj, tags::FRAME_OF_REFERENCE_UID, VR::UI, &ids.frame_of_reference);
    put_str(obj, tags::MODALITY, VR::CS, modality);
    put(
        obj,
        tags::SERIES_NUMBER,
        VR::IS,
        PrimitiveValue::from(ids.number.to_string()),
    );
    put_str(obj, tags::SERIES_DESCRIPTION, VR::LO, &ids.description);
}

fn orientation(g: &Geometry) -> [f64; 6] {
    g.orientation_cosines()
}

/// The Shared Functional Groups item of a multi-frame object on `grid`: plane orientation and pixel measures.
fn shared_plane_groups(grid: &Geometry) -> InMemDicomObject {
    item_with(|s| {
        seq(
            s,
            tags::PLANE_ORIENTATION_SEQUENCE,
            vec![item_with(|o| {
                put_str(o, tags::IMAGE_ORIENTATION_PATIENT, VR::DS, &ds(&orientation(grid)))
            })],
        );
        seq(
            s,
            tags::PIXEL_MEASURES_SEQUENCE,
            vec![item_with(|m| {
                put_str(m, tags::PIXEL_SPACING, VR::DS, &ds(&[grid.spacing[1], grid.spacing[0]]));
                put_str(m, tags::SLICE_THICKNESS, VR::DS, &ds(&[grid.spacing[2]]));
            })],
        );
    })
}

fn write(obj: InMemDicomObject, path: &Path) -> Result<()> {
    let file = obj
        .with_meta(FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1"))
        .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))?;
    file.write_to_file(path)
        .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))
}

/// Attributes of the General Series, Frame of Reference and MR Image modules that carry acquisition
/// parameters (plausible values for a fat-suppressed 3D T1 gradient-echo DCE acquisition).
fn mr_modules(obj: &mut InMemDicomObject) {
    put_str(obj, tags::PATIENT_POSITION, VR::CS, "FFP");
    put_str(obj, tags::LATERALITY, VR::CS, "L");
    put_str(obj, tags::BODY_PART_EXAMINED, VR::CS, "BREAST");
    put_str(obj, tags::POSITION_REFERENCE_INDICATOR, VR::LO, "");
    put_str(obj, tags::SCANNING_SEQUENCE, VR::CS, "GR");
    put_str(obj, tags::SEQUENCE_VARIANT, VR::CS, "SP\\SS");
    put_str(obj, tags::SCAN_OPTIONS, VR::CS, "FS");
    put_str(obj, tags::MR_ACQUISITION_TYPE, VR::CS, "3D");
    put_str(obj, tags::REPETITION_TIME, VR::DS, "4.5");
    put_str(obj, tags::ECHO_TIME, VR::DS, "2.1");
    put_str(obj, tags::ECHO_TRAIN_LENGTH, VR::IS, "1");
    put_str(obj, tags::FLIP_ANGLE, VR::DS, "12");
    put_str(obj, tags::MAGNETIC_FIELD_STRENGTH, VR::DS, "3");
}

/// A Plane Position Sequence item.
fn plane_position(pos: [f64; 3]) -> InMemDicomObject {
    item_with(|pp| put_str(pp, tags::IMAGE_POSITION_PATIENT, VR::DS, &ds(&pos)))
}

/// A code sequence item.
fn code(value: &str, scheme: &str, meaning: &str) -> InMemDicomObject {
    item_with(|c| {
        put_str(c, tags::CODE_VALUE, VR::SH, value);
        put_str(c, tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme);
        put_str(c, tags::CODE_MEANING, VR::LO, meaning);
    })
}

/// Time of phase `p` as DICOM TM: 10:00:00 plus one minute per phase.
fn phase_time(p: usize) -> String {
    format!("10{:02}00.000000", p)
}

fn pixel_bytes(values: impl Iterator<Item = i16>) -> Vec<u8> {
    values.flat_map(|v| v.to_le_bytes()).collect()
}

/// SOPInstanceUID of image (phase `p`, slice `k`) of a classic series written by [`write_classic_series`].
pub fn classic_sop_uid(ids: &SeriesIds, p: usize, k: usize) -> String {
    uid(&format!("{}/{p}/{k}", ids.series))
}

/// SOPInstanceUID of the Enhanced MR instance written by [`write_enhanced`].
pub fn enhanced_sop_uid(ids: &SeriesIds) -> String {
    uid(&format!("{}/enhanced", ids.series))
}

/// Options for classic series.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClassicOptions {
    /// Write TemporalPositionIdentifier / NumberOfTemporalPositions.
    pub temporal_ids: bool,
    /// Write a distinct ContentTime/AcquisitionTime per phase.
    pub phase_times: bool,
}

/// Write a classic MR series: one file per (phase, slice), InstanceNumber running phase-major. `value(p, i,
/// j, k)` gives the stored value. `name(p, k)` names the file. Returns the paths.
pub fn write_classic_series(
    dir: &Path,
    ids: &SeriesIds,
    grid: &Geometry,
    phases: usize,
    opts: ClassicOptions,
    value: impl Fn(usize, usize, usize, usize) -> i16,
    name: impl Fn(usize, usize) -> String,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let [nx, ny, nz] = grid.size;
    let mut out = Vec::new();
    for p in 0..phases {
        for k in 0..nz {
            let mut obj = InMemDicomObject::new_empty();
            common(&mut obj, ids, "MR");
            mr_modules(&mut obj);
            let sop = classic_sop_uid(ids, p, k);
            put_str(&mut obj, tags::SOP_CLASS_UID, VR::UI, MR_IMAGE);
            put_str(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, &sop);
            put_str(&mut obj, tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY\\OTHER");
            put(
                &mut obj,
                tags::INSTANCE_NUMBER,
                VR::IS,
                PrimitiveValue::from((p * nz + k + 1).to_string()),
            );
            if opts.temporal_ids {
                put(
                    &mut obj,
                    tags::TEMPORAL_POSITION_IDENTIFIER,
                    VR::IS,
                    PrimitiveValue::from((p + 1).to_string()),
                );
                put(
                    &mut obj,
                    tags::NUMBER_OF_TEMPORAL_POSITIONS,
                    VR::IS,
                    PrimitiveValue::from(phases.to_string()),
                );
            }
            if opts.phase_times {
                put_str(&mut obj, tags::CONTENT_TIME, VR::TM, &phase_time(p));
                put_str(&mut obj, tags::ACQUISITION_TIME, VR::TM, &phase_time(p));
            }
            let pos = grid.continuous_index_to_physical([0.0, 0.0, k as f64]);
            put_str(&mut obj, tags::IMAGE_POSITION_PATIENT, VR::DS, &ds(&pos));
            put_str(
                &mut obj,
                tags::IMAGE_ORIENTATION_PATIENT,
                VR::DS,
                &ds(&orientation(grid)),
            );
            put_str(
                &mut obj,
                tags::PIXEL_SPACING,
                VR::DS,
                &ds(&[grid.spacing[1], grid.spacing[0]]),
            );
            put_str(&mut obj, tags::SLICE_THICKNESS, VR::DS, &ds(&[grid.spacing[2]]));
            put_image_pixel(&mut obj, ny, nx, 16, true);
            let px = pixel_bytes(
                (0..ny)
                    .flat_map(|j| (0..nx).map(move |i| (i, j)))
                    .map(|(i, j)| value(p, i, j, k)),
            );
            put(&mut obj, tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(px));
            let path = dir.join(name(p, k));
            write(obj, &path)?;
            out.push(path);
        }
    }
    Ok(out)
}

/// Write an Enhanced MR multi-frame file holding every phase (TemporalPositionIndex in the per-frame
/// FrameContentSequence), frames ordered phase-major.
pub fn write_enhanced(
    path: &Path,
    ids: &SeriesIds,
    grid: &Geometry,
    phases: usize,
    value: impl Fn(usize, usize, usize, usize) -> i16,
) -> Result<()> {
    let [nx, ny, nz] = grid.size;
    let mut obj = InMemDicomObject::new_empty();
    common(&mut obj, ids, "MR");
    put_str(&mut obj, tags::SOP_CLASS_UID, VR::UI, ENHANCED_MR_IMAGE);
    put_str(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, &enhanced_sop_uid(ids));
    put_str(&mut obj, tags::IMAGE_TYPE, VR::CS, "ORIGINAL\\PRIMARY\\OTHER\\NONE");
    put(&mut obj, tags::INSTANCE_NUMBER, VR::IS, PrimitiveValue::from("1"));
    put(
        &mut obj,
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        PrimitiveValue::from((phases * nz).to_string()),
    );
    put_image_pixel(&mut obj, ny, nx, 16, true);
    seq(
        &mut obj,
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        vec![shared_plane_groups(grid)],
    );
    let mut frames = Vec::new();
    let mut px = Vec::new();
    for p in 0..phases {
        for k in 0..nz {
            let pos = grid.continuous_index_to_physical([0.0, 0.0, k as f64]);
            frames.push(item_with(|f| {
                seq(f, tags::PLANE_POSITION_SEQUENCE, vec![plane_position(pos)]);
                seq(
                    f,
                    tags::FRAME_CONTENT_SEQUENCE,
                    vec![item_with(|c| {
                        put(
                            c,
                            tags::TEMPORAL_POSITION_INDEX,
                            VR::UL,
                            PrimitiveValue::from((p + 1) as u32),
                        )
                    })],
                );
            }));
            px.extend(pixel_bytes(
                (0..ny)
                    .flat_map(|j| (0..nx).map(move |i| (i, j)))
                    .map(|(i, j)| value(p, i, j, k)),
            ));
        }
    }
    seq(&mut obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, frames);
    put(&mut obj, tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(px));
    write(obj, path)
}

/// The source images a SEG references (Common Instance Reference module, per-frame derivation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegReference {
    /// No references (readers must fall back to the frame of reference and positions).
    None,
    /// The images of phase `phase` of a classic series written by [`write_classic_series`].
    Classic {
        /// 0-based phase.
        phase: usize,
    },
    /// The frames of phase `phase` of the Enhanced MR instance written by [`write_enhanced`].
    Enhanced {
        /// 0-based phase.
        phase: usize,
    },
}

/// Options for a SEG.
#[derive(Debug, Clone, Copy)]
pub struct SegOptions {
    /// BINARY (1 bit) or FRACTIONAL (8 bits, maximum 255).
    pub binary: bool,
    /// Write frames in reverse slice order (readers must use positions, not order).
    pub reverse_frames: bool,
    /// In-plane offset added to each frame's position, in pixels along (i, j).
    pub offset_pixels: [f64; 2],
    /// Which source images the SEG references.
    pub reference: SegReference,
}

impl Default for SegOptions {
    fn default() -> Self {
        SegOptions {
            binary: true,
            reverse_frames: false,
            offset_pixels: [0.0, 0.0],
            reference: SegReference::Classic { phase: 0 },
        }
    }
}

/// Write a one-segment SEG on `grid` for the slices where `inside(i, j, k)` holds anywhere.
pub fn write_seg(
    path: &Path,
    ids: &SeriesIds,
    grid: &Geometry,
    opts: SegOptions,
    inside: impl Fn(usize, usize, usize) -> bool,
) -> Result<()> {
    let [nx, ny, nz] = grid.size;
    let slices: Vec<usize> = (0..nz)
        .filter(|&k| (0..ny).any(|j| (0..nx).any(|i| inside(i, j, k))))
        .collect();
    let order: Vec<usize> = if opts.reverse_frames {
        slices.iter().rev().copied().collect()
    } else {
        slices
    };
    let mut obj = derived_object(ids, "SEG", SEGMENTATION, 100, Some("SYNTHETIC TUMOUR ROI"));
    put_str(&mut obj, tags::IMAGE_TYPE, VR::CS, "DERIVED\\PRIMARY");
    put(&mut obj, tags::INSTANCE_NUMBER, VR::IS, PrimitiveValue::from("1"));
    put_str(&mut obj, tags::POSITION_REFERENCE_INDICATOR, VR::LO, "");
    put_str(&mut obj, tags::MANUFACTURER_MODEL_NAME, VR::LO, "alnrisk synth");
    put_str(&mut obj, tags::DEVICE_SERIAL_NUMBER, VR::LO, "0");
    put_str(&mut obj, tags::SOFTWARE_VERSIONS, VR::LO, env!("CARGO_PKG_VERSION"));
    put_str(&mut obj, tags::CONTENT_LABEL, VR::CS, "TUMOUR");
    put_str(&mut obj, tags::CONTENT_DESCRIPTION, VR::LO, "Synthetic tumour ROI");
    put_str(&mut obj, tags::CONTENT_CREATOR_NAME, VR::PN, "SYNTHETIC^READER");
    put_str(&mut obj, tags::CONTENT_TIME, VR::TM, "100000");
    put_str(&mut obj, tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00");
    put_str(
        &mut obj,
        tags::SEGMENTATION_TYPE,
        VR::CS,
        if opts.binary { "BINARY" } else { "FRACTIONAL" },
    );
    if !opts.binary {
        put_str(&mut obj, tags::SEGMENTATION_FRACTIONAL_TYPE, VR::CS, "PROBABILITY");
        put(
            &mut obj,
            tags::MAXIMUM_FRACTIONAL_VALUE,
            VR::US,
            PrimitiveValue::from(255u16),
        );
    }
    put(
        &mut obj,
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        PrimitiveValue::from(order.len().to_string()),
    );
    put_image_pixel(&mut obj, ny, nx, if opts.binary { 1 } else { 8 }, false);
    seq(
        &mut obj,
        tags::SEGMENT_SEQUENCE,
        vec![item_with(|s| {
            put(s, tags::SEGMENT_NUMBER, VR::US, PrimitiveValue::from(1u16));
            put_str(s, tags::SEGMENT_LABEL, VR::LO, "Tumour");
            put_str(s, tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "MANUAL");
            seq(
                s,
                tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
                vec![code("49755003", "SCT", "Morphologically Altered Structure")],
            );
            seq(
                s,
                tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
                vec![code("108369006", "SCT", "Neoplasm")],
            );
        })],
    );
    let dimension_uid = uid(&format!("{}/seg/dimensions", ids.series));
    seq(
        &mut obj,
        tags::DIMENSION_ORGANIZATION_SEQUENCE,
        vec![item_with(|d| {
            put_str(d, tags::DIMENSION_ORGANIZATION_UID, VR::UI, &dimension_uid)
        })],
    );
    let dim = |pointer: Tag, group: Tag, label: &str| {
        item_with(|d| {
            put_str(d, tags::DIMENSION_ORGANIZATION_UID, VR::UI, &dimension_uid);
            put(
                d,
                tags::DIMENSION_INDEX_POINTER,
                VR::AT,
                PrimitiveValue::Tags(vec![pointer].into()),
            );
            put(
                d,
                tags::FUNCTIONAL_GROUP_POINTER,
                VR::AT,
                PrimitiveValue::Tags(vec![group].into()),
            );
            put_str(d, tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, label);
        })
    };
    seq(
        &mut obj,
        tags::DIMENSION_INDEX_SEQUENCE,
        vec![
            dim(
                tags::REFERENCED_SEGMENT_NUMBER,
                tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                "Segment",
            ),
            dim(tags::IMAGE_POSITION_PATIENT, tags::PLANE_POSITION_SEQUENCE, "Position"),
        ],
    );
    let source = |k: usize| match opts.reference {
        SegReference::None => None,
        SegReference::Classic { phase } => Some((MR_IMAGE, classic_sop_uid(ids, phase, k))),
        SegReference::Enhanced { .. } => Some((ENHANCED_MR_IMAGE, enhanced_sop_uid(ids))),
    };
    let reference_item = |class: &str, sop: &str| {
        item_with(|r| {
            put_str(r, tags::REFERENCED_SOP_CLASS_UID, VR::UI, class);
            put_str(r, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, sop);
        })
    };
    if opts.reference != SegReference::None {
        let mut refs: Vec<(&str, String)> = (0..nz).filter_map(source).collect();
        refs.dedup();
        let instances = refs.iter().map(|(c, u)| reference_item(c, u)).collect();
        seq(
            &mut obj,
            tags::REFERENCED_SERIES_SEQUENCE,
            vec![item_with(|r| {
                put_str(r, tags::SERIES_INSTANCE_UID, VR::UI, &ids.series);
                seq(r, tags::REFERENCED_INSTANCE_SEQUENCE, instances);
            })],
        );
    }
    seq(
        &mut obj,
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        vec![shared_plane_groups(grid)],
    );
    let mut frames = Vec::new();
    let mut bits_out: Vec<bool> = Vec::new();
    for &k in &order {
        let pos = grid.continuous_index_to_physical([opts.offset_pixels[0], opts.offset_pixels[1], k as f64]);
        frames.push(item_with(|f| {
            seq(f, tags::PLANE_POSITION_SEQUENCE, vec![plane_position(pos)]);
            seq(
                f,
                tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                vec![item_with(|s| {
                    put(s, tags::REFERENCED_SEGMENT_NUMBER, VR::US, PrimitiveValue::from(1u16))
                })],
            );
            seq(
                f,
                tags::FRAME_CONTENT_SEQUENCE,
                vec![item_with(|c| {
                    put(
                        c,
                        tags::DIMENSION_INDEX_VALUES,
                        VR::UL,
                        PrimitiveValue::U32(vec![1, k as u32 + 1].into()),
                    )
                })],
            );
            if let Some((class, sop)) = source(k) {
                let derivation = item_with(|d| {
                    seq(
                        d,
                        tags::DERIVATION_CODE_SEQUENCE,
                        vec![code("113076", "DCM", "Segmentation")],
                    );
                    let src = item_with(|r| {
                        put_str(r, tags::REFERENCED_SOP_CLASS_UID, VR::UI, class);
                        put_str(r, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &sop);
                        if let SegReference::Enhanced { phase } = opts.reference {
                            let frame = (phase * nz + k + 1).to_string();
                            put_str(r, tags::REFERENCED_FRAME_NUMBER, VR::IS, &frame);
                        }
                        seq(
                            r,
                            tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
                            vec![code("121322", "DCM", "Source image for image processing operation")],
                        );
                    });
                    seq(d, tags::SOURCE_IMAGE_SEQUENCE, vec![src]);
                });
                seq(f, tags::DERIVATION_IMAGE_SEQUENCE, vec![derivation]);
            }
        }));
        for j in 0..ny {
            for i in 0..nx {
                bits_out.push(inside(i, j, k));
            }
        }
    }
    seq(&mut obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, frames);
    let mut px: Vec<u8> = if opts.binary {
        let mut v = vec![0u8; bits_out.len().div_ceil(8)];
        for (n, &b) in bits_out.iter().enumerate() {
            if b {
                v[n / 8] |= 1 << (n % 8);
            }
        }
        v
    } else {
        bits_out.iter().map(|&b| if b { 255 } else { 0 }).collect()
    };
    if px.len() % 2 == 1 {
        px.push(0);
    }
    put(&mut obj, tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(px));
    write(obj, path)
}

/// Write an RTSTRUCT with one ROI made of closed planar contours given in patient coordinates.
pub fn write_rtstruct(path: &Path, ids: &SeriesIds, name: &str, contours: &[Vec<[f64; 3]>]) -> Result<()> {
    let mut obj = derived_object(ids, "RTSTRUCT", RT_STRUCTURE_SET, 200, None);
    put_str(&mut obj, tags::STRUCTURE_SET_LABEL, VR::SH, "SYNTHETIC");
    put_str(&mut obj, tags::STRUCTURE_SET_DATE, VR::DA, &ids.patient.study_date);
    put_str(&mut obj, tags::STRUCTURE_SET_TIME, VR::TM, "100000");
    put_str(&mut obj, tags::OPERATORS_NAME, VR::PN, "");
    put_str(&mut obj, tags::POSITION_REFERENCE_INDICATOR, VR::LO, "");
    seq(
        &mut obj,
        tags::RTROI_OBSERVATIONS_SEQUENCE,
        vec![item_with(|o| {
            put(o, tags::OBSERVATION_NUMBER, VR::IS, PrimitiveValue::from("1"));
            put(o, tags::REFERENCED_ROI_NUMBER, VR::IS, PrimitiveValue::from("1"));
            put_str(o, tags::RTROI_INTERPRETED_TYPE, VR::CS, "GTV");
            put_str(o, tags::ROI_INTERPRETER, VR::PN, "");
        })],
    );
    seq(
        &mut obj,
        tags::STRUCTURE_SET_ROI_SEQUENCE,
        vec![item_with(|r| {
            put(r, tags::ROI_NUMBER, VR::IS, PrimitiveValue::from("1"));
            put_str(
                r,
                tags::REFERENCED_FRAME_OF_REFERENCE_UID,
                VR::UI,
                &ids.frame_of_reference,
            );
            put_str(r, tags::ROI_NAME, VR::LO, name);
            put_str(r, tags::ROI_GENERATION_ALGORITHM, VR::CS, "MANUAL");
        })],
    );
    let items: Vec<InMemDicomObject> = contours
        .iter()
        .map(|c| {
            item_with(|ci| {
                put_str(ci, tags::CONTOUR_GEOMETRIC_TYPE, VR::CS, "CLOSED_PLANAR");
                put(
                    ci,
                    tags::NUMBER_OF_CONTOUR_POINTS,
                    VR::IS,
                    PrimitiveValue::from(c.len().to_string()),
                );
                let flat: Vec<f64> = c.iter().flat_map(|p| p.iter().copied()).collect();
                put_str(ci, tags::CONTOUR_DATA, VR::DS, &ds(&flat));
            })
        })
        .collect();
    seq(
        &mut obj,
        tags::ROI_CONTOUR_SEQUENCE,
        vec![item_with(|rc| {
            put(rc, tags::REFERENCED_ROI_NUMBER, VR::IS, PrimitiveValue::from("1"));
            seq(rc, tags::CONTOUR_SEQUENCE, items);
        })],
    );
    write(obj, path)
}
