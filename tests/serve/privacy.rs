//! Nothing identifying leaves the box with `phi.include_identifiers = false` — on any topic, in any metric label,
//! or in the log a fleet forwards off the box — when the console names folders and files after the patient:
//! - Jane's examination in `DOE^JANE 123456/`, its files named after her, its ROI exported late (after a
//!   `waiting_for_roi` event), then an LN read and a radiologist's revised outline;
//! - a garbage file and a truncated image named after her, in her folder;
//! - Richard's examination in `ROE^RICHARD 654321/` with a slice missing: a broken series, quarantined whole.
//!
//! Every message under `#`, the whole `/metrics` text and the daemon's log are searched for the names and MRNs,
//! every DICOM UID of both examinations (the revised SEG's too), and every folder and file name; each message is
//! also checked against its kind's schema. The operator's side: `alnrisk quarantine show REF` turns each
//! quarantined event's reference back into the real names, on the box.

use super::harness::*;
use alnrisk::daemon::listen::Listener;

const JANE: &str = "DOE^JANE 123456";
const RICHARD: &str = "ROE^RICHARD 654321";

/// A copy of the examination `src` in `dest`, its folders and files renamed the way a console names them after
/// the patient `who`: `<who> <folder>/<who> <n>.dcm`, without the files `skip` names. Returns the names used.
fn patient_named_copy(src: &Path, dest: &Path, who: &str, skip: impl Fn(&str) -> bool) -> Vec<String> {
    let mut names = Vec::new();
    let files = alnrisk::ingest::list_files(src).unwrap();
    let kept = files
        .iter()
        .filter(|f| !skip(&f.file_name().unwrap().to_string_lossy()));
    for (n, f) in kept.enumerate() {
        let folder = f
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_uppercase();
        let (dir, name) = (format!("{who} {folder}"), format!("{who} {n:04}.dcm"));
        std::fs::create_dir_all(dest.join(&dir)).unwrap();
        std::fs::copy(f, dest.join(&dir).join(&name)).unwrap();
        names.extend([dir, name]);
    }
    names.sort();
    names.dedup();
    names
}

/// UIDs, name, ID and accession of every DICOM file below `dir` (values longer than 3 characters).
fn identifiers(dir: &Path) -> Vec<String> {
    use dicom_dictionary_std::tags;
    let mut out = Vec::new();
    for f in alnrisk::ingest::list_files(dir).unwrap() {
        let Ok(obj) = alnrisk::ingest::header::open_header(&f) else {
            continue;
        };
        for tag in [
            tags::STUDY_INSTANCE_UID,
            tags::SERIES_INSTANCE_UID,
            tags::SOP_INSTANCE_UID,
            tags::FRAME_OF_REFERENCE_UID,
            tags::PATIENT_NAME,
            tags::PATIENT_ID,
            tags::ACCESSION_NUMBER,
        ] {
            out.extend(alnrisk::ingest::tags::string(&obj, tag).filter(|v| v.len() > 3));
        }
    }
    out
}

#[test]
fn no_patient_name_uid_path_or_file_name_leaves_the_box_on_any_topic_metric_or_log() {
    let broker = Mosquitto::new("privacy", "");
    let everything = Listener::connect(
        rumqttc::v5::MqttOptions::new("privacy-all", "127.0.0.1", broker.port),
        "#",
    )
    .expect("subscribed to #");
    let d = Daemon::new("privacy", broker.port);
    let staging = tmp("privacy-staging");
    let (jane, richard) = (staging.join(JANE), staging.join(RICHARD));
    let mut names = patient_named_copy(&exam(9), &jane, "DOE^JANE", |_| false);
    // Richard's series lacks its 8th slice in every phase (the synthetic files are IM<phase><slice>): a gap in
    // the volume, so it cannot be computed and is quarantined whole
    names.extend(patient_named_copy(&exam(11), &richard, "ROE^RICHARD", |name| {
        name.ends_with("007.dcm")
    }));

    // Jane's images first; her ROI only after the daemon said it waits for one
    d.drop_exam(
        &jane.join("DOE^JANE DCE"),
        &format!("{JANE}/DOE^JANE DCE"),
        ReplayStyle::Atomic,
    );
    wait_for("waiting_for_roi", Duration::from_secs(30), || {
        everything.of("event").iter().any(|e| e["event"] == "waiting_for_roi")
    });
    d.drop_exam(
        &jane.join("DOE^JANE ROI"),
        &format!("{JANE}/DOE^JANE ROI"),
        ReplayStyle::Atomic,
    );
    d.drop_exam(&richard, RICHARD, ReplayStyle::Atomic);
    // bad files named after her, in her folder
    let folder = d.export.join(JANE);
    std::fs::write(folder.join("DOE JANE 123456 notes.dcm"), b"not DICOM at all").unwrap();
    let real = alnrisk::ingest::list_files(&jane.join("DOE^JANE DCE")).unwrap();
    let bytes = std::fs::read(&real[0]).unwrap();
    std::fs::write(folder.join("DOE^JANE-MRN123456-cut.dcm"), &bytes[..bytes.len() / 3]).unwrap();
    names.extend(["DOE JANE 123456 notes.dcm", "DOE^JANE-MRN123456-cut.dcm"].map(String::from));

    let key = key_of(&exam(9));
    wait_for("Jane's result", Duration::from_secs(90), || {
        everything.of("result").iter().any(|r| r["study_key"] == key.as_str())
    });
    let ln = format!(r#"{{"study_key":"{key}","mri_ln_status":"negative"}}"#);
    everything
        .publish("alnrisk/v1/test-site/privacy/cmd/ln-status", &ln)
        .unwrap();
    wait_for("the update", Duration::from_secs(30), || {
        everything.of("result").iter().any(|r| r["kind"] == "update")
    });
    // the radiologist's corrected outline, saved in her ROI folder under her name
    let revised_name = "DOE^JANE 123456 revised.dcm";
    let seg = alnrisk::ingest::list_files(&jane.join("DOE^JANE ROI")).unwrap()[0].clone();
    let revised_part = staging.join("revised.part");
    alnrisk::synth::revision::write_revised_seg(&seg, &revised_part, "privacy/v2", "235900", 1).unwrap();
    std::fs::rename(&revised_part, folder.join("DOE^JANE ROI").join(revised_name)).unwrap();
    names.push(revised_name.into());
    wait_for(
        "the revision, three quarantine events and the failed series",
        Duration::from_secs(90),
        || {
            let events = everything.of("event");
            everything.of("result").iter().any(|r| r["kind"] == "revision")
                && events.iter().filter(|e| e["event"] == "quarantined").count() >= 3
                && events.iter().any(|e| e["event"] == "series_failed")
        },
    );
    std::thread::sleep(Duration::from_millis(500));
    let (_, metrics) = http_get(&d.metrics, "/metrics").expect("metrics");
    let mut published = String::new();
    for r in everything.inbox.lock().unwrap().iter() {
        published += &format!("{} {}\n", r.topic, r.body);
    }
    assert_all_valid(&everything);

    // what must not appear: the names and MRNs, every UID of both examinations, every folder and file name
    // (the bare MRNs are in the folder names below; alone, six digits could be part of any number in /metrics)
    let mut secrets: Vec<String> = ["DOE", "JANE", "ROE", "RICHARD", JANE, RICHARD, "MRN123456"]
        .map(String::from)
        .to_vec();
    secrets.extend(names);
    secrets.extend(identifiers(&jane));
    secrets.extend(identifiers(&richard));
    secrets.extend(identifiers(&folder.join("DOE^JANE ROI")));
    secrets.sort();
    secrets.dedup();
    assert!(
        secrets.len() > 40,
        "the examinations' identifiers were read: {secrets:?}"
    );
    let log = d.log_text();
    for s in &secrets {
        assert!(!published.contains(s.as_str()), "{s:?} was published:\n{published}");
        assert!(!metrics.contains(s.as_str()), "{s:?} is in /metrics");
        assert!(!log.contains(s.as_str()), "{s:?} is in the daemon's log:\n{log}");
    }
    let export = d.export.display().to_string();
    assert!(!published.contains(&export), "the export path was published");
    assert!(!metrics.contains(&export), "the export path is in /metrics");

    // the events still say what happened, by reference; on the box, `alnrisk quarantine show` has the names
    let events = everything.of("event");
    let quarantined: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"] == "quarantined").collect();
    let show = |reference: &str| {
        let out = bin()
            .args(["quarantine", "show", reference, "--config"])
            .arg(&d.config)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "show {reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut found = Vec::new();
    for e in &quarantined {
        let detail = e["detail"].as_str().unwrap();
        let reference = detail.split(':').next().unwrap();
        let reference = reference.split(" of ").next().unwrap();
        assert!(
            reference.starts_with("file ") || reference.starts_with("series "),
            "{detail}"
        );
        found.push(show(reference));
    }
    let all = found.concat();
    assert!(all.contains("DOE JANE 123456 notes.dcm"), "{all}");
    assert!(all.contains("DOE^JANE-MRN123456-cut.dcm"), "{all}");
    assert!(all.contains(&format!("{RICHARD}/ROE^RICHARD DCE/")), "{all}");
    let list = bin()
        .args(["quarantine", "list", "--config"])
        .arg(&d.config)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert_eq!(list.lines().filter(|l| !l.starts_with(' ')).count(), 3, "{list}");
}
