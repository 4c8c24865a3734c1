//! The daemon's core state and what it does with each message: classified files go to the assembler, ready
//! series to the workers, computed results to the spool and the ledger, LN reads to updates, bad input to
//! quarantine; events and alarms are spooled for the publisher. It owns the watcher, the assembler, the ledger and
//! the LN reads; [`super::serve`] runs the loop that feeds it. What it does with a newer ROI for an answered series
//! is in [`super::revision`], how it quarantines and how long it keeps quarantined files in
//! [`super::quarantine`].

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use super::assemble::{Assembled, ReadySeries, RoiCandidate, SeriesAssembler};
use super::bounded::{BoundedMap, BoundedSet};
use super::config::DaemonConfig;
use super::event::EventKind;
use super::fsio;
use super::intake::{Classified, Intake};
use super::ledger::{Ledger, LedgerRecord};
use super::metrics::Metrics;
use super::mqtt::PublisherCmd;
use super::outbox::{Outbox, OutboxBounds, Push};
use super::payload::{
    AnswerOf, EventMessage, Identifiers, LnStatusCommand, MessageKind, ResultMessage, RoiKey, SeriesKey, Severity,
    StudyKey,
};
use super::revision::RevisionRequest;
use super::watch::ExportWatcher;
use crate::error::{Error, Result};
use crate::model::Predictor;
use crate::model::predict::MRI_LN;

/// LN reads that arrived before their study was computed (JSON lines under `state.dir`).
pub const PENDING_LN_READS: &str = "ln-reads-pending.jsonl";

/// How often free disk space is looked at.
const DISK_CHECK: Duration = Duration::from_secs(5);

/// LN reads remembered in memory (waiting for their study, or applied to it): the oldest are forgotten first, so
/// a flood of reads for unknown studies cannot grow the process.
pub const REMEMBERED_LN_READS: usize = 4096;

/// Studies whose identifiers are held (only with `phi.include_identifiers`; empty otherwise).
pub const REMEMBERED_IDENTIFIERS: usize = 256;

/// Series computed or waiting to be computed at once (the bounded ready queue).
pub const READY_QUEUE: usize = 16;

/// What a worker hands back.
pub(super) struct Computed {
    pub(super) ready: Box<ReadySeries>,
    pub(super) outcome: Result<(crate::model::Prediction, BTreeMap<String, f64>)>,
}

/// What the loop hands the core, from the blocking pool, inotify and the workers.
pub(super) enum CoreMsg {
    /// A scan's stable files, read.
    Classified(Vec<Intake>),
    /// A file renamed into place (ready at once).
    Renamed(PathBuf),
    /// Something changed in the export folder: walk it soon.
    Wake,
    /// A worker finished a series.
    Computed(Box<Computed>),
    /// The images of a series to compute again with a revised ROI were read (or could not be).
    Recollected(Box<(RevisionRequest, Result<ReadySeries>)>),
}

/// What one walk's batch skipped for `watch.max_age_h`.
#[derive(Default)]
struct TooOld {
    files: usize,
    /// Series not counted before.
    series: u64,
    rois: usize,
}

/// A result that could not be spooled yet (spool full).
pub(super) struct Held {
    message: ResultMessage,
    record: LedgerRecord,
    ready_at: Option<Instant>,
}

/// The daemon's core state.
pub(super) struct Daemon {
    pub(super) cfg: DaemonConfig,
    pub(super) predictor: Arc<Predictor>,
    pub(super) secret: Vec<u8>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) outbox: Arc<Mutex<Outbox>>,
    /// Events waiting for the broker (a spool of their own, so they never take a result's room).
    events: Arc<Mutex<Outbox>>,
    pub(super) ledger: Ledger,
    pub(super) watcher: ExportWatcher,
    pub(super) assembler: SeriesAssembler,
    pub(super) ready: heapless::Deque<Box<ReadySeries>, READY_QUEUE>,
    /// Revisions whose images were read, waiting for a worker.
    pub(super) revised: VecDeque<Box<ReadySeries>>,
    /// Revised ROIs waiting for their series' images to be read.
    pub(super) revisions: VecDeque<RevisionRequest>,
    /// ROIs for series released but not answered yet (series key, ROI): weighed as revisions at the answer.
    pub(super) awaiting_answer: Vec<(SeriesKey, RoiCandidate)>,
    /// Series with a revision being read or computed (one at a time per series, so they commit in order).
    pub(super) revising: std::collections::BTreeSet<SeriesKey>,
    pub(super) in_flight: usize,
    ln_reads: BoundedMap<StudyKey, crate::model::LnRead>,
    pub(super) held: VecDeque<Held>,
    spool_alarm: bool,
    stale_alarm: bool,
    disk_alarm: bool,
    disk_checked: Option<Instant>,
    /// When the quarantine folder was last surveyed ([`super::quarantine`]).
    pub(super) quarantine_swept: Option<Instant>,
    publisher: mpsc::Sender<PublisherCmd>,
    identifiers: BoundedMap<String, Identifiers>,
    /// SeriesInstanceUIDs skipped for `watch.max_age_h` (each counted once).
    too_old_series: BoundedSet<String>,
}

/// Record in the ledger every spooled message it lacks. A crash between the spool write and the ledger append
/// leaves a spool entry the ledger does not know; the entry proves the message was committed, so its series (or
/// revision) must not be computed or published again.
fn recover_ledger(ledger: &mut Ledger, outbox: &Outbox) -> Result<()> {
    for e in &outbox.all()? {
        if let Some(key) = SeriesKey::parse(&e.series_key)
            && let Ok(msg) = serde_json::from_str::<ResultMessage>(&e.payload)
            && !ledger.has_message(&msg.message_id)
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
                signatures: msg.signatures.clone(),
                out_of_distribution: msg.out_of_distribution.clone(),
                at: crate::time::utc_now(),
            })?;
        }
    }
    Ok(())
}

/// Where the daemon keeps its state, below `state.dir`.
struct StatePaths {
    /// Results and updates waiting for PUBACK.
    spool: PathBuf,
    /// Events waiting for PUBACK.
    events: PathBuf,
    quarantine: PathBuf,
    ledger: PathBuf,
    /// LN-read sidecars, filed once applied.
    ln_reads: PathBuf,
}

fn state_paths(cfg: &DaemonConfig) -> StatePaths {
    let d = &cfg.state.dir;
    StatePaths {
        spool: d.join("spool"),
        events: d.join("events"),
        quarantine: d.join("quarantine"),
        ledger: d.join("ledger.jsonl"),
        ln_reads: d.join("ln-reads"),
    }
}

/// The daemon's durable state, opened: the result and event spools (shared with the publisher), the ledger
/// (recovered from the spool), and what was found corrupt on the way.
pub(super) struct DurableState {
    pub(super) outbox: Arc<Mutex<Outbox>>,
    pub(super) events: Arc<Mutex<Outbox>>,
    ledger: Ledger,
    /// Spool entries that could not be read (kept on disk; each becomes an event once the core runs).
    problems: Vec<Error>,
}

/// Open the spools and the ledger below `state.dir` (created if missing).
pub(super) fn open_state(cfg: &DaemonConfig, metrics: &Metrics) -> Result<DurableState> {
    std::fs::create_dir_all(&cfg.state.dir).map_err(|e| Error::io(&cfg.state.dir, e))?;
    let paths = state_paths(cfg);
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
    metrics.event_outbox_depth.set(events.depth() as i64);
    let mut ledger = Ledger::open(&paths.ledger)?;
    recover_ledger(&mut ledger, &outbox)?;
    Ok(DurableState {
        outbox: Arc::new(Mutex::new(outbox)),
        events: Arc::new(Mutex::new(events)),
        ledger,
        problems,
    })
}

pub(super) fn relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

/// Every DICOM UID in `text` (four or more dot-separated numeric components) replaced by `(UID)`: the last guard
/// on what leaves the box in an event detail, behind details that name things by key.
pub(super) fn scrub_uids(text: &str) -> String {
    static UID: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    match UID.get_or_init(|| regex::Regex::new(r"\b[0-9]+(\.[0-9]+){3,}\b").ok()) {
        Some(re) => re.replace_all(text, "(UID)").into_owned(),
        None => text.to_string(),
    }
}

impl Daemon {
    /// The core over the opened `state`, before the loop runs: corrupt spool entries become events, and the LN
    /// reads that arrived before their images (kept across restarts in [`PENDING_LN_READS`]) are loaded.
    pub(super) fn new(
        cfg: &DaemonConfig,
        predictor: Arc<Predictor>,
        secret: Vec<u8>,
        metrics: Arc<Metrics>,
        state: DurableState,
        publisher: mpsc::Sender<PublisherCmd>,
    ) -> Daemon {
        let DurableState {
            outbox,
            events,
            ledger,
            problems,
        } = state;
        let mut ln_reads = BoundedMap::new(REMEMBERED_LN_READS);
        if let Ok(text) = std::fs::read_to_string(cfg.state.dir.join(PENDING_LN_READS)) {
            for line in text.lines() {
                if let Ok(c) = serde_json::from_str::<LnStatusCommand>(line)
                    && let (Some(k), Some(v)) = (c.key(&secret), c.value())
                {
                    ln_reads.insert(k, v);
                }
            }
        }
        let mut d = Daemon {
            watcher: ExportWatcher::new(&cfg.watch.export_dir, Duration::from_millis(cfg.watch.stable_ms)),
            assembler: SeriesAssembler::new(
                Duration::from_secs_f64(cfg.assemble.quiet_period_s),
                Duration::from_secs_f64(cfg.assemble.roi_wait_s),
                &cfg.select,
            ),
            cfg: cfg.clone(),
            predictor,
            secret,
            metrics,
            outbox,
            events,
            ledger,
            ready: heapless::Deque::new(),
            revised: VecDeque::new(),
            revisions: VecDeque::new(),
            revising: Default::default(),
            awaiting_answer: Vec::new(),
            in_flight: 0,
            ln_reads,
            held: VecDeque::new(),
            spool_alarm: false,
            stale_alarm: false,
            disk_alarm: false,
            disk_checked: None,
            quarantine_swept: None,
            publisher,
            identifiers: BoundedMap::new(REMEMBERED_IDENTIFIERS),
            too_old_series: BoundedSet::new(super::assemble::REMEMBERED_SERIES),
        };
        for p in problems {
            d.event(EventKind::SpoolEntryCorrupt, p.neutral(), None);
        }
        d.update_gauges();
        d
    }

    /// Publish (spooled), count and log an event. `detail` names files by [`Daemon::file_ref`] and errors by
    /// [`Error::neutral`]; UIDs are scrubbed from it unless `phi.include_identifiers` is on.
    pub(super) fn event(&self, kind: EventKind, detail: String, study: Option<StudyKey>) {
        let event = kind.name();
        let detail = if self.cfg.phi.include_identifiers {
            detail
        } else {
            scrub_uids(&detail)
        };
        match kind.severity() {
            Severity::Error | Severity::Alarm => tracing::error!(event, "{detail}"),
            Severity::Warning => tracing::warn!(event, "{detail}"),
            Severity::Info => tracing::info!(event, "{detail}"),
        }
        self.metrics.events.with_label_values(&[event]).inc();
        // Spooled (fsync) like a result, published by the publisher and removed on PUBACK: an event survives a
        // broker outage and a restart. A full or unwritable event spool leaves it in the log, counted.
        let body = serde_json::to_string(&EventMessage::new(kind, detail, study));
        let pushed = match (&body, self.events.lock()) {
            (Ok(b), Ok(mut o)) => o.push("event", b, "", &[], "").map(|p| (p, o.depth())),
            _ => Err(Error::Mqtt("event spool unavailable".into())),
        };
        match pushed {
            Ok((Push::Stored(_), depth)) => {
                self.metrics.event_outbox_depth.set(depth as i64);
                let _ = self.publisher.try_send(PublisherCmd::Kick);
            }
            Ok((Push::Full(why), _)) => {
                tracing::error!(event, "event spool full ({why}); the event is only in this log");
                self.metrics.events_dropped.inc();
            }
            Err(e) => {
                tracing::error!(event, "event not spooled: {e}");
                self.metrics.events_dropped.inc();
            }
        }
    }

    /// A file of the export folder as an event names it: `file ` and 12 hex digits of the HMAC of its path
    /// within the export folder (its name may name the patient). The quarantine note on the box lists the same
    /// reference beside the real name, so an operator can find it.
    pub(super) fn file_ref(&self, path: &Path) -> String {
        let rel = relative(path, &self.cfg.watch.export_dir);
        let key = StudyKey::of(&self.secret, &format!("file:{rel}"));
        format!("file {}", &key.as_str()[..12])
    }

    /// `state.dir/quarantine` ([`super::quarantine`]).
    pub(super) fn quarantine_dir(&self) -> PathBuf {
        state_paths(&self.cfg).quarantine
    }

    /// Raise an alarm: counted in `alnrisk_alarms_total{alarm}` and published as an `alarm` event.
    fn alarm(&self, alarm: EventKind, detail: String) {
        debug_assert!(alarm.is_alarm());
        self.metrics.alarms.with_label_values(&[alarm.name()]).inc();
        self.event(alarm, detail, None);
    }

    pub(super) fn on_classified(&mut self, batch: Vec<Intake>) {
        let mut too_old = TooOld::default();
        for Intake {
            path,
            what,
            stable_at: at,
            read_at: wall,
            modified,
        } in batch
        {
            self.metrics.files_seen.inc();
            let old = self.older_than_max_age(modified);
            match what {
                Classified::Image(h) => {
                    let series_key = SeriesKey::of(&self.secret, &h.series_uid);
                    if self.ledger.contains(&series_key, &self.predictor.bundle.sha256) {
                        tracing::debug!(file = %path.display(), "series already answered by this bundle");
                        continue;
                    }
                    if old {
                        too_old.files += 1;
                        if self.too_old_series.add(h.series_uid.clone()) {
                            too_old.series += 1;
                        }
                        continue;
                    }
                    if self.cfg.phi.include_identifiers
                        && let (Some(a), Some(n)) = (&h.accession_number, &h.patient_name)
                        && !self.identifiers.contains_key(&h.study_uid)
                    {
                        self.identifiers.insert(
                            h.study_uid.clone(),
                            Identifiers {
                                accession_number: a.clone(),
                                patient_name: n.clone(),
                            },
                        );
                    }
                    if let Some(Assembled::Ignored { path, reason, .. }) = self.assembler.add_image(*h, at, wall) {
                        self.event(
                            EventKind::IgnoredFile,
                            format!("{}: {reason}", self.file_ref(&path)),
                            None,
                        );
                    }
                }
                Classified::Roi(r) => {
                    let roi = RoiCandidate::dicom(&path, &r, at, wall);
                    if !self.roi_is_new(&roi, old, &mut too_old) {
                        continue;
                    }
                    let sha = &self.predictor.bundle.sha256;
                    let answered = r
                        .series_uids
                        .iter()
                        .find_map(|u| self.ledger.latest(&SeriesKey::of(&self.secret, u), sha))
                        .cloned();
                    match answered {
                        None => self.assembler.add_roi(roi, r),
                        Some(of) => self.on_revised_roi(roi, of),
                    }
                }
                Classified::Label { sha256 } => {
                    let roi = RoiCandidate::label(&path, &sha256, at, wall);
                    if !self.roi_is_new(&roi, old, &mut too_old) {
                        continue;
                    }
                    match self.answered_beside(&roi.path) {
                        Some(of) => self.on_revised_roi(roi, of),
                        None => self.assembler.add_label(roi),
                    }
                }
                Classified::LnSidecar(cmd) => {
                    self.on_ln_read(&cmd, "sidecar");
                    if let Err(e) = fsio::move_into(&path, &state_paths(&self.cfg).ln_reads) {
                        tracing::warn!(file = %path.display(), "could not file the LN read: {e}");
                    }
                }
                Classified::Bad(e) => self.quarantine_file(&path, &e),
            }
        }
        if too_old.files + too_old.rois > 0 {
            self.metrics
                .series_processed
                .with_label_values(&["too_old"])
                .inc_by(too_old.series);
            self.event(
                EventKind::TooOldSkipped,
                format!(
                    "{} image file(s) ({} series not reported before) and {} ROI object(s), last modified more \
                     than {} h ago (watch.max_age_h), are not computed; they stay in the export folder",
                    too_old.files, too_old.series, too_old.rois, self.cfg.watch.max_age_h
                ),
                None,
            );
        }
    }

    /// Whether a ROI goes on to be matched: not used or set aside already, and not older than `watch.max_age_h`
    /// (then counted in `too_old`).
    fn roi_is_new(&self, roi: &RoiCandidate, old: bool, too_old: &mut TooOld) -> bool {
        if self.roi_known(roi) {
            return false;
        }
        if old {
            too_old.rois += 1;
        }
        !old
    }

    /// Whether a file modified at `modified` is older than `watch.max_age_h` (never when the limit is 0 or the
    /// time is unknown or in the future).
    fn older_than_max_age(&self, modified: Option<SystemTime>) -> bool {
        let max_h = self.cfg.watch.max_age_h;
        max_h > 0.0
            && modified
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_some_and(|age| age.as_secs_f64() > max_h * 3600.0)
    }

    pub(super) fn on_ln_read(&mut self, cmd: &LnStatusCommand, via: &str) {
        let (Some(key), Some(v)) = (cmd.key(&self.secret), cmd.value()) else {
            self.event(
                EventKind::BadLnRead,
                format!("LN read via {via} without a valid study key or status"),
                None,
            );
            return;
        };
        let sha = self.predictor.bundle.sha256.clone();
        let records: Vec<LedgerRecord> = self.ledger.for_study(&key, &sha).into_iter().cloned().collect();
        if records.is_empty() {
            // Not computed yet: applied when it is; kept on disk so a restart does not lose it.
            self.ln_reads.insert(key.clone(), v);
            let line = serde_json::json!({"study_key": key.as_str(), "mri_ln_status": v}).to_string();
            if let Err(e) = fsio::append_line(&self.cfg.state.dir.join(PENDING_LN_READS), &line) {
                tracing::error!("could not keep the LN read: {e}");
            }
            self.event(
                EventKind::LnReadPending,
                format!("LN read via {via} kept for a study not computed yet"),
                Some(key),
            );
            return;
        }
        for rec in records {
            if rec.ln == Some(v) {
                continue;
            }
            let clinical = BTreeMap::from([(MRI_LN.to_string(), v.value())]);
            match self
                .predictor
                .from_signatures(&rec.signatures, rec.out_of_distribution.clone(), &clinical)
            {
                Ok(p) => {
                    let original = rec.updates.clone().unwrap_or_else(|| rec.message_id.clone());
                    let of = AnswerOf {
                        study_key: key.clone(),
                        series_key: rec.series_key.clone(),
                        roi_key: rec.roi_key.clone(),
                        ln: Some(v),
                        after: Some(rec.message_id.clone()),
                    };
                    let mut msg = ResultMessage::new(&p, of, MessageKind::Update, Some(original.clone()));
                    msg.timestamps.insert("computed".into(), crate::time::utc_now());
                    let record = LedgerRecord {
                        message_id: msg.message_id.clone(),
                        kind: MessageKind::Update,
                        updates: Some(original),
                        ln: Some(v),
                        at: crate::time::utc_now(),
                        ..rec
                    };
                    self.commit(msg, record, None);
                }
                Err(e) => self.event(EventKind::LnUpdateFailed, e.neutral(), Some(key.clone())),
            }
        }
    }

    /// Spool (fsync) then record in the ledger; hold in memory with an alarm when the spool is full.
    fn commit(&mut self, message: ResultMessage, record: LedgerRecord, ready_at: Option<Instant>) {
        self.held.push_back(Held {
            message,
            record,
            ready_at,
        });
        self.flush_held();
    }

    pub(super) fn flush_held(&mut self) {
        while let Some(h) = self.held.pop_front() {
            let body = match serde_json::to_string(&h.message) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!("cannot serialise a result: {e}");
                    continue;
                }
            };
            let pushed = self
                .outbox
                .lock()
                .map_err(|_| Error::Mqtt("outbox lock".into()))
                .and_then(|mut o| {
                    let members: Vec<String> = h.record.member_keys.iter().map(|k| k.as_str().to_string()).collect();
                    o.push(
                        "result",
                        &body,
                        h.record.series_key.as_str(),
                        &members,
                        &h.record.bundle_sha256,
                    )
                });
            match pushed {
                Ok(Push::Stored(_)) => {
                    if let Err(e) = self.ledger.record(h.record.clone()) {
                        tracing::error!("ledger: {e}");
                    }
                    if h.record.kind == MessageKind::Result {
                        self.revise_awaiting(&h.record);
                    }
                    if let Some(t) = h.ready_at {
                        self.metrics.end_to_end.observe(t.elapsed().as_secs_f64());
                    }
                    match h.message.kind {
                        MessageKind::Result => {
                            self.metrics.series_processed.with_label_values(&["published"]).inc();
                            for (name, v) in &h.message.signatures {
                                self.metrics.signature_value.with_label_values(&[name]).observe(*v);
                            }
                        }
                        MessageKind::Revision => self.metrics.series_processed.with_label_values(&["revised"]).inc(),
                        MessageKind::Update => {}
                    }
                    let _ = self.publisher.try_send(PublisherCmd::Kick);
                    if self.spool_alarm && self.held.is_empty() {
                        self.spool_alarm = false;
                        self.event(EventKind::SpoolFullCleared, "the spool has room again".into(), None);
                    }
                }
                Ok(Push::Full(why)) => {
                    self.held.push_front(h);
                    if !self.spool_alarm {
                        self.spool_alarm = true;
                        let held = self.held.len();
                        self.alarm(
                            EventKind::SpoolFull,
                            format!("outbox full ({why}); {held} result(s) held in memory, nothing deleted"),
                        );
                    }
                    break;
                }
                Err(e) => {
                    self.held.push_front(h);
                    tracing::error!("spool write failed: {e}");
                    break;
                }
            }
        }
        self.update_gauges();
    }

    pub(super) fn update_gauges(&mut self) {
        let (depth, stale, room) = match self.outbox.lock() {
            Ok(o) => (o.depth(), o.stale(), o.has_room(4096)),
            Err(_) => (0, false, false),
        };
        self.metrics.outbox_depth.set(depth as i64);
        self.metrics
            .series_pending
            .set((self.assembler.pending() + self.ready.len() + self.in_flight) as i64);
        let disk_ok = self.check_disk();
        self.sweep_quarantine();
        self.metrics.set_ready(room && disk_ok && !self.spool_alarm);
        if stale && !self.stale_alarm {
            self.stale_alarm = true;
            let h = self.cfg.state.spool_max_age_h;
            self.alarm(
                EventKind::SpoolStale,
                format!("oldest spooled result is older than {h} h"),
            );
        } else if !stale {
            self.stale_alarm = false;
        }
    }

    /// Free space on the state folder's file system, looked at every [`DISK_CHECK`]: below `state.min_free_mb`,
    /// one `disk_low` alarm per episode and not ready. Returns whether there is enough.
    fn check_disk(&mut self) -> bool {
        if self.disk_checked.is_some_and(|t| t.elapsed() < DISK_CHECK) {
            return !self.disk_alarm;
        }
        self.disk_checked = Some(Instant::now());
        let free = match rustix::fs::statvfs(&self.cfg.state.dir) {
            Ok(s) => s.f_bavail.saturating_mul(s.f_frsize),
            Err(e) => {
                tracing::warn!(dir = %self.cfg.state.dir.display(), "cannot read free space: {e}");
                return !self.disk_alarm;
            }
        };
        self.metrics
            .state_free_bytes
            .set(i64::try_from(free).unwrap_or(i64::MAX));
        let min = self.cfg.state.min_free_mb.saturating_mul(1 << 20);
        if free < min && !self.disk_alarm {
            self.disk_alarm = true;
            self.alarm(
                EventKind::DiskLow,
                format!(
                    "{} MB free on the state folder's file system (minimum {} MB)",
                    free >> 20,
                    self.cfg.state.min_free_mb
                ),
            );
        } else if free >= min {
            self.disk_alarm = false;
        }
        !self.disk_alarm
    }

    pub(super) fn on_computed(&mut self, c: Computed) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let ready = c.ready;
        let study_key = StudyKey::of(&self.secret, &ready.study_uid);
        let series_key = SeriesKey::of(&self.secret, &ready.series_uid);
        if ready.revision.is_some() {
            self.revising.remove(&series_key);
        }
        let roi_key = RoiKey::of(&self.secret, &ready.roi_id);
        match c.outcome {
            Ok((p, timing)) => {
                // A revision follows the series' latest message, read now (an LN update may have been committed
                // while it was computed): it keeps that message's LN read, and names it in its id.
                let previous = ready
                    .revision
                    .as_ref()
                    .and_then(|_| self.ledger.latest(&series_key, &self.predictor.bundle.sha256))
                    .map(|r| (r.ln, r.message_id.clone()));
                let ln = self
                    .ln_reads
                    .get(&study_key)
                    .copied()
                    .or(previous.as_ref().and_then(|(ln, _)| *ln));
                let p = match ln {
                    Some(v) => self
                        .predictor
                        .from_signatures(
                            &p.signatures,
                            p.out_of_distribution.clone(),
                            &BTreeMap::from([(MRI_LN.to_string(), v.value())]),
                        )
                        .unwrap_or(p),
                    None => p,
                };
                let (kind, updates) = match &ready.revision {
                    Some(r) => (MessageKind::Revision, Some(r.original.clone())),
                    None => (MessageKind::Result, None),
                };
                let of = AnswerOf {
                    study_key: study_key.clone(),
                    series_key: series_key.clone(),
                    roi_key: Some(roi_key.clone()),
                    ln,
                    after: ready
                        .revision
                        .as_ref()
                        .map(|r| previous.map_or_else(|| r.original.clone(), |(_, id)| id)),
                };
                let mut msg = ResultMessage::new(&p, of, kind, updates.clone());
                msg.timing_ms = timing;
                msg.timing_ms.insert(
                    "last_file_to_result".into(),
                    ready.last_arrival.elapsed().as_secs_f64() * 1e3,
                );
                for (k, t) in [
                    ("first_file", ready.first_file),
                    ("last_file", ready.last_file),
                    ("computed", SystemTime::now()),
                ] {
                    msg.timestamps.insert(k.into(), crate::time::rfc3339(t));
                }
                if self.cfg.phi.include_identifiers {
                    msg.identifiers = self.identifiers.get(&ready.study_uid).cloned();
                }
                // Acquisition flags are the fleet's business (a protocol changed at the scanner: the model was not
                // validated on what it now sees), feature flags the patient's: two events, counted apart.
                let (acquisition, features): (Vec<&String>, Vec<&String>) = p
                    .out_of_distribution
                    .iter()
                    .partition(|f| f.starts_with(crate::model::acquisition::FLAG_PREFIX));
                for (name, what, flags) in [
                    (
                        EventKind::AcquisitionOutsideTraining,
                        "acquisition(s) outside the training cohort's",
                        acquisition,
                    ),
                    (
                        EventKind::OutOfDistribution,
                        "input(s) outside the training range",
                        features,
                    ),
                ] {
                    if !flags.is_empty() {
                        let list: Vec<&str> = flags.iter().map(|f| f.as_str()).collect();
                        self.event(
                            name,
                            format!("{} {what}: {}", list.len(), list.join("; ")),
                            Some(study_key.clone()),
                        );
                    }
                }
                let record = LedgerRecord {
                    series_key,
                    member_keys: ready
                        .member_series
                        .iter()
                        .skip(1)
                        .map(|m| SeriesKey::of(&self.secret, m))
                        .collect(),
                    study_key,
                    bundle_sha256: p.bundle_sha256.clone(),
                    message_id: msg.message_id.clone(),
                    kind,
                    updates,
                    roi_key: Some(roi_key),
                    roi_drawn_at: ready.roi_drawn_at.clone(),
                    set_aside_roi_keys: ready
                        .set_aside_roi_ids
                        .iter()
                        .map(|id| RoiKey::of(&self.secret, id))
                        .collect(),
                    folder_keys: self.folder_keys(&ready.files()),
                    ln,
                    signatures: p.signatures.clone(),
                    out_of_distribution: p.out_of_distribution.clone(),
                    at: crate::time::utc_now(),
                };
                self.commit(msg, record, Some(ready.last_arrival));
            }
            Err(e) if ready.revision.is_some() => {
                // The series' answer stands; only the revised ROI is set aside.
                self.metrics.series_processed.with_label_values(&["failed"]).inc();
                let detail = format!("the series could not be computed with the revised ROI: {}", e.neutral());
                self.revision_failed(&ready.roi, &study_key, &series_key, &e, detail);
            }
            Err(e) => {
                self.metrics.series_processed.with_label_values(&["failed"]).inc();
                self.event(
                    EventKind::SeriesFailed,
                    format!(
                        "series of {} file(s) could not be computed: {}",
                        ready.instances.len(),
                        e.neutral()
                    ),
                    Some(study_key.clone()),
                );
                let series_key = SeriesKey::of(&self.secret, &ready.series_uid);
                self.drop_awaiting(&series_key, "its series could not be computed");
                let files: Vec<PathBuf> = ready
                    .files()
                    .into_iter()
                    .chain(std::iter::once(ready.roi.clone()))
                    .filter(|f| f.exists())
                    .collect();
                self.quarantine(&files, &e, Some((&series_key, &study_key)));
            }
        }
    }

    pub(super) fn on_assembled(&mut self, items: Vec<Assembled>) {
        for a in items {
            match a {
                Assembled::Ready(r) => {
                    let series_key = SeriesKey::of(&self.secret, &r.series_uid);
                    if self.ledger.contains(&series_key, &self.predictor.bundle.sha256) {
                        self.metrics.series_processed.with_label_values(&["duplicate"]).inc();
                        continue;
                    }
                    if let Err(r) = self.ready.push_back(r) {
                        // Cannot happen: tick releases at most the free room. Keep it anyway.
                        tracing::error!(series_files = r.instances.len(), "ready queue full");
                    }
                }
                Assembled::NotSelected { study_uid, reason, .. } => {
                    self.metrics.series_processed.with_label_values(&["not_selected"]).inc();
                    self.event(
                        EventKind::SeriesNotSelected,
                        format!("series not selected as breast DCE: {reason}"),
                        Some(StudyKey::of(&self.secret, &study_uid)),
                    );
                }
                Assembled::WaitingForRoi { study_uid, waited, .. } => self.event(
                    EventKind::WaitingForRoi,
                    format!(
                        "series complete for {:.0} s without a ROI; still waiting",
                        waited.as_secs_f64()
                    ),
                    Some(StudyKey::of(&self.secret, &study_uid)),
                ),
                Assembled::RoiWithoutSeries { path, waited } => self.event(
                    EventKind::RoiWithoutSeries,
                    format!(
                        "{}: no series awaiting a ROI has matched it for {:.0} s; still waiting",
                        self.file_ref(&path),
                        waited.as_secs_f64()
                    ),
                    None,
                ),
                Assembled::RoiForAnswered { series_uid, roi } => {
                    let key = SeriesKey::of(&self.secret, &series_uid);
                    match self.ledger.latest(&key, &self.predictor.bundle.sha256).cloned() {
                        Some(of) => self.on_revised_roi(roi, of),
                        // still being computed (or held by a full spool): weighed once its answer is committed
                        None => self.awaiting_answer.push((key, roi)),
                    }
                }
                Assembled::Ignored { path, reason, instead } => self.event(
                    EventKind::IgnoredFile,
                    match instead {
                        Some(used) => format!("{}: {reason} ({} is used)", self.file_ref(&path), self.file_ref(&used)),
                        None => format!("{}: {reason}", self.file_ref(&path)),
                    },
                    None,
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                signatures: first.signatures.clone(),
                out_of_distribution: vec![],
                at: "t".into(),
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
