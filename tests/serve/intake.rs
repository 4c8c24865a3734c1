//! What enters from the export folder: LN reads before images, bad files, Enhanced MR and Siemens exports, files too old, quarantine retention.

use super::harness::*;

#[test]
fn an_ln_read_before_the_images_survives_a_restart_and_is_applied() {
    let broker = Mosquitto::new("early-ln", "");
    let sub = Subscriber::new(broker.port, "early-ln-sub");
    let mut d = Daemon::new("early-ln", broker.port);
    sub.wait("status", 1, Duration::from_secs(10));
    let key = key_of(&exam(11));
    sub.publish(
        "alnrisk/v1/test-site/early-ln/cmd/ln-status",
        &format!(r#"{{"study_key":"{key}","mri_ln_status":"positive"}}"#),
    );
    wait_for("the read kept", Duration::from_secs(10), || {
        d.metric("alnrisk_events_total", Some(("event", "ln_read_pending"))) == 1.0
    });
    d.kill9();
    d.start();
    d.drop_exam(&exam(11), "a", ReplayStyle::Atomic);
    let r = sub.wait("result", 1, Duration::from_secs(60));
    assert_eq!(r[0]["study_key"], key.as_str());
    assert_eq!(r[0]["mri_ln_status"], "positive");
    assert!(r[0]["risk"]["probability"].as_f64().is_some(), "{}", r[0]);
    assert_valid(&r[0]);
}

#[test]
fn bad_input_burst_is_quarantined_with_reasons_and_the_valid_study_is_published() {
    let broker = Mosquitto::new("burst", "");
    let sub = Subscriber::new(broker.port, "burst-sub");
    let d = Daemon::new("burst", broker.port);
    let src = exam(7);
    let real = alnrisk::ingest::list_files(&src).unwrap();
    let junk = d.export.join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    let mut rng = alnrisk::rng::Rng::new(5);
    for k in 0..200 {
        let path = junk.join(format!("J{k:03}.dcm"));
        let bytes: Vec<u8> = match k % 3 {
            // random bytes
            0 => (0..(64 + k * 37)).map(|_| (rng.uniform() * 256.0) as u8).collect(),
            // a real file cut short
            1 => {
                let b = std::fs::read(&real[k % real.len()]).unwrap();
                b[..b.len() * (1 + k % 5) / 7].to_vec()
            }
            // not DICOM at all
            _ => format!("patient list {k}\nthis is a text file\n").into_bytes(),
        };
        std::fs::write(path, bytes).unwrap();
    }
    d.drop_exam(&src, "valid", ReplayStyle::Atomic);
    let r = sub.wait("result", 1, Duration::from_secs(60));
    assert_eq!(r[0]["study_key"], key_of(&src).as_str());
    wait_for("200 quarantined", Duration::from_secs(30), || {
        quarantine_notes(&d.state).len() == 200
    });
    let notes = quarantine_notes(&d.state);
    assert!(notes.iter().all(|n| n["reason"].as_str().is_some_and(|s| !s.is_empty())
        && n["detail"].as_str().is_some_and(|s| s.contains("J"))));
    assert_eq!(count_files(&junk), 0, "every bad file moved out of the export folder");
    assert_eq!(d.metric("alnrisk_quarantined_total", None), 200.0);
    assert_eq!(d.metric("alnrisk_events_total", Some(("event", "quarantined"))), 200.0);
    assert_eq!(
        d.metric("alnrisk_series_processed_total", Some(("outcome", "published"))),
        1.0
    );
    let events = sub.wait("event", 200, Duration::from_secs(20));
    assert_eq!(events.iter().filter(|e| e["event"] == "quarantined").count(), 200);
}

#[test]
fn an_enhanced_mr_export_completes_at_its_last_file_not_after_the_quiet_period() {
    let dir = synth_export("enhanced", "seg", 1);
    let broker = Mosquitto::new("enhanced", "");
    let sub = Subscriber::new(broker.port, "enhanced-sub");
    let d = Daemon::new("enhanced", broker.port);
    d.drop_exam(&dir.join("SYN0001"), "e", ReplayStyle::Atomic);
    let r = sub.wait("result", 1, Duration::from_secs(30));
    assert_valid(&r[0]);
    // The frame count of the one Enhanced MR file says the series is complete: no 1.5 s quiet period is waited.
    let waited = r[0]["timing_ms"]["last_file_to_result"].as_f64().unwrap();
    assert!(waited < 1500.0, "completion waited {waited} ms");
}

#[test]
fn a_siemens_export_one_series_per_phase_is_linked_computed_once_and_matches_the_ge_export() {
    let dir = synth_export("siemens", "seg", 1);
    // the sentinel: another patient, one folder per phase too, its ROI an ITK-SNAP-style label map in `roi/`
    let (siemens, sentinel) = (dir.join("SYN0001"), synth_export("siemens", "nifti", 2).join("SYN0002"));
    assert_eq!(
        std::fs::read_dir(siemens.join("dce")).unwrap().count(),
        3,
        "one folder (series) per phase"
    );
    let broker = Mosquitto::new("siemens", "");
    let sub = Subscriber::new(broker.port, "siemens-sub");
    let mut d = Daemon::new("siemens", broker.port);
    // The rule asks for ≥ 2 temporal positions: no single-phase series passes it alone.
    d.drop_exam(&siemens, "s", ReplayStyle::Atomic);
    d.drop_exam(&exam(1), "ge", ReplayStyle::Atomic);
    let r = sub.wait("result", 2, Duration::from_secs(120));
    for x in &r {
        assert_valid(x);
    }
    let events = sub.of("event");
    assert!(
        !events.iter().any(|e| e["event"] == "series_not_selected"),
        "{events:?}"
    );
    // The same patient exported GE-style (one series, repeated positions) gives the same answer.
    assert_eq!(r[0]["study_key"], r[1]["study_key"], "the same synthetic patient");
    for s in ["if_ln_negative", "if_ln_positive"] {
        let (a, b) = (
            r[0]["scenarios"][s]["probability"].as_f64().unwrap(),
            r[1]["scenarios"][s]["probability"].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-9, "{s}: {a} vs {b}");
    }

    // Restart and export the Siemens study again: every member is known to the ledger, so no phase is
    // computed on its own (or rejected) — then a sentinel study shows the daemon got past those files.
    d.kill9();
    d.start();
    d.drop_exam(&siemens, "again", ReplayStyle::Atomic);
    d.drop_exam(&sentinel, "sentinel", ReplayStyle::Atomic);
    let r = sub.wait("result", 3, Duration::from_secs(120));
    assert_eq!(r.len(), 3, "{r:?}");
    assert_eq!(r[2]["study_key"], key_of(&sentinel).as_str());
    let events = sub.of("event");
    assert!(
        !events.iter().any(|e| e["event"] == "series_not_selected"),
        "{events:?}"
    );
}

#[test]
fn files_older_than_max_age_are_counted_and_reported_not_computed_and_new_ones_are() {
    let broker = Mosquitto::new("old", "");
    let sub = Subscriber::new(broker.port, "old-sub");
    let d = Daemon::with(
        "old",
        DaemonOpts {
            max_age_h: 1.0,
            ..DaemonOpts::external(broker.port)
        },
    );
    sub.wait("status", 1, Duration::from_secs(10));
    // An examination exported two hours ago, already in the folder (as at a first start beside a full folder).
    let staging = tmp("old-staging").join("exam");
    replay(&exam(15), &staging, Duration::ZERO, ReplayStyle::Atomic).unwrap();
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
    let files = alnrisk::ingest::list_files(&staging).unwrap();
    for f in &files {
        std::fs::File::options()
            .write(true)
            .open(f)
            .and_then(|f| f.set_modified(two_hours_ago))
            .unwrap();
    }
    std::fs::rename(&staging, d.export.join("old")).unwrap();
    let ev = sub.wait("event", 1, Duration::from_secs(20));
    let skipped: Vec<_> = ev.iter().filter(|e| e["event"] == "too_old_skipped").collect();
    assert_eq!(skipped.len(), 1, "{}", sub.everything());
    let detail = skipped[0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!(
            "{} image file(s) (1 series not reported before) and 1 ROI object(s)",
            files.len() - 1
        )),
        "{detail}"
    );
    assert_eq!(
        d.metric("alnrisk_series_processed_total", Some(("outcome", "too_old"))),
        1.0
    );
    // A fresh examination is computed as ever; the old one never is, and its files stay where they are.
    d.drop_exam(&exam(16), "new", ReplayStyle::Atomic);
    let r = sub.wait("result", 1, Duration::from_secs(60));
    assert_eq!(r[0]["study_key"], key_of(&exam(16)).as_str());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sub.of("result").len(), 1);
    assert_eq!(count_files(&d.export.join("old")), files.len());
    assert!(
        sub.of("event")
            .iter()
            .all(|e| e["event"] != "roi_without_series" && e["event"] != "waiting_for_roi"),
        "{}",
        sub.everything()
    );
}

#[test]
fn quarantine_days_past_the_retention_are_deleted_reported_and_counted() {
    let broker = Mosquitto::new("retention", "");
    let sub = Subscriber::new(broker.port, "retention-sub");
    let mut d = Daemon::with(
        "retention",
        DaemonOpts {
            quarantine_keep_days: 30,
            ..DaemonOpts::external(broker.port)
        },
    );
    sub.wait("status", 1, Duration::from_secs(10));
    // What earlier runs quarantined: a day long past the retention, a recent day, and a folder that is no date.
    d.kill9();
    let q = d.state.join("quarantine");
    let today = alnrisk::time::utc_now()[..10].to_string();
    let recent = alnrisk::time::civil_date(alnrisk::time::days_from_civil(&today).unwrap() - 30);
    for (day, files) in [
        ("2020-01-01", 3),
        (recent.as_str(), 1),
        (today.as_str(), 1),
        ("kept-by-hand", 1),
    ] {
        for k in 0..files {
            std::fs::create_dir_all(q.join(day)).unwrap();
            std::fs::write(q.join(day).join(format!("bad{k}.dcm")), [7u8; 1000]).unwrap();
            std::fs::write(q.join(day).join(format!("bad{k}.dcm.reason.json")), b"{}").unwrap();
        }
    }
    d.start();
    let purge_events = || -> Vec<serde_json::Value> {
        sub.of("event")
            .into_iter()
            .filter(|e| e["event"] == "quarantine_purged")
            .collect()
    };
    wait_for("the purge event", Duration::from_secs(20), || {
        !purge_events().is_empty()
    });
    let purged = purge_events();
    assert_eq!(purged.len(), 1, "{}", sub.everything());
    assert!(
        purged[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("deleted the 3 file(s) (3006 bytes) quarantined on 2020-01-01"),
        "{}",
        purged[0]
    );
    assert!(!q.join("2020-01-01").exists());
    for kept in [recent.as_str(), today.as_str(), "kept-by-hand"] {
        assert!(q.join(kept).join("bad0.dcm").exists(), "{kept} was deleted");
    }
    assert_eq!(d.metric("alnrisk_quarantine_purged_files_total", None), 3.0);
    assert_eq!(d.metric("alnrisk_quarantine_files", None), 3.0);
    assert_eq!(d.metric("alnrisk_quarantine_bytes", None), 3.0 * 1002.0);
    // a new bad file raises the gauges at once
    std::fs::write(d.export.join("not-dicom.dcm"), b"hello").unwrap();
    wait_for("the bad file quarantined", Duration::from_secs(20), || {
        d.metric("alnrisk_quarantine_files", None) == 4.0
    });
    assert!(d.metric("alnrisk_quarantine_bytes", None) > 3.0 * 1002.0 + 5.0);
    assert_eq!(count_files(&q.join(&today)), 4, "two inputs and their notes");
}

#[test]
fn a_panic_or_a_cuda_error_in_compute_is_tried_again_with_an_alarm_and_nothing_is_quarantined() {
    // a panic in compute, and a device (CUDA) error on this CPU build, both through the developer build's hook
    for (name, fault) in [("own-fault-panic", "panic:1"), ("own-fault-cuda", "device:1")] {
        own_fault_is_retried(name, fault);
    }
}

fn own_fault_is_retried(name: &str, fault: &str) {
    let broker = Mosquitto::new(name, "");
    let sub = Subscriber::new(broker.port, &format!("{name}-sub"));
    let d = Daemon::with(
        name,
        DaemonOpts {
            fault_injection: Some(fault.into()),
            ..DaemonOpts::external(broker.port)
        },
    );
    let src = exam(12);
    d.drop_exam(&src, "exam", ReplayStyle::Atomic);
    let r = sub.wait("result", 1, Duration::from_secs(60));
    assert_eq!(r[0]["study_key"], key_of(&src).as_str(), "the second try answers");
    let faults = || -> Vec<serde_json::Value> {
        sub.of("event")
            .into_iter()
            .filter(|e| e["event"] == "compute_fault")
            .collect()
    };
    wait_for("the compute_fault alarm", Duration::from_secs(10), || {
        !faults().is_empty()
    });
    let faults = faults();
    assert_eq!(faults.len(), 1, "{fault}: {}", sub.everything());
    assert_eq!(faults[0]["severity"], "alarm");
    assert_eq!(d.metric("alnrisk_alarms_total", Some(("alarm", "compute_fault"))), 1.0);
    assert_eq!(d.metric("alnrisk_quarantined_total", None), 0.0);
    assert!(quarantine_notes(&d.state).is_empty());
    assert_eq!(
        count_files(&d.export.join("exam")),
        count_files(&src),
        "every file of the examination is still in the export folder"
    );
}
