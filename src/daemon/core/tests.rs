//! The core driven through whole sequences, with its store in memory: no broker, no files, no network. Each test
//! plays the driver: it tells the core what happened (files classified, a series computed), takes the work it
//! hands out and answers it the way a worker would. The model is a formula (`Formula`), so the numbers a test
//! expects are its own arithmetic, not the code's.
//!
//! `tests/mutants/` holds one mutant of the core per sequence and the script that checks each is caught.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::*;
use crate::daemon::assemble::RevisionOf;
use crate::daemon::config::DaemonConfig;
use crate::daemon::intake::{Classified, Intake};
use crate::daemon::store::MemoryStore;
use crate::model::predict::MRI_LN;
use crate::model::{LnRead, NomogramResult};
use crate::roi::RoiReferences;

/// The study of `assemble::tests::image`.
const STUDY: &str = "1.2.3";
const SERIES: &str = "1.2.826.0.1.3680043.9.1.5";
const SECRET: &[u8] = b"site secret";

/// The model of these tests: linear predictor = radiomics + deep signature + 2 × LN read.
struct Formula;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn nomogram(lp: f64) -> NomogramResult {
    NomogramResult {
        points: BTreeMap::new(),
        total_points: lp,
        linear_predictor: lp,
        probability: sigmoid(lp),
        positive: sigmoid(lp) >= 0.5,
    }
}

fn prediction(signatures: &BTreeMap<String, f64>, ln: Option<f64>, ood: Vec<OodFlag>) -> Prediction {
    let lp: f64 = signatures.values().sum();
    let scenarios = match ln {
        Some(_) => BTreeMap::new(),
        None => BTreeMap::from([
            ("if_ln_negative".to_string(), nomogram(lp)),
            ("if_ln_positive".to_string(), nomogram(lp + 2.0)),
        ]),
    };
    Prediction {
        bundle_id: "b".into(),
        bundle_version: "1".into(),
        bundle_sha256: "bundle-sha".into(),
        signatures: signatures.clone(),
        result: ln.map(|v| nomogram(lp + 2.0 * v)),
        scenarios,
        missing: Vec::new(),
        cutoff: 0.5,
        out_of_distribution: ood,
    }
}

impl Rescore for Formula {
    fn bundle_sha256(&self) -> &str {
        "bundle-sha"
    }
    fn needs(&self) -> Vec<crate::model::reported::FactorNeed> {
        vec![crate::model::reported::FactorNeed {
            column: MRI_LN.into(),
            kind: crate::model::reported::FactorKind::Level {
                levels: vec!["negative".into(), "positive".into()],
            },
        }]
    }
    fn rescore(
        &self,
        signatures: &BTreeMap<String, f64>,
        ood: Vec<OodFlag>,
        reported: &Reported,
    ) -> Result<Prediction> {
        Ok(prediction(signatures, reported.ln.map(|r| r.value()), ood))
    }
}

fn config() -> DaemonConfig {
    DaemonConfig::parse(CONFIG_TEXT, Path::new("core-tests.toml")).unwrap()
}

const CONFIG_TEXT: &str = r#"
        [site]
        site = "test"
        device = "box"
        [watch]
        export_dir = "/export"
        [assemble]
        quiet_period_s = 1.0
        roi_wait_s = 60.0
        [model]
        bundle = "/bundle"
        allow_unsigned = true
        [mqtt]
        broker = "external"
        [state]
        dir = "/state"
        workers = 1
        [metrics]
        listen = ""
    "#;

fn core(store: MemoryStore) -> Core<MemoryStore> {
    Core::new(&config(), Arc::new(Formula), SECRET.to_vec(), Metrics::new(), store)
}

/// A core whose configuration sends reports to a PACS (`[dicom_out]`).
fn core_with_pacs(store: MemoryStore) -> Core<MemoryStore> {
    let mut cfg = config();
    cfg.dicom_out = Some(
        DaemonConfig::parse(
            &format!(
                "{}\n[dicom_out]\nhost = \"127.0.0.1\"\nport = 104\ncalled_ae = \"PACS\"\ncalling_ae = \"ALNRISK\"\n",
                CONFIG_TEXT
            ),
            Path::new("core-tests.toml"),
        )
        .unwrap()
        .dicom_out
        .unwrap(),
    );
    Core::new(&cfg, Arc::new(Formula), SECRET.to_vec(), Metrics::new(), store)
}

fn intake(path: &str, what: Classified, at: Instant) -> Intake {
    Intake {
        path: PathBuf::from(path),
        what,
        stable_at: at,
        read_at: SystemTime::now(),
        modified: None,
    }
}

/// The six files of a two-phase series of three slices in `/export/exam/dce` (it says how many it has, so it
/// is complete at its last file).
fn images(at: Instant) -> Vec<Intake> {
    let mut out = Vec::new();
    for phase in 0..2 {
        for k in 0..3 {
            let h = crate::daemon::assemble::tests::image(SERIES, "exam/dce", phase, k, Some(3));
            let file = h.slices[0].file.clone();
            out.push(intake(&file.to_string_lossy(), Classified::Image(Box::new(h)), at));
        }
    }
    out
}

/// The series' images and its first outline, `seg1`, stable at `t`.
fn exam(t: Instant) -> Vec<Intake> {
    let mut files = images(t);
    files.push(seg("seg1", "20261201101500", t));
    files
}

/// The series and its first outline, `seg1`, arrived at `t0`; the series handed out to be computed.
fn computing(c: &mut Core<MemoryStore>, t0: Instant) -> Box<ReadySeries> {
    c.on(Happened::Classified(exam(t0)));
    c.tick(t0 + Duration::from_secs(2));
    the_compute(work(c))
}

/// The same files walked again (a restart, a re-export) at `t`: nothing to compute.
fn nothing_to_do_for_the_same_files(c: &mut Core<MemoryStore>, t: Instant) {
    c.on(Happened::Classified(exam(t)));
    c.tick(t + Duration::from_secs(10));
    assert!(work(c).is_empty(), "the same files again: nothing to compute");
}

/// A SEG of the series, `/export/exam/<name>.dcm`, drawn at `drawn_at` (`YYYYMMDDHHMMSS`).
fn seg(name: &str, drawn_at: &str, at: Instant) -> Intake {
    let refs = RoiReferences {
        study_uid: Some(STUDY.into()),
        frame_of_reference_uid: Some("9.9".into()),
        series_uids: vec![SERIES.into()],
        instance_uids: Vec::new(),
        sop_instance_uid: Some(format!("1.2.826.0.1.3680043.9.2.{name}")),
        sop_class_uid: Some("1.2.840.10008.5.1.4.1.1.66.4".into()),
        own_series_uid: Some("1.2.826.0.1.3680043.9.3".into()),
        drawn_at: Some(format!("{drawn_at}.000000")),
    };
    intake(&format!("/export/exam/{name}.dcm"), Classified::Roi(refs), at)
}

fn ln_read(read: LnRead) -> Happened {
    let cmd = LnStatusCommand {
        study_key: None,
        study_instance_uid: Some(STUDY.into()),
        mri_ln_status: Some(read),
        factors: BTreeMap::new(),
    };
    Happened::LnRead(cmd, LnVia::Mqtt)
}

/// All the work the core has now.
fn work(c: &mut Core<MemoryStore>) -> Vec<Work> {
    std::iter::from_fn(|| c.next_work()).collect()
}

/// The one series to compute in `work` (panics otherwise).
fn the_compute(work: Vec<Work>) -> Box<ReadySeries> {
    let mut computes: Vec<Box<ReadySeries>> = work
        .into_iter()
        .filter_map(|w| match w {
            Work::Compute(r) | Work::ComputeOnCpu(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(computes.len(), 1, "one series to compute");
    computes.remove(0)
}

/// A worker's answer for `ready`: radiomics signature 0.5, deep signature −0.25, no LN read (as the worker
/// computes it).
fn computed(ready: Box<ReadySeries>) -> Happened {
    let signatures = BTreeMap::from([
        ("deep_signature".to_string(), -0.25),
        ("radiomics_signature".to_string(), 0.5),
    ]);
    Happened::Computed(Box::new(Computed {
        ready,
        outcome: Ok((prediction(&signatures, None, Vec::new()), BTreeMap::new())),
    }))
}

fn results(c: &Core<MemoryStore>) -> Vec<Value> {
    c.store()
        .results
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect()
}

fn event_names(store: &MemoryStore) -> Vec<String> {
    store
        .events
        .iter()
        .map(|b| {
            serde_json::from_str::<Value>(b).unwrap()["event"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn a_series_waits_for_a_late_roi_then_is_computed_with_it() {
    let t0 = Instant::now();
    let mut c = core(MemoryStore::default());
    c.on(Happened::Classified(images(t0)));
    c.tick(t0 + Duration::from_secs(5));
    assert!(
        work(&mut c).is_empty(),
        "a complete series without a ROI is not computed"
    );
    // the outline is exported two minutes later
    let t1 = t0 + Duration::from_secs(120);
    c.tick(t1);
    assert!(event_names(c.store()).contains(&"waiting_for_roi".to_string()));
    c.on(Happened::Classified(vec![seg("seg1", "20261201101500", t1)]));
    c.tick(t1 + Duration::from_secs(2));
    let ready = the_compute(work(&mut c));
    assert_eq!(ready.roi, Path::new("/export/exam/seg1.dcm"));
    assert_eq!(ready.instances.len(), 6);
    c.on(computed(ready));
    let r = results(&c);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["kind"], "result");
    assert_eq!(r[0]["mri_ln_status"], "unknown");
    // no LN read: both scenarios, lp 0.25 and 2.25
    let p = |s: &str| r[0]["scenarios"][s]["probability"].as_f64().unwrap();
    assert!((p("if_ln_negative") - 0.562_176_500_885_798_7).abs() < 1e-12);
    assert!((p("if_ln_positive") - 0.904_650_535_100_890_6).abs() < 1e-12);
    // the same files seen again (a second walk, a re-export): nothing more to compute
    nothing_to_do_for_the_same_files(&mut c, t1);
    assert_eq!(results(&c).len(), 1);
}

#[test]
fn a_newer_roi_that_arrives_during_the_compute_is_applied_after_the_answer() {
    let t0 = Instant::now();
    let mut c = core(MemoryStore::default());
    let first = computing(&mut c, t0);
    // while it is computed, the radiologist exports a corrected outline
    c.on(Happened::Classified(vec![seg("seg2", "20261201104500", t0)]));
    c.tick(t0 + Duration::from_secs(3));
    assert!(work(&mut c).is_empty(), "nothing to do before the answer");
    c.on(computed(first.clone()));
    let first_id = results(&c)[0]["message_id"].as_str().unwrap().to_string();
    assert!(event_names(c.store()).contains(&"roi_revised".to_string()));
    // the core asks for the series' images to be read again with the new ROI
    let req = match work(&mut c).as_slice() {
        [Work::Recollect(req)] => (**req).clone(),
        other => panic!("expected one revision to read, got {other:?}"),
    };
    assert_eq!(req.roi.path, Path::new("/export/exam/seg2.dcm"));
    assert_eq!(req.of.message_id, first_id);
    // what `revision::collect` would read
    let revised = ReadySeries {
        roi: req.roi.path.clone(),
        roi_id: req.roi.id.clone(),
        roi_object: req.roi.object.clone(),
        roi_drawn_at: req.roi.drawn_at.clone(),
        revision: Some(RevisionOf {
            original: first_id.clone(),
        }),
        set_aside_roi_ids: Vec::new(),
        ..*first
    };
    c.on(Happened::Recollected(Box::new((req, Ok(revised)))));
    let again = the_compute(work(&mut c));
    assert_eq!(again.roi, Path::new("/export/exam/seg2.dcm"));
    c.on(computed(again));
    let r = results(&c);
    assert_eq!(r.len(), 2);
    assert_eq!(r[1]["kind"], "revision");
    assert_eq!(r[1]["updates"], first_id.as_str());
    assert_ne!(r[1]["roi_key"], r[0]["roi_key"]);
    // the first outline exported again changes nothing: it was set aside for the second
    c.on(Happened::Classified(vec![seg("seg1", "20261201101500", t0)]));
    c.tick(t0 + Duration::from_secs(10));
    assert!(work(&mut c).is_empty());
    assert_eq!(results(&c).len(), 2);
}

#[test]
fn an_ln_read_before_the_images_is_kept_and_used_by_the_answer() {
    let t0 = Instant::now();
    let mut c = core(MemoryStore::default());
    c.on(ln_read(LnRead::Positive));
    assert!(event_names(c.store()).contains(&"ln_read_pending".to_string()));
    assert_eq!(c.store().pending.len(), 1, "kept durably");
    let ready = computing(&mut c, t0);
    c.on(computed(ready));
    let r = results(&c);
    assert_eq!(r.len(), 1, "one result, not a result and an update");
    assert_eq!(r[0]["mri_ln_status"], "positive");
    let p = r[0]["risk"]["probability"].as_f64().unwrap();
    assert!((p - 0.904_650_535_100_890_6).abs() < 1e-12, "lp = 0.5 - 0.25 + 2: {p}");
    // a later read for the same study is an update of that answer
    c.on(ln_read(LnRead::Negative));
    let r = results(&c);
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[1]["kind"].as_str(), r[1]["updates"].as_str()),
        (Some("update"), r[0]["message_id"].as_str())
    );
    assert_eq!(r[1]["mri_ln_status"], "negative");
    assert!((r[1]["risk"]["probability"].as_f64().unwrap() - 0.562_176_500_885_798_7).abs() < 1e-12);
}

#[test]
fn with_a_pacs_a_result_hands_the_store_its_examination_and_an_update_leaves_it_to_the_store() {
    let t0 = Instant::now();
    let mut c = core_with_pacs(MemoryStore::default());
    let ready = computing(&mut c, t0);
    c.on(computed(ready));
    c.on(ln_read(LnRead::Positive));
    let reports = &c.store().reports;
    assert_eq!(reports.len(), 2, "a result and its update");
    let source = reports[0].1.as_ref().expect("the result's examination");
    assert_eq!(source.study_uid, STUDY);
    assert_eq!(source.series_uid, SERIES);
    assert_eq!(source.images.len(), 6, "every image of both phases");
    assert_eq!(source.frame_of_reference_uid.as_deref(), Some("9.9"));
    let roi = source.roi.as_ref().expect("the SEG");
    assert_eq!(roi.sop_instance_uid, "1.2.826.0.1.3680043.9.2.seg1");
    assert_eq!(roi.series_uid, "1.2.826.0.1.3680043.9.3");
    assert!(
        reports[1].1.is_none(),
        "an update: the store has the series' examination"
    );
    // without [dicom_out] nothing is gathered
    let mut plain = core(MemoryStore::default());
    let ready = computing(&mut plain, t0);
    plain.on(computed(ready));
    assert!(plain.store().reports[0].1.is_none());
}

#[test]
fn a_restart_keeps_the_ln_read_recomputes_what_was_in_flight_and_refuses_what_was_answered() {
    let t0 = Instant::now();
    let mut c = core(MemoryStore::default());
    c.on(ln_read(LnRead::Positive));
    let _lost = computing(&mut c, t0);
    // the power goes while the series is computed: only the store is left
    let store = c.into_store();
    assert!(store.results.is_empty());

    let mut c = core(store);
    let ready = computing(&mut c, t0);
    c.on(computed(ready));
    let r = results(&c);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0]["mri_ln_status"], "positive", "the read survived the restart");

    // a second restart: the read has been used (dropped from the store), the answered series is refused
    let mut c = core(c.into_store());
    assert!(c.store().pending.is_empty(), "an applied read is not kept for ever");
    nothing_to_do_for_the_same_files(&mut c, t0);
    assert_eq!(results(&c).len(), 1);
}

#[test]
fn a_full_spool_holds_the_result_with_one_alarm_and_stops_new_computes_until_there_is_room() {
    let t0 = Instant::now();
    let mut c = core(MemoryStore::default());
    c.store_mut().full = true;
    let ready = computing(&mut c, t0);
    c.on(computed(ready));
    c.tick(t0 + Duration::from_secs(3));
    c.tick(t0 + Duration::from_secs(4));
    assert!(results(&c).is_empty());
    let alarms = |c: &Core<MemoryStore>| event_names(c.store()).iter().filter(|e| *e == "spool_full").count();
    assert_eq!(alarms(&c), 1, "one alarm per episode");
    c.store_mut().full = false;
    c.tick(t0 + Duration::from_secs(5));
    assert_eq!(results(&c).len(), 1, "held, not lost");
    assert!(event_names(c.store()).contains(&"spool_full_cleared".to_string()));
}

#[test]
fn bad_input_is_reported_and_ordered_to_quarantine_by_reference_not_by_name() {
    let t0 = Instant::now();
    let mut c = core(MemoryStore::default());
    let bad = crate::error::Error::dicom(Path::new("/export/DOE^JANE/IM1.dcm"), "missing or invalid Rows");
    c.on(Happened::Classified(vec![intake(
        "/export/DOE^JANE/IM1.dcm",
        Classified::Bad(bad),
        t0,
    )]));
    let orders = work(&mut c);
    let [Work::Quarantine(order)] = orders.as_slice() else {
        panic!("one quarantine order: {orders:?}");
    };
    assert_eq!(order.files, vec![PathBuf::from("/export/DOE^JANE/IM1.dcm")]);
    assert_eq!(order.reason, "malformed");
    let event: Value = serde_json::from_str(c.store().events.last().unwrap()).unwrap();
    assert_eq!(event["event"], "quarantined");
    let detail = event["detail"].as_str().unwrap();
    assert!(detail.starts_with(&order.file_refs[0]), "{detail}");
    assert!(!detail.contains("DOE") && !detail.contains("IM1"), "{detail}");
}

#[test]
fn an_answer_past_the_retention_stays_refused_but_takes_no_ln_update() {
    let t0 = Instant::now();
    let mut c = core(MemoryStore::default());
    let ready = computing(&mut c, t0);
    c.on(computed(ready));
    // a year and a day later (ledger_keep_days = 365 by default)
    let mut store = c.into_store();
    let compaction = store.ledger.compact(365, today() + 366).unwrap();
    assert_eq!(compaction.retired, 1);
    let mut c = core(store);
    nothing_to_do_for_the_same_files(&mut c, t0);
    c.on(ln_read(LnRead::Negative));
    assert_eq!(results(&c).len(), 1, "no update of a retired answer");
    assert_eq!(
        event_names(c.store()).last().map(String::as_str),
        Some("ln_update_failed")
    );
    assert!(
        c.store().pending.is_empty(),
        "and the read is not kept waiting for ever"
    );
}

#[test]
fn acquisition_and_feature_flags_are_two_events_and_the_result_carries_both() {
    let t0 = Instant::now();
    let mut c = core(MemoryStore::default());
    let ready = computing(&mut c, t0);
    let signatures = BTreeMap::from([("deep_signature".to_string(), 0.5)]);
    let flags = vec![
        OodFlag::feature("original_firstorder_Energy", 9.0, 1.0, 2.0),
        OodFlag::acquisition("pixel_spacing_mm", 0.78, 0.7, 0.7),
    ];
    c.on(Happened::Computed(Box::new(Computed {
        ready,
        outcome: Ok((prediction(&signatures, None, flags), BTreeMap::new())),
    })));
    let events: Vec<Value> = c
        .store()
        .events
        .iter()
        .map(|b| serde_json::from_str(b).unwrap())
        .collect();
    let detail = |name: &str| {
        let e: Vec<&Value> = events.iter().filter(|e| e["event"] == name).collect();
        assert_eq!(e.len(), 1, "one {name} event");
        e[0]["detail"].as_str().unwrap().to_string()
    };
    assert_eq!(
        detail("acquisition_outside_training"),
        "1 acquisition(s) outside the training cohort's: acquisition pixel_spacing_mm: 0.78 outside [0.7, 0.7]"
    );
    assert_eq!(
        detail("out_of_distribution"),
        "1 input(s) outside the training range: original_firstorder_Energy: 9 outside [1, 2]"
    );
    assert_eq!(
        results(&c)[0]["out_of_distribution"],
        serde_json::json!([
            "original_firstorder_Energy: 9 outside [1, 2]",
            "acquisition pixel_spacing_mm: 0.78 outside [0.7, 0.7]"
        ])
    );
}

#[test]
fn a_fault_of_ours_is_retried_with_an_alarm_and_never_moves_the_examination() {
    let t0 = Instant::now();
    let mut c = core(MemoryStore::default());
    let mut ready = computing(&mut c, t0);
    for try_ in 1..OWN_FAULT_TRIES {
        c.on(Happened::Computed(Box::new(Computed {
            ready,
            outcome: Err(Error::panicked("compute", &"index out of bounds")),
        })));
        let alarms = event_names(c.store()).iter().filter(|e| *e == "compute_fault").count();
        assert_eq!(alarms, try_ as usize, "one alarm per failed try");
        ready = match work(&mut c).as_slice() {
            [Work::ComputeOnCpu(r)] => r.clone(),
            other => panic!("one try again, on the CPU: {other:?}"),
        };
    }
    // the last try fails too: reported, and nothing goes to quarantine
    c.on(Happened::Computed(Box::new(Computed {
        ready: ready.clone(),
        outcome: Err(Error::Device("CUDA_ERROR_ILLEGAL_ADDRESS".into())),
    })));
    let after = work(&mut c);
    assert!(after.is_empty(), "no quarantine order, no further try: {after:?}");
    assert_eq!(event_names(c.store()).last().map(String::as_str), Some("series_failed"));
    assert!(results(&c).is_empty());
    // an input fault is quarantined at once, as before
    c.on(Happened::Computed(Box::new(Computed {
        ready,
        outcome: Err(Error::invalid_roi(
            Path::new("/export/exam/seg1.dcm"),
            "the ROI is empty",
        )),
    })));
    assert!(matches!(work(&mut c).as_slice(), [Work::Quarantine(_)]));
}

#[test]
fn a_spool_write_that_fails_for_want_of_space_holds_the_result_with_an_alarm_and_loses_nothing() {
    let t0 = Instant::now();
    let mut c = core(MemoryStore::default());
    c.store_mut().no_space = true;
    let ready = computing(&mut c, t0);
    c.on(computed(ready));
    c.tick(t0 + Duration::from_secs(3));
    assert!(results(&c).is_empty());
    let full: Vec<Value> = c
        .store()
        .events
        .iter()
        .map(|b| serde_json::from_str::<Value>(b).unwrap())
        .filter(|e| e["event"] == "spool_full")
        .collect();
    assert_eq!(full.len(), 1, "one alarm");
    let detail = full[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("cannot be written") && !detail.contains("/state"),
        "{detail}"
    );
    assert!(work(&mut c).is_empty(), "no new compute while a result is held");
    c.store_mut().no_space = false;
    c.tick(t0 + Duration::from_secs(4));
    assert_eq!(results(&c).len(), 1, "held, then spooled");
    assert!(event_names(c.store()).contains(&"spool_full_cleared".to_string()));
}

#[test]
fn a_factor_the_nomogram_does_not_use_or_a_bad_value_is_a_bad_ln_read_and_changes_nothing() {
    let t0 = Instant::now();
    let mut c = core(MemoryStore::default());
    let ready = computing(&mut c, t0);
    c.on(computed(ready));
    assert_eq!(results(&c).len(), 1);
    for factors in [
        serde_json::json!({"tumor_size_cm": 2.5}),
        serde_json::json!({"mri_ln_status": "positive"}),
    ] {
        let cmd = LnStatusCommand {
            study_key: None,
            study_instance_uid: Some(STUDY.into()),
            mri_ln_status: None,
            factors: serde_json::from_value(factors).unwrap(),
        };
        c.on(Happened::LnRead(cmd, LnVia::Mqtt));
    }
    let bad: Vec<Value> = c
        .store()
        .events
        .iter()
        .map(|b| serde_json::from_str::<Value>(b).unwrap())
        .filter(|e| e["event"] == "bad_ln_read")
        .collect();
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert!(
        bad[0]["detail"]
            .as_str()
            .unwrap()
            .contains("a factor the served nomogram does not use (it uses: none besides the LN read)")
    );
    assert_eq!(results(&c).len(), 1, "no update");
    assert!(c.store().pending.is_empty());
}

#[test]
fn a_flood_of_ln_reads_for_unknown_studies_is_reported_and_stays_bounded_in_memory_and_on_disk() {
    let mut c = core(MemoryStore::default());
    let n = 5 * REMEMBERED_LN_READS;
    for k in 0..n {
        // keys of studies this box never saw (or another site's: the same to the box)
        let cmd = LnStatusCommand {
            study_key: Some(
                StudyKey::of(b"another site", &format!("1.2.3.{k}"))
                    .as_str()
                    .to_string(),
            ),
            study_instance_uid: None,
            mri_ln_status: Some(LnRead::Positive),
            factors: BTreeMap::new(),
        };
        c.on(Happened::LnRead(cmd, LnVia::Mqtt));
        assert!(
            c.store().pending.len() <= 2 * REMEMBERED_LN_READS + 1,
            "the pending file is rewritten before it passes twice the bound ({} lines after {k})",
            c.store().pending.len()
        );
    }
    assert_eq!(c.ln_reads.len(), REMEMBERED_LN_READS, "memory holds the bound, no more");
    let names = event_names(c.store());
    assert_eq!(names.len(), n, "one event per read");
    assert!(names.iter().all(|e| e == "ln_read_pending"));
    // the newest are the ones kept: the last read's study is still waiting, the first one's is forgotten
    let newest = StudyKey::of(b"another site", &format!("1.2.3.{}", n - 1));
    let oldest = StudyKey::of(b"another site", "1.2.3.0");
    assert!(c.ln_reads.contains_key(&newest) && !c.ln_reads.contains_key(&oldest));
    // a restart over what the store kept holds the same bound
    let store = c.into_store();
    assert!(store.pending.iter().any(|(k, _)| *k == newest));
    let c = core(store);
    assert_eq!(c.ln_reads.len(), REMEMBERED_LN_READS);
    assert!(c.store().pending.len() <= REMEMBERED_LN_READS);
}

#[test]
fn uids_are_scrubbed_from_details_also_the_three_component_uuid_form_but_not_measurements() {
    let text = "series 2.25.121940363472923306262788906949144069340 and 1.2.840.10008.5.1.4.1.1.4: a gap of 2.0 mm";
    assert_eq!(scrub_uids(text), "series (UID) and (UID): a gap of 2.0 mm");
}

#[test]
fn identifiers_are_held_only_with_the_phi_switch_and_then_for_the_newest_studies_only() {
    let at = Instant::now();
    let named = |n: usize| {
        let mut h = crate::daemon::assemble::tests::image(&format!("1.2.9.{n}"), "exam/dce", 0, 0, Some(3));
        h.study_uid = format!("1.2.8.{n}");
        h.accession_number = Some(format!("ACC{n}"));
        h.patient_name = Some(format!("DOE^JANE{n}"));
        let file = h.slices[0].file.to_string_lossy().to_string();
        intake(&file, Classified::Image(Box::new(h)), at)
    };
    let mut off = core(MemoryStore::default());
    let mut cfg = config();
    cfg.phi.include_identifiers = true;
    let mut on = Core::new(
        &cfg,
        Arc::new(Formula),
        SECRET.to_vec(),
        Metrics::new(),
        MemoryStore::default(),
    );
    for n in 0..REMEMBERED_IDENTIFIERS + 50 {
        off.on(Happened::Classified(vec![named(n)]));
        on.on(Happened::Classified(vec![named(n)]));
    }
    assert!(off.identifiers.is_empty(), "switch off: no identifier held");
    assert_eq!(on.identifiers.len(), REMEMBERED_IDENTIFIERS, "switch on: bounded");
    assert!(
        on.identifiers
            .contains_key(&format!("1.2.8.{}", REMEMBERED_IDENTIFIERS + 49))
    );
    assert!(!on.identifiers.contains_key(&"1.2.8.0".to_string()));
}
