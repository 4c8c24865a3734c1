//! Revised ROIs (SEG and label map) for answered series.

use super::harness::*;
use alnrisk::daemon::payload::RoiKey;

/// A radiologist's corrected outline of the SEG `src`, exported into `dest` atomically (`.part`, then renamed): a
/// new object drawn at `content_time`, eroded by `erode` pixels.
fn revised_seg(src: &Path, dest: &Path, seed: &str, content_time: &str, erode: usize) {
    let part = dest.with_extension("part");
    alnrisk::synth::revision::write_revised_seg(src, &part, seed, content_time, erode).unwrap();
    std::fs::rename(part, dest).unwrap();
}

#[test]
fn a_revised_roi_is_computed_again_and_replaces_the_answer_once_across_a_restart() {
    let broker = Mosquitto::new("revise", "");
    let sub = Subscriber::new(broker.port, "revise-sub");
    let mut d = Daemon::new("revise", broker.port);
    let src = exam(14);
    let seg = src.join("roi/seg.dcm");
    d.drop_exam(&src, "a", ReplayStyle::Atomic);
    let first = sub.wait("result", 1, Duration::from_secs(60))[0].clone();
    assert_eq!(first["kind"], "result");
    assert!(first["roi_key"].is_string(), "{first}");
    // The console exports the same examination again (not computed again; the revision below reads one copy).
    d.drop_exam(&src, "again", ReplayStyle::Atomic);

    // The radiologist corrects the outline (drawn at 11:00; the first was drawn at 10:00) and exports it again.
    revised_seg(&seg, &d.export.join("a/roi/seg-v2.dcm"), "revise/v2", "110000", 1);
    let all = sub.wait("result", 2, Duration::from_secs(60));
    let rev = &all[1];
    assert_valid(rev);
    assert_eq!(rev["kind"], "revision");
    assert_eq!(rev["updates"], first["message_id"]);
    assert_ne!(rev["message_id"], first["message_id"]);
    let secret = hex::decode(SECRET_HEX).unwrap();
    let sop = |f: &Path| alnrisk::roi::references(f).unwrap().sop_instance_uid.unwrap();
    let v2_sop = sop(&d.export.join("a/roi/seg-v2.dcm"));
    assert_eq!(rev["roi_key"], RoiKey::of(&secret, &v2_sop).as_str());
    let original_sop = sop(&seg);
    assert_eq!(first["roi_key"], RoiKey::of(&secret, &original_sop).as_str());
    for k in ["study_key", "series_key", "bundle"] {
        assert_eq!(rev[k], first[k], "{k}");
    }
    assert_ne!(rev["signatures"], first["signatures"], "computed from the new outline");
    assert_eq!(
        d.metric("alnrisk_series_processed_total", Some(("outcome", "revised"))),
        1.0
    );
    assert!(
        sub.of("event")
            .iter()
            .any(|e| e["event"] == "roi_revised" && e["study_key"] == first["study_key"]),
        "{}",
        sub.everything()
    );

    // A copy of an older outline (drawn at 09:00) exported late is reported, not applied.
    revised_seg(&seg, &d.export.join("a/roi/seg-v0.dcm"), "revise/v0", "090000", 0);
    wait_for("roi_not_applied", Duration::from_secs(20), || {
        sub.of("event").iter().any(|e| e["event"] == "roi_not_applied")
    });

    // The LN read updates the revised answer, not the first one.
    let key = first["study_key"].as_str().unwrap().to_string();
    sub.publish(
        "alnrisk/v1/test-site/revise/cmd/ln-status",
        &format!(r#"{{"study_key":"{key}","mri_ln_status":"positive"}}"#),
    );
    let all = sub.wait("result", 3, Duration::from_secs(20));
    let update = &all[2];
    assert_valid(update);
    assert_eq!(update["kind"], "update");
    assert_eq!(update["updates"], first["message_id"]);
    assert_eq!(update["roi_key"], rev["roi_key"]);
    assert_eq!(update["signatures"], rev["signatures"]);
    assert_eq!(
        update["risk"]["probability"],
        rev["scenarios"]["if_ln_positive"]["probability"]
    );
    // The read is corrected, then corrected back: every message has an id of its own (a dashboard that drops ids
    // it has seen must not drop the last one).
    for read in ["negative", "positive"] {
        sub.publish(
            "alnrisk/v1/test-site/revise/cmd/ln-status",
            &format!(r#"{{"study_key":"{key}","mri_ln_status":"{read}"}}"#),
        );
    }
    let all = sub.wait("result", 5, Duration::from_secs(20));
    let mut ids: Vec<&str> = all.iter().map(|m| m["message_id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "{}", sub.everything());
    assert_eq!(
        (&all[3]["mri_ln_status"], &all[4]["mri_ln_status"]),
        (&"negative".into(), &"positive".into())
    );
    assert_eq!(all[4]["risk"], update["risk"]);

    // After a restart the folder holds three outlines of one series: nothing is computed or published again.
    d.kill9();
    d.start();
    wait_for("the restarted daemon's scan", Duration::from_secs(20), || {
        d.metric("alnrisk_files_seen_total", None) >= count_files(&d.export) as f64
    });
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(sub.of("result").len(), 5, "{}", sub.everything());
    assert_eq!(
        sub.of("event").iter().filter(|e| e["event"] == "roi_revised").count(),
        1
    );
    assert_eq!(d.metric("alnrisk_series_processed_total", None), 0.0);
    assert!(
        quarantine_notes(&d.state).is_empty(),
        "{:?}",
        quarantine_notes(&d.state)
    );
}

#[test]
fn a_new_label_map_beside_an_answered_series_is_a_revision() {
    let broker = Mosquitto::new("relabel", "");
    let sub = Subscriber::new(broker.port, "relabel-sub");
    let mut d = Daemon::new("relabel", broker.port);
    let src = synth_export("ge", "nifti", 1).join("SYN0001");
    d.drop_exam(&src, "x", ReplayStyle::Atomic);
    let first = sub.wait("result", 1, Duration::from_secs(60))[0].clone();

    // The outline redrawn one voxel tighter and saved beside the first label map (a research workstation's way).
    let label = alnrisk::io::nifti::read(&src.join("roi/tumour.nii.gz")).unwrap();
    let inside: Vec<bool> = label.data.iter().map(|&v| v > 0.0).collect();
    let tighter = alnrisk::synth::phantom::jitter(&inside, label.geometry.size, -1);
    assert!(tighter.iter().any(|&b| b) && tighter != inside);
    let revised = alnrisk::image::Volume {
        data: tighter.iter().map(|&b| f64::from(u8::from(b))).collect(),
        ..label
    };
    let dest = d.export.join("x/roi/tumour-v2.nii.gz");
    let part = d.export.join("x/roi/tumour-v2.part");
    alnrisk::io::nifti::write(&part, &revised).unwrap();
    std::fs::rename(&part, &dest).unwrap();

    let all = sub.wait("result", 2, Duration::from_secs(60));
    let rev = &all[1];
    assert_valid(rev);
    assert_eq!(rev["kind"], "revision");
    assert_eq!(rev["updates"], first["message_id"]);
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(std::fs::read(&dest).unwrap()));
    let secret = hex::decode(SECRET_HEX).unwrap();
    assert_eq!(
        rev["roi_key"],
        RoiKey::of(&secret, &format!("sha256:{digest}")).as_str()
    );
    assert_ne!(rev["signatures"], first["signatures"]);

    // After a restart both label maps are known: nothing is computed again, nothing is reported as unmatched.
    d.kill9();
    d.start();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(sub.of("result").len(), 2, "{}", sub.everything());
    assert!(
        sub.of("event").iter().all(|e| e["event"] != "roi_without_series"),
        "{}",
        sub.everything()
    );

    // A third outline after the restart still finds its series, through the ledger's folder keys.
    let tightest = alnrisk::synth::phantom::jitter(&tighter, revised.geometry.size, -1);
    assert!(tightest.iter().any(|&b| b));
    let third = alnrisk::image::Volume {
        data: tightest.iter().map(|&b| f64::from(u8::from(b))).collect(),
        ..revised
    };
    alnrisk::io::nifti::write(&part, &third).unwrap();
    std::fs::rename(&part, d.export.join("x/roi/tumour-v3.nii.gz")).unwrap();
    let all = sub.wait("result", 3, Duration::from_secs(60));
    assert_eq!(
        (all[2]["kind"].as_str(), &all[2]["updates"]),
        (Some("revision"), &first["message_id"])
    );
}
