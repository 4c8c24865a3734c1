//! The daemon's durable state behind one interface, [`Store`]: the result spool ([`Outbox`], shared with the
//! publisher), the event spool, the [`Ledger`], and the LN reads that wait for their study
//! ([`PENDING_LN_READS`]).
//!
//! The core ([`super::core`]) decides; the store makes it durable. Every write here fsyncs, and the core runs
//! on a thread of its own (the daemon's driver, [`super::driver`]), never on one of tokio's async threads, so a
//! slow disk delays the next decision but never the MQTT client, the metrics endpoint or the signal handlers.
//! [`DiskStore`] is the one the daemon uses; the core's unit tests drive it over `MemoryStore`, which keeps the
//! same things in memory and can be made full or failing.
//!
//! A commit is two writes in a fixed order: the message into the spool, then its record into the ledger. A crash
//! between them leaves a spool entry the ledger lacks, which [`DiskStore::open`] records before the core starts
//! (the entry proves the message was committed: its series must not be computed again).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::config::DaemonConfig;
use super::fsio;
use super::ledger::{Compaction, Ledger, LedgerRecord};
use super::mqtt::PublisherCmd;
use super::outbox::{Outbox, OutboxBounds, Push};
use super::pacs::sr::SourceStudy;
use super::pacs::{ReportMade, ReportMaker};
use super::payload::{LnStatusCommand, ResultMessage, SeriesKey, StudyKey};
use crate::error::{Error, Result};
use crate::model::Reported;

/// LN reads that arrived before their study was computed (JSON lines under `state.dir`).
pub const PENDING_LN_READS: &str = "ln-reads-pending.jsonl";

/// How the spools stand, for the gauges, readiness and the spool alarms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolState {
    /// Results and updates waiting for PUBACK.
    pub results: usize,
    /// Events waiting for PUBACK.
    pub events: usize,
    /// The oldest result is older than `state.spool_max_age_h`.
    pub stale: bool,
    /// Room for one more result of ordinary size.
    pub room: bool,
}

/// What the core needs made durable. Each method returns once its write is on disk.
pub trait Store {
    /// The ledger: what was answered.
    fn ledger(&self) -> &Ledger;
    /// Spool a result (`message`, serialised as `body`) for `record`'s series, then record it in the ledger; with
    /// `[dicom_out]`, its Structured Report is spooled first (from `source`, or the series' kept examination for
    /// an LN update: [`super::pacs::ReportMaker`]). [`Push::Full`]: the result was not spooled (the caller holds
    /// it and commits it again; a report already spooled is not made twice).
    fn commit(
        &mut self,
        message: &ResultMessage,
        body: &str,
        record: &LedgerRecord,
        source: Option<&SourceStudy>,
    ) -> Result<Push>;
    /// Spool an event (`body`, JSON).
    fn push_event(&mut self, body: &str) -> Result<Push>;
    /// How the spools stand.
    fn spool(&self) -> SpoolState;
    /// The LN reads kept for studies not computed yet (in arrival order; the last read of a study wins).
    fn pending_ln_reads(&self) -> Vec<(StudyKey, Reported)>;
    /// Keep one more such read (the LN read and any other reported factor, already checked).
    fn keep_pending_ln_read(&mut self, study: &StudyKey, read: &Reported) -> Result<()>;
    /// Replace the kept reads by `reads` (the core drops those whose study has been computed).
    fn rewrite_pending_ln_reads(&mut self, reads: &[(StudyKey, Reported)]) -> Result<()>;
    /// Retire the ledger's answers older than `keep_days` ([`Ledger::compact`]).
    fn compact_ledger(&mut self, keep_days: u32, today: i64) -> Result<Compaction>;
    /// Spool entries found unreadable when the store was opened (kept on disk), once.
    fn take_problems(&mut self) -> Vec<Error>;
}

/// Where the daemon keeps its state, below `state.dir`.
pub(super) struct StatePaths {
    /// Results and updates waiting for PUBACK.
    pub spool: PathBuf,
    /// Events waiting for PUBACK.
    pub events: PathBuf,
    /// Bad input ([`super::quarantine`]).
    pub quarantine: PathBuf,
    /// The ledger.
    pub ledger: PathBuf,
    /// LN-read sidecars, filed once applied.
    pub ln_reads: PathBuf,
    /// [`PENDING_LN_READS`].
    pub pending_ln_reads: PathBuf,
    /// Structured Reports for PACS ([`super::pacs`]): `outbox/`, `series/`, `refused/`.
    pub pacs: PathBuf,
}

impl StatePaths {
    /// The paths below `state.dir`.
    pub fn of(cfg: &DaemonConfig) -> StatePaths {
        let d = &cfg.state.dir;
        StatePaths {
            spool: d.join("spool"),
            events: d.join("events"),
            quarantine: d.join("quarantine"),
            ledger: d.join("ledger.jsonl"),
            ln_reads: d.join("ln-reads"),
            pending_ln_reads: d.join(PENDING_LN_READS),
            pacs: d.join("pacs"),
        }
    }
}

/// The store on disk, below `state.dir`.
pub struct DiskStore {
    outbox: Arc<Mutex<Outbox>>,
    events: Arc<Mutex<Outbox>>,
    ledger: Ledger,
    pending_path: PathBuf,
    /// Spool entries that could not be read.
    problems: Vec<Error>,
    /// Woken after every spooled message.
    publisher: Option<mpsc::Sender<PublisherCmd>>,
    /// With `[dicom_out]`: the Structured Reports.
    reports: Option<ReportMaker>,
}

impl DiskStore {
    /// Open the spools and the ledger below `state.dir` (created if missing), and record in the ledger every
    /// spooled message it lacks.
    pub fn open(cfg: &DaemonConfig) -> Result<DiskStore> {
        std::fs::create_dir_all(&cfg.state.dir).map_err(|e| Error::io(&cfg.state.dir, e))?;
        let paths = StatePaths::of(cfg);
        let (outbox, mut problems) = Outbox::open(
            &paths.spool,
            OutboxBounds {
                max_entries: cfg.state.spool_max_entries,
                max_bytes: cfg.state.spool_max_bytes,
                max_age: Duration::from_secs_f64(cfg.state.spool_max_age_h * 3600.0),
            },
        )?;
        let (events, event_problems) = Outbox::open(
            &paths.events,
            OutboxBounds {
                max_entries: cfg.state.event_spool_max_entries,
                max_bytes: cfg.state.event_spool_max_entries as u64 * 4096,
                max_age: Duration::MAX,
            },
        )?;
        problems.extend(event_problems);
        let mut ledger = Ledger::open(&paths.ledger)?;
        recover_ledger(&mut ledger, &outbox)?;
        Ok(DiskStore {
            outbox: Arc::new(Mutex::new(outbox)),
            events: Arc::new(Mutex::new(events)),
            ledger,
            pending_path: paths.pending_ln_reads,
            problems,
            publisher: None,
            reports: match &cfg.dicom_out {
                Some(out) => Some(ReportMaker::open(&paths.pacs, cfg, out)?),
                None => None,
            },
        })
    }

    /// The result spool and the event spool, for the publisher (which removes what the broker acknowledged).
    pub fn spools(&self) -> (Arc<Mutex<Outbox>>, Arc<Mutex<Outbox>>) {
        (self.outbox.clone(), self.events.clone())
    }

    /// The Structured Report spool, for the sender (`None` without `[dicom_out]`).
    pub fn report_spool(&self) -> Option<std::sync::Arc<Mutex<super::pacs::ReportSpool>>> {
        self.reports.as_ref().map(ReportMaker::spool)
    }

    /// Wake `sender` after every spooled report.
    pub fn wake_reports(&mut self, sender: std::sync::mpsc::SyncSender<()>) {
        if let Some(r) = &mut self.reports {
            r.wake(sender);
        }
    }

    /// Wake `publisher` after every spooled message.
    pub fn wake(&mut self, publisher: mpsc::Sender<PublisherCmd>) {
        self.publisher = Some(publisher);
    }

    fn kick(&self) {
        if let Some(p) = &self.publisher {
            let _ = p.try_send(PublisherCmd::Kick);
        }
    }
}

fn locked(what: &'static str) -> Error {
    Error::Mqtt(format!("{what} lock poisoned"))
}

impl Store for DiskStore {
    fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn commit(
        &mut self,
        message: &ResultMessage,
        body: &str,
        record: &LedgerRecord,
        source: Option<&SourceStudy>,
    ) -> Result<Push> {
        if let Some(reports) = &mut self.reports {
            match reports.make(message, source)? {
                ReportMade::Full(why) => return Ok(Push::Full(why)),
                ReportMade::NoSource => tracing::warn!(
                    "no examination kept for this series (answered before [dicom_out] was configured): no report"
                ),
                ReportMade::Spooled | ReportMade::Already => {}
            }
        }
        let members: Vec<String> = record.member_keys.iter().map(|k| k.as_str().to_string()).collect();
        let pushed = self.outbox.lock().map_err(|_| locked("spool"))?.push(
            "result",
            body,
            record.series_key.as_str(),
            &members,
            &record.bundle_sha256,
        )?;
        if let Push::Stored(_) = pushed {
            self.kick();
            // Spooled is committed: a failed ledger append is recovered from the spool at the next start.
            if let Err(e) = self.ledger.record(record.clone()) {
                tracing::error!("ledger: {e}");
            }
        }
        Ok(pushed)
    }

    fn push_event(&mut self, body: &str) -> Result<Push> {
        let pushed = self
            .events
            .lock()
            .map_err(|_| locked("event spool"))?
            .push("event", body, "", &[], "")?;
        if let Push::Stored(_) = pushed {
            self.kick();
        }
        Ok(pushed)
    }

    fn spool(&self) -> SpoolState {
        let events = self.events.lock().map(|e| e.depth()).unwrap_or(0);
        match self.outbox.lock() {
            Ok(o) => SpoolState {
                results: o.depth(),
                events,
                stale: o.stale(),
                room: o.has_room(4096),
            },
            Err(_) => SpoolState {
                events,
                ..SpoolState::default()
            },
        }
    }

    fn pending_ln_reads(&self) -> Vec<(StudyKey, Reported)> {
        let Ok(text) = std::fs::read_to_string(&self.pending_path) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|line| serde_json::from_str::<LnStatusCommand>(line).ok())
            // the file holds study keys only (never UIDs), so no secret is needed to read it; the factors were
            // checked when they came in and are kept as the text the coding reads
            .filter_map(|c| {
                let key = c.study_key.as_deref().and_then(StudyKey::parse)?;
                let factors = c
                    .factors
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect();
                let r = Reported { ln: c.value(), factors };
                (!r.is_empty()).then_some((key, r))
            })
            .collect()
    }

    fn keep_pending_ln_read(&mut self, study: &StudyKey, read: &Reported) -> Result<()> {
        fsio::append_line(&self.pending_path, &pending_line(study, read))
    }

    fn rewrite_pending_ln_reads(&mut self, reads: &[(StudyKey, Reported)]) -> Result<()> {
        let text: String = reads.iter().map(|(k, v)| pending_line(k, v) + "\n").collect();
        fsio::write_durable(&self.pending_path, text.as_bytes())
    }

    fn compact_ledger(&mut self, keep_days: u32, today: i64) -> Result<Compaction> {
        self.ledger.compact(keep_days, today)
    }

    fn take_problems(&mut self) -> Vec<Error> {
        std::mem::take(&mut self.problems)
    }
}

/// One line of [`PENDING_LN_READS`]: an LN read command by study key (`mri_ln_status` and `factors` as far as
/// reported; a line of an earlier version has the read only).
fn pending_line(study: &StudyKey, read: &Reported) -> String {
    let mut line = serde_json::json!({"study_key": study.as_str()});
    if let Some(ln) = read.ln {
        line["mri_ln_status"] = serde_json::json!(ln);
    }
    if !read.factors.is_empty() {
        line["factors"] = serde_json::json!(read.factors);
    }
    line.to_string()
}

/// Record in the ledger every spooled message it lacks. A crash between the spool write and the ledger append
/// leaves a spool entry the ledger does not know; the entry proves the message was committed, so its series (or
/// revision) must not be computed or published again. (A series already retired keeps its retired line.)
pub(super) fn recover_ledger(ledger: &mut Ledger, outbox: &Outbox) -> Result<()> {
    for e in &outbox.all()? {
        if let Some(key) = SeriesKey::parse(&e.series_key)
            && let Ok(msg) = serde_json::from_str::<ResultMessage>(&e.payload)
            && !ledger.has_message(&msg.message_id)
            && !ledger.retired(&key, &e.bundle_sha256)
        {
            ledger.record(LedgerRecord {
                series_key: key,
                member_keys: e.member_keys.iter().filter_map(|k| SeriesKey::parse(k)).collect(),
                study_key: msg.study_key.clone(),
                bundle_sha256: e.bundle_sha256.clone(),
                message_id: msg.message_id.clone(),
                kind: msg.kind,
                updates: msg.updates.clone(),
                roi_key: msg.roi_key.clone(),
                roi_drawn_at: None,
                set_aside_roi_keys: Vec::new(),
                folder_keys: Vec::new(),
                ln: msg.mri_ln_status,
                factors: msg.reported_factors.clone(),
                signatures: msg.signatures.clone(),
                out_of_distribution: msg.out_of_distribution.clone(),
                at: crate::time::utc_now(),
                retired: false,
            })?;
        }
    }
    Ok(())
}

/// The store in memory, for the core's unit tests: what was spooled, and switches that make the spool full or
/// failing.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct MemoryStore {
    pub ledger: Ledger,
    /// Result bodies spooled (and not yet acknowledged: tests remove them by hand).
    pub results: Vec<String>,
    /// Event bodies spooled.
    pub events: Vec<String>,
    /// Every committed answer's message id with the examination handed for its report.
    pub reports: Vec<(String, Option<SourceStudy>)>,
    pub pending: Vec<(StudyKey, Reported)>,
    /// Refuse results as a full spool would.
    pub full: bool,
    /// Fail result writes as a full disk does (`ENOSPC`).
    pub no_space: bool,
}

#[cfg(test)]
impl Store for MemoryStore {
    fn ledger(&self) -> &Ledger {
        &self.ledger
    }
    fn commit(
        &mut self,
        message: &ResultMessage,
        body: &str,
        record: &LedgerRecord,
        source: Option<&SourceStudy>,
    ) -> Result<Push> {
        if self.full {
            return Ok(Push::Full("full (test)".into()));
        }
        if self.no_space {
            let enospc = std::io::Error::from_raw_os_error(28);
            return Err(Error::io("/state/spool/00000000000000000001.json", enospc));
        }
        self.results.push(body.to_string());
        self.reports.push((message.message_id.clone(), source.cloned()));
        self.ledger.record(record.clone())?;
        Ok(Push::Stored(self.results.len() as u64))
    }
    fn push_event(&mut self, body: &str) -> Result<Push> {
        self.events.push(body.to_string());
        Ok(Push::Stored(self.events.len() as u64))
    }
    fn spool(&self) -> SpoolState {
        SpoolState {
            results: self.results.len(),
            events: self.events.len(),
            stale: false,
            room: !self.full,
        }
    }
    fn pending_ln_reads(&self) -> Vec<(StudyKey, Reported)> {
        self.pending.clone()
    }
    fn keep_pending_ln_read(&mut self, study: &StudyKey, read: &Reported) -> Result<()> {
        self.pending.push((study.clone(), read.clone()));
        Ok(())
    }
    fn rewrite_pending_ln_reads(&mut self, reads: &[(StudyKey, Reported)]) -> Result<()> {
        self.pending = reads.to_vec();
        Ok(())
    }
    fn compact_ledger(&mut self, keep_days: u32, today: i64) -> Result<Compaction> {
        self.ledger.compact(keep_days, today)
    }
    fn take_problems(&mut self) -> Vec<Error> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::payload::{MessageKind, RoiKey};

    /// A result-topic message as the payload carries it (only what the recovery reads matters).
    fn message(id: &str, kind: &str, updates: Option<&str>, series: &SeriesKey, roi: &RoiKey) -> String {
        serde_json::json!({
            "schema": super::super::payload::RESULT_SCHEMA, "message_id": id, "kind": kind, "updates": updates,
            "roi_key": roi, "bundle": {"id": "b", "version": "1", "sha256": "sha"},
            "study_key": StudyKey::of(b"k", "study"), "series_key": series, "mri_ln_status": "unknown",
            "cutoff": 0.5, "risk": null, "scenarios": {}, "signatures": {"deep_signature": 0.25},
            "out_of_distribution": [], "timing_ms": {}, "timestamps": {}
        })
        .to_string()
    }

    #[test]
    fn a_spooled_revision_the_ledger_lacks_is_recovered_beside_the_answer_it_revises() {
        let d = std::env::temp_dir().join(format!("alnrisk-recover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let bounds = OutboxBounds {
            max_entries: 10,
            max_bytes: 1 << 20,
            max_age: Duration::from_secs(3600),
        };
        let (mut outbox, _) = Outbox::open(&d.join("spool"), bounds).unwrap();
        let mut ledger = Ledger::open(&d.join("ledger.jsonl")).unwrap();
        let series = SeriesKey::of(b"k", "series");
        let (roi1, roi2) = (RoiKey::of(b"k", "1.2.1"), RoiKey::of(b"k", "1.2.2"));
        // the first result is spooled and in the ledger; the revision was spooled, then the power went
        for body in [
            message("a1", "result", None, &series, &roi1),
            message("a2", "revision", Some("a1"), &series, &roi2),
        ] {
            outbox.push("result", &body, series.as_str(), &[], "sha").unwrap();
        }
        let first: ResultMessage = serde_json::from_str(&message("a1", "result", None, &series, &roi1)).unwrap();
        ledger
            .record(LedgerRecord {
                series_key: series.clone(),
                member_keys: vec![],
                study_key: first.study_key.clone(),
                bundle_sha256: "sha".into(),
                message_id: "a1".into(),
                kind: MessageKind::Result,
                updates: None,
                roi_key: Some(roi1.clone()),
                roi_drawn_at: None,
                set_aside_roi_keys: vec![],
                folder_keys: vec![],
                ln: None,
                factors: std::collections::BTreeMap::new(),
                signatures: first.signatures.clone(),
                out_of_distribution: vec![],
                at: "t".into(),
                retired: false,
            })
            .unwrap();
        recover_ledger(&mut ledger, &outbox).unwrap();
        assert!(ledger.has_message("a2"));
        let latest = ledger.latest(&series, "sha").unwrap();
        assert_eq!(
            (latest.kind, latest.updates.as_deref()),
            (MessageKind::Revision, Some("a1"))
        );
        assert!(
            ledger.known_roi(&roi2, "sha"),
            "a restart does not compute the revision again"
        );
        // recovering again adds nothing
        let lines = std::fs::read_to_string(d.join("ledger.jsonl")).unwrap().lines().count();
        recover_ledger(&mut ledger, &outbox).unwrap();
        assert_eq!(
            std::fs::read_to_string(d.join("ledger.jsonl")).unwrap().lines().count(),
            lines
        );
    }
}
