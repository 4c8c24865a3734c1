//! The DICOM side against real peers on loopback: each answer's Structured Report checked by `dciodvfy` and read
//! back by pydicom and highdicom (`read_sr.py`), sent to a real Orthanc (Debian's `orthanc`, started by the test
//! on its own ports) across an LN update and an outage; and the C-STORE SCP fed by Orthanc and by dcmtk's
//! `storescu`, with an AE title that is not allowed, a truncated and a non-DICOM upload.

use super::harness::*;
use crate::common::orthanc::Orthanc;

/// `read_sr.py` on a report file: what pydicom and highdicom read.
fn read_sr(path: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve/read_sr.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(path)
        .output()
        .expect("python3 with pydicom and highdicom (.ci/run installs them)");
    assert!(
        out.status.success(),
        "read_sr.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("read_sr.py prints JSON")
}

/// `dciodvfy` on a report: its error lines (none expected) and its whole output.
fn dciodvfy_errors(path: &Path) -> (Vec<String>, String) {
    let out = Command::new("dciodvfy")
        .arg(path)
        .output()
        .expect("dciodvfy (Debian dicom3tools; .ci/run installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let errors = text
        .lines()
        .filter(|l| l.starts_with("Error"))
        .map(str::to_string)
        .collect();
    (errors, text)
}

fn sample_message(kind: &str, ln: &str) -> alnrisk::daemon::payload::ResultMessage {
    let risk = if ln == "unknown" {
        serde_json::Value::Null
    } else {
        serde_json::json!({"probability": 0.7312345678901234, "class": "high",
            "points": {"radiomics_signature": 41.5, "deep_signature": 22.25, "mri_ln_status": 30.0},
            "total_points": 93.75})
    };
    let scenarios = if ln == "unknown" {
        serde_json::json!({
            "if_ln_negative": {"probability": 0.21, "class": "low", "points": {}, "total_points": 60.0},
            "if_ln_positive": {"probability": 0.64, "class": "high", "points": {}, "total_points": 90.0}})
    } else {
        serde_json::json!({})
    };
    serde_json::from_value(serde_json::json!({
        "schema": "alnrisk.result/1",
        "message_id": if kind == "result" { "0123456789abcdef0123456789abcdef" } else { "fedcba9876543210fedcba9876543210" },
        "kind": kind,
        "bundle": {"id": "site-a", "version": "2026.12", "sha256": "ab".repeat(32)},
        "study_key": "cd".repeat(32),
        "series_key": "ef".repeat(32),
        "mri_ln_status": ln,
        "cutoff": 0.5,
        "risk": risk,
        "scenarios": scenarios,
        "signatures": {"radiomics_signature": -0.4321, "deep_signature": 1.25},
        "out_of_distribution": ["acquisition image_intensity_p99: 93 outside [200, 900]"],
        "timing_ms": {},
        "timestamps": {}
    }))
    .expect("a result message")
}

fn sample_source() -> alnrisk::daemon::pacs::sr::SourceStudy {
    use alnrisk::daemon::pacs::sr::{InstanceRef, SourceStudy};
    SourceStudy {
        patient_name: "DOE^JANE".into(),
        patient_id: "PAT-0042".into(),
        patient_birth_date: "19700101".into(),
        patient_sex: "F".into(),
        study_uid: "1.2.826.0.1.3680043.10.1.1".into(),
        study_date: "20261201".into(),
        study_time: "101500".into(),
        study_id: "7".into(),
        accession_number: "ACC-9".into(),
        referring_physician_name: String::new(),
        study_description: "MR BREAST DCE".into(),
        frame_of_reference_uid: Some("1.2.826.0.1.3680043.10.1.9".into()),
        series_uid: "1.2.826.0.1.3680043.10.1.2".into(),
        images: (1..=3)
            .map(|k| InstanceRef {
                series_uid: "1.2.826.0.1.3680043.10.1.2".into(),
                sop_class_uid: "1.2.840.10008.5.1.4.1.1.4".into(),
                sop_instance_uid: format!("1.2.826.0.1.3680043.10.1.2.{k}"),
            })
            .collect(),
        roi: Some(InstanceRef {
            series_uid: "1.2.826.0.1.3680043.10.1.3".into(),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.66.4".into(),
            sop_instance_uid: "1.2.826.0.1.3680043.10.1.3.1".into(),
        }),
    }
}

#[test]
fn a_report_passes_dciodvfy_and_pydicom_and_highdicom_read_its_measurements_back() {
    use alnrisk::daemon::pacs::sr;
    let dir = tmp("sr-sample");
    let source = sample_source();
    // the first answer: LN read unknown, both scenarios
    let first = sample_message("result", "unknown");
    let bytes = sr::report(&sr::ReportInput {
        message: &first,
        source: &source,
        earlier: &[],
        device: "test-site/box1",
        at: ("20261203".into(), "120000".into()),
    })
    .unwrap();
    let p1 = dir.join("first.dcm");
    std::fs::write(&p1, &bytes).unwrap();
    let (errors, text) = dciodvfy_errors(&p1);
    assert!(errors.is_empty(), "dciodvfy: {errors:?}\n{text}");
    assert!(text.contains("Comprehensive3DSR"), "{text}");
    assert!(!text.contains("not present in standard DICOM IOD"), "{text}");
    let r = read_sr(&p1);
    assert_eq!(r["sop_class_uid"], "1.2.840.10008.5.1.4.1.1.88.34");
    assert_eq!(r["template"], "1500");
    assert_eq!(r["root_concept"], "126000");
    assert_eq!(r["highdicom_groups"], 1);
    assert_eq!(r["patient_id"], "PAT-0042");
    assert_eq!(r["study_instance_uid"], source.study_uid.as_str());
    assert_eq!(
        r["texts"]["DCM:112227"][0], "1.2.826.0.1.3680043.10.1.9",
        "the frame of reference"
    );
    assert_eq!(
        r["texts"]["DCM:121232"][0],
        source.series_uid.as_str(),
        "the source series"
    );
    assert!(
        r["probability"].is_null(),
        "no probability while the LN read is unknown: {r}"
    );
    assert_eq!(r["exact"]["PROBLNNEG"][0], 0.21);
    assert_eq!(r["exact"]["PROBLNPOS"][0], 0.64);
    assert_eq!(r["measurements"]["PROBLNPOS"][0]["unit"], "1");
    assert_eq!(r["codes"]["MRILN"][0], "261665006", "SNOMED CT 'Unknown'");
    assert_eq!(r["exact"]["RADSIG"][0], -0.4321);
    assert_eq!(r["exact"]["DEEPSIG"][0], 1.25);
    let texts = r["texts"].to_string();
    assert!(texts.contains("acquisition image_intensity_p99: 93 outside"), "{texts}");
    assert!(texts.contains(&format!("sha256 {}", "ab".repeat(32))), "{texts}");
    assert_eq!(r["texts"]["DCM:111001"][0], "alnrisk");
    assert_eq!(r["texts"]["ROIOBJ"][0], "1.2.840.10008.5.1.4.1.1.66.4", "the SEG used");
    assert!(texts.contains("not for diagnosis"), "{texts}");
    let evidence = r["evidence"].as_object().unwrap();
    assert_eq!(evidence["1.2.826.0.1.3680043.10.1.2"].as_array().unwrap().len(), 3);
    assert_eq!(
        evidence["1.2.826.0.1.3680043.10.1.3"][0],
        "1.2.840.10008.5.1.4.1.1.66.4"
    );
    assert!(r["predecessors"].as_array().unwrap().is_empty());

    // the update: the read is positive; probability, class and points, and the first report as predecessor
    let update = sample_message("update", "positive");
    let earlier = [sr::report_uid(&first.message_id)];
    let bytes = sr::report(&sr::ReportInput {
        message: &update,
        source: &source,
        earlier: &earlier,
        device: "test-site/box1",
        at: ("20261203".into(), "121000".into()),
    })
    .unwrap();
    let p2 = dir.join("update.dcm");
    std::fs::write(&p2, &bytes).unwrap();
    let (errors, text) = dciodvfy_errors(&p2);
    assert!(errors.is_empty(), "dciodvfy: {errors:?}\n{text}");
    let u = read_sr(&p2);
    assert_eq!(
        u["probability"], 0.7312345678901234,
        "highdicom reads the exact FD value"
    );
    assert_eq!(u["exact"]["ALNPROB"][0], 0.7312345678901234);
    assert_eq!(u["codes"]["ALNCLASS"][0], "HIGH");
    assert_eq!(u["codes"]["MRILN"][0], "10828004", "SNOMED CT 'Positive'");
    assert_eq!(
        u["exact"]["PTS"].as_array().unwrap().len(),
        3,
        "points of each predictor"
    );
    assert_eq!(u["exact"]["TOTPTS"][0], 93.75);
    assert_eq!(u["measurements"]["TOTPTS"][0]["unit"], "{points}");
    assert_eq!(u["predecessors"][0], earlier[0].as_str());
    assert_eq!(
        u["series_instance_uid"], r["series_instance_uid"],
        "one SR series per study"
    );
    assert_ne!(u["sop_instance_uid"], r["sop_instance_uid"]);
}
