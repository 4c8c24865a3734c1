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

/// `[dicom_out]` towards a PACS of AE title `called` on loopback `port`, retrying fast.
fn dicom_out(port: u16, called: &str) -> String {
    format!(
        "[dicom_out]\nhost = \"127.0.0.1\"\nport = {port}\ncalled_ae = \"{called}\"\ncalling_ae = \"ALNRISK\"\n\
         retry_min_s = 0.3\nretry_max_s = 1.0\n"
    )
}

/// Orthanc's reports (Comprehensive 3D SR) with their files read back by `read_sr.py`, oldest first.
fn reports_in(pacs: &Orthanc, dir: &Path) -> Vec<(serde_json::Value, serde_json::Value)> {
    let mut out: Vec<(serde_json::Value, serde_json::Value)> = pacs
        .instances_of_class("1.2.840.10008.5.1.4.1.1.88.34")
        .into_iter()
        .map(|inst| {
            let id = inst["ID"].as_str().unwrap().to_string();
            let path = dir.join(format!("{id}.dcm"));
            std::fs::write(&path, pacs.file(&id)).unwrap();
            (inst, read_sr(&path))
        })
        .collect();
    out.sort_by_key(|(_, r)| r["instance_number"].as_i64().unwrap_or(0));
    out
}

/// The StudyInstanceUID Orthanc files an instance under (instance → series → study).
fn study_of(pacs: &Orthanc, instance: &serde_json::Value) -> String {
    let series = pacs.json(&format!("/series/{}", instance["ParentSeries"].as_str().unwrap()));
    let study = pacs.json(&format!("/studies/{}", series["ParentStudy"].as_str().unwrap()));
    study["MainDicomTags"]["StudyInstanceUID"].as_str().unwrap().to_string()
}

fn events_named(sub: &Subscriber, name: &str) -> usize {
    sub.of("event").iter().filter(|e| e["event"] == name).count()
}

fn close(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-9,
        _ => panic!("not two numbers: {a} and {b}"),
    }
}

#[test]
fn reports_reach_orthanc_under_their_study_through_an_ln_update_an_outage_and_a_restart() {
    let mut pacs = Orthanc::new("out", "PACS", &[]);
    let broker = Mosquitto::new("pacs-out", "");
    let sub = Subscriber::new(broker.port, &format!("pacs-out-sub-{}", std::process::id()));
    let extra = dicom_out(pacs.dicom_port, "PACS");
    let mut d = Daemon::with(
        "pacs-out",
        DaemonOpts {
            extra: &extra,
            ..DaemonOpts::external(broker.port)
        },
    );
    let work = tmp("pacs-out-files");
    let (a, b) = (exam(3), exam(4));
    d.drop_exam(&a, "a", ReplayStyle::Atomic);
    let first = sub.wait("result", 1, Duration::from_secs(120))[0].clone();
    wait_for("the first report in Orthanc", Duration::from_secs(30), || {
        pacs.instances_of_class("1.2.840.10008.5.1.4.1.1.88.34").len() == 1
    });
    let reports = reports_in(&pacs, &work);
    let (inst, r) = &reports[0];
    assert_eq!(
        study_of(&pacs, inst),
        study_uid(&a),
        "filed under the examination's study"
    );
    assert_eq!(r["study_instance_uid"], study_uid(&a).as_str());
    assert!(
        r["probability"].is_null(),
        "LN read unknown: no probability, both scenarios"
    );
    for (code, label) in [("PROBLNNEG", "if_ln_negative"), ("PROBLNPOS", "if_ln_positive")] {
        assert!(
            close(&r["exact"][code][0], &first["scenarios"][label]["probability"]),
            "{code}: {} vs MQTT {}",
            r["exact"][code][0],
            first["scenarios"][label]["probability"]
        );
    }
    for (code, name) in [("RADSIG", "radiomics_signature"), ("DEEPSIG", "deep_signature")] {
        // (the fixture's nomogram may keep one signature only)
        if !first["signatures"][name].is_null() {
            assert!(close(&r["exact"][code][0], &first["signatures"][name]), "{code}");
        }
    }
    let roi_class = r["texts"]["ROIOBJ"][0].as_str().unwrap();
    assert_eq!(roi_class, "1.2.840.10008.5.1.4.1.1.66.4", "the SEG used is referenced");
    wait_for("report_sent", Duration::from_secs(10), || {
        events_named(&sub, "report_sent") == 1
    });
    assert_eq!(d.metric("alnrisk_dicom_out_total", Some(("outcome", "sent"))), 1.0);
    let outbox = d.state.join("pacs/outbox");
    wait_for("an empty report outbox", Duration::from_secs(10), || {
        count_files(&outbox) == 0
    });

    // The LN read arrives: an update, and a second report naming the first as its predecessor.
    let key = key_of(&a);
    sub.publish(
        "alnrisk/v1/test-site/pacs-out/cmd/ln-status",
        &format!(r#"{{"study_key":"{key}","mri_ln_status":"positive"}}"#),
    );
    let all = sub.wait("result", 2, Duration::from_secs(20));
    let update = all.iter().find(|m| m["kind"] == "update").unwrap().clone();
    wait_for("the update's report in Orthanc", Duration::from_secs(30), || {
        pacs.instances_of_class("1.2.840.10008.5.1.4.1.1.88.34").len() == 2
    });
    let reports = reports_in(&pacs, &work);
    let (inst2, u) = &reports[1];
    assert_eq!(study_of(&pacs, inst2), study_uid(&a));
    assert!(
        close(&u["probability"], &update["risk"]["probability"]),
        "pydicom/highdicom {} vs MQTT {}",
        u["probability"],
        update["risk"]["probability"]
    );
    assert_eq!(u["codes"]["MRILN"][0], "10828004");
    assert_eq!(
        u["predecessors"][0], reports[0].1["sop_instance_uid"],
        "names the first report"
    );
    assert_eq!(u["series_instance_uid"], reports[0].1["series_instance_uid"]);

    // Outage: two answers made while Orthanc is down wait in the spool, with one alarm; both arrive, once each.
    pacs.stop();
    sub.publish(
        "alnrisk/v1/test-site/pacs-out/cmd/ln-status",
        &format!(r#"{{"study_key":"{key}","mri_ln_status":"negative"}}"#),
    );
    d.drop_exam(&b, "b", ReplayStyle::Atomic);
    sub.wait("result", 4, Duration::from_secs(120));
    wait_for("two reports pending", Duration::from_secs(20), || {
        d.metric("alnrisk_dicom_out_pending", None) == 2.0
    });
    wait_for("the pacs_unreachable alarm", Duration::from_secs(20), || {
        events_named(&sub, "pacs_unreachable") == 1
    });
    assert!(d.metric("alnrisk_alarms_total", Some(("alarm", "pacs_unreachable"))) == 1.0);
    assert_eq!(count_files(&outbox), 2, "kept on disk");
    pacs.start();
    wait_for("four reports in Orthanc", Duration::from_secs(30), || {
        pacs.instances_of_class("1.2.840.10008.5.1.4.1.1.88.34").len() == 4
    });
    wait_for("pacs_reachable", Duration::from_secs(10), || {
        events_named(&sub, "pacs_reachable") == 1
    });
    // Orthanc lists an instance before its answer reaches the sender, which counts a send and then empties the
    // outbox: once the outbox is empty, every send is counted
    wait_for("the outbox emptied", Duration::from_secs(10), || {
        count_files(&outbox) == 0
    });
    assert_eq!(
        d.metric("alnrisk_dicom_out_total", Some(("outcome", "sent"))),
        4.0,
        "each report sent once"
    );
    let reports = reports_in(&pacs, &work);
    let studies: Vec<String> = reports.iter().map(|(i, _)| study_of(&pacs, i)).collect();
    assert_eq!(studies.iter().filter(|s| **s == study_uid(&b)).count(), 1);
    assert_eq!(studies.iter().filter(|s| **s == study_uid(&a)).count(), 3);

    // A restart while the PACS is down: the spooled report survives it and goes out once.
    pacs.stop();
    let key_b = key_of(&b);
    sub.publish(
        "alnrisk/v1/test-site/pacs-out/cmd/ln-status",
        &format!(r#"{{"study_key":"{key_b}","mri_ln_status":"positive"}}"#),
    );
    sub.wait("result", 5, Duration::from_secs(20));
    wait_for("the report spooled", Duration::from_secs(10), || {
        count_files(&outbox) == 1
    });
    d.kill9();
    pacs.start();
    d.start();
    wait_for("five reports in Orthanc", Duration::from_secs(30), || {
        pacs.instances_of_class("1.2.840.10008.5.1.4.1.1.88.34").len() == 5
    });
    wait_for("the outbox emptied", Duration::from_secs(10), || {
        count_files(&outbox) == 0
    });
    assert_eq!(d.metric("alnrisk_dicom_out_total", Some(("outcome", "sent"))), 1.0);

    // Nothing identifying in what went over MQTT: the reports carry the identifiers, the events do not.
    let everything = sub.everything();
    for uid in [study_uid(&a), study_uid(&b)] {
        assert!(!everything.contains(&uid));
    }
    assert!(
        !everything.contains("PACS\"") && !everything.contains("ALNRISK"),
        "no AE title in events"
    );
}

/// A minimal SCP that accepts only MR Image Storage: alnrisk's report (an SR) finds no presentation context.
fn mr_only_scp() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let scp = dicom_ul::ServerAssociationOptions::new()
                .accept_any()
                .ae_title("MRONLY")
                .with_abstract_syntax("1.2.840.10008.5.1.4.1.1.4");
            if let Ok(mut a) = scp.establish(stream) {
                while let Ok(p) = a.receive() {
                    if p == dicom_ul::Pdu::ReleaseRQ {
                        let _ = a.send(&dicom_ul::Pdu::ReleaseRP);
                        break;
                    }
                }
            }
        }
    });
    port
}

#[test]
fn a_pacs_that_refuses_the_report_s_sop_class_raises_an_alarm_and_the_report_is_kept_aside() {
    let broker = Mosquitto::new("pacs-refuse", "");
    let sub = Subscriber::new(broker.port, &format!("pacs-refuse-sub-{}", std::process::id()));
    let extra = dicom_out(mr_only_scp(), "MRONLY");
    let d = Daemon::with(
        "pacs-refuse",
        DaemonOpts {
            extra: &extra,
            ..DaemonOpts::external(broker.port)
        },
    );
    d.drop_exam(&exam(7), "x", ReplayStyle::Atomic);
    sub.wait("result", 1, Duration::from_secs(120));
    wait_for("report_refused", Duration::from_secs(20), || {
        events_named(&sub, "report_refused") == 1
    });
    let refused = d.state.join("pacs/refused");
    assert_eq!(count_files(&refused), 1, "kept for someone at the box");
    assert_eq!(count_files(&d.state.join("pacs/outbox")), 0, "not retried");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(d.metric("alnrisk_dicom_out_total", Some(("outcome", "refused"))), 1.0);
    assert_eq!(
        d.metric("alnrisk_dicom_out_total", Some(("outcome", "failed"))),
        0.0,
        "no retry loop"
    );
    assert_eq!(d.metric("alnrisk_alarms_total", Some(("alarm", "report_refused"))), 1.0);
    let e = sub
        .of("event")
        .into_iter()
        .find(|e| e["event"] == "report_refused")
        .unwrap();
    assert_eq!(e["severity"], "alarm");
    assert!(e["detail"].as_str().unwrap().contains("presentation context"), "{e}");
}

/// `[dicom_in]` on loopback `port`, answering as `ALNRISK` to `PACS` and `STORESCU` only.
fn dicom_in(port: u16) -> String {
    format!(
        "[dicom_in]\nlisten = \"127.0.0.1:{port}\"\nae_title = \"ALNRISK\"\nallowed_calling_ae = [\"PACS\", \"STORESCU\"]\n"
    )
}

/// C-STORE `data` (a data set's bytes, sent as they are) with a raw association: what storescu refuses to send
/// (it parses its files first). With `complete = false` the association is aborted halfway through the data.
/// Returns the status when one came.
fn store_raw(port: u16, class: &str, instance: &str, data: &[u8], complete: bool) -> Option<u16> {
    use alnrisk::daemon::pacs::dimse::{Command, CommandSet};
    use dicom_ul::pdu::{PDataValue, PDataValueType};
    use std::io::Write;
    let mut a = dicom_ul::ClientAssociationOptions::new()
        .calling_ae_title("STORESCU")
        .called_ae_title("ALNRISK")
        .with_presentation_context(class, vec!["1.2.840.10008.1.2.1"])
        .establish(("127.0.0.1", port))
        .expect("association");
    let pc = a.presentation_contexts()[0].id;
    let cmd = CommandSet {
        command: Command::StoreRq,
        message_id: 1,
        sop_class_uid: class.into(),
        sop_instance_uid: instance.into(),
        has_data_set: true,
        status: 0,
    };
    a.send(&dicom_ul::Pdu::PData {
        data: vec![PDataValue {
            presentation_context_id: pc,
            value_type: PDataValueType::Command,
            is_last: true,
            data: cmd.encode(),
        }],
    })
    .unwrap();
    if !complete {
        a.send(&dicom_ul::Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: pc,
                value_type: PDataValueType::Data,
                is_last: false,
                data: data[..data.len() / 2].to_vec(),
            }],
        })
        .unwrap();
        let _ = a.abort();
        return None;
    }
    {
        let mut w = a.send_pdata(pc);
        w.write_all(data).unwrap();
        w.finish().unwrap();
    }
    let status = match a.receive().ok()? {
        dicom_ul::Pdu::PData { data } => CommandSet::decode(&data[0].data).ok()?.status,
        _ => return None,
    };
    let _ = a.release();
    Some(status)
}

/// The data set of a Part-10 file (after the file meta group), in explicit VR little endian.
fn data_set_of(file: &Path) -> Vec<u8> {
    let bytes = std::fs::read(file).unwrap();
    let group_len = u32::from_le_bytes([bytes[140], bytes[141], bytes[142], bytes[143]]) as usize;
    bytes[144 + group_len..].to_vec()
}

/// `alnrisk predict` of a synthetic examination (the export-folder path of the same code).
fn predicted(exam: &Path) -> serde_json::Value {
    let f = fixture();
    let out = bin()
        .args(["predict", "--bundle"])
        .arg(&f.bundle)
        .arg("--image")
        .arg(exam.join("dce"))
        .arg("--mask")
        .arg(exam.join("roi/seg.dcm"))
        .arg("--trusted-key")
        .arg(&f.public_key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn orthanc_and_storescu_send_examinations_to_the_scp_and_what_fails_is_refused_or_quarantined() {
    let scp = free_port();
    let pacs = Orthanc::new("in", "PACS", &[("alnrisk", "ALNRISK", scp), ("wrong", "NOTUS", scp)]);
    let broker = Mosquitto::new("pacs-in", "");
    let sub = Subscriber::new(broker.port, &format!("pacs-in-sub-{}", std::process::id()));
    let extra = dicom_in(scp);
    let d = Daemon::with(
        "pacs-in",
        DaemonOpts {
            extra: &extra,
            ..DaemonOpts::external(broker.port)
        },
    );

    // C-ECHO from Orthanc is answered; calling another AE title is refused at association.
    let (code, body) = pacs.post("/modalities/alnrisk/echo", b"{}").unwrap();
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let (code, _) = pacs.post("/modalities/wrong/echo", b"{}").unwrap();
    assert_ne!(code, 200, "called AE title NOTUS is not ours");

    // Orthanc sends a whole examination (its C-STORE SCU): answered as the export folder would.
    let (x, y) = (exam(5), exam(6));
    let uploaded = pacs.upload_folder(&x);
    assert_eq!(uploaded, alnrisk::ingest::list_files(&x).unwrap().len());
    let studies = pacs.json("/studies");
    let study = studies[0].as_str().unwrap();
    let (code, body) = pacs
        .post(
            "/modalities/alnrisk/store",
            format!(r#"{{"Resources":["{study}"],"Synchronous":true}}"#).as_bytes(),
        )
        .unwrap();
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let results = sub.wait("result", 1, Duration::from_secs(120));
    let via_orthanc = results
        .iter()
        .find(|r| r["study_key"] == key_of(&x).as_str())
        .expect("x answered");
    let expected = predicted(&x);
    for label in ["if_ln_negative", "if_ln_positive"] {
        assert_eq!(
            via_orthanc["scenarios"][label]["probability"], expected["scenarios"][label]["probability"],
            "{label}: the same answer as `alnrisk predict` on the exported files"
        );
    }
    let received = d.export.join("dicom-in");
    let names: Vec<String> = alnrisk::ingest::list_files(&received)
        .unwrap()
        .iter()
        .map(|p| p.strip_prefix(&received).unwrap().display().to_string())
        .collect();
    assert!(
        !names.is_empty() && names.iter().all(|n| !n.contains("1.2.") && !n.contains("SYN")),
        "{names:?}"
    );

    // dcmtk's storescu, a second independent sender.
    let out = Command::new("storescu")
        .args(["-R", "+sd", "+r", "-aet", "STORESCU", "-aec", "ALNRISK", "127.0.0.1"])
        .arg(scp.to_string())
        .arg(&y)
        .output()
        .expect("storescu (Debian dcmtk; .ci/run installs it)");
    assert!(
        out.status.success(),
        "storescu: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results = sub.wait("result", 2, Duration::from_secs(120));
    assert!(results.iter().any(|r| r["study_key"] == key_of(&y).as_str()));

    // An AE title that is not allowed is refused at association (counted, an event, nothing stored).
    let out = Command::new("echoscu")
        .args(["-aet", "INTRUDER", "-aec", "ALNRISK", "127.0.0.1"])
        .arg(scp.to_string())
        .output()
        .expect("echoscu (dcmtk)");
    assert!(!out.status.success(), "INTRUDER must be refused");
    wait_for("association_refused", Duration::from_secs(10), || {
        events_named(&sub, "association_refused") >= 1
    });
    assert!(
        d.metric("alnrisk_dicom_in_total", Some(("outcome", "refused_ae"))) >= 2.0,
        "NOTUS and INTRUDER"
    );

    // A non-DICOM upload and a truncated image: failure status C000, each kept in quarantine by the walk.
    let mr = "1.2.840.10008.5.1.4.1.1.4";
    let junk = b"this is a text file a console mislabelled, not a data set at all".to_vec();
    assert_eq!(store_raw(scp, mr, "1.2.3.4.1", &junk, true), Some(0xC000));
    let image = alnrisk::ingest::list_files(&y.join("dce")).unwrap()[0].clone();
    let data = data_set_of(&image);
    let truncated = &data[..data.len() * 2 / 3];
    assert_eq!(store_raw(scp, mr, "1.2.3.4.2", truncated, true), Some(0xC000));
    // and an association aborted in the middle of a data set
    assert_eq!(store_raw(scp, mr, "1.2.3.4.3", &data, false), None);
    wait_for("three quarantined uploads", Duration::from_secs(20), || {
        quarantine_notes(&d.state).len() == 3
    });
    assert_eq!(d.metric("alnrisk_dicom_in_total", Some(("outcome", "unreadable"))), 3.0);
    assert!(
        count_files(&received.join("unreadable")) == 0,
        "the walk moved them to quarantine"
    );
    wait_for("quarantined events", Duration::from_secs(10), || {
        events_named(&sub, "quarantined") >= 3
    });
    let everything = sub.everything();
    assert!(!everything.contains(&study_uid(&x)) && !everything.contains("INTRUDER"));
}
