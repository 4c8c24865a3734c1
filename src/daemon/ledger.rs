//! The idempotency ledger: one fsynced JSON line per message the daemon committed to publish, keyed by
//! (series key, bundle sha256), with the key of the ROI the answer used. A restart or a duplicate export of a
//! series already answered by this bundle is not computed or published again, nor is a ROI already used (or set
//! aside); a newer ROI is a revision (the daemon's `revision` module). An MRI LN read finds the study's latest
//! image-based values here to publish the update. Keys are HMACs, so the ledger holds no UIDs.
//!
//! A crash between the spool write and the ledger append is covered: the spool entry carries its message, and
//! the daemon records every spooled message the ledger lacks when it starts (`recover_ledger` in the daemon's
//! core).

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
    pub out_of_distribution: Vec<String>,
    /// RFC 3339 UTC.
    pub at: String,
}

/// The ledger file and its index.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
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
            path: path.to_path_buf(),
            by_series: BTreeMap::new(),
            members: BTreeMap::new(),
            rois: BTreeSet::new(),
            messages: BTreeSet::new(),
            by_folder: BTreeMap::new(),
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
    pub fn latest(&self, series_key: &SeriesKey, bundle_sha256: &str) -> Option<&LedgerRecord> {
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
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        fsio::append_line(&self.path, &line)?;
        self.index(r);
        Ok(())
    }

    /// The latest record of each series of a study answered by this bundle.
    pub fn for_study(&self, study_key: &StudyKey, bundle_sha256: &str) -> Vec<&LedgerRecord> {
        self.by_series
            .values()
            .filter(|r| &r.study_key == study_key && r.bundle_sha256 == bundle_sha256)
            .collect()
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
}
