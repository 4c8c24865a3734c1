//! The cards a sequence of notes makes, and the journal that brings them back after a restart.

use std::collections::BTreeMap;

use super::*;
use crate::daemon::payload::{BundleRef, MessageKind, ResultMessage, RiskFigures, StudyKey};
use crate::model::{LnRead, OodFlag};

fn key(n: &str) -> (SeriesKey, StudyKey) {
    (
        SeriesKey::of(b"secret", &format!("series {n}")),
        StudyKey::of(b"secret", &format!("study {n}")),
    )
}

fn figures(p: f64) -> RiskFigures {
    RiskFigures {
        probability: p,
        class: if p >= 0.5 { "high" } else { "low" }.into(),
        points: BTreeMap::from([("radiomics_signature".into(), 40.0), ("deep_signature".into(), 20.0)]),
        total_points: 60.0,
    }
}

fn message(n: &str, kind: MessageKind, id: &str, ln: Option<LnRead>) -> ResultMessage {
    let (series_key, study_key) = key(n);
    ResultMessage {
        schema: "x".into(),
        message_id: id.into(),
        kind,
        updates: None,
        roi_key: None,
        bundle: BundleRef {
            id: "b".into(),
            version: "1".into(),
            sha256: "s".into(),
        },
        study_key,
        series_key,
        mri_ln_status: ln,
        reported_factors: BTreeMap::new(),
        missing_factors: Vec::new(),
        cutoff: 0.5,
        risk: ln.map(|_| figures(0.7)),
        scenarios: if ln.is_none() {
            BTreeMap::from([
                ("if_ln_negative".into(), figures(0.3)),
                ("if_ln_positive".into(), figures(0.6)),
            ])
        } else {
            BTreeMap::new()
        },
        signatures: BTreeMap::new(),
        out_of_distribution: vec![OodFlag::acquisition("image_intensity_p99", 93.0, 180.0, 900.0)],
        timing_ms: BTreeMap::new(),
        timestamps: BTreeMap::from([("computed".into(), format!("2026-12-03T10:0{id}:00Z"))]),
        identifiers: Some(crate::daemon::payload::Identifiers {
            accession_number: "ACC1".into(),
            patient_name: "DOE^JANE".into(),
        }),
    }
}

fn at(t: u64) -> (String, u64) {
    (format!("t{t}"), t)
}

#[test]
fn a_series_goes_from_waiting_to_answered_to_updated_keeping_what_it_replaces() {
    let mut cards = Cards::in_memory();
    let (s, st) = key("a");
    let c = cards
        .apply(
            ConsoleNote::Waiting {
                series_key: s.clone(),
                study_key: st.clone(),
            },
            at(100),
        )
        .unwrap();
    assert_eq!(c.state, CardState::WaitingForRoi);
    assert!(
        cards
            .apply(
                ConsoleNote::Waiting {
                    series_key: s.clone(),
                    study_key: st.clone()
                },
                at(101)
            )
            .is_none()
    );
    let shown = SeriesShown {
        description: "DCE".into(),
        acquired: Some("10:01".into()),
        synthetic: true,
        patient: None,
    };
    let c = cards
        .apply(
            ConsoleNote::Computing {
                series_key: s.clone(),
                study_key: st.clone(),
                shown: shown.clone(),
            },
            at(102),
        )
        .unwrap();
    assert_eq!(c.state, CardState::Computing);
    let first = message("a", MessageKind::Result, "1", None);
    let c = cards
        .apply(
            ConsoleNote::Answered {
                message: Box::new(first.clone()),
                shown: Some(shown.clone()),
            },
            at(103),
        )
        .unwrap();
    assert_eq!(c.state, CardState::Answered);
    assert_eq!(c.since_unix, 100, "the card keeps its place");
    assert!(
        c.answer.as_ref().unwrap().identifiers.is_none(),
        "the card never holds the MQTT identifiers"
    );
    assert_eq!(c.flags.len(), 1);
    assert!(
        c.flags[0].contains("image intensity p99 is 93.00 (training 180.0 to 900.0)"),
        "{}",
        c.flags[0]
    );
    // the same message again (a replay after a restart) changes nothing
    assert!(
        cards
            .apply(
                ConsoleNote::Answered {
                    message: Box::new(first),
                    shown: None
                },
                at(104)
            )
            .is_none()
    );
    let update = message("a", MessageKind::Update, "2", Some(LnRead::Positive));
    let c = cards
        .apply(
            ConsoleNote::Answered {
                message: Box::new(update),
                shown: None,
            },
            at(105),
        )
        .unwrap();
    assert_eq!(c.shown, shown, "an LN update keeps what the card showed");
    assert_eq!(c.replaces.len(), 1);
    assert_eq!(
        (c.replaces[0].kind, c.replaces[0].ln.as_str()),
        (MessageKind::Result, "unknown")
    );
    assert_eq!(c.answer.unwrap().risk.unwrap().probability, 0.7);
}

#[test]
fn a_failed_revision_leaves_the_answer_and_a_failed_series_says_why() {
    let mut cards = Cards::in_memory();
    let (s, st) = key("b");
    let c = cards
        .apply(
            ConsoleNote::Failed {
                series_key: s.clone(),
                study_key: st.clone(),
                reason: "bad ROI".into(),
            },
            at(1),
        )
        .unwrap();
    assert_eq!((c.state, c.failure.as_deref()), (CardState::Failed, Some("bad ROI")));
    let m = message("b", MessageKind::Result, "1", None);
    cards.apply(
        ConsoleNote::Answered {
            message: Box::new(m),
            shown: None,
        },
        at(2),
    );
    let c = cards
        .apply(
            ConsoleNote::Failed {
                series_key: s,
                study_key: st,
                reason: "revised ROI empty".into(),
            },
            at(3),
        )
        .unwrap();
    assert_eq!(c.state, CardState::Answered);
    assert!(c.answer.is_some());
}

#[test]
fn the_journal_brings_back_the_days_cards_newest_first_and_forgets_older_ones() {
    let dir = std::env::temp_dir().join(format!("alnrisk-console-journal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(JOURNAL);
    let now = 10 * DAY_S;
    let mut cards = Cards::open(&path, now, true);
    for (n, t) in [("old", now - DAY_S - 5), ("a", now - 100), ("b", now - 50)] {
        let shown = SeriesShown {
            patient: Some(card::PatientShown {
                name: "JANE DOE".into(),
                id: "P1".into(),
                accession: "A1".into(),
            }),
            ..SeriesShown::default()
        };
        let m = message(n, MessageKind::Result, "1", None);
        cards.apply(
            ConsoleNote::Answered {
                message: Box::new(m),
                shown: Some(shown),
            },
            at(t),
        );
    }
    let before = cards.snapshot(now);
    assert_eq!(before.len(), 2, "a card older than a day is not shown");
    std::fs::write(&path, format!("{}not json\n", std::fs::read_to_string(&path).unwrap())).unwrap();
    drop(cards);
    let again = Cards::open(&path, now, true);
    assert_eq!(again.snapshot(now), before);
    assert_eq!(before[0].series_key, key("b").0, "newest first");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().lines().count(),
        2,
        "rewritten with the day's cards"
    );
    // the switch turned off: the journal loses the patients too
    let off = Cards::open(&path, now, false);
    assert!(off.snapshot(now).iter().all(|c| c.shown.patient.is_none()));
    assert!(!std::fs::read_to_string(&path).unwrap().contains("JANE"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn at_most_max_cards_are_kept() {
    let mut cards = Cards::in_memory();
    for i in 0..MAX_CARDS + 5 {
        let m = message(&i.to_string(), MessageKind::Result, "1", None);
        cards.apply(
            ConsoleNote::Answered {
                message: Box::new(m),
                shown: None,
            },
            at(i as u64 + 1),
        );
    }
    let all = cards.snapshot(MAX_CARDS as u64 + 10);
    assert_eq!(all.len(), MAX_CARDS);
    assert_eq!(all.last().unwrap().since_unix, 6, "the oldest went first");
}
