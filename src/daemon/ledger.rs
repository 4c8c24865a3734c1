//! The idempotency ledger: one fsynced JSON line per message the daemon committed to publish, keyed by
//! (series key, bundle sha256), with the key of the ROI the answer used. A restart or a duplicate export of a
//! series already answered by this bundle is not computed or published again, nor is a ROI already used (or set
//! aside); a newer ROI is a revision (the daemon's `revision` module). An MRI LN read finds the study's latest
//! image-based values here to publish the update. Keys are HMACs, so the ledger holds no UIDs.
//!
//! A crash between the spool write and the ledger append is covered: the spool entry carries its message, and
//! the daemon records every spooled message the ledger lacks when it starts (`recover_ledger` in
//! the daemon's store).
//!
//! **Retention.** A process meant to run for years cannot keep every answer: [`Ledger::compact`] rewrites the
//! file (atomically) so that a series last answered more than `state.ledger_keep_days` days ago keeps one
//! *retired* line: its keys (series, linked members, ROIs, folders, message id) but no signatures, LN read or
//! flags. A retired series is still refused as a duplicate and its ROIs are still known, so a re-export of an old
//! examination is not computed again; it can no longer take an LN update or a revision (reported, not applied).
//! Series answered within the retention keep every line, so the message history the spool recovery needs is
//! intact.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::fsio;
use super::payload::{FolderKey, MessageKind, RoiKey, SeriesKey, StudyKey};
use crate::error::{Error, Result};

/// One committed message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LedgerRecord {
    /// HMAC of SeriesInstanceUID (of the first member of a linked DCE set).
    pub series_key: SeriesKey,
    /// HMACs of the other members of a linked DCE set (Siemens-style, one series per phase); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub member_keys: Vec<SeriesKey>,
    /// HMAC of StudyInstanceUID.
    pub study_key: StudyKey,
    /// Bundle sha256.
    pub bundle_sha256: String,
    /// Message id published.
    pub message_id: String,
    /// `result`, `update` or `revision`.
    pub kind: MessageKind,
    /// For an update or a revision: the message id of the series' first result.
    #[serde(default)]
    pub updates: Option<String>,
    /// HMAC of the ROI's identity (absent in records written before ROIs were identified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roi_key: Option<RoiKey>,
    /// When that ROI was drawn, when it said so ([`crate::roi::dicom_date_time`]): a later revision must not be
    /// older.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roi_drawn_at: Option<String>,
    /// HMACs of the ROIs for the series that arrived before it was computed and lost to the one used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set_aside_roi_keys: Vec<RoiKey>,
    /// HMACs of the folders its image files lie in ([`FolderKey::of_path`]): how a label map finds the series it
    /// revises, also after a restart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folder_keys: Vec<FolderKey>,
    /// The LN read it used (`None`: unknown).
    pub ln: Option<crate::model::LnRead>,
    /// Signature values (to re-evaluate the nomogram when the LN read arrives).
    pub signatures: BTreeMap<String, f64>,
    /// Out-of-distribution flags of the images.
    pub out_of_distribution: Vec<crate::model::OodFlag>,
    /// RFC 3339 UTC.
    pub at: String,
    /// Past the retention ([`Ledger::compact`]): only the keys are left, so the series stays answered.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
}

impl LedgerRecord {
    /// What is left of the record once it is past the retention: its keys, no values.
    pub fn retire(self) -> LedgerRecord {
        LedgerRecord {
            ln: None,
            signatures: BTreeMap::new(),
            out_of_distribution: Vec::new(),
            retired: true,
            ..self
        }
    }

    /// The UTC day it was committed (days since the epoch), from `at`.
    fn day(&self) -> Option<i64> {
        crate::time::days_from_civil(self.at.get(..10)?)
    }
}

/// What [`Ledger::compact`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compaction {
    /// Series retired by this compaction.
    pub retired: usize,
    /// Lines in the file before and after.
    pub lines_before: usize,
    pub lines_after: usize,
}

/// The ledger file and its index.
#[derive(Debug, Default)]
pub struct Ledger {
    /// `None`: in memory only (the core's unit tests).
    path: Option<PathBuf>,
    by_series: BTreeMap<(SeriesKey, String), LedgerRecord>,
    /// (other member of a linked set, bundle) → the set's series key.
    members: BTreeMap<(SeriesKey, String), SeriesKey>,
    /// (ROI key, bundle) of every ROI an answer was computed from or set aside for.
    rois: BTreeSet<(RoiKey, String)>,
    /// Every message id committed.
    messages: BTreeSet<String>,
    /// (folder key, bundle) → the series answered from that folder.
    by_folder: BTreeMap<(FolderKey, String), SeriesKey>,
}

impl Ledger {
    /// Open (or create) the ledger. A torn last line (power cut during an append) is skipped with a warning.
    pub fn open(path: &Path) -> Result<Ledger> {
        let mut ledger = Ledger {
            path: Some(path.to_path_buf()),
            ..Ledger::in_memory()
        };
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
            if !text.is_empty() && !text.ends_with('\n') {
                // Close a torn line so the next append starts a line of its own.
                fsio::append_line(path, "")?;
            }
            for (n, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<LedgerRecord>(line) {
                    Ok(r) => ledger.index(r),
                    Err(e) => {
                        tracing::warn!(ledger = %path.display(), line = n + 1, "skipping unreadable ledger line: {e}")
                    }
                }
            }
        }
        Ok(ledger)
    }

    /// A ledger with no file: what it records is kept in memory only.
    pub fn in_memory() -> Ledger {
        Ledger::default()
    }

    fn index(&mut self, r: LedgerRecord) {
        for k in r.roi_key.iter().chain(&r.set_aside_roi_keys) {
            self.rois.insert((k.clone(), r.bundle_sha256.clone()));
        }
        self.messages.insert(r.message_id.clone());
        for f in &r.folder_keys {
            self.by_folder
                .insert((f.clone(), r.bundle_sha256.clone()), r.series_key.clone());
        }
        for m in &r.member_keys {
            self.members
                .insert((m.clone(), r.bundle_sha256.clone()), r.series_key.clone());
        }
        self.by_series
            .insert((r.series_key.clone(), r.bundle_sha256.clone()), r);
    }

    /// Whether this series (or a linked DCE set it is a member of) was already answered by this bundle.
    pub fn contains(&self, series_key: &SeriesKey, bundle_sha256: &str) -> bool {
        let k = (series_key.clone(), bundle_sha256.to_string());
        self.by_series.contains_key(&k) || self.members.contains_key(&k)
    }

    /// The latest record of the series (or of the linked DCE set it is a member of) answered by this bundle.
    /// (`None` also for a series past the retention: [`Ledger::retired`].)
    pub fn latest(&self, series_key: &SeriesKey, bundle_sha256: &str) -> Option<&LedgerRecord> {
        self.latest_any(series_key, bundle_sha256).filter(|r| !r.retired)
    }

    /// Whether the series was answered by this bundle so long ago that its answer was retired.
    pub fn retired(&self, series_key: &SeriesKey, bundle_sha256: &str) -> bool {
        self.latest_any(series_key, bundle_sha256).is_some_and(|r| r.retired)
    }

    fn latest_any(&self, series_key: &SeriesKey, bundle_sha256: &str) -> Option<&LedgerRecord> {
        let k = (series_key.clone(), bundle_sha256.to_string());
        let set = self.members.get(&k).map_or(k.clone(), |s| (s.clone(), k.1.clone()));
        self.by_series.get(&set)
    }

    /// Whether an answer of this bundle was computed from the ROI with this key, or set it aside for a newer one.
    pub fn known_roi(&self, roi_key: &RoiKey, bundle_sha256: &str) -> bool {
        self.rois.contains(&(roi_key.clone(), bundle_sha256.to_string()))
    }

    /// The series this bundle answered from the folder with this key.
    pub fn series_in_folder(&self, folder_key: &FolderKey, bundle_sha256: &str) -> Option<&SeriesKey> {
        self.by_folder.get(&(folder_key.clone(), bundle_sha256.to_string()))
    }

    /// Whether a message with this id was committed.
    pub fn has_message(&self, message_id: &str) -> bool {
        self.messages.contains(message_id)
    }

    /// Record a committed message (durably).
    pub fn record(&mut self, r: LedgerRecord) -> Result<()> {
        let line = serde_json::to_string(&r).map_err(|e| Error::Spool {
            path: self.path.clone().unwrap_or_default(),
            reason: e.to_string(),
        })?;
        if let Some(path) = &self.path {
            fsio::append_line(path, &line)?;
        }
        self.index(r);
        Ok(())
    }

    /// Retire every series whose latest answer was committed more than `keep_days` days before `today` (days
    /// since the epoch), and rewrite the file: one retired line for each such series, every line of the others.
    /// Written whole and renamed over the ledger ([`fsio::write_durable`]), so a crash leaves the old or the new
    /// file. `keep_days` 0 keeps everything.
    pub fn compact(&mut self, keep_days: u32, today: i64) -> Result<Compaction> {
        if keep_days == 0 {
            return Ok(Compaction::default());
        }
        let expired = |r: &LedgerRecord| !r.retired && r.day().is_some_and(|d| today - d > i64::from(keep_days));
        let to_retire: Vec<(SeriesKey, String)> = self
            .by_series
            .iter()
            .filter(|(_, r)| expired(r))
            .map(|(k, _)| k.clone())
            .collect();
        let mut c = Compaction {
            retired: to_retire.len(),
            ..Compaction::default()
        };
        for k in &to_retire {
            if let Some(r) = self.by_series.remove(k) {
                self.by_series.insert(k.clone(), r.retire());
            }
        }
        let Some(path) = self.path.clone() else {
            return Ok(c);
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Error::io(&path, e)),
        };
        c.lines_before = text.lines().filter(|l| !l.trim().is_empty()).count();
        if to_retire.is_empty() {
            c.lines_after = c.lines_before;
            return Ok(c);
        }
        let mut out = String::with_capacity(text.len());
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            // A series now retired is written once, below; a line that does not parse is dropped (it was
            // skipped on open, too).
            let Ok(r) = serde_json::from_str::<LedgerRecord>(line) else {
                continue;
            };
            let key = (r.series_key.clone(), r.bundle_sha256.clone());
            if self.by_series.get(&key).is_some_and(|l| l.retired) {
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        for r in self.by_series.values().filter(|r| r.retired) {
            let line = serde_json::to_string(r).map_err(|e| Error::Spool {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            out.push_str(&line);
            out.push('\n');
        }
        c.lines_after = out.lines().count();
        fsio::write_durable(&path, out.as_bytes())?;
        Ok(c)
    }

    /// The latest record of each series of a study answered by this bundle.
    pub fn for_study(&self, study_key: &StudyKey, bundle_sha256: &str) -> Vec<&LedgerRecord> {
        self.by_series
            .values()
            .filter(|r| &r.study_key == study_key && r.bundle_sha256 == bundle_sha256 && !r.retired)
            .collect()
    }

    /// Whether answers of this bundle for the study were retired ([`Ledger::compact`]).
    pub fn study_retired(&self, study_key: &StudyKey, bundle_sha256: &str) -> bool {
        self.by_series
            .values()
            .any(|r| r.retired && &r.study_key == study_key && r.bundle_sha256 == bundle_sha256)
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.by_series.len()
    }

    /// No records.
    pub fn is_empty(&self) -> bool {
        self.by_series.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(series: &str, kind: MessageKind) -> LedgerRecord {
        LedgerRecord {
            series_key: SeriesKey::of(b"k", series),
            member_keys: vec![],
            study_key: StudyKey::of(b"k", "study"),
            bundle_sha256: "b".into(),
            message_id: format!("m-{series}-{}", kind.as_str()),
            kind,
            updates: None,
            roi_key: Some(RoiKey::of(b"k", &format!("roi of {series}"))),
            roi_drawn_at: None,
            set_aside_roi_keys: vec![],
            folder_keys: vec![FolderKey::of(b"k", &format!("folder of {series}"))],
            ln: None,
            signatures: BTreeMap::new(),
            out_of_distribution: vec![],
            at: "now".into(),
            retired: false,
        }
    }

    #[test]
    fn records_survive_reopen_and_a_torn_line() {
        let d = std::env::temp_dir().join(format!("alnrisk-ledger-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("ledger.jsonl");
        let mut l = Ledger::open(&p).unwrap();
        l.record(LedgerRecord {
            set_aside_roi_keys: vec![RoiKey::of(b"k", "older roi of s1")],
            ..rec("s1", MessageKind::Result)
        })
        .unwrap();
        l.record(rec("s1", MessageKind::Update)).unwrap();
        l.record(LedgerRecord {
            member_keys: vec![SeriesKey::of(b"k", "s2-phase2"), SeriesKey::of(b"k", "s2-phase3")],
            ..rec("s2", MessageKind::Result)
        })
        .unwrap();
        // a record from before ROIs were identified still reads
        fsio::append_line(
            &p,
            &serde_json::to_string(&LedgerRecord {
                roi_key: None,
                ..rec("s4", MessageKind::Result)
            })
            .unwrap(),
        )
        .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"{\"series_key\":\"ab"))
            .unwrap();
        let l = Ledger::open(&p).unwrap();
        assert_eq!(l.len(), 3);
        assert!(l.contains(&SeriesKey::of(b"k", "s4"), "b"));
        assert!(l.has_message("m-s1-result") && l.has_message("m-s1-update") && !l.has_message("m-s3-result"));
        assert!(l.known_roi(&RoiKey::of(b"k", "roi of s1"), "b"));
        assert!(!l.known_roi(&RoiKey::of(b"k", "roi of s1"), "other bundle"));
        assert!(!l.known_roi(&RoiKey::of(b"k", "roi of s3"), "b"));
        assert!(l.known_roi(&RoiKey::of(b"k", "older roi of s1"), "b"), "set aside");
        assert_eq!(
            l.series_in_folder(&FolderKey::of(b"k", "folder of s2"), "b"),
            Some(&SeriesKey::of(b"k", "s2"))
        );
        assert_eq!(
            l.series_in_folder(&FolderKey::of(b"k", "folder of s2"), "other bundle"),
            None
        );
        // the latest record of a series, also when asked through another member of a linked set
        assert_eq!(
            l.latest(&SeriesKey::of(b"k", "s1"), "b").unwrap().kind,
            MessageKind::Update
        );
        assert_eq!(
            l.latest(&SeriesKey::of(b"k", "s2-phase3"), "b").unwrap().message_id,
            "m-s2-result"
        );
        assert!(l.latest(&SeriesKey::of(b"k", "s3"), "b").is_none());
        assert!(l.contains(&SeriesKey::of(b"k", "s1"), "b"));
        assert!(!l.contains(&SeriesKey::of(b"k", "s1"), "other bundle"));
        // the other members of a linked DCE set count as answered, and only for that bundle
        assert!(l.contains(&SeriesKey::of(b"k", "s2-phase3"), "b"));
        assert!(!l.contains(&SeriesKey::of(b"k", "s2-phase3"), "other bundle"));
        assert!(!l.contains(&SeriesKey::of(b"k", "s3"), "b"));
        let study = l.for_study(&StudyKey::of(b"k", "study"), "b");
        assert_eq!(study.len(), 3);
        assert!(study.iter().any(|r| r.message_id == "m-s1-update"));
    }

    #[test]
    fn compaction_retires_old_answers_keeps_them_refused_and_keeps_recent_history() {
        let d = std::env::temp_dir().join(format!("alnrisk-ledger-compact-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("ledger.jsonl");
        let mut l = Ledger::open(&p).unwrap();
        let old = |r: LedgerRecord| LedgerRecord {
            at: "2025-01-10T08:00:00Z".into(),
            signatures: BTreeMap::from([("deep_signature".to_string(), 0.5)]),
            ..r
        };
        l.record(old(rec("s1", MessageKind::Result))).unwrap();
        l.record(old(LedgerRecord {
            updates: Some("m-s1-result".into()),
            ..rec("s1", MessageKind::Update)
        }))
        .unwrap();
        let recent = |r: LedgerRecord| LedgerRecord {
            at: "2026-11-30T08:00:00Z".into(),
            ..r
        };
        l.record(recent(rec("s2", MessageKind::Result))).unwrap();
        l.record(recent(rec("s2", MessageKind::Update))).unwrap();
        let today = crate::time::days_from_civil("2026-12-01").unwrap();
        assert_eq!(
            l.compact(0, today).unwrap(),
            Compaction::default(),
            "0 keeps everything"
        );
        let c = l.compact(365, today).unwrap();
        assert_eq!(
            c,
            Compaction {
                retired: 1,
                lines_before: 4,
                lines_after: 3
            }
        );
        for l in [l, Ledger::open(&p).unwrap()] {
            let s1 = SeriesKey::of(b"k", "s1");
            assert!(l.contains(&s1, "b"), "a retired series is still answered");
            assert!(l.retired(&s1, "b") && l.latest(&s1, "b").is_none());
            assert!(l.known_roi(&RoiKey::of(b"k", "roi of s1"), "b"));
            assert!(l.has_message("m-s1-update"));
            assert!(l.study_retired(&StudyKey::of(b"k", "study"), "b"));
            assert_eq!(l.for_study(&StudyKey::of(b"k", "study"), "b").len(), 1, "only s2");
            let s2 = SeriesKey::of(b"k", "s2");
            assert!(!l.retired(&s2, "b"));
            assert_eq!(l.latest(&s2, "b").unwrap().kind, MessageKind::Update);
            assert!(l.has_message("m-s2-result"), "recent history kept whole");
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let retired: Vec<&str> = text.lines().filter(|l| l.contains("\"retired\":true")).collect();
        assert_eq!(retired.len(), 1);
        assert!(
            !retired[0].contains("deep_signature"),
            "no values are kept: {}",
            retired[0]
        );
        // compacting again changes nothing
        let mut l = Ledger::open(&p).unwrap();
        assert_eq!(l.compact(365, today).unwrap().retired, 0);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), text);
        let _ = std::fs::remove_dir_all(&d);
    }
}
