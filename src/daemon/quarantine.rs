//! The quarantine: where input the daemon cannot use goes, how much it holds, and how long it is kept.
//!
//! The core decides what goes to quarantine (and counts and reports it: `alnrisk_quarantined_total{reason}`, a
//! `quarantined` event); [`Quarantine`] here, owned by the driver, moves the files and keeps the folder.
//!
//! - **Layout.** `state.dir/quarantine/<YYYY-MM-DD>/` per UTC day: a bad file with `<name>.reason.json` beside it;
//!   the files of a series that failed in `series-<key>/` with one `series.reason.json` (the reason code, the
//!   error, the files' names within the export folder with the references events used for them, the time).
//!   Moves are durable ([`super::fsio::move_into`]). `alnrisk quarantine list` and `show REF` ([`entries`])
//!   print the notes for someone logged in to the box: the real names never leave it.
//! - **Size.** `alnrisk_quarantine_files` (quarantined inputs; the reason notes are not counted) and
//!   `alnrisk_quarantine_bytes` (everything in the folder): raised at each quarantine and surveyed again at start
//!   and every [`SWEEP_EVERY`], so a fleet sees a box that quarantines more than it should, or a folder somebody
//!   emptied by hand.
//! - **Retention** (`state.quarantine_keep_days`). Quarantined files are examination files: they carry protected
//!   health information, and a scanner-side box should not keep it longer than the site's policy allows (the
//!   console exported copies; the originals stay on the scanner and in PACS). With `quarantine_keep_days = N` a
//!   day folder is deleted, whole, once it is more than N days old (a file quarantined on day D goes on day
//!   D + N + 1) — each deletion reported as a `quarantine_purged` event naming the day, the files and the bytes,
//!   and counted (`alnrisk_quarantine_purged_files_total`). A folder whose name is not a date is never deleted.
//!   0 (the default) keeps everything: deleting is the site's decision, not ours.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::config::DaemonConfig;
use super::fsio;
use super::metrics::Metrics;
use super::payload::SeriesKey;
use super::store::StatePaths;

/// How often the quarantine folder is surveyed (and old days deleted).
pub const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Suffix of the reason notes written beside quarantined files.
const NOTE_SUFFIX: &str = ".reason.json";

/// Files and bytes below a folder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuarantineSize {
    /// Quarantined input files (reason notes not counted).
    pub files: u64,
    /// Bytes of every file, notes included.
    pub bytes: u64,
}

impl QuarantineSize {
    /// Everything below `dir` ([`crate::ingest::list_files`]; a missing or unreadable folder counts as empty).
    pub fn of(dir: &Path) -> QuarantineSize {
        let files = crate::ingest::list_files(dir).unwrap_or_default();
        files.iter().fold(QuarantineSize::default(), |size, f| QuarantineSize {
            files: size.files + u64::from(!f.to_string_lossy().ends_with(NOTE_SUFFIX)),
            bytes: size.bytes + std::fs::metadata(f).map_or(0, |m| m.len()),
        })
    }
}

/// Whether the day folder `name` is past a retention of `keep_days` days on day `today` (days since the epoch):
/// more than `keep_days` days old. Never for a name that is not a date, nor with `keep_days` 0 (keep).
pub fn expired(name: &str, today: i64, keep_days: u32) -> bool {
    keep_days > 0 && crate::time::days_from_civil(name).is_some_and(|day| today - day > i64::from(keep_days))
}

/// `path` relative to `root`, as a quarantine note writes it (the note stays on the box).
pub fn relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

/// How events and notes name a series that failed (the first 16 hex digits of its key): `series 0123…`; its
/// quarantine folder is the same with a dash, `series-0123…`.
pub fn series_ref(key: &SeriesKey) -> String {
    format!("series {}", key.as_str().get(..16).unwrap_or(key.as_str()))
}

/// The note beside quarantined files (`<file>.reason.json`, or `series.reason.json` in a series' folder). It
/// stays on the box: `files` are the real names (they may name the patient); events carry only `file_refs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineNote {
    /// The files' names relative to the export folder, as they were there.
    pub files: Vec<String>,
    /// Their references as events named them, in the same order.
    pub file_refs: Vec<String>,
    /// The reason code ([`crate::error::Error::reason_code`]).
    pub reason: String,
    /// The error in full.
    pub detail: String,
    /// When (UTC, RFC 3339).
    pub at: String,
}

/// One quarantined input as an operator looks it up: its note and where its files are now.
#[derive(Debug, Clone)]
pub struct QuarantineEntry {
    /// The UTC day folder (`YYYY-MM-DD`).
    pub day: String,
    /// `series 0123…` for a series' folder, else the file reference (`file 3f9a…`).
    pub reference: String,
    /// The note's path.
    pub note_path: PathBuf,
    /// The note.
    pub note: QuarantineNote,
    /// The quarantined files that are there now (beside the note, or in the series' folder).
    pub stored: Vec<PathBuf>,
}

impl QuarantineEntry {
    /// Whether `query` names this entry: its reference (`file 3f9a…`, `series 0123…`), the hex digits alone or a
    /// prefix of them (at least 6), or the series folder's name.
    pub fn matches(&self, query: &str) -> bool {
        let q = query.trim().trim_start_matches("file").trim_start_matches("series");
        let q = q.trim_start_matches([' ', '-']);
        if q.len() < 6 {
            return false;
        }
        std::iter::once(&self.reference)
            .chain(&self.note.file_refs)
            .filter_map(|r| r.split_once(' ').map(|(_, hex)| hex))
            .any(|hex| hex.starts_with(q))
    }
}

/// The quarantine folder of the daemon configured by `cfg` (`state.dir/quarantine`).
pub fn folder(cfg: &DaemonConfig) -> PathBuf {
    StatePaths::of(cfg).quarantine
}

/// Every quarantined input below `dir` (`state.dir/quarantine`), oldest day first, and the notes that could not be
/// read (their paths may name a patient: the caller shows them to the operator, they are never logged). For
/// `alnrisk quarantine list` and `show`, run on the box.
pub fn entries(dir: &Path) -> (Vec<QuarantineEntry>, Vec<PathBuf>) {
    let mut notes: Vec<PathBuf> = crate::ingest::list_files(dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f.to_string_lossy().ends_with(NOTE_SUFFIX))
        .collect();
    notes.sort();
    let (mut out, mut unreadable) = (Vec::new(), Vec::new());
    for note_path in notes {
        let note: QuarantineNote = match std::fs::read(&note_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            Some(n) => n,
            None => {
                unreadable.push(note_path);
                continue;
            }
        };
        let Some(folder) = note_path.parent() else { continue };
        let name = note_path.file_name().unwrap_or_default().to_string_lossy().to_string();
        let series = name == format!("series{NOTE_SUFFIX}");
        let (day_folder, reference, stored) = if series {
            let folder_name = folder
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .replacen('-', " ", 1);
            let stored = crate::ingest::list_files(folder)
                .unwrap_or_default()
                .into_iter()
                .filter(|f| !f.to_string_lossy().ends_with(NOTE_SUFFIX))
                .collect();
            (folder.parent().unwrap_or(folder), folder_name, stored)
        } else {
            let file = folder.join(name.trim_end_matches(NOTE_SUFFIX));
            let reference = note.file_refs.first().cloned().unwrap_or_default();
            (folder, reference, file.exists().then_some(file).into_iter().collect())
        };
        out.push(QuarantineEntry {
            day: day_folder.file_name().unwrap_or_default().to_string_lossy().to_string(),
            reference,
            note_path: note_path.clone(),
            note,
            stored,
        });
    }
    (out, unreadable)
}

/// What the core decided to quarantine (it has counted and reported it already).
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineOrder {
    /// The files: one bad file, or every file of a series that failed (and its ROI).
    pub files: Vec<PathBuf>,
    /// Their references as events named them (the core's `file_ref`), in the same order.
    pub file_refs: Vec<String>,
    /// The reason code ([`crate::error::Error::reason_code`]).
    pub reason: &'static str,
    /// The error in full (it may name paths: it stays in the note, on the box).
    pub detail: String,
    /// For a series: the folder of its own, `series-<16 hex digits of its key>`.
    pub series_folder: Option<String>,
}

/// A quarantine day folder that was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgedDay {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Quarantined files it held.
    pub files: u64,
    /// Its bytes, notes included.
    pub bytes: u64,
}

/// The quarantine folder: it moves what it is ordered to, keeps the size gauges and deletes what is past the
/// retention. Owned by the driver (it touches the disk); the core only orders.
pub struct Quarantine {
    dir: PathBuf,
    export_dir: PathBuf,
    keep_days: u32,
    metrics: Arc<Metrics>,
    /// When the folder was last surveyed.
    swept: Option<Instant>,
}

impl Quarantine {
    /// `state.dir/quarantine` as `cfg` names it.
    pub fn new(cfg: &DaemonConfig, metrics: Arc<Metrics>) -> Quarantine {
        Quarantine {
            dir: StatePaths::of(cfg).quarantine,
            export_dir: cfg.watch.export_dir.clone(),
            keep_days: cfg.state.quarantine_keep_days,
            metrics,
            swept: None,
        }
    }

    /// Move the order's files (those still there) to `quarantine/<day>/` — a series into a folder of its own —
    /// with one `.reason.json` naming them, their references, the reason, the error and the time.
    pub fn put(&self, order: &QuarantineOrder) {
        let day = crate::time::utc_now().get(..10).unwrap_or("undated").to_string();
        let mut dir = self.dir.join(day);
        if let Some(s) = &order.series_folder {
            dir = dir.join(s);
        }
        let present: Vec<(&PathBuf, &String)> = order
            .files
            .iter()
            .zip(&order.file_refs)
            .filter(|(f, _)| f.exists())
            .collect();
        let mut moved = Vec::new();
        for (f, file_ref) in &present {
            match fsio::move_into(f, &dir) {
                Ok(dest) => moved.push(dest),
                // the log names the file by its reference, as events do (its name may name the patient)
                Err(e) => tracing::error!(file = %file_ref, "could not move to quarantine: {}", e.neutral()),
            }
        }
        let note = QuarantineNote {
            files: present.iter().map(|(f, _)| relative(f, &self.export_dir)).collect(),
            file_refs: present.iter().map(|(_, r)| r.to_string()).collect(),
            reason: order.reason.to_string(),
            detail: order.detail.clone(),
            at: crate::time::utc_now(),
        };
        let note_path = match (&order.series_folder, moved.first()) {
            (Some(_), _) => dir.join(format!("series{NOTE_SUFFIX}")),
            (None, Some(dest)) => {
                let name = dest
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                dir.join(format!("{name}{NOTE_SUFFIX}"))
            }
            (None, None) => dir.join(format!("unmoved{NOTE_SUFFIX}")),
        };
        let note_bytes = serde_json::to_string_pretty(&note).unwrap_or_default();
        if let Err(e) = fsio::write_durable(&note_path, note_bytes.as_bytes()) {
            tracing::error!("quarantine note: {}", e.neutral());
        }
        let moved_bytes: u64 = moved
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        self.metrics.quarantine_files.add(moved.len() as i64);
        self.metrics
            .quarantine_bytes
            .add((moved_bytes + note_bytes.len() as u64) as i64);
    }

    /// Every [`SWEEP_EVERY`] (and at the first call): delete the day folders past `state.quarantine_keep_days`,
    /// then survey what is left for the gauges. Returns the days deleted (for the core to report), or `None` when
    /// it is not time yet.
    pub fn sweep(&mut self, today: i64) -> Option<Vec<PurgedDay>> {
        if self.swept.is_some_and(|t| t.elapsed() < SWEEP_EVERY) {
            return None;
        }
        self.swept = Some(Instant::now());
        let mut purged = Vec::new();
        if self.keep_days > 0
            && let Ok(days) = std::fs::read_dir(&self.dir)
        {
            let mut days: Vec<PathBuf> = days
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| expired(&n.to_string_lossy(), today, self.keep_days))
                })
                .collect();
            days.sort();
            for day in days {
                let size = QuarantineSize::of(&day);
                let name = day.file_name().unwrap_or_default().to_string_lossy().to_string();
                match std::fs::remove_dir_all(&day) {
                    Ok(()) => purged.push(PurgedDay {
                        day: name,
                        files: size.files,
                        bytes: size.bytes,
                    }),
                    Err(e) => tracing::error!(dir = %day.display(), "could not delete an expired quarantine day: {e}"),
                }
            }
            if let Err(e) = fsio::sync_dir(&self.dir) {
                tracing::warn!("quarantine folder: {e}");
            }
        }
        let size = QuarantineSize::of(&self.dir);
        self.metrics.quarantine_files.set(size.files as i64);
        self.metrics.quarantine_bytes.set(size.bytes as i64);
        Some(purged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_folder_expires_the_day_after_its_retention_and_only_a_date_does() {
        let day = crate::time::days_from_civil("2026-11-01").unwrap();
        assert!(!expired("2026-11-01", day + 30, 30), "30 days old: kept");
        assert!(expired("2026-11-01", day + 31, 30), "31 days old: deleted");
        assert!(!expired("2026-11-01", day + 10_000, 0), "0 keeps everything");
        assert!(!expired("undated", day + 10_000, 1));
        assert!(!expired("2026-11-01.old", day + 10_000, 1));
        assert!(!expired("2026-11-01", day - 3, 1), "a clock set back deletes nothing");
    }

    #[test]
    fn the_size_counts_inputs_not_notes_and_a_missing_folder_is_empty() {
        let d = std::env::temp_dir().join(format!("alnrisk-quarantine-size-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("2026-11-01/series-abc")).unwrap();
        std::fs::write(d.join("2026-11-01/bad.dcm"), [0u8; 100]).unwrap();
        std::fs::write(d.join("2026-11-01/bad.dcm.reason.json"), [b'{'; 10]).unwrap();
        std::fs::write(d.join("2026-11-01/series-abc/1.dcm"), [0u8; 7]).unwrap();
        std::fs::write(d.join("2026-11-01/series-abc/series.reason.json"), [b'{'; 3]).unwrap();
        assert_eq!(QuarantineSize::of(&d), QuarantineSize { files: 2, bytes: 120 });
        assert_eq!(QuarantineSize::of(&d.join("absent")), QuarantineSize::default());
        let _ = std::fs::remove_dir_all(&d);
    }
}
