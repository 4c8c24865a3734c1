//! The Structured Reports waiting for PACS, below `state.dir/pacs/`:
//!
//! - `outbox/<seq>.dcm`: each report as a Part-10 file, written durably before its answer is spooled for MQTT,
//!   sent in sequence order and deleted only once PACS answered the C-STORE with a success status;
//! - `refused/`: reports PACS refused for good (an SOP class it does not accept, a refusal status), kept for
//!   someone at the box, never retried by themselves;
//! - `series/<series key>.json`: per answered series, the examination a report files into ([`SourceStudy`],
//!   identifying: it stays on the box) and the UIDs of the reports made so far, so that an LN update days later
//!   (after restarts) makes a report that names its predecessor.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::sr::{self, ReportInput, SourceStudy};
use crate::daemon::config::{DaemonConfig, DicomOutConfig};
use crate::daemon::fsio;
use crate::daemon::payload::ResultMessage;
use crate::error::{Error, Result};

/// The outbox of reports.
#[derive(Debug)]
pub struct ReportSpool {
    dir: PathBuf,
    refused: PathBuf,
    max_entries: usize,
    entries: BTreeMap<u64, PathBuf>,
    next_seq: u64,
}

impl ReportSpool {
    /// Open (or create) the spool below `pacs_dir`.
    pub fn open(pacs_dir: &Path, max_entries: usize) -> Result<ReportSpool> {
        let dir = pacs_dir.join("outbox");
        let refused = pacs_dir.join("refused");
        for d in [&dir, &refused] {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        let mut entries = BTreeMap::new();
        for e in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let path = e.map_err(|e| Error::io(&dir, e))?.path();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            if name.starts_with('.') {
                // an unfinished write: its answer was not spooled either, so it is made again
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if let Some(seq) = name.strip_suffix(".dcm").and_then(|s| s.parse::<u64>().ok()) {
                entries.insert(seq, path);
            }
        }
        let next_seq = entries.keys().next_back().map_or(1, |s| s + 1);
        Ok(ReportSpool {
            dir,
            refused,
            max_entries,
            entries,
            next_seq,
        })
    }

    /// Reports waiting.
    pub fn pending(&self) -> usize {
        self.entries.len()
    }

    /// The oldest report waiting: its sequence number and file.
    pub fn oldest(&self) -> Option<(u64, PathBuf)> {
        self.entries.iter().next().map(|(s, p)| (*s, p.clone()))
    }

    /// PACS stored it: delete it.
    pub fn remove(&mut self, seq: u64) -> Result<()> {
        if let Some(p) = self.entries.remove(&seq) {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            fsio::sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// PACS refused it for good: move it to `refused/` (kept). Returns where it is now.
    pub fn refuse(&mut self, seq: u64) -> Result<Option<PathBuf>> {
        match self.entries.remove(&seq) {
            Some(p) => fsio::move_into(&p, &self.refused).map(Some),
            None => Ok(None),
        }
    }

    fn push(&mut self, bytes: &[u8]) -> Result<Option<u64>> {
        if self.entries.len() >= self.max_entries {
            return Ok(None);
        }
        let seq = self.next_seq;
        let path = self.dir.join(format!("{seq:020}.dcm"));
        fsio::write_durable(&path, bytes)?;
        self.next_seq += 1;
        self.entries.insert(seq, path);
        Ok(Some(seq))
    }
}

/// What is kept per answered series (`series/<series key>.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SeriesReports {
    source: SourceStudy,
    /// SOPInstanceUIDs of the reports made, oldest first.
    reports: Vec<String>,
}

/// Outcome of [`ReportMaker::make`].
#[derive(Debug, Clone, PartialEq)]
pub enum ReportMade {
    /// Written to the outbox.
    Spooled,
    /// This answer's report was made before (an answer committed again after a crash or a full spool).
    Already,
    /// An LN update of a series whose examination is not kept (answered before `[dicom_out]` was on).
    NoSource,
    /// The outbox is at `dicom_out.spool_max_entries`: nothing written.
    Full(String),
}

/// Makes each answer's report and spools it (the store's side of [`super`]).
pub struct ReportMaker {
    spool: Arc<Mutex<ReportSpool>>,
    series_dir: PathBuf,
    device: String,
    sender: Option<std::sync::mpsc::SyncSender<()>>,
}

impl ReportMaker {
    /// Open the spool and the series folder below `pacs` (`state.dir/pacs`).
    pub fn open(pacs: &Path, cfg: &DaemonConfig, out: &DicomOutConfig) -> Result<ReportMaker> {
        let spool = ReportSpool::open(pacs, out.spool_max_entries)?;
        let series_dir = pacs.join("series");
        std::fs::create_dir_all(&series_dir).map_err(|e| Error::io(&series_dir, e))?;
        Ok(ReportMaker {
            spool: Arc::new(Mutex::new(spool)),
            series_dir,
            device: format!("{}/{}", cfg.site.site, cfg.site.device),
            sender: None,
        })
    }

    /// The spool, shared with the sender.
    pub fn spool(&self) -> Arc<Mutex<ReportSpool>> {
        self.spool.clone()
    }

    /// Wake `sender` after every spooled report.
    pub fn wake(&mut self, sender: std::sync::mpsc::SyncSender<()>) {
        self.sender = Some(sender);
    }

    /// Make the report of `message` and spool it durably: for a result or a revision from `source` (which is
    /// kept for the series), for an update from the series' kept examination.
    pub fn make(&mut self, message: &ResultMessage, source: Option<&SourceStudy>) -> Result<ReportMade> {
        let path = self.series_dir.join(format!("{}.json", message.series_key.as_str()));
        let kept: Option<SeriesReports> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).ok(),
            Err(_) => None,
        };
        let mut series = match (source, kept) {
            (Some(s), Some(k)) => SeriesReports {
                source: s.clone(),
                reports: k.reports,
            },
            (Some(s), None) => SeriesReports {
                source: s.clone(),
                reports: Vec::new(),
            },
            (None, Some(k)) => k,
            (None, None) => return Ok(ReportMade::NoSource),
        };
        let uid = sr::report_uid(&message.message_id);
        if series.reports.contains(&uid) {
            return Ok(ReportMade::Already);
        }
        let now = dicom_now();
        let bytes = sr::report(&ReportInput {
            message,
            source: &series.source,
            earlier: &series.reports,
            device: &self.device,
            at: now,
        })?;
        let pushed = self
            .spool
            .lock()
            .map_err(|_| Error::Spool {
                path: self.series_dir.clone(),
                reason: "report spool lock poisoned".into(),
            })?
            .push(&bytes)?;
        if pushed.is_none() {
            return Ok(ReportMade::Full(
                "the report outbox is at dicom_out.spool_max_entries".into(),
            ));
        }
        series.reports.push(uid);
        let text = serde_json::to_vec(&series)?;
        fsio::write_durable(&path, &text)?;
        if let Some(s) = &self.sender {
            let _ = s.try_send(());
        }
        Ok(ReportMade::Spooled)
    }
}

/// The UTC date and time now as DICOM DA and TM (`YYYYMMDD`, `HHMMSS`).
fn dicom_now() -> (String, String) {
    let t = crate::time::utc_now(); // RFC 3339: YYYY-MM-DDTHH:MM:SS…
    let date: String = t
        .get(..10)
        .unwrap_or("19700101")
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect();
    let time: String = t
        .get(11..19)
        .unwrap_or("000000")
        .chars()
        .filter(|c| c.is_ascii_digit())
        .collect();
    (date, time)
}
