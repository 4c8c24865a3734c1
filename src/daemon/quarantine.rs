//! The quarantine: where input the daemon cannot use goes, how much it holds, and how long it is kept.
//!
//! - **Layout.** `state.dir/quarantine/<YYYY-MM-DD>/` per UTC day: a bad file with `<name>.reason.json` beside it;
//!   the files of a series that failed in `series-<key>/` with one `series.reason.json` (the reason code, the
//!   error, the files' names within the export folder, the time). Moves are durable ([`super::fsio::move_into`]).
//!   Every quarantine is counted (`alnrisk_quarantined_total{reason}`) and reported (`quarantined` event).
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
use std::time::{Duration, Instant};

use super::core::{Daemon, relative};
use super::event::EventKind;
use super::fsio;
use super::payload::{SeriesKey, StudyKey};
use crate::error::Error;

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

/// Today (UTC) in days since the epoch.
fn today() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() / 86_400) as i64)
}

impl Daemon {
    /// Move a file to quarantine with its `.reason.json`; count and report it.
    pub(super) fn quarantine_file(&self, path: &Path, err: &Error) {
        self.quarantine(&[path.to_path_buf()], err, None);
    }

    /// Move files (one bad file, or every file of a series that failed) to `quarantine/<day>/` — a series into a
    /// folder of its own — with one `.reason.json`, one event and one count.
    pub(super) fn quarantine(&self, files: &[PathBuf], err: &Error, series: Option<(&SeriesKey, &StudyKey)>) {
        let code = err.reason_code();
        let root = &self.cfg.watch.export_dir;
        let day = crate::time::utc_now().get(..10).unwrap_or("undated").to_string();
        let mut dir = self.quarantine_dir().join(day);
        if let Some((k, _)) = series {
            dir = dir.join(format!("series-{}", &k.as_str()[..16]));
        }
        let mut moved = Vec::new();
        for f in files {
            match fsio::move_into(f, &dir) {
                Ok(dest) => moved.push(dest),
                Err(e) => tracing::error!(file = %f.display(), "could not move to quarantine: {e}"),
            }
        }
        let what = match (series, files) {
            (None, [one]) => self.file_ref(one),
            _ => format!("series of {} file(s)", files.len()),
        };
        let note = serde_json::json!({
            "files": files.iter().map(|f| relative(f, root)).collect::<Vec<_>>(),
            "file_refs": files.iter().map(|f| self.file_ref(f)).collect::<Vec<_>>(),
            "reason": code,
            "detail": err.to_string(),
            "at": crate::time::utc_now(),
        });
        let note_path = match (series, moved.first()) {
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
            tracing::error!("quarantine note: {e}");
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
        self.metrics.quarantined.with_label_values(&[code]).inc();
        self.event(
            EventKind::Quarantined,
            format!("{what}: {code}: {}", err.neutral()),
            series.map(|(_, study)| study.clone()),
        );
    }

    /// Every [`SWEEP_EVERY`] (and at the first call): delete the day folders past `state.quarantine_keep_days`,
    /// each reported, then survey what is left for the gauges.
    pub(super) fn sweep_quarantine(&mut self) {
        if self.quarantine_swept.is_some_and(|t| t.elapsed() < SWEEP_EVERY) {
            return;
        }
        self.quarantine_swept = Some(Instant::now());
        let root = self.quarantine_dir();
        let keep = self.cfg.state.quarantine_keep_days;
        if keep > 0
            && let Ok(days) = std::fs::read_dir(&root)
        {
            let today = today();
            let mut days: Vec<PathBuf> = days
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| expired(&n.to_string_lossy(), today, keep))
                })
                .collect();
            days.sort();
            for day in days {
                let size = QuarantineSize::of(&day);
                let name = day.file_name().unwrap_or_default().to_string_lossy().to_string();
                match std::fs::remove_dir_all(&day) {
                    Ok(()) => {
                        self.metrics.quarantine_purged_files.inc_by(size.files);
                        self.event(
                            EventKind::QuarantinePurged,
                            format!(
                                "deleted the {} file(s) ({} bytes) quarantined on {name}: older than \
                                 state.quarantine_keep_days = {keep}",
                                size.files, size.bytes
                            ),
                            None,
                        );
                    }
                    Err(e) => tracing::error!(dir = %day.display(), "could not delete an expired quarantine day: {e}"),
                }
            }
            if let Err(e) = fsio::sync_dir(&root) {
                tracing::warn!("quarantine folder: {e}");
            }
        }
        let size = QuarantineSize::of(&root);
        self.metrics.quarantine_files.set(size.files as i64);
        self.metrics.quarantine_bytes.set(size.bytes as i64);
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
