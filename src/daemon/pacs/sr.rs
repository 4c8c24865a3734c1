//! The answer as a DICOM Structured Report: a Comprehensive 3D SR (`1.2.840.10008.5.1.4.1.1.88.34`, the SOP class
//! highdicom writes for TID 1500) holding a TID 1500 Imaging Measurement Report with one TID 1501 measurement
//! group, so that PACS files the answer beside the images it came from (the IHE AI Results profile's pattern).
//!
//! - **Filing.** Patient and General Study attributes are copied from the examination ([`SourceStudy`]): the
//!   report goes into the patient's record, so here — and only here — identifiers are required. It is in one SR
//!   series per study, alnrisk's own. The SR IOD has no Frame of Reference module: the source's frame of
//!   reference is in the Image Library (TID 1600, Frame of Reference UID, `112227`).
//! - **Identity.** The SOPInstanceUID is `2.25.` + the 128-bit message id of the answer, so an answer made twice
//!   (a crash between its writes) is one instance, which PACS stores once. An `update` or a `revision` names the
//!   series' previous report in the Predecessor Documents Sequence: PACS shows the history.
//! - **Content** (the table in the README): probability (UCUM `1`), class against the cutoff, the scenarios while
//!   a reported factor is unknown, the points per predictor, both signatures, the LN read and the other reported
//!   factors, algorithm identification (TID 4019: name, version, bundle id and sha256), OOD and acquisition flags
//!   as text, the source series and the SEG or RTSTRUCT used.
//!
//! Concepts without a standard code use the private coding scheme [`SCHEME`] (PS3.3 8.2: `99` + a name), which
//! the Coding Scheme Identification Sequence declares.

use std::collections::BTreeMap;

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use serde::{Deserialize, Serialize};

use crate::daemon::payload::{MessageKind, ResultMessage};
use crate::error::{Error, Result};
use crate::model::{LnRead, OodKind};

/// Comprehensive 3D SR Storage.
pub const COMPREHENSIVE_3D_SR: &str = "1.2.840.10008.5.1.4.1.1.88.34";
/// The private coding scheme of the concepts no standard names.
pub const SCHEME: &str = "99ALNRISK";
/// Series number of alnrisk's SR series in a study.
pub const SR_SERIES_NUMBER: i64 = 9_901;
/// The intended-use statement every report carries (as the console page does).
pub const INTENDED_USE: &str = "alnrisk: research software, not for diagnosis. Axillary lymph node metastasis risk \
                                after Wang et al., Front. Oncol. 2022.";

/// One referenced instance (hierarchical SOP instance reference, PS3.3 C.17.2.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRef {
    /// SeriesInstanceUID of the series holding it.
    pub series_uid: String,
    /// SOPClassUID.
    pub sop_class_uid: String,
    /// SOPInstanceUID.
    pub sop_instance_uid: String,
}

/// What a report copies from the examination it answers (Patient, General Study and Frame of Reference modules)
/// and what it references: the source images and the ROI object. Kept on the box (it is the patient's record),
/// never published.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceStudy {
    /// PatientName.
    pub patient_name: String,
    /// PatientID.
    pub patient_id: String,
    /// PatientBirthDate.
    pub patient_birth_date: String,
    /// PatientSex.
    pub patient_sex: String,
    /// StudyInstanceUID.
    pub study_uid: String,
    /// StudyDate.
    pub study_date: String,
    /// StudyTime.
    pub study_time: String,
    /// StudyID.
    pub study_id: String,
    /// AccessionNumber.
    pub accession_number: String,
    /// ReferringPhysicianName.
    pub referring_physician_name: String,
    /// StudyDescription.
    pub study_description: String,
    /// FrameOfReferenceUID of the source images.
    pub frame_of_reference_uid: Option<String>,
    /// SeriesInstanceUID of the answered series (the first phase's of a linked DCE set).
    pub series_uid: String,
    /// The source images (every phase).
    pub images: Vec<InstanceRef>,
    /// The SEG or RTSTRUCT used (`None`: a label map, which is not a DICOM object).
    pub roi: Option<InstanceRef>,
}

impl SourceStudy {
    /// From the headers of a ready series and its ROI object's reference.
    pub fn of(instances: &[crate::ingest::header::InstanceHeader], roi: Option<InstanceRef>) -> SourceStudy {
        let first = instances.first();
        let text = |f: fn(&crate::ingest::header::InstanceHeader) -> Option<&String>| {
            first.and_then(f).cloned().unwrap_or_default()
        };
        let mut images: Vec<InstanceRef> = Vec::new();
        for h in instances {
            for slice in &h.slices {
                // (the frames of an Enhanced MR share their instance)
                if images
                    .last()
                    .is_none_or(|r| r.sop_instance_uid != slice.sop_instance_uid)
                {
                    images.push(InstanceRef {
                        series_uid: h.series_uid.clone(),
                        sop_class_uid: h.kind.uid().to_string(),
                        sop_instance_uid: slice.sop_instance_uid.clone(),
                    });
                }
            }
        }
        SourceStudy {
            patient_name: text(|h| h.patient_name.as_ref()),
            patient_id: text(|h| h.patient_id.as_ref()),
            patient_birth_date: text(|h| h.study.patient_birth_date.as_ref()),
            patient_sex: text(|h| h.study.patient_sex.as_ref()),
            study_uid: first.map(|h| h.study_uid.clone()).unwrap_or_default(),
            study_date: text(|h| h.study.study_date.as_ref()),
            study_time: text(|h| h.study.study_time.as_ref()),
            study_id: text(|h| h.study.study_id.as_ref()),
            accession_number: text(|h| h.accession_number.as_ref()),
            referring_physician_name: text(|h| h.study.referring_physician_name.as_ref()),
            study_description: text(|h| h.study.study_description.as_ref()),
            frame_of_reference_uid: first.and_then(|h| h.frame_of_reference_uid.clone()),
            series_uid: first.map(|h| h.series_uid.clone()).unwrap_or_default(),
            images,
            roi,
        }
    }
}

/// A UID from a 128-bit hex text (a message id): `2.25.` + its integer value (PS3.5 B.2).
pub fn uid_of_hex128(hex: &str) -> Option<String> {
    let v = u128::from_str_radix(hex.get(..32)?, 16).ok()?;
    Some(format!("2.25.{v}"))
}

/// A UID derived from text: `2.25.` + the first 128 bits of its sha256.
pub fn uid_of_text(text: &str) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(text.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    format!("2.25.{}", u128::from_be_bytes(b))
}

/// SOPInstanceUID of the report of the answer with message id `message_id`.
pub fn report_uid(message_id: &str) -> String {
    uid_of_hex128(message_id).unwrap_or_else(|| uid_of_text(&format!("alnrisk-sr/{message_id}")))
}

/// Everything one report says.
pub struct ReportInput<'a> {
    /// The answer (its MQTT message).
    pub message: &'a ResultMessage,
    /// The examination.
    pub source: &'a SourceStudy,
    /// SOPInstanceUIDs of the series' earlier reports, oldest first (the predecessor is the last).
    pub earlier: &'a [String],
    /// `site/device`: the device observer.
    pub device: &'a str,
    /// Content date and time (`YYYYMMDD`, `HHMMSS`), UTC.
    pub at: (String, String),
}

/// A Decimal String (at most 16 characters, PS3.5 6.2) as close to `v` as fits.
pub fn decimal_string(v: f64) -> String {
    if !v.is_finite() {
        return "0".into();
    }
    for digits in (0..=15).rev() {
        let s = format!("{v:.digits$}");
        if s.len() <= 16 {
            return s;
        }
    }
    for digits in (0..=9).rev() {
        let s = format!("{v:.digits$e}");
        if s.len() <= 16 {
            return s;
        }
    }
    "0".into()
}

struct Code<'a>(&'a str, &'a str, &'a str);

const DCM: &str = "DCM";
const SCT: &str = "SCT";

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, s: &str) {
    obj.put(DataElement::new(tag, vr, PrimitiveValue::from(s)));
}

fn seq(obj: &mut InMemDicomObject, tag: Tag, items: Vec<InMemDicomObject>) {
    obj.put(DataElement::new(tag, VR::SQ, DataSetSequence::from(items)));
}

fn code_item(c: &Code) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, tags::CODE_VALUE, VR::SH, c.0);
    put(&mut o, tags::CODING_SCHEME_DESIGNATOR, VR::SH, c.1);
    put(&mut o, tags::CODE_MEANING, VR::LO, c.2);
    o
}

/// A content item (PS3.3 C.17.3) of `value_type` named `concept`, related to its parent by `relationship`.
fn item(relationship: &str, value_type: &str, concept: &Code) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, tags::RELATIONSHIP_TYPE, VR::CS, relationship);
    put(&mut o, tags::VALUE_TYPE, VR::CS, value_type);
    seq(&mut o, tags::CONCEPT_NAME_CODE_SEQUENCE, vec![code_item(concept)]);
    o
}

fn text(relationship: &str, concept: &Code, value: &str) -> InMemDicomObject {
    let mut o = item(relationship, "TEXT", concept);
    put(&mut o, tags::TEXT_VALUE, VR::UT, value);
    o
}

fn code(relationship: &str, concept: &Code, value: &Code) -> InMemDicomObject {
    let mut o = item(relationship, "CODE", concept);
    seq(&mut o, tags::CONCEPT_CODE_SEQUENCE, vec![code_item(value)]);
    o
}

fn uidref(relationship: &str, concept: &Code, uid: &str) -> InMemDicomObject {
    let mut o = item(relationship, "UIDREF", concept);
    put(&mut o, tags::UID, VR::UI, uid);
    o
}

/// A NUM item: the value as a Decimal String and, exactly, as a Floating Point Value.
fn num(concept: &Code, value: f64, unit: &Code) -> InMemDicomObject {
    let mut o = item("CONTAINS", "NUM", concept);
    let mut mv = InMemDicomObject::new_empty();
    put(&mut mv, tags::NUMERIC_VALUE, VR::DS, &decimal_string(value));
    mv.put(DataElement::new(
        tags::FLOATING_POINT_VALUE,
        VR::FD,
        PrimitiveValue::from(value),
    ));
    seq(&mut mv, tags::MEASUREMENT_UNITS_CODE_SEQUENCE, vec![code_item(unit)]);
    seq(&mut o, tags::MEASURED_VALUE_SEQUENCE, vec![mv]);
    o
}

fn container(
    relationship: &str,
    concept: &Code,
    template: Option<&str>,
    children: Vec<InMemDicomObject>,
) -> InMemDicomObject {
    let mut o = item(relationship, "CONTAINER", concept);
    put(&mut o, tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
    if let Some(t) = template {
        seq(&mut o, tags::CONTENT_TEMPLATE_SEQUENCE, vec![template_item(t)]);
    }
    if !children.is_empty() {
        seq(&mut o, tags::CONTENT_SEQUENCE, children);
    }
    o
}

fn template_item(id: &str) -> InMemDicomObject {
    let mut t = InMemDicomObject::new_empty();
    put(&mut t, tags::MAPPING_RESOURCE, VR::CS, "DCMR");
    put(&mut t, tags::TEMPLATE_IDENTIFIER, VR::CS, id);
    t
}

fn sop_ref(class: &str, instance: &str) -> InMemDicomObject {
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, tags::REFERENCED_SOP_CLASS_UID, VR::UI, class);
    put(&mut o, tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, instance);
    o
}

/// A hierarchical reference (PS3.3 Table C.17-3) to `refs`, all of study `study_uid`.
fn hierarchical(study_uid: &str, refs: &[InstanceRef]) -> InMemDicomObject {
    let mut by_series: BTreeMap<&str, Vec<&InstanceRef>> = BTreeMap::new();
    for r in refs {
        by_series.entry(&r.series_uid).or_default().push(r);
    }
    let series = by_series
        .into_iter()
        .map(|(uid, rs)| {
            let mut s = InMemDicomObject::new_empty();
            put(&mut s, tags::SERIES_INSTANCE_UID, VR::UI, uid);
            seq(
                &mut s,
                tags::REFERENCED_SOP_SEQUENCE,
                rs.iter()
                    .map(|r| sop_ref(&r.sop_class_uid, &r.sop_instance_uid))
                    .collect(),
            );
            s
        })
        .collect();
    let mut o = InMemDicomObject::new_empty();
    put(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, study_uid);
    seq(&mut o, tags::REFERENCED_SERIES_SEQUENCE, series);
    o
}

const UNITY: Code = Code("1", "UCUM", "no units");
const POINTS: Code = Code("{points}", "UCUM", "points");

fn scenario_concept(label: &str) -> (String, String) {
    match label {
        "if_ln_negative" => (
            "PROBLNNEG".into(),
            "Probability of ALN metastasis if the MRI LN read is negative".into(),
        ),
        "if_ln_positive" => (
            "PROBLNPOS".into(),
            "Probability of ALN metastasis if the MRI LN read is positive".into(),
        ),
        other => (
            format!("PROBIF{:08X}", crc_of(other)),
            format!(
                "Probability of ALN metastasis {}",
                other
                    .strip_prefix("if_")
                    .map_or_else(|| other.to_string(), |s| format!("if {s}"))
            ),
        ),
    }
}

/// A short stable number of a text (FNV-1a, 32 bits): a code value for a scenario label.
fn crc_of(s: &str) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x01000193);
    }
    h
}

fn ln_code(ln: Option<LnRead>) -> Code<'static> {
    match ln {
        Some(LnRead::Positive) => Code("10828004", SCT, "Positive"),
        Some(LnRead::Negative) => Code("260385009", SCT, "Negative"),
        None => Code("261665006", SCT, "Unknown"),
    }
}

/// The descriptors (TID 1602) shared by the source images: modality and frame of reference. (The SR IOD has no
/// Frame of Reference module; TID 1600 carries it, as highdicom writes it.)
fn image_library_group(s: &SourceStudy) -> Vec<InMemDicomObject> {
    let mut g = vec![code(
        "HAS ACQ CONTEXT",
        &Code("121139", DCM, "Modality"),
        &Code("MR", DCM, "Magnetic Resonance"),
    )];
    if let Some(f) = &s.frame_of_reference_uid {
        g.push(uidref(
            "HAS ACQ CONTEXT",
            &Code("112227", DCM, "Frame of Reference UID"),
            f,
        ));
    }
    g
}

/// The measurement group (TID 1501) of one answer.
fn measurement_group(input: &ReportInput, tracking_uid: &str) -> Vec<InMemDicomObject> {
    let m = input.message;
    let mut g = vec![
        text(
            "CONTAINS",
            &Code("112039", DCM, "Tracking Identifier"),
            "alnrisk ALN metastasis risk",
        ),
        uidref(
            "CONTAINS",
            &Code("112040", DCM, "Tracking Unique Identifier"),
            tracking_uid,
        ),
        code(
            "CONTAINS",
            &Code("121071", DCM, "Finding"),
            &Code("ALNMET", SCHEME, "Axillary lymph node metastasis"),
        ),
        code(
            "HAS CONCEPT MOD",
            &Code("363698007", SCT, "Finding Site"),
            &Code("68171009", SCT, "Axillary lymph node"),
        ),
        text("HAS CONCEPT MOD", &Code("111001", DCM, "Algorithm Name"), "alnrisk"),
        text(
            "HAS CONCEPT MOD",
            &Code("111003", DCM, "Algorithm Version"),
            env!("CARGO_PKG_VERSION"),
        ),
        text(
            "HAS CONCEPT MOD",
            &Code("111002", DCM, "Algorithm Parameters"),
            &format!(
                "model bundle {} version {} sha256 {}",
                m.bundle.id, m.bundle.version, m.bundle.sha256
            ),
        ),
    ];
    if let Some(r) = &m.risk {
        g.push(num(
            &Code("ALNPROB", SCHEME, "Probability of ALN metastasis"),
            r.probability,
            &UNITY,
        ));
        let class = if r.class == "high" {
            Code("HIGH", SCHEME, "High risk (probability at or above the cutoff)")
        } else {
            Code("LOW", SCHEME, "Low risk (probability below the cutoff)")
        };
        g.push(code(
            "CONTAINS",
            &Code("ALNCLASS", SCHEME, "ALN metastasis risk class"),
            &class,
        ));
        for (predictor, points) in &r.points {
            let mut n = num(&Code("PTS", SCHEME, "Nomogram points"), *points, &POINTS);
            seq(
                &mut n,
                tags::CONTENT_SEQUENCE,
                vec![text(
                    "HAS CONCEPT MOD",
                    &Code("PREDICTOR", SCHEME, "Nomogram predictor"),
                    predictor,
                )],
            );
            g.push(n);
        }
        g.push(num(
            &Code("TOTPTS", SCHEME, "Total nomogram points"),
            r.total_points,
            &POINTS,
        ));
    }
    g.push(num(
        &Code("CUTOFF", SCHEME, "Probability cutoff of the risk class"),
        m.cutoff,
        &UNITY,
    ));
    for (label, r) in &m.scenarios {
        let (value, meaning) = scenario_concept(label);
        g.push(num(&Code(&value, SCHEME, &meaning), r.probability, &UNITY));
    }
    for (name, v) in &m.signatures {
        let concept = match name.as_str() {
            "radiomics_signature" => Code("RADSIG", SCHEME, "Radiomics signature"),
            "deep_signature" => Code("DEEPSIG", SCHEME, "Deep learning signature"),
            other => Code("SIGNATURE", SCHEME, other),
        };
        g.push(num(&concept, *v, &UNITY));
    }
    g.push(code(
        "CONTAINS",
        &Code("MRILN", SCHEME, "MRI-reported axillary lymph node status"),
        &ln_code(m.mri_ln_status),
    ));
    for (column, value) in &m.reported_factors {
        g.push(text(
            "CONTAINS",
            &Code("RPTFACTOR", SCHEME, "Reported clinical factor"),
            &format!("{column} = {value}"),
        ));
    }
    for column in &m.missing_factors {
        g.push(text(
            "CONTAINS",
            &Code("MISSFACTOR", SCHEME, "Reported clinical factor still missing"),
            column,
        ));
    }
    for flag in &m.out_of_distribution {
        let concept = match flag.kind {
            OodKind::Feature => Code("OOD", SCHEME, "Input outside the training range"),
            OodKind::Acquisition => Code("ACQOOD", SCHEME, "Acquisition outside the training cohort"),
        };
        g.push(text("CONTAINS", &concept, &flag.to_string()));
    }
    g.push(uidref(
        "CONTAINS",
        &Code("121232", DCM, "Source series for segmentation"),
        &input.source.series_uid,
    ));
    if let Some(roi) = &input.source.roi {
        let mut c = item("CONTAINS", "COMPOSITE", &Code("ROIOBJ", SCHEME, "Tumour ROI used"));
        seq(
            &mut c,
            tags::REFERENCED_SOP_SEQUENCE,
            vec![sop_ref(&roi.sop_class_uid, &roi.sop_instance_uid)],
        );
        g.push(c);
    }
    g.push(text("CONTAINS", &Code("121106", DCM, "Comment"), INTENDED_USE));
    g
}

/// The report of one answer as a DICOM Part-10 file (explicit VR little endian).
pub fn report(input: &ReportInput) -> Result<Vec<u8>> {
    let m = input.message;
    let s = input.source;
    let sop_uid = report_uid(&m.message_id);
    let mut o = InMemDicomObject::new_empty();
    // SOP Common
    put(&mut o, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    put(&mut o, tags::SOP_CLASS_UID, VR::UI, COMPREHENSIVE_3D_SR);
    put(&mut o, tags::SOP_INSTANCE_UID, VR::UI, &sop_uid);
    put(&mut o, tags::INSTANCE_CREATION_DATE, VR::DA, &input.at.0);
    put(&mut o, tags::INSTANCE_CREATION_TIME, VR::TM, &input.at.1);
    let mut scheme = InMemDicomObject::new_empty();
    put(&mut scheme, tags::CODING_SCHEME_DESIGNATOR, VR::SH, SCHEME);
    put(&mut scheme, tags::CODING_SCHEME_NAME, VR::ST, "alnrisk concepts");
    put(
        &mut scheme,
        tags::CODING_SCHEME_RESPONSIBLE_ORGANIZATION,
        VR::ST,
        "alnrisk",
    );
    seq(&mut o, tags::CODING_SCHEME_IDENTIFICATION_SEQUENCE, vec![scheme]);
    // Patient
    put(&mut o, tags::PATIENT_NAME, VR::PN, &s.patient_name);
    put(&mut o, tags::PATIENT_ID, VR::LO, &s.patient_id);
    put(&mut o, tags::PATIENT_BIRTH_DATE, VR::DA, &s.patient_birth_date);
    put(&mut o, tags::PATIENT_SEX, VR::CS, &s.patient_sex);
    // General Study
    put(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, &s.study_uid);
    put(&mut o, tags::STUDY_DATE, VR::DA, &s.study_date);
    put(&mut o, tags::STUDY_TIME, VR::TM, &s.study_time);
    put(
        &mut o,
        tags::REFERRING_PHYSICIAN_NAME,
        VR::PN,
        &s.referring_physician_name,
    );
    put(&mut o, tags::STUDY_ID, VR::SH, &s.study_id);
    put(&mut o, tags::ACCESSION_NUMBER, VR::SH, &s.accession_number);
    if !s.study_description.is_empty() {
        put(&mut o, tags::STUDY_DESCRIPTION, VR::LO, &s.study_description);
    }
    // SR Document Series
    put(&mut o, tags::MODALITY, VR::CS, "SR");
    put(
        &mut o,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        &uid_of_text(&format!("alnrisk-sr-series/{}", s.study_uid)),
    );
    o.put(DataElement::new(
        tags::SERIES_NUMBER,
        VR::IS,
        PrimitiveValue::from(SR_SERIES_NUMBER.to_string()),
    ));
    put(&mut o, tags::SERIES_DESCRIPTION, VR::LO, "alnrisk ALN metastasis risk");
    seq(&mut o, tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE, vec![]);
    // General Equipment
    put(&mut o, tags::MANUFACTURER, VR::LO, "alnrisk");
    put(&mut o, tags::MANUFACTURER_MODEL_NAME, VR::LO, "alnrisk");
    put(&mut o, tags::SOFTWARE_VERSIONS, VR::LO, env!("CARGO_PKG_VERSION"));
    // SR Document General
    o.put(DataElement::new(
        tags::INSTANCE_NUMBER,
        VR::IS,
        PrimitiveValue::from((input.earlier.len() + 1).to_string()),
    ));
    put(&mut o, tags::COMPLETION_FLAG, VR::CS, "COMPLETE");
    put(&mut o, tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED");
    put(&mut o, tags::CONTENT_DATE, VR::DA, &input.at.0);
    put(&mut o, tags::CONTENT_TIME, VR::TM, &input.at.1);
    if let Some(previous) = input.earlier.last() {
        let series_uid = uid_of_text(&format!("alnrisk-sr-series/{}", s.study_uid));
        let prev = InstanceRef {
            series_uid,
            sop_class_uid: COMPREHENSIVE_3D_SR.into(),
            sop_instance_uid: previous.clone(),
        };
        seq(
            &mut o,
            tags::PREDECESSOR_DOCUMENTS_SEQUENCE,
            vec![hierarchical(&s.study_uid, &[prev])],
        );
    }
    seq(&mut o, tags::PERFORMED_PROCEDURE_CODE_SEQUENCE, vec![]);
    let mut evidence = s.images.clone();
    evidence.extend(s.roi.clone());
    if !evidence.is_empty() {
        seq(
            &mut o,
            tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
            vec![hierarchical(&s.study_uid, &evidence)],
        );
    }
    // SR Document Content: TID 1500
    let tracking_uid = uid_of_text(&format!("alnrisk-tracking/{}", s.series_uid));
    let root_children = vec![
        code(
            "HAS CONCEPT MOD",
            &Code("121049", DCM, "Language of Content Item and Descendants"),
            &Code("eng", "RFC5646", "English"),
        ),
        code(
            "HAS OBS CONTEXT",
            &Code("121005", DCM, "Observer Type"),
            &Code("121007", DCM, "Device"),
        ),
        uidref(
            "HAS OBS CONTEXT",
            &Code("121012", DCM, "Device Observer UID"),
            &uid_of_text(&format!("alnrisk-device/{}", input.device)),
        ),
        text(
            "HAS OBS CONTEXT",
            &Code("121013", DCM, "Device Observer Name"),
            input.device,
        ),
        text(
            "HAS OBS CONTEXT",
            &Code("121014", DCM, "Device Observer Manufacturer"),
            "alnrisk",
        ),
        text(
            "HAS OBS CONTEXT",
            &Code("121015", DCM, "Device Observer Model Name"),
            "alnrisk",
        ),
        code(
            "HAS CONCEPT MOD",
            &Code("121058", DCM, "Procedure reported"),
            &Code("241615005", SCT, "Magnetic resonance imaging of breast"),
        ),
        container(
            "CONTAINS",
            &Code("111028", DCM, "Image Library"),
            None,
            vec![container(
                "CONTAINS",
                &Code("126200", DCM, "Image Library Group"),
                None,
                image_library_group(s),
            )],
        ),
        container(
            "CONTAINS",
            &Code("126010", DCM, "Imaging Measurements"),
            None,
            vec![container(
                "CONTAINS",
                &Code("125007", DCM, "Measurement Group"),
                None,
                measurement_group(input, &tracking_uid),
            )],
        ),
    ];
    put(&mut o, tags::VALUE_TYPE, VR::CS, "CONTAINER");
    seq(
        &mut o,
        tags::CONCEPT_NAME_CODE_SEQUENCE,
        vec![code_item(&Code("126000", DCM, "Imaging Measurement Report"))],
    );
    put(&mut o, tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE");
    seq(&mut o, tags::CONTENT_TEMPLATE_SEQUENCE, vec![template_item("1500")]);
    seq(&mut o, tags::CONTENT_SEQUENCE, root_children);
    let title = match m.kind {
        MessageKind::Result => "result",
        MessageKind::Update => "update",
        MessageKind::Revision => "revision",
    };
    let file = o
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax("1.2.840.10008.1.2.1")
                .media_storage_sop_class_uid(COMPREHENSIVE_3D_SR)
                .media_storage_sop_instance_uid(&sop_uid),
        )
        .map_err(|e| Error::Spool {
            path: format!("sr/{title}").into(),
            reason: format!("cannot make the report's file meta: {e}"),
        })?;
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).map_err(|e| Error::Spool {
        path: format!("sr/{title}").into(),
        reason: format!("cannot encode the report: {e}"),
    })?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_strings_fit_sixteen_characters_and_keep_what_they_can() {
        assert_eq!(decimal_string(0.5), "0.50000000000000");
        assert_eq!(decimal_string(0.123_456_789_012_345_68), "0.12345678901235");
        assert_eq!(decimal_string(-12.25), "-12.250000000000");
        let big = decimal_string(1.5e20);
        assert!(big.len() <= 16 && big.parse::<f64>().unwrap() == 1.5e20, "{big}");
        for v in [0.0, -0.001234, 99.99999999, 123456789.123] {
            let s = decimal_string(v);
            assert!(s.len() <= 16, "{s}");
            assert!(
                (s.parse::<f64>().unwrap() - v).abs() <= 1e-6 * v.abs().max(1.0),
                "{v} -> {s}"
            );
        }
    }

    #[test]
    fn report_uids_are_the_message_id_as_an_integer() {
        assert_eq!(
            uid_of_hex128("00000000000000000000000000000010").as_deref(),
            Some("2.25.16")
        );
        assert_eq!(
            report_uid("ffffffffffffffffffffffffffffffff"),
            format!("2.25.{}", u128::MAX)
        );
        let u = uid_of_text("x");
        assert!(u.starts_with("2.25.") && u.len() <= 64, "{u}");
    }
}
