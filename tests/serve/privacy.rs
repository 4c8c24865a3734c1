//! Nothing identifying leaves the box with `phi.include_identifiers = false`, on any topic or in any metric
//! label, when the console names folders and files after the patient: an examination in `DOE^JANE 123456/`, a
//! garbage file and a truncated image named after her, and an LN read. Every message under `#` and the whole
//! `/metrics` text are searched for the names, every DICOM UID of the examination, and the export paths.

use super::harness::*;
use alnrisk::daemon::listen::Listener;

const PATIENT_FOLDER: &str = "DOE^JANE 123456";

#[test]
fn no_patient_name_uid_path_or_file_name_leaves_the_box_on_any_topic_or_metric() {
    let broker = Mosquitto::new("privacy", "");
    let everything = Listener::connect(
        rumqttc::v5::MqttOptions::new("privacy-all", "127.0.0.1", broker.port),
        "#",
    )
    .expect("subscribed to #");
    let d = Daemon::new("privacy", broker.port);
    let src = exam(9);
    // bad files named after the patient, in her folder: quarantined, and each reported in an event
    let folder = d.export.join(PATIENT_FOLDER);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("DOE JANE 123456 notes.dcm"), b"not DICOM at all").unwrap();
    let real = alnrisk::ingest::list_files(&src).unwrap();
    let bytes = std::fs::read(&real[0]).unwrap();
    std::fs::write(folder.join("DOE^JANE-MRN123456-cut.dcm"), &bytes[..bytes.len() / 3]).unwrap();
    d.drop_exam(&src, &format!("{PATIENT_FOLDER}/dce"), ReplayStyle::Atomic);
    let key = key_of(&src);
    wait_for("the result", Duration::from_secs(90), || {
        everything.of("result").iter().any(|r| r["study_key"] == key.as_str())
    });
    everything
        .publish(
            "alnrisk/v1/test-site/privacy/cmd/ln-status",
            &format!(r#"{{"study_key":"{key}","mri_ln_status":"negative"}}"#),
        )
        .unwrap();
    wait_for("the update and two quarantine events", Duration::from_secs(30), || {
        everything.of("result").iter().any(|r| r["kind"] == "update")
            && everything
                .of("event")
                .iter()
                .filter(|e| e["event"] == "quarantined")
                .count()
                >= 2
    });
    let (_, metrics) = http_get(&d.metrics, "/metrics").expect("metrics");
    let mut published = String::new();
    for r in everything.inbox.lock().unwrap().iter() {
        published += &format!("{} {}\n", r.topic, r.body);
    }

    // what must not appear: the names, every UID of the examination's files, the paths
    let mut secrets: Vec<String> = ["DOE", "JANE", "123456", "notes.dcm", "cut.dcm", "dce/"]
        .map(String::from)
        .to_vec();
    secrets.push(d.export.display().to_string());
    for f in &real {
        if let Ok(obj) = alnrisk::ingest::header::open_header(f) {
            use dicom_dictionary_std::tags;
            for tag in [
                tags::STUDY_INSTANCE_UID,
                tags::SERIES_INSTANCE_UID,
                tags::SOP_INSTANCE_UID,
                tags::FRAME_OF_REFERENCE_UID,
                tags::PATIENT_NAME,
                tags::PATIENT_ID,
                tags::ACCESSION_NUMBER,
            ] {
                if let Some(v) = alnrisk::ingest::tags::string(&obj, tag).filter(|v| v.len() > 3) {
                    secrets.push(v);
                }
            }
        }
        if let Some(name) = f.file_name() {
            secrets.push(name.to_string_lossy().into_owned());
        }
    }
    secrets.sort();
    secrets.dedup();
    assert!(
        secrets.len() > 10,
        "the examination's identifiers were read: {secrets:?}"
    );
    for s in &secrets {
        assert!(!published.contains(s.as_str()), "{s:?} was published:\n{published}");
        assert!(!metrics.contains(s.as_str()), "{s:?} is in /metrics");
    }
    // the events still say what happened, by reference: the quarantine note on the box has the real names
    let events = everything.of("event");
    let quarantined: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "quarantined").collect();
    let notes = quarantine_notes(&d.state);
    for e in &quarantined {
        let detail = e["detail"].as_str().unwrap();
        let reference = detail.split(':').next().unwrap();
        assert!(reference.starts_with("file "), "{detail}");
        let note = notes
            .iter()
            .find(|n| {
                n["file_refs"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|x| x == reference))
            })
            .unwrap_or_else(|| panic!("no quarantine note lists {reference}"));
        assert!(
            note["files"].to_string().contains(PATIENT_FOLDER),
            "the note on the box has the real name"
        );
    }
}
