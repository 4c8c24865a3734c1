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
//!
//! **Memory.** What is held is an index (fixed-size keys, a bundle number, a line's offset), not the records: a
//! record is read back from the file at its offset when the core needs its values (an LN update, a revision, a
//! late ROI). So a year of answers costs the process a few hundred bytes each, and the duplicate checks on the hot
//! path never touch the disk.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
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
    /// The other reported factors it used, by cohort column ([`crate::model::Reported::factors`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub factors: BTreeMap<String, String>,
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
            factors: BTreeMap::new(),
            signatures: BTreeMap::new(),
            out_of_distribution: Vec::new(),
            retired: true,
            ..self
        }
    }

    /// What was reported for the study when it was answered.
    pub fn reported(&self) -> crate::model::Reported {
        crate::model::Reported {
            ln: self.ln,
            factors: self.factors.clone(),
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

/// The 32 bytes of a key ([`super::payload::Key::to_bytes`]): what the index holds instead of 64 hex digits.
type KeyBytes = [u8; 32];

/// Where a record's line lies in the ledger file (or the in-memory buffer).
#[derive(Debug, Clone, Copy)]
struct LineAt {
    offset: u64,
    len: u32,
}

/// What the index keeps of a series' latest record: where it lies, whether it is retired, and its day (for
/// [`Ledger::compact`], which then need not read it).
#[derive(Debug, Clone, Copy)]
struct SeriesEntry {
    line: LineAt,
    retired: bool,
    day: Option<i64>,
}

/// The bytes the records are read from.
#[derive(Debug)]
enum Backing {
    /// `ledger.jsonl`, opened for reading at offsets (a new line goes at the file's length, read when it is
    /// appended).
    File {
        path: PathBuf,
        reader: std::fs::File,
        /// An append failed part-way: the next one starts a new line first.
        torn: bool,
    },
    /// The core's unit tests: the same lines in memory.
    Memory(Vec<u8>),
}

/// The ledger: its records on disk, and in memory an index of keys and line offsets.
///
/// **Memory.** The index holds, per answer, fixed-size keys and a file offset (a few hundred bytes), not the
/// record: a record (signatures, LN read, flags) is read from the file when the core needs it, which is for an LN
/// update, a revision or a late ROI, never on the hot path of a new series. A year of answers at a busy site
/// (tens of thousands) costs a few MiB, not the tens of MiB whole records would.
#[derive(Debug)]
pub struct Ledger {
    backing: Backing,
    /// The bundles (sha256) the records name; the index holds a bundle by its position here.
    bundles: Vec<String>,
    /// (series key, bundle) → its latest record.
    by_series: HashMap<(KeyBytes, u16), SeriesEntry>,
    /// (study key, bundle, series key) of every series answered.
    by_study: BTreeSet<(KeyBytes, u16, KeyBytes)>,
    /// (other member of a linked set, bundle) → the set's series key.
    members: HashMap<(KeyBytes, u16), KeyBytes>,
    /// (ROI key, bundle) of every ROI an answer was computed from or set aside for.
    rois: HashSet<(KeyBytes, u16)>,
    /// Every message id committed, by [`message_digest`].
    messages: HashSet<u64>,
    /// (folder key, bundle) → the series answered from that folder.
    by_folder: HashMap<(KeyBytes, u16), KeyBytes>,
    /// Non-empty lines in the file.
    lines: usize,
}

impl Default for Ledger {
    /// [`Ledger::in_memory`].
    fn default() -> Ledger {
        Ledger::in_memory()
    }
}

/// A message id as the index holds it: the first 8 bytes of its SHA-256 (a false match among a year's messages
/// is as likely as 2⁻⁶⁴ times their number squared).
fn message_digest(message_id: &str) -> u64 {
    use sha2::Digest;
    let h = sha2::Sha256::digest(message_id.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    u64::from_le_bytes(b)
}

/// The complete lines of `bytes` with their offsets (empty lines skipped; a last line without its newline is
/// left out, as torn).
fn lines_of(bytes: &[u8]) -> impl Iterator<Item = (LineAt, &[u8])> {
    let mut offset = 0usize;
    std::iter::from_fn(move || {
        loop {
            let rest = bytes.get(offset..)?;
            let n = rest.iter().position(|&b| b == b'\n')?;
            let at = LineAt {
                offset: offset as u64,
                len: n as u32,
            };
            offset += n + 1;
            let line = &rest[..n];
            if !line.iter().all(u8::is_ascii_whitespace) {
                return Some((at, line));
            }
        }
    })
}

impl Ledger {
    /// Open (or create) the ledger. A torn last line (power cut during an append) is skipped with a warning.
    pub fn open(path: &Path) -> Result<Ledger> {
        let mut bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(path, e)),
        };
        if !bytes.is_empty() && !bytes.ends_with(b"\n") {
            // Close a torn line so the next append starts a line of its own.
            fsio::append_line(path, "")?;
            bytes.push(b'\n');
        }
        if !path.exists() {
            fsio::write_durable(path, b"")?;
        }
        let reader = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut ledger = Ledger::with_backing(Backing::File {
            path: path.to_path_buf(),
            reader,
            torn: false,
        });
        ledger.index_all(&bytes);
        Ok(ledger)
    }

    /// A ledger with no file: what it records is kept in memory only.
    pub fn in_memory() -> Ledger {
        Ledger::with_backing(Backing::Memory(Vec::new()))
    }

    fn with_backing(backing: Backing) -> Ledger {
        Ledger {
            backing,
            bundles: Vec::new(),
            by_series: HashMap::new(),
            by_study: BTreeSet::new(),
            members: HashMap::new(),
            rois: HashSet::new(),
            messages: HashSet::new(),
            by_folder: HashMap::new(),
            lines: 0,
        }
    }

    /// Rebuild the index from the ledger's bytes.
    fn index_all(&mut self, bytes: &[u8]) {
        self.by_series.clear();
        self.by_study.clear();
        self.members.clear();
        self.rois.clear();
        self.messages.clear();
        self.by_folder.clear();
        self.lines = 0;
        for (n, (at, line)) in lines_of(bytes).enumerate() {
            self.lines += 1;
            match serde_json::from_slice::<LedgerRecord>(line) {
                Ok(r) => self.index(&r, at),
                // the error's kind and column only: serde's text may quote what it read
                Err(e) => tracing::warn!(
                    line = n + 1,
                    column = e.column(),
                    "skipping unreadable ledger line ({:?} error)",
                    e.classify()
                ),
            }
        }
    }

    /// The position of `sha` among the bundles, added if new.
    fn bundle_id(&mut self, sha: &str) -> u16 {
        match self.bundles.iter().position(|b| b == sha) {
            Some(i) => i as u16,
            None => {
                self.bundles.push(sha.to_string());
                (self.bundles.len() - 1) as u16
            }
        }
    }

    /// The position of `sha` among the bundles (`None`: no record names it).
    fn known_bundle(&self, sha: &str) -> Option<u16> {
        self.bundles.iter().position(|b| b == sha).map(|i| i as u16)
    }

    fn index(&mut self, r: &LedgerRecord, line: LineAt) {
        let b = self.bundle_id(&r.bundle_sha256);
        let series = r.series_key.to_bytes();
        for k in r.roi_key.iter().chain(&r.set_aside_roi_keys) {
            self.rois.insert((k.to_bytes(), b));
        }
        self.messages.insert(message_digest(&r.message_id));
        for f in &r.folder_keys {
            self.by_folder.insert((f.to_bytes(), b), series);
        }
        for m in &r.member_keys {
            self.members.insert((m.to_bytes(), b), series);
        }
        self.by_study.insert((r.study_key.to_bytes(), b, series));
        self.by_series.insert(
            (series, b),
            SeriesEntry {
                line,
                retired: r.retired,
                day: r.day(),
            },
        );
    }

    /// Read the record at `line`.
    fn read(&self, line: LineAt) -> Result<LedgerRecord> {
        let mut buf = vec![0u8; line.len as usize];
        let (bytes, path) = match &self.backing {
            Backing::File { path, reader, .. } => {
                use std::os::unix::fs::FileExt;
                reader
                    .read_exact_at(&mut buf, line.offset)
                    .map_err(|e| Error::io(path, e))?;
                (&buf[..], path.clone())
            }
            Backing::Memory(m) => (
                m.get(line.offset as usize..line.offset as usize + line.len as usize)
                    .unwrap_or_default(),
                PathBuf::new(),
            ),
        };
        serde_json::from_slice(bytes).map_err(|e| Error::Spool {
            path,
            reason: format!("ledger line at byte {}: {e}", line.offset),
        })
    }

    /// The record at `line`, or `None` (logged) when it cannot be read: an answer the core then treats as not
    /// found for an update or a revision (it is still refused as a duplicate: that is the index's).
    fn read_or_log(&self, line: LineAt) -> Option<LedgerRecord> {
        match self.read(line) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::error!("could not read the ledger: {}", e.neutral());
                None
            }
        }
    }

    /// All the ledger's bytes (for [`Ledger::compact`]).
    fn all_bytes(&self) -> Result<Vec<u8>> {
        match &self.backing {
            Backing::File { path, .. } => std::fs::read(path).map_err(|e| Error::io(path, e)),
            Backing::Memory(m) => Ok(m.clone()),
        }
    }

    /// Whether this series (or a linked DCE set it is a member of) was already answered by this bundle.
    pub fn contains(&self, series_key: &SeriesKey, bundle_sha256: &str) -> bool {
        let Some(b) = self.known_bundle(bundle_sha256) else {
            return false;
        };
        let k = (series_key.to_bytes(), b);
        self.by_series.contains_key(&k) || self.members.contains_key(&k)
    }

    /// The latest record of the series (or of the linked DCE set it is a member of) answered by this bundle,
    /// read from the ledger. (`None` also for a series past the retention: [`Ledger::retired`].)
    pub fn latest(&self, series_key: &SeriesKey, bundle_sha256: &str) -> Option<LedgerRecord> {
        self.entry(series_key, bundle_sha256)
            .filter(|e| !e.retired)
            .and_then(|e| self.read_or_log(e.line))
    }

    /// Whether the series was answered by this bundle so long ago that its answer was retired.
    pub fn retired(&self, series_key: &SeriesKey, bundle_sha256: &str) -> bool {
        self.entry(series_key, bundle_sha256).is_some_and(|e| e.retired)
    }

    fn entry(&self, series_key: &SeriesKey, bundle_sha256: &str) -> Option<&SeriesEntry> {
        let b = self.known_bundle(bundle_sha256)?;
        let k = (series_key.to_bytes(), b);
        let set = self.members.get(&k).map_or(k, |s| (*s, b));
        self.by_series.get(&set)
    }

    /// Whether an answer of this bundle was computed from the ROI with this key, or set it aside for a newer one.
    pub fn known_roi(&self, roi_key: &RoiKey, bundle_sha256: &str) -> bool {
        self.known_bundle(bundle_sha256)
            .is_some_and(|b| self.rois.contains(&(roi_key.to_bytes(), b)))
    }

    /// The series this bundle answered from the folder with this key.
    pub fn series_in_folder(&self, folder_key: &FolderKey, bundle_sha256: &str) -> Option<SeriesKey> {
        let b = self.known_bundle(bundle_sha256)?;
        self.by_folder
            .get(&(folder_key.to_bytes(), b))
            .map(SeriesKey::from_bytes)
    }

    /// Whether a message with this id was committed.
    pub fn has_message(&self, message_id: &str) -> bool {
        self.messages.contains(&message_digest(message_id))
    }

    /// Record a committed message (durably).
    pub fn record(&mut self, r: LedgerRecord) -> Result<()> {
        let line = serde_json::to_string(&r).map_err(|e| Error::Spool {
            path: PathBuf::new(),
            reason: e.to_string(),
        })?;
        let at = match &mut self.backing {
            Backing::File { path, torn, .. } => {
                if *torn {
                    fsio::append_line(path, "")?;
                    *torn = false;
                }
                let offset = std::fs::metadata(&*path).map_err(|e| Error::io(&*path, e))?.len();
                if let Err(e) = fsio::append_line(path, &line) {
                    *torn = true;
                    return Err(e);
                }
                LineAt {
                    offset,
                    len: line.len() as u32,
                }
            }
            Backing::Memory(m) => {
                let offset = m.len() as u64;
                m.extend_from_slice(line.as_bytes());
                m.push(b'\n');
                LineAt {
                    offset,
                    len: line.len() as u32,
                }
            }
        };
        self.lines += 1;
        self.index(&r, at);
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
        let expired = |e: &SeriesEntry| !e.retired && e.day.is_some_and(|d| today - d > i64::from(keep_days));
        let newly = self.by_series.values().filter(|e| expired(e)).count();
        let mut c = Compaction {
            retired: newly,
            lines_before: self.lines,
            lines_after: self.lines,
        };
        if newly == 0 {
            return Ok(c);
        }
        // every series retired after this compaction (those before, and these), in the order of their lines
        let mut retired: Vec<(&(KeyBytes, u16), &SeriesEntry)> =
            self.by_series.iter().filter(|(_, e)| e.retired || expired(e)).collect();
        retired.sort_by_key(|(_, e)| e.line.offset);
        let retired_keys: HashSet<(KeyBytes, u16)> = retired.iter().map(|(k, _)| **k).collect();
        let bytes = self.all_bytes()?;
        let mut out = Vec::with_capacity(bytes.len());
        for (_, line) in lines_of(&bytes) {
            // A series now retired is written once, below; a line that does not parse is dropped (it was
            // skipped on open, too).
            let Ok(r) = serde_json::from_slice::<LedgerRecord>(line) else {
                continue;
            };
            let key = (
                r.series_key.to_bytes(),
                self.known_bundle(&r.bundle_sha256).unwrap_or(u16::MAX),
            );
            if retired_keys.contains(&key) {
                continue;
            }
            out.extend_from_slice(line);
            out.push(b'\n');
        }
        for (_, e) in &retired {
            let r = self.read(e.line)?.retire();
            let line = serde_json::to_string(&r).map_err(|e| Error::Spool {
                path: PathBuf::new(),
                reason: e.to_string(),
            })?;
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
        match &mut self.backing {
            Backing::File { path, reader, torn } => {
                fsio::write_durable(path, &out)?;
                *reader = std::fs::File::open(&*path).map_err(|e| Error::io(&*path, e))?;
                *torn = false;
            }
            Backing::Memory(m) => m.clone_from(&out),
        }
        self.index_all(&out);
        c.lines_after = self.lines;
        Ok(c)
    }

    /// The series of a study answered by this bundle, retired or not.
    fn study_series(&self, study_key: &StudyKey, bundle_sha256: &str) -> impl Iterator<Item = &SeriesEntry> {
        let b = self.known_bundle(bundle_sha256);
        let study = study_key.to_bytes();
        b.into_iter().flat_map(move |b| {
            self.by_study
                .range((study, b, [0u8; 32])..=(study, b, [u8::MAX; 32]))
                .filter_map(move |(_, _, s)| self.by_series.get(&(*s, b)))
        })
    }

    /// The latest record of each series of a study answered by this bundle (read from the ledger).
    pub fn for_study(&self, study_key: &StudyKey, bundle_sha256: &str) -> Vec<LedgerRecord> {
        self.study_series(study_key, bundle_sha256)
            .filter(|e| !e.retired)
            .filter_map(|e| self.read_or_log(e.line))
            .collect()
    }

    /// Whether answers of this bundle for the study were retired ([`Ledger::compact`]).
    pub fn study_retired(&self, study_key: &StudyKey, bundle_sha256: &str) -> bool {
        self.study_series(study_key, bundle_sha256).any(|e| e.retired)
    }

    /// Series held.
    pub fn len(&self) -> usize {
        self.by_series.len()
    }

    /// No series.
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
            factors: BTreeMap::new(),
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
            Some(SeriesKey::of(b"k", "s2"))
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
    fn records_are_read_back_from_the_file_and_the_index_alone_refuses_duplicates() {
        let d = std::env::temp_dir().join(format!("alnrisk-ledger-index-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("ledger.jsonl");
        let mut l = Ledger::open(&p).unwrap();
        let with_values = |r: LedgerRecord| LedgerRecord {
            signatures: BTreeMap::from([("deep_signature".to_string(), 0.25)]),
            ln: Some(crate::model::LnRead::Positive),
            factors: BTreeMap::new(),
            ..r
        };
        l.record(with_values(rec("s1", MessageKind::Result))).unwrap();
        l.record(with_values(rec("s2", MessageKind::Result))).unwrap();
        let s1 = SeriesKey::of(b"k", "s1");
        let s2 = SeriesKey::of(b"k", "s2");
        assert_eq!(l.latest(&s1, "b").unwrap().signatures["deep_signature"], 0.25);
        assert_eq!(l.latest(&s2, "b").unwrap().ln, Some(crate::model::LnRead::Positive));
        // damage s1's line on disk (same length, so s2's offset is unchanged): its values are read from there
        let text = std::fs::read_to_string(&p).unwrap();
        let first = text.lines().next().unwrap().len();
        let damaged = format!("{}{}", "#".repeat(first), &text[first..]);
        std::fs::write(&p, damaged).unwrap();
        assert!(l.latest(&s1, "b").is_none(), "read from the file, found unreadable");
        assert!(
            l.contains(&s1, "b"),
            "still refused as a duplicate: the index holds that"
        );
        assert!(l.has_message("m-s1-result"));
        assert_eq!(l.latest(&s2, "b").unwrap().signatures["deep_signature"], 0.25);
        assert_eq!(l.for_study(&StudyKey::of(b"k", "study"), "b").len(), 1);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn an_in_memory_ledger_compacts_as_the_file_does() {
        let mut l = Ledger::in_memory();
        l.record(LedgerRecord {
            at: "2025-01-10T08:00:00Z".into(),
            ..rec("s1", MessageKind::Result)
        })
        .unwrap();
        l.record(LedgerRecord {
            at: "2026-11-30T08:00:00Z".into(),
            ..rec("s2", MessageKind::Result)
        })
        .unwrap();
        let today = crate::time::days_from_civil("2026-12-01").unwrap();
        let c = l.compact(365, today).unwrap();
        assert_eq!((c.retired, c.lines_before, c.lines_after), (1, 2, 2));
        assert!(l.retired(&SeriesKey::of(b"k", "s1"), "b"));
        assert!(l.latest(&SeriesKey::of(b"k", "s2"), "b").is_some());
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
