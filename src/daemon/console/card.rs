//! One examination as the console page shows it: a [`Card`] per series, and the [`ConsoleNote`]s the core sends
//! as the series goes from waiting for its ROI to computing to answered (or failed), updated and revised.

use serde::{Deserialize, Serialize};

use crate::daemon::assemble::ReadySeries;
use crate::daemon::payload::{MessageKind, ResultMessage, SeriesKey, StudyKey};
use crate::model::{OodFlag, OodKind};

/// Where a series stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardState {
    /// The images are complete; the ROI has not come.
    WaitingForRoi,
    /// Being computed (a first answer, or a revision while the earlier answer stays shown).
    Computing,
    /// Answered: the card holds the latest answer.
    Answered,
    /// Could not be computed (the reason says why); its files are in quarantine or, for our own fault, still in
    /// the export folder.
    Failed,
}

/// Who the patient is, on the console only (`console.show_identifiers`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PatientShown {
    /// PatientName, DICOM `^` replaced by spaces.
    pub name: String,
    /// PatientID.
    pub id: String,
    /// AccessionNumber.
    pub accession: String,
}

/// What identifies the examination on the card.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesShown {
    /// SeriesDescription.
    pub description: String,
    /// Acquisition time of the series' first image, `HH:MM` (the scanner's clock).
    pub acquired: Option<String>,
    /// The examination says it is SYNTHETIC (the demo's generated phantoms).
    pub synthetic: bool,
    /// Only with `console.show_identifiers`.
    pub patient: Option<PatientShown>,
}

impl SeriesShown {
    /// What the card shows of a series (its patient only when `identifiers`).
    pub fn of(ready: &ReadySeries, identifiers: bool) -> SeriesShown {
        let first = ready.instances.first();
        let acquired = ready
            .instances
            .iter()
            .flat_map(|i| i.slices.iter())
            .filter_map(|s| s.acquisition_time)
            .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.min(t))))
            .map(|s| format!("{:02}:{:02}", (s / 3600.0) as u32 % 24, (s / 60.0) as u32 % 60));
        let description = first.map(|i| i.series_description.clone()).unwrap_or_default();
        let name = first.and_then(|i| i.patient_name.clone()).unwrap_or_default();
        SeriesShown {
            synthetic: description.to_ascii_uppercase().starts_with("SYNTHETIC") || name.starts_with("SYNTHETIC"),
            description,
            acquired,
            patient: identifiers.then(|| PatientShown {
                name: name.replace('^', " ").trim().to_string(),
                id: first.and_then(|i| i.patient_id.clone()).unwrap_or_default(),
                accession: first.and_then(|i| i.accession_number.clone()).unwrap_or_default(),
            }),
        }
    }
}

/// An earlier answer a card's latest one replaces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replaced {
    /// What it was.
    pub kind: MessageKind,
    /// Its message id.
    pub message_id: String,
    /// When it was computed (RFC 3339).
    pub computed: String,
    /// The LN read it used (`positive`, `negative`, `unknown`).
    pub ln: String,
}

/// One series on the page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    /// The series (cards are keyed by it).
    pub series_key: SeriesKey,
    /// Its study (an LN read is entered for the study).
    pub study_key: StudyKey,
    /// Where it stands.
    pub state: CardState,
    /// What identifies it.
    pub shown: SeriesShown,
    /// The latest answer, as published on MQTT (without identifiers).
    pub answer: Option<ResultMessage>,
    /// Out-of-distribution flags of the answer, in plain words.
    pub flags: Vec<String>,
    /// Earlier answers, oldest first.
    pub replaces: Vec<Replaced>,
    /// Why it could not be computed (or why its revision could not be).
    pub failure: Option<String>,
    /// Last change (RFC 3339 UTC).
    pub updated: String,
    /// Last change, Unix seconds (the day's window).
    pub updated_unix: u64,
    /// When the page first showed the series, Unix seconds (cards are ordered by it, newest first, so that a
    /// card does not move while someone enters its LN read).
    pub since_unix: u64,
}

/// What the core tells the console, as it happens.
#[derive(Debug, Clone)]
pub enum ConsoleNote {
    /// A series is complete and waits for its ROI.
    Waiting {
        /// The series.
        series_key: SeriesKey,
        /// Its study.
        study_key: StudyKey,
    },
    /// A series is handed to a worker.
    Computing {
        /// The series.
        series_key: SeriesKey,
        /// Its study.
        study_key: StudyKey,
        /// What identifies it.
        shown: SeriesShown,
    },
    /// An answer was committed (spooled and in the ledger): a result, an update or a revision.
    Answered {
        /// The message as spooled for MQTT.
        message: Box<ResultMessage>,
        /// What identifies the series (`None` for an LN update: the card keeps what it showed).
        shown: Option<SeriesShown>,
    },
    /// A series could not be computed.
    Failed {
        /// The series.
        series_key: SeriesKey,
        /// Its study.
        study_key: StudyKey,
        /// Why, as the event says it (no identifiers).
        reason: String,
    },
}

/// A flag in the words a technologist reads.
pub fn plain_words(f: &OodFlag) -> String {
    let name = f.name.replace('_', " ");
    match f.kind {
        OodKind::Acquisition => format!(
            "Acquired unlike the training cohort: {name} is {} (training {} to {}). The model was not validated on \
             such images.",
            short(f.value),
            short(f.min),
            short(f.max)
        ),
        OodKind::Feature => format!(
            "Outside the training range: {name} is {} (training {} to {}). Read the risk with care.",
            short(f.value),
            short(f.min),
            short(f.max)
        ),
    }
}

/// Four significant digits.
fn short(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 8) as usize;
    format!("{v:.digits$}")
}

impl Card {
    fn new(series_key: SeriesKey, study_key: StudyKey, state: CardState, now: (String, u64)) -> Card {
        Card {
            series_key,
            study_key,
            state,
            shown: SeriesShown::default(),
            answer: None,
            flags: Vec::new(),
            replaces: Vec::new(),
            failure: None,
            updated: now.0,
            updated_unix: now.1,
            since_unix: now.1,
        }
    }

    /// The card after `note` (`card` is the series' card so far, if any); `None` when the note changes nothing
    /// (a series that waits again after it was answered cannot happen, and is not shown).
    pub fn apply(card: Option<&Card>, note: ConsoleNote, now: (String, u64)) -> Option<Card> {
        match note {
            ConsoleNote::Waiting { series_key, study_key } => match card {
                Some(c) if c.answer.is_some() || c.state == CardState::WaitingForRoi => None,
                Some(c) => Some(Card {
                    state: CardState::WaitingForRoi,
                    updated: now.0,
                    updated_unix: now.1,
                    ..c.clone()
                }),
                None => Some(Card::new(series_key, study_key, CardState::WaitingForRoi, now)),
            },
            ConsoleNote::Computing {
                series_key,
                study_key,
                shown,
            } => {
                let mut c = card
                    .cloned()
                    .unwrap_or_else(|| Card::new(series_key, study_key, CardState::Computing, now.clone()));
                c.state = CardState::Computing;
                c.shown = shown;
                c.failure = None;
                c.updated = now.0;
                c.updated_unix = now.1;
                Some(c)
            }
            ConsoleNote::Answered { message, shown } => {
                let mut message = *message;
                message.identifiers = None;
                let mut c = card.cloned().unwrap_or_else(|| {
                    Card::new(
                        message.series_key.clone(),
                        message.study_key.clone(),
                        CardState::Answered,
                        now.clone(),
                    )
                });
                if c.answer.as_ref().is_some_and(|a| a.message_id == message.message_id) {
                    return None;
                }
                if let Some(prev) = c.answer.take() {
                    c.replaces.push(Replaced {
                        kind: prev.kind,
                        message_id: prev.message_id,
                        computed: prev.timestamps.get("computed").cloned().unwrap_or_default(),
                        ln: crate::model::LnRead::status_text(prev.mri_ln_status).to_string(),
                    });
                }
                if let Some(s) = shown {
                    c.shown = s;
                }
                c.flags = message.out_of_distribution.iter().map(plain_words).collect();
                c.answer = Some(message);
                c.state = CardState::Answered;
                c.failure = None;
                c.updated = now.0;
                c.updated_unix = now.1;
                Some(c)
            }
            ConsoleNote::Failed {
                series_key,
                study_key,
                reason,
            } => {
                let mut c = card
                    .cloned()
                    .unwrap_or_else(|| Card::new(series_key, study_key, CardState::Failed, now.clone()));
                // a revision that fails leaves the earlier answer standing
                c.state = if c.answer.is_some() {
                    CardState::Answered
                } else {
                    CardState::Failed
                };
                c.failure = Some(reason);
                c.updated = now.0;
                c.updated_unix = now.1;
                Some(c)
            }
        }
    }
}
