//! The daemon's core: a state machine that decides what happens to every file, series, result and LN read, and
//! does no I/O of its own.
//!
//! The driver ([`super::driver`]) tells it what happened ([`Core::on`] with a [`Happened`], [`Core::tick`] as
//! time passes) and asks it what to do next ([`Core::next_work`], which hands out [`Work`]: a series to
//! compute, a revision's images to read, files to quarantine, an LN sidecar to file). Everything the core must
//! make durable goes through its [`Store`] (spool, ledger, pending LN reads): that is the only place where its
//! decisions touch the disk, and the store is its own type, so the unit tests (`tests.rs`) drive the core through
//! whole sequences (late ROI, revision during compute, LN read before images, restart) with a store in memory,
//! no broker and no files.
//!
//! What it holds, each with a bound: the [`SeriesAssembler`] (series being gathered), the ready queue
//! ([`READY_QUEUE`]), the [`Revisions`] (ROIs for answered series), results held while the spool is full, the LN
//! reads of studies not computed yet ([`REMEMBERED_LN_READS`]), and — only with `phi.include_identifiers` — the
//! identifiers of recent studies ([`REMEMBERED_IDENTIFIERS`]). Events are published through the store's event
//! spool and counted; their details name files by [`Core::file_ref`] and errors by [`Error::neutral`].

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::assemble::{Assembled, ReadySeries, RoiCandidate, SeriesAssembler};
use super::bounded::{BoundedMap, BoundedSet};
use super::config::DaemonConfig;
use super::console::{ConsoleNote, SeriesShown};
use super::event::EventKind;
use super::intake::{Classified, Intake};
use super::ledger::LedgerRecord;
use super::metrics::Metrics;
use super::outbox::Push;
use super::pacs::PacsNote;
use super::pacs::sr::SourceStudy;
use super::payload::{
    AnswerOf, EventMessage, Identifiers, LnStatusCommand, MessageKind, ResultMessage, RoiKey, SeriesKey, Severity,
    StudyKey,
};
use super::quarantine::{PurgedDay, QuarantineOrder, series_ref};
use super::revision::{RevisionRequest, Revisions};
use super::store::Store;
use crate::error::{Error, Result};
use crate::model::reported::FactorNeed;
use crate::model::{OodFlag, OodKind, Prediction, Predictor, Reported};

mod revise;
#[cfg(test)]
mod tests;

/// LN reads remembered in memory (waiting for their study, or applied to it) unless `state.pending_ln_reads_max`
/// says otherwise: the oldest are forgotten first, so a flood of reads for unknown studies cannot grow the process.
pub const REMEMBERED_LN_READS: usize = 4096;

/// Studies whose identifiers are held (only with `phi.include_identifiers`; empty otherwise).
pub const REMEMBERED_IDENTIFIERS: usize = 256;

/// Series computed or waiting to be computed at once (the bounded ready queue).
pub const READY_QUEUE: usize = 16;

/// Tries of a series that fails by alnrisk's own fault ([`Error::is_own_fault`]) before it is reported failed
/// (its files stay in the export folder; a restart tries again).
pub const OWN_FAULT_TRIES: u32 = 3;

/// What the core needs of the model: the bundle it serves, the factors its nomogram needs reported, and the
/// nomogram evaluated again from an answer's signatures (an LN read or another factor that arrives later).
/// [`Predictor`] is the real one; the unit tests use a formula.
pub trait Rescore: Send + Sync {
    /// sha256 of the served bundle's manifest: answers are keyed by it.
    fn bundle_sha256(&self) -> &str;
    /// The reported factors the nomogram names (the LN read among them).
    fn needs(&self) -> Vec<FactorNeed>;
    /// The prediction from signature values, out-of-distribution flags and what was reported.
    fn rescore(&self, signatures: &BTreeMap<String, f64>, ood: Vec<OodFlag>, reported: &Reported)
    -> Result<Prediction>;
}

impl Rescore for Predictor {
    fn bundle_sha256(&self) -> &str {
        &self.bundle.sha256
    }
    fn needs(&self) -> Vec<FactorNeed> {
        crate::model::reported::needs(&self.bundle.manifest)
    }
    fn rescore(
        &self,
        signatures: &BTreeMap<String, f64>,
        ood: Vec<OodFlag>,
        reported: &Reported,
    ) -> Result<Prediction> {
        self.from_signatures(signatures, ood, &reported.coded(&self.bundle.manifest))
    }
}

/// What a worker hands back: the series, and its prediction with the stage times (ms), or why it failed.
pub struct Computed {
    pub ready: Box<ReadySeries>,
    pub outcome: Result<(Prediction, BTreeMap<String, f64>)>,
}

/// Where an LN read came from (named in events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LnVia {
    /// `cmd/ln-status` on the broker.
    Mqtt,
    /// Entered on the console page.
    Console,
    /// A `*.ln.json` file in the export folder.
    Sidecar,
}

impl LnVia {
    fn as_str(self) -> &'static str {
        match self {
            LnVia::Mqtt => "mqtt",
            LnVia::Console => "console",
            LnVia::Sidecar => "sidecar",
        }
    }
}

/// What happened, as the driver tells the core.
pub enum Happened {
    /// A walk's stable files, read.
    Classified(Vec<Intake>),
    /// A worker finished a series.
    Computed(Box<Computed>),
    /// The images of a series to compute again with a revised ROI were read (or could not be).
    Recollected(Box<(RevisionRequest, Result<ReadySeries>)>),
    /// An LN read command arrived.
    LnRead(LnStatusCommand, LnVia),
    /// A `cmd/ln-status` payload that is not an LN read command (the detail says where it failed, not what it
    /// said).
    BadLnPayload(String),
    /// Free bytes on the state folder's file system.
    DiskFree(u64),
    /// Quarantine days past their retention were deleted.
    QuarantinePurged(Vec<PurgedDay>),
    /// The DICOM sender or receiver ([`super::pacs`]) has news.
    Pacs(PacsNote),
}

/// What the core wants done.
#[derive(Debug)]
pub enum Work {
    /// Compute this series (a worker; answer with [`Happened::Computed`]).
    Compute(Box<ReadySeries>),
    /// Compute this series again after a fault of ours, on the CPU (the GPU may be what failed).
    ComputeOnCpu(Box<ReadySeries>),
    /// Read a revised ROI's series again ([`super::revision::collect`]; answer with [`Happened::Recollected`]).
    Recollect(Box<RevisionRequest>),
    /// Move these files to quarantine ([`super::quarantine::Quarantine::put`]), before the next walk.
    Quarantine(QuarantineOrder),
    /// File an applied LN sidecar away from the export folder (into `state.dir/ln-reads`).
    FileLnRead(PathBuf),
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
struct Held {
    message: ResultMessage,
    record: LedgerRecord,
    ready_at: Option<Instant>,
    /// What the console page shows of the series (`None` for an LN update: the card keeps it).
    shown: Option<SeriesShown>,
    /// The examination a Structured Report files into (with `[dicom_out]`; `None` for an LN update: the store
    /// keeps the series').
    source: Option<Box<SourceStudy>>,
}

/// The alarms that are raised once per episode.
#[derive(Default)]
struct Alarms {
    spool_full: bool,
    spool_stale: bool,
    disk_low: bool,
}

/// The daemon's core state (private: the driver goes through [`Core::on`], [`Core::tick`] and
/// [`Core::next_work`]).
pub struct Core<S: Store> {
    cfg: DaemonConfig,
    model: Arc<dyn Rescore>,
    secret: Vec<u8>,
    metrics: Arc<Metrics>,
    store: S,
    assembler: SeriesAssembler,
    ready: heapless::Deque<Box<ReadySeries>, READY_QUEUE>,
    /// Series to try again after a fault of ours (at most `state.workers`: each was in flight), with the tries
    /// so far.
    retry: VecDeque<(Box<ReadySeries>, u32)>,
    /// Tries so far of the series in flight that are being tried again.
    tries: BoundedMap<SeriesKey, u32>,
    revisions: Revisions,
    in_flight: usize,
    /// What was reported for studies not computed yet (the LN read and other factors), merged.
    ln_reads: BoundedMap<StudyKey, Reported>,
    /// Lines in the store's pending LN reads since it was last rewritten from `ln_reads`: rewritten past twice
    /// `state.pending_ln_reads_max` ([`REMEMBERED_LN_READS`] by default), so a flood of reads for unknown studies
    /// cannot grow the file without bound.
    pending_lines: usize,
    held: VecDeque<Held>,
    alarms: Alarms,
    /// File-system work for the driver (quarantine moves, sidecars to file), in the order decided.
    orders: VecDeque<Work>,
    identifiers: BoundedMap<String, Identifiers>,
    /// SeriesInstanceUIDs skipped for `watch.max_age_h` (each counted once).
    too_old_series: BoundedSet<String>,
    /// The UTC day (since the epoch) the ledger was last compacted.
    compacted_on: Option<i64>,
    /// The console page's notes ([`Core::show_on`]; `None`: no page).
    console: Option<tokio::sync::mpsc::Sender<ConsoleNote>>,
    stopping: bool,
}

/// Every DICOM UID in `text` (three or more dot-separated numeric components: `2.25.<uuid>` has three) replaced
/// by `(UID)`: the last guard on what leaves the box in an event detail, behind details that name things by key.
pub fn scrub_uids(text: &str) -> String {
    static UID: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    match UID.get_or_init(|| regex::Regex::new(r"\b[0-9]+(\.[0-9]+){2,}\b").ok()) {
        Some(re) => re.replace_all(text, "(UID)").into_owned(),
        None => text.to_string(),
    }
}

/// Today (UTC) in days since the epoch.
pub(super) fn today() -> i64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() / 86_400) as i64)
}

impl<S: Store> Core<S> {
    /// The core over an opened `store`: corrupt spool entries become events, and the LN reads that arrived before
    /// their images (kept across restarts) are taken back — those whose study has been answered since are
    /// dropped from the store.
    pub fn new(cfg: &DaemonConfig, model: Arc<dyn Rescore>, secret: Vec<u8>, metrics: Arc<Metrics>, store: S) -> Self {
        let mut core = Core {
            assembler: SeriesAssembler::new(
                Duration::from_secs_f64(cfg.assemble.quiet_period_s),
                Duration::from_secs_f64(cfg.assemble.roi_wait_s),
                &cfg.select,
            ),
            cfg: cfg.clone(),
            model,
            secret,
            metrics,
            store,
            ready: heapless::Deque::new(),
            retry: VecDeque::new(),
            tries: BoundedMap::new(READY_QUEUE),
            revisions: Revisions::default(),
            in_flight: 0,
            ln_reads: BoundedMap::new(cfg.state.pending_ln_reads_max),
            pending_lines: 0,
            held: VecDeque::new(),
            alarms: Alarms::default(),
            orders: VecDeque::new(),
            identifiers: BoundedMap::new(REMEMBERED_IDENTIFIERS),
            too_old_series: BoundedSet::new(super::assemble::REMEMBERED_SERIES),
            compacted_on: None,
            console: None,
            stopping: false,
        };
        for p in core.store.take_problems() {
            core.event(EventKind::SpoolEntryCorrupt, p.neutral(), None);
        }
        let sha = core.model.bundle_sha256().to_string();
        let kept = core.store.pending_ln_reads();
        let waiting: Vec<(StudyKey, Reported)> = kept
            .iter()
            .filter(|(k, _)| core.store.ledger().for_study(k, &sha).is_empty())
            .cloned()
            .collect();
        // (each line holds all that was reported for its study by then: the last one stands)
        for (k, v) in &waiting {
            core.ln_reads.insert(k.clone(), v.clone());
        }
        core.pending_lines = kept.len();
        if waiting.len() < kept.len() || waiting.len() > core.ln_reads.len() {
            core.rewrite_pending_ln_reads();
        }
        core.compact_ledger();
        core.update_gauges();
        core
    }

    /// Tell the console page (`notes`) what happens to every series from now on.
    pub fn show_on(&mut self, notes: tokio::sync::mpsc::Sender<ConsoleNote>) {
        self.console = Some(notes);
    }

    /// A note for the console page, if there is one; never waits (a full queue drops the note, logged).
    fn show(&self, note: ConsoleNote) {
        if let Some(tx) = &self.console
            && let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) = tx.try_send(note)
        {
            tracing::warn!("console page behind: a card change was not shown");
        }
    }

    /// What the console page shows of a series.
    fn shown(&self, ready: &ReadySeries) -> SeriesShown {
        let identifiers = self.cfg.console.as_ref().is_some_and(|c| c.show_identifiers);
        SeriesShown::of(ready, identifiers)
    }

    /// The console's note that a series goes to a worker.
    fn show_computing(&self, r: &ReadySeries) {
        if self.console.is_some() {
            self.show(ConsoleNote::Computing {
                series_key: SeriesKey::of(&self.secret, &r.series_uid),
                study_key: StudyKey::of(&self.secret, &r.study_uid),
                shown: self.shown(r),
            });
        }
    }

    /// Something happened.
    pub fn on(&mut self, happened: Happened) {
        match happened {
            Happened::Classified(batch) => self.on_classified(batch),
            Happened::Computed(c) => self.on_computed(*c),
            Happened::Recollected(r) => {
                let (req, got) = *r;
                self.on_recollected(req, got);
            }
            Happened::LnRead(cmd, via) => self.on_ln_read(&cmd, via),
            Happened::BadLnPayload(detail) => self.event(EventKind::BadLnRead, detail, None),
            Happened::DiskFree(bytes) => self.on_disk_free(bytes),
            Happened::Pacs(note) => self.on_pacs(note),
            Happened::QuarantinePurged(days) => {
                let keep = self.cfg.state.quarantine_keep_days;
                for d in days {
                    self.metrics.quarantine_purged_files.inc_by(d.files);
                    self.event(
                        EventKind::QuarantinePurged,
                        format!(
                            "deleted the {} file(s) ({} bytes) quarantined on {}: older than \
                             state.quarantine_keep_days = {keep}",
                            d.files, d.bytes, d.day
                        ),
                        None,
                    );
                }
            }
        }
        self.update_gauges();
    }

    /// Time passed (`now`): release what the assembler has ready, retry held results, compact the ledger once a
    /// day, update the gauges.
    pub fn tick(&mut self, now: Instant) {
        if !self.stopping {
            let items = self.assembler.tick(now, READY_QUEUE - self.ready.len());
            self.on_assembled(items);
        }
        if !self.held.is_empty() {
            self.flush_held();
        }
        if self.compacted_on != Some(today()) {
            self.compact_ledger();
        }
        self.update_gauges();
    }

    /// The next piece of work, in the order it must be done: file-system orders first (a quarantined file must
    /// be gone before the next walk), then revisions to read, then series to compute while a worker is free
    /// (`state.workers`) and no result is held by a full spool. `None`: nothing until something happens.
    pub fn next_work(&mut self) -> Option<Work> {
        if let Some(order) = self.orders.pop_front() {
            return Some(order);
        }
        if !self.stopping
            && let Some(req) = self.next_revision()
        {
            return Some(Work::Recollect(Box::new(req)));
        }
        if self.in_flight < self.cfg.state.workers && self.held.is_empty() {
            if let Some((r, tries)) = self.retry.pop_front() {
                self.tries.insert(SeriesKey::of(&self.secret, &r.series_uid), tries);
                self.in_flight += 1;
                self.update_gauges();
                self.show_computing(&r);
                return Some(Work::ComputeOnCpu(r));
            }
            let next = self.ready.pop_front().or_else(|| self.revisions.pop_recollected());
            if let Some(r) = next {
                self.in_flight += 1;
                self.update_gauges();
                self.show_computing(&r);
                return Some(Work::Compute(r));
            }
        }
        None
    }

    /// Whether the export folder should be walked: not stopping, and the ready queue has room (the folder is the
    /// buffer in front of it).
    pub fn wants_files(&self) -> bool {
        !self.stopping && self.ready.len() < READY_QUEUE
    }

    /// Stop taking new work; what is in flight finishes.
    pub fn stop(&mut self) {
        self.stopping = true;
    }

    /// Series being computed, and results spooled but not acknowledged.
    pub fn backlog(&self) -> (usize, usize) {
        (self.in_flight, self.store.spool().results)
    }

    /// The store (the tests look into it).
    #[cfg(test)]
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, to change it (the tests acknowledge messages and fill the spool).
    #[cfg(test)]
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// The core gone, its store left (a restart, in the tests).
    #[cfg(test)]
    pub fn into_store(self) -> S {
        self.store
    }

    /// Publish (spooled), count and log an event. `detail` names files by [`Core::file_ref`] and errors by
    /// [`Error::neutral`]; UIDs are scrubbed from it unless `phi.include_identifiers` is on.
    pub(super) fn event(&mut self, kind: EventKind, detail: String, study: Option<StudyKey>) {
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
        let pushed = serde_json::to_string(&EventMessage::new(kind, detail, study))
            .map_err(Error::from)
            .and_then(|body| self.store.push_event(&body));
        match pushed {
            Ok(Push::Stored(_)) => {
                self.metrics.event_outbox_depth.set(self.store.spool().events as i64);
            }
            Ok(Push::Full(why)) => {
                tracing::error!(event, "event spool full ({why}); the event is only in this log");
                self.metrics.events_dropped.inc();
            }
            Err(e) => {
                tracing::error!(event, "event not spooled: {}", e.neutral());
                self.metrics.events_dropped.inc();
            }
        }
    }

    /// Raise an alarm: counted in `alnrisk_alarms_total{alarm}` and published as an `alarm` event.
    fn on_pacs(&mut self, note: PacsNote) {
        match note {
            PacsNote::Sent => self.event(EventKind::ReportSent, "PACS stored a Structured Report".into(), None),
            PacsNote::Unreachable(why) => self.alarm(
                EventKind::PacsUnreachable,
                format!("PACS does not store the reports ({why}); they wait in the spool and are tried again"),
            ),
            PacsNote::Reachable => self.event(EventKind::PacsReachable, "PACS stores the reports again".into(), None),
            PacsNote::Refused(why) => self.alarm(
                EventKind::ReportRefused,
                format!("PACS refused a Structured Report ({why}); it is kept in state.dir/pacs/refused"),
            ),
            PacsNote::AssociationRefused => self.event(
                EventKind::AssociationRefused,
                "a DICOM association was rejected: its called AE title is not dicom_in.ae_title or its calling \
                 AE title is not in dicom_in.allowed_calling_ae"
                    .into(),
                None,
            ),
            PacsNote::ReceivedUnreadable => {
                tracing::warn!("a received instance failed the checks; the walk quarantines it");
            }
        }
    }

    fn alarm(&mut self, alarm: EventKind, detail: String) {
        debug_assert!(alarm.is_alarm());
        self.metrics.alarms.with_label_values(&[alarm.name()]).inc();
        self.event(alarm, detail, None);
    }

    /// A file of the export folder as an event names it: `file ` and 12 hex digits of the HMAC of its path
    /// within the export folder (its name may name the patient). The quarantine note on the box lists the same
    /// reference beside the real name, so an operator can find it.
    pub(super) fn file_ref(&self, path: &Path) -> String {
        let rel = super::quarantine::relative(path, &self.cfg.watch.export_dir);
        let key = StudyKey::of(&self.secret, &format!("file:{rel}"));
        format!("file {}", &key.as_str()[..12])
    }

    /// Quarantine files (one bad file, or every file of a series that failed): counted and reported now, moved
    /// by the driver ([`Work::Quarantine`]) before the next walk.
    pub(super) fn quarantine(&mut self, files: Vec<PathBuf>, err: &Error, series: Option<(&SeriesKey, &StudyKey)>) {
        let code = err.reason_code();
        // the reference an operator looks up with `alnrisk quarantine show` (the note on the box has the names)
        let what = match (series, files.as_slice()) {
            (None, [one]) => self.file_ref(one),
            (Some((k, _)), _) => format!("{} of {} file(s)", series_ref(k), files.len()),
            (None, _) => format!("{} file(s)", files.len()),
        };
        self.metrics.quarantined.with_label_values(&[code]).inc();
        self.event(
            EventKind::Quarantined,
            format!("{what}: {code}: {}", err.neutral()),
            series.map(|(_, study)| study.clone()),
        );
        let file_refs = files.iter().map(|f| self.file_ref(f)).collect();
        self.orders.push_back(Work::Quarantine(QuarantineOrder {
            files,
            file_refs,
            reason: code,
            detail: err.to_string(),
            series_folder: series.map(|(k, _)| series_ref(k).replace(' ', "-")),
        }));
    }

    fn sha(&self) -> String {
        self.model.bundle_sha256().to_string()
    }

    fn on_classified(&mut self, batch: Vec<Intake>) {
        let mut too_old = TooOld::default();
        let sha = self.sha();
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
                    if self.store.ledger().contains(&series_key, &sha) {
                        tracing::debug!("an image of a series already answered by this bundle");
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
                        let detail = format!("{}: {reason}", self.file_ref(&path));
                        self.event(EventKind::IgnoredFile, detail, None);
                    }
                }
                Classified::Roi(r) => {
                    let roi = RoiCandidate::dicom(&path, &r, at, wall);
                    if !self.roi_is_new(&roi, old, &mut too_old) {
                        continue;
                    }
                    let keys: Vec<SeriesKey> = r.series_uids.iter().map(|u| SeriesKey::of(&self.secret, u)).collect();
                    let ledger = self.store.ledger();
                    let answered = keys.iter().find_map(|k| ledger.latest(k, &sha));
                    let retired = keys.iter().find(|k| ledger.retired(k, &sha)).cloned();
                    match (answered, retired) {
                        (Some(of), _) => self.on_revised_roi(roi, of),
                        (None, Some(_)) => self.roi_for_retired(&roi.path),
                        (None, None) => self.assembler.add_roi(roi, r),
                    }
                }
                Classified::Label { sha256, near } => {
                    let roi = RoiCandidate::label(&path, &sha256, at, wall);
                    if !self.roi_is_new(&roi, old, &mut too_old) {
                        continue;
                    }
                    match self.answered_beside(&roi.path, &near) {
                        Some(of) => self.on_revised_roi(roi, of),
                        None => self.assembler.add_label(roi),
                    }
                }
                Classified::LnSidecar(cmd) => {
                    self.on_ln_read(&cmd, LnVia::Sidecar);
                    self.orders.push_back(Work::FileLnRead(path));
                }
                Classified::Bad(e) => self.quarantine(vec![path], &e, None),
            }
        }
        if too_old.files + too_old.rois > 0 {
            self.metrics
                .series_processed
                .with_label_values(&["too_old"])
                .inc_by(too_old.series);
            let detail = format!(
                "{} image file(s) ({} series not reported before) and {} ROI object(s), last modified more than {} h \
                 ago (watch.max_age_h), are not computed; they stay in the export folder",
                too_old.files, too_old.series, too_old.rois, self.cfg.watch.max_age_h
            );
            self.event(EventKind::TooOldSkipped, detail, None);
        }
    }

    /// A ROI for a series whose answer is past `state.ledger_keep_days`: reported, not applied.
    fn roi_for_retired(&mut self, roi: &Path) {
        let detail = format!(
            "{}: its series was answered more than state.ledger_keep_days = {} days ago; the ROI is not applied",
            self.file_ref(roi),
            self.cfg.state.ledger_keep_days
        );
        self.event(EventKind::RoiNotApplied, detail, None);
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
    /// The store's pending LN reads rewritten from those remembered (the oldest beyond the bound are forgotten).
    fn rewrite_pending_ln_reads(&mut self) {
        let reads: Vec<(StudyKey, Reported)> = self.ln_reads.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        match self.store.rewrite_pending_ln_reads(&reads) {
            Ok(()) => self.pending_lines = reads.len(),
            Err(e) => tracing::warn!("could not rewrite the pending LN reads: {}", e.neutral()),
        }
    }

    fn older_than_max_age(&self, modified: Option<SystemTime>) -> bool {
        let max_h = self.cfg.watch.max_age_h;
        max_h > 0.0
            && modified
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_some_and(|age| age.as_secs_f64() > max_h * 3600.0)
    }

    /// What a command reports, checked against the served nomogram's needs: `Err` says why (a factor the
    /// nomogram does not use is not named, nor is any value: both are the sender's text; the bundle's own column
    /// names are).
    fn reported_of(&self, cmd: &LnStatusCommand) -> std::result::Result<Reported, String> {
        let needs = self.model.needs();
        let mut factors = BTreeMap::new();
        for (column, v) in &cmd.factors {
            let need = needs
                .iter()
                .find(|n| &n.column == column && !n.is_ln())
                // (the key is the sender's text, so it is not repeated: it could be anything, a name included)
                .ok_or_else(|| {
                    let used: Vec<&str> = needs.iter().filter(|n| !n.is_ln()).map(|n| n.column.as_str()).collect();
                    format!(
                        "a factor the served nomogram does not use (it uses: {})",
                        if used.is_empty() {
                            "none besides the LN read".to_string()
                        } else {
                            used.join(", ")
                        }
                    )
                })?;
            factors.insert(column.clone(), need.accept(v)?);
        }
        let reported = Reported {
            ln: cmd.value(),
            factors,
        };
        if reported.is_empty() {
            return Err("no LN read and no factor".into());
        }
        Ok(reported)
    }

    fn on_ln_read(&mut self, cmd: &LnStatusCommand, via: LnVia) {
        let via = via.as_str();
        let Some(key) = cmd.key(&self.secret) else {
            let detail = format!("LN read via {via} without a valid study key");
            self.event(EventKind::BadLnRead, detail, None);
            return;
        };
        let incoming = match self.reported_of(cmd) {
            Ok(r) => r,
            Err(why) => {
                let detail = format!("LN read via {via}: {why}");
                self.event(EventKind::BadLnRead, detail, Some(key));
                return;
            }
        };
        let sha = self.sha();
        let records: Vec<LedgerRecord> = self.store.ledger().for_study(&key, &sha);
        if records.is_empty() && self.store.ledger().study_retired(&key, &sha) {
            let detail = format!(
                "LN read via {via} for a study answered more than state.ledger_keep_days = {} days ago: not applied",
                self.cfg.state.ledger_keep_days
            );
            self.event(EventKind::LnUpdateFailed, detail, Some(key));
            return;
        }
        if records.is_empty() {
            // Not computed yet: applied when it is; kept durably (all reported so far) so a restart does not
            // lose it.
            let all = self
                .ln_reads
                .get(&key)
                .map_or_else(|| incoming.clone(), |r| r.merged(&incoming));
            self.ln_reads.insert(key.clone(), all.clone());
            if let Err(e) = self.store.keep_pending_ln_read(&key, &all) {
                tracing::error!("could not keep the LN read: {}", e.neutral());
            }
            self.pending_lines += 1;
            if self.pending_lines > 2 * self.cfg.state.pending_ln_reads_max {
                self.rewrite_pending_ln_reads();
            }
            let detail = format!("LN read via {via} kept for a study not computed yet");
            self.event(EventKind::LnReadPending, detail, Some(key));
            return;
        }
        for rec in records {
            let reported = rec.reported().merged(&incoming);
            if reported == rec.reported() {
                continue;
            }
            match self
                .model
                .rescore(&rec.signatures, rec.out_of_distribution.clone(), &reported)
            {
                Ok(p) => {
                    let original = rec.updates.clone().unwrap_or_else(|| rec.message_id.clone());
                    let of = AnswerOf {
                        study_key: key.clone(),
                        series_key: rec.series_key.clone(),
                        roi_key: rec.roi_key.clone(),
                        reported: reported.clone(),
                        after: Some(rec.message_id.clone()),
                    };
                    let mut msg = ResultMessage::new(&p, of, MessageKind::Update, Some(original.clone()));
                    msg.timestamps.insert("computed".into(), crate::time::utc_now());
                    let record = LedgerRecord {
                        message_id: msg.message_id.clone(),
                        kind: MessageKind::Update,
                        updates: Some(original),
                        ln: reported.ln,
                        factors: reported.factors,
                        at: crate::time::utc_now(),
                        ..rec
                    };
                    self.commit(msg, record, None, None, None);
                }
                Err(e) => self.event(EventKind::LnUpdateFailed, e.neutral(), Some(key.clone())),
            }
        }
    }

    /// Spool then record in the ledger; hold in memory with an alarm when the spool is full.
    fn commit(
        &mut self,
        message: ResultMessage,
        record: LedgerRecord,
        ready_at: Option<Instant>,
        shown: Option<SeriesShown>,
        source: Option<Box<SourceStudy>>,
    ) {
        self.held.push_back(Held {
            message,
            record,
            ready_at,
            shown,
            source,
        });
        self.flush_held();
    }

    fn flush_held(&mut self) {
        while let Some(h) = self.held.pop_front() {
            let body = match serde_json::to_string(&h.message) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!("cannot serialise a result: {e}");
                    continue;
                }
            };
            match self.store.commit(&h.message, &body, &h.record, h.source.as_deref()) {
                Ok(Push::Stored(_)) => {
                    if h.record.kind == MessageKind::Result {
                        self.revise_awaiting(&h.record);
                    }
                    if let Some(t) = h.ready_at {
                        self.metrics.end_to_end.observe(t.elapsed().as_secs_f64());
                    }
                    if self.console.is_some() {
                        self.show(ConsoleNote::Answered {
                            message: Box::new(h.message.clone()),
                            shown: h.shown.clone(),
                        });
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
                    if self.alarms.spool_full && self.held.is_empty() {
                        self.alarms.spool_full = false;
                        self.event(EventKind::SpoolFullCleared, "the spool has room again".into(), None);
                    }
                }
                Ok(Push::Full(why)) => {
                    self.held.push_front(h);
                    if !self.alarms.spool_full {
                        self.alarms.spool_full = true;
                        let held = self.held.len();
                        self.alarm(
                            EventKind::SpoolFull,
                            format!("outbox full ({why}); {held} result(s) held in memory, nothing deleted"),
                        );
                    }
                    break;
                }
                Err(e) => {
                    // A write that fails (a full disk, an I/O error) cannot spool results either: the same alarm,
                    // the result held, nothing lost; it is tried again at the next tick.
                    self.held.push_front(h);
                    tracing::error!("spool write failed: {}", e.neutral());
                    if !self.alarms.spool_full {
                        self.alarms.spool_full = true;
                        let held = self.held.len();
                        self.alarm(
                            EventKind::SpoolFull,
                            format!(
                                "the spool cannot be written ({}); {held} result(s) held in memory, nothing deleted",
                                e.neutral()
                            ),
                        );
                    }
                    break;
                }
            }
        }
    }

    fn update_gauges(&mut self) {
        let spool = self.store.spool();
        self.metrics.outbox_depth.set(spool.results as i64);
        self.metrics.event_outbox_depth.set(spool.events as i64);
        self.metrics
            .series_pending
            .set((self.assembler.pending() + self.ready.len() + self.in_flight) as i64);
        self.metrics
            .set_ready(spool.room && !self.alarms.disk_low && !self.alarms.spool_full);
        if spool.stale && !self.alarms.spool_stale {
            self.alarms.spool_stale = true;
            let h = self.cfg.state.spool_max_age_h;
            self.alarm(
                EventKind::SpoolStale,
                format!("oldest spooled result is older than {h} h"),
            );
        } else if !spool.stale {
            self.alarms.spool_stale = false;
        }
    }

    /// Free space on the state folder's file system: below `state.min_free_mb`, one `disk_low` alarm per episode
    /// and not ready.
    fn on_disk_free(&mut self, free: u64) {
        self.metrics
            .state_free_bytes
            .set(i64::try_from(free).unwrap_or(i64::MAX));
        let min = self.cfg.state.min_free_mb.saturating_mul(1 << 20);
        if free < min && !self.alarms.disk_low {
            self.alarms.disk_low = true;
            self.alarm(
                EventKind::DiskLow,
                format!(
                    "{} MB free on the state folder's file system (minimum {} MB)",
                    free >> 20,
                    self.cfg.state.min_free_mb
                ),
            );
        } else if free >= min {
            self.alarms.disk_low = false;
        }
    }

    /// Retire the ledger's answers past `state.ledger_keep_days` (at start, then once a UTC day).
    fn compact_ledger(&mut self) {
        let day = today();
        self.compacted_on = Some(day);
        match self.store.compact_ledger(self.cfg.state.ledger_keep_days, day) {
            Ok(c) if c.retired > 0 => tracing::info!(
                retired = c.retired,
                lines_before = c.lines_before,
                lines_after = c.lines_after,
                "ledger compacted: answers past state.ledger_keep_days keep only their keys"
            ),
            Ok(_) => {}
            Err(e) => tracing::error!("ledger compaction failed (the ledger is unchanged): {e}"),
        }
    }

    fn on_computed(&mut self, c: Computed) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let ready = c.ready;
        let study_key = StudyKey::of(&self.secret, &ready.study_uid);
        let series_key = SeriesKey::of(&self.secret, &ready.series_uid);
        if ready.revision.is_some() {
            self.revisions.finished(&series_key);
        }
        let tried = self.tries.remove(&series_key).unwrap_or(0);
        let roi_key = RoiKey::of(&self.secret, &ready.roi_id);
        let sha = self.sha();
        match c.outcome {
            Ok((p, timing)) => {
                // A revision follows the series' latest message, read now (an LN update may have been committed
                // while it was computed): it keeps that message's LN read, and names it in its id.
                let previous = ready
                    .revision
                    .as_ref()
                    .and_then(|_| self.store.ledger().latest(&series_key, &sha))
                    .map(|r| (r.reported(), r.message_id.clone()));
                // what the series' latest message used, with what was reported since on top
                let earlier = previous.as_ref().map(|(r, _)| r.clone()).unwrap_or_default();
                let reported = match self.ln_reads.get(&study_key) {
                    Some(r) => earlier.merged(r),
                    None => earlier,
                };
                let p = if reported.is_empty() {
                    p
                } else {
                    self.model
                        .rescore(&p.signatures, p.out_of_distribution.clone(), &reported)
                        .unwrap_or(p)
                };
                let (kind, updates) = match &ready.revision {
                    Some(r) => (MessageKind::Revision, Some(r.original.clone())),
                    None => (MessageKind::Result, None),
                };
                let of = AnswerOf {
                    study_key: study_key.clone(),
                    series_key: series_key.clone(),
                    roi_key: Some(roi_key.clone()),
                    reported: reported.clone(),
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
                self.report_flags(&p.out_of_distribution, &study_key);
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
                    ln: reported.ln,
                    factors: reported.factors,
                    signatures: p.signatures.clone(),
                    out_of_distribution: p.out_of_distribution.clone(),
                    at: crate::time::utc_now(),
                    retired: false,
                };
                let shown = self.console.is_some().then(|| self.shown(&ready));
                let source = self
                    .cfg
                    .dicom_out
                    .is_some()
                    .then(|| Box::new(SourceStudy::of(&ready.instances, ready.roi_object.clone())));
                self.commit(msg, record, Some(ready.last_arrival), shown, source);
            }
            Err(e) if e.is_own_fault() => self.own_fault(ready, &e, &study_key, &series_key, tried),
            Err(e) if ready.revision.is_some() => {
                // The series' answer stands; only the revised ROI is set aside.
                self.metrics.series_processed.with_label_values(&["failed"]).inc();
                let detail = format!("the series could not be computed with the revised ROI: {}", e.neutral());
                self.revision_failed(&ready.roi, &study_key, &series_key, &e, detail);
            }
            Err(e) => {
                self.metrics.series_processed.with_label_values(&["failed"]).inc();
                let detail = format!(
                    "{} of {} file(s) could not be computed: {}",
                    series_ref(&series_key),
                    ready.instances.len(),
                    e.neutral()
                );
                self.event(EventKind::SeriesFailed, detail, Some(study_key.clone()));
                self.show(ConsoleNote::Failed {
                    series_key: series_key.clone(),
                    study_key: study_key.clone(),
                    reason: e.neutral(),
                });
                self.drop_awaiting(&series_key, "its series could not be computed");
                let files: Vec<PathBuf> = ready
                    .files()
                    .into_iter()
                    .chain(std::iter::once(ready.roi.clone()))
                    .collect();
                self.quarantine(files, &e, Some((&series_key, &study_key)));
            }
        }
    }

    /// A series failed by our fault (a panic, the GPU, the model): an alarm, and it is tried again, up to
    /// [`OWN_FAULT_TRIES`] times; then it is reported failed. Its files are never moved: they may be a
    /// technologist's only export, and a restart tries again.
    fn own_fault(
        &mut self,
        ready: Box<ReadySeries>,
        e: &Error,
        study_key: &StudyKey,
        series_key: &SeriesKey,
        tried: u32,
    ) {
        let tries = tried + 1;
        if tries < OWN_FAULT_TRIES {
            let detail = format!(
                "{} of {} file(s): try {tries} of {OWN_FAULT_TRIES} failed by alnrisk's own fault, not the \
                 input's; trying again: {}",
                series_ref(series_key),
                ready.instances.len(),
                e.neutral()
            );
            self.alarm(EventKind::ComputeFault, detail);
            if ready.revision.is_some() {
                // still in progress: no other revision of the series starts meanwhile
                self.revisions.started(series_key);
            }
            self.retry.push_back((ready, tries));
            return;
        }
        self.metrics.series_processed.with_label_values(&["failed"]).inc();
        let detail = format!(
            "{} of {} file(s) could not be computed in {OWN_FAULT_TRIES} tries, by alnrisk's own fault: {}; its \
             files stay in the export folder (a restart tries again)",
            series_ref(series_key),
            ready.instances.len(),
            e.neutral()
        );
        self.event(EventKind::SeriesFailed, detail, Some(study_key.clone()));
        self.show(ConsoleNote::Failed {
            series_key: series_key.clone(),
            study_key: study_key.clone(),
            reason: format!(
                "alnrisk could not compute it in {OWN_FAULT_TRIES} tries (its own fault, not the images'); the files \
                 stay in the export folder and a restart tries again"
            ),
        });
        if ready.revision.is_none() {
            self.drop_awaiting(series_key, "its series could not be computed");
        }
    }

    /// Out-of-distribution flags of an answer, as two events counted apart: acquisition flags are the fleet's
    /// business (a protocol changed at the scanner: the model was not validated on what it now sees), feature
    /// flags the patient's.
    fn report_flags(&mut self, flags: &[OodFlag], study_key: &StudyKey) {
        let (acquisition, features): (Vec<&OodFlag>, Vec<&OodFlag>) =
            flags.iter().partition(|f| f.kind == OodKind::Acquisition);
        for (kind, what, flags) in [
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
                let list: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
                let detail = format!("{} {what}: {}", list.len(), list.join("; "));
                self.event(kind, detail, Some(study_key.clone()));
            }
        }
    }

    fn on_assembled(&mut self, items: Vec<Assembled>) {
        let sha = self.sha();
        for a in items {
            match a {
                Assembled::Ready(r) => {
                    let series_key = SeriesKey::of(&self.secret, &r.series_uid);
                    if self.store.ledger().contains(&series_key, &sha) {
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
                    let study = StudyKey::of(&self.secret, &study_uid);
                    self.event(
                        EventKind::SeriesNotSelected,
                        format!("series not selected as breast DCE: {reason}"),
                        Some(study),
                    );
                }
                Assembled::WaitingForRoi {
                    series_uid,
                    study_uid,
                    waited,
                } => {
                    let study = StudyKey::of(&self.secret, &study_uid);
                    self.show(ConsoleNote::Waiting {
                        series_key: SeriesKey::of(&self.secret, &series_uid),
                        study_key: study.clone(),
                    });
                    self.event(
                        EventKind::WaitingForRoi,
                        format!(
                            "series complete for {:.0} s without a ROI; still waiting",
                            waited.as_secs_f64()
                        ),
                        Some(study),
                    );
                }
                Assembled::RoiWithoutSeries { path, waited } => {
                    let detail = format!(
                        "{}: no series awaiting a ROI has matched it for {:.0} s; still waiting",
                        self.file_ref(&path),
                        waited.as_secs_f64()
                    );
                    self.event(EventKind::RoiWithoutSeries, detail, None);
                }
                Assembled::RoiForAnswered { series_uid, roi } => {
                    let key = SeriesKey::of(&self.secret, &series_uid);
                    match self.store.ledger().latest(&key, &sha) {
                        Some(of) => self.on_revised_roi(roi, of),
                        // still being computed (or held by a full spool): weighed once its answer is committed
                        None => self.revisions.await_answer(key, roi),
                    }
                }
                Assembled::Ignored { path, reason, instead } => {
                    let detail = match instead {
                        Some(used) => format!("{}: {reason} ({} is used)", self.file_ref(&path), self.file_ref(&used)),
                        None => format!("{}: {reason}", self.file_ref(&path)),
                    };
                    self.event(EventKind::IgnoredFile, detail, None);
                }
            }
        }
    }
}
