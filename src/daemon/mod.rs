//! `alnrisk serve`: the scanner-side daemon. One examination travels
//! export folder → [`watch`] → header read → [`assemble`] → compute (the bundle's [`crate::model::Predictor`], on
//! a blocking worker) → [`outbox`] (fsync) + [`ledger`] → [`mqtt`] publisher → PUBACK → removed from the spool.
//!
//! The core loop ([`Daemon`]) owns the watcher, the assembler, the ledger and the LN reads; the workers only
//! compute, and the publisher only drains the spool, so each piece of state has one owner. Stage queues are
//! bounded (a `heapless` ready queue of [`READY_QUEUE`] series; the export folder itself is the buffer in front of
//! it: when the queue is full the folder is not scanned). Bad files go to `quarantine/` with a `.reason.json`, an
//! event and a counter; nothing accepted is dropped: a series waits for its ROI indefinitely (with an event), a
//! result that finds the spool full waits in memory with an alarm until there is room, and a restart recomputes
//! whatever was not committed (its files are still in the export folder).

pub mod assemble;
pub mod broker;
pub mod config;
pub mod fsio;
pub mod ledger;
pub mod listen;
pub mod metrics;
pub mod mqtt;
pub mod outbox;
pub mod payload;
pub mod watch;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use self::assemble::{Assembled, ReadySeries, SeriesAssembler};
use self::config::DaemonConfig;
use self::ledger::{Ledger, LedgerRecord};
use self::metrics::Metrics;
use self::mqtt::{PublisherCmd, PublisherNote};
use self::outbox::{Outbox, OutboxBounds, Push};
use self::payload::{EventMessage, Identifiers, LnStatusCommand, ResultMessage, StatusMessage, StudyKey};
use self::watch::ExportWatcher;
use crate::error::{Error, Result};
use crate::ingest::header::InstanceHeader;
use crate::model::predict::MRI_LN;
use crate::model::{Bundle, Predictor, Trust};
use crate::roi::RoiReferences;

/// LN reads that arrived before their study was computed (JSON lines under `state.dir`).
pub const PENDING_LN_READS: &str = "ln-reads-pending.jsonl";

/// Shortest time between two walks of the export folder when inotify keeps waking the loop.
const MIN_SCAN_INTERVAL: Duration = Duration::from_millis(100);
/// How often free disk space is looked at.
const DISK_CHECK: Duration = Duration::from_secs(5);

/// Series computed or waiting to be computed at once (the bounded ready queue).
pub const READY_QUEUE: usize = 16;

/// What a ready file turned out to be.
#[derive(Debug)]
enum Classified {
    Image(Box<InstanceHeader>),
    Roi(RoiReferences),
    Label,
    LnSidecar(LnStatusCommand),
    Bad(Error),
}

fn classify(path: &Path) -> Classified {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.ends_with(".ln.json") {
        let parsed = std::fs::read(path).map_err(|e| Error::io(path, e)).and_then(|b| {
            serde_json::from_slice::<LnStatusCommand>(&b).map_err(|e| Error::Format {
                path: path.to_path_buf(),
                format: "LN read JSON",
                reason: e.to_string(),
            })
        });
        return match parsed {
            Ok(c) => Classified::LnSidecar(c),
            Err(e) => Classified::Bad(e),
        };
    }
    if SeriesAssembler::is_label_map(path) {
        return Classified::Label;
    }
    match crate::ingest::header::read_instance(path) {
        Ok(h) => Classified::Image(Box::new(h)),
        Err(Error::Unsupported { reason, .. })
            if reason.contains(crate::ingest::header::SEGMENTATION)
                || reason.contains(crate::ingest::header::RT_STRUCTURE_SET) =>
        {
            match crate::roi::references(path) {
                Ok(r) => Classified::Roi(r),
                Err(e) => Classified::Bad(e),
            }
        }
        Err(e) => Classified::Bad(e),
    }
}

/// [`classify`], with a panic in a parser turned into a quarantine reason instead of a stalled scan.
fn classify_guarded(path: &Path) -> Classified {
    std::panic::catch_unwind(|| classify(path)).unwrap_or_else(|_| {
        Classified::Bad(Error::Format {
            path: path.to_path_buf(),
            format: "DICOM",
            reason: "the parser panicked on this file".into(),
        })
    })
}

/// Short machine-readable reason of an error, for the quarantine counter's label.
pub fn reason_code(e: &Error) -> &'static str {
    match e {
        Error::Io { .. } => "io",
        Error::Format { .. } => "malformed",
        Error::TooLarge { .. } => "too_large",
        Error::Unsupported { .. } => "unsupported",
        Error::Series { .. } => "bad_series",
        Error::InvalidRoi { .. } | Error::GeometryMismatch { .. } => "bad_roi",
        Error::NonFinite { .. } => "non_finite",
        _ => "compute",
    }
}

/// What a worker hands back.
struct Computed {
    ready: Box<ReadySeries>,
    outcome: Result<(crate::model::Prediction, BTreeMap<String, f64>)>,
}

enum CoreMsg {
    Classified(Vec<(PathBuf, Classified, Instant, SystemTime)>),
    Renamed(PathBuf),
    Wake,
    Computed(Box<Computed>),
}

/// A result that could not be spooled yet (spool full).
struct Held {
    message: ResultMessage,
    record: LedgerRecord,
    ready_at: Option<Instant>,
}

/// The daemon's core state.
pub struct Daemon {
    cfg: DaemonConfig,
    predictor: Arc<Predictor>,
    secret: Vec<u8>,
    metrics: Arc<Metrics>,
    outbox: Arc<Mutex<Outbox>>,
    /// Events waiting for the broker (a spool of their own, so they never take a result's room).
    events: Arc<Mutex<Outbox>>,
    ledger: Ledger,
    watcher: ExportWatcher,
    assembler: SeriesAssembler,
    ready: heapless::Deque<Box<ReadySeries>, READY_QUEUE>,
    in_flight: usize,
    ln_reads: BTreeMap<StudyKey, f64>,
    held: VecDeque<Held>,
    spool_alarm: bool,
    stale_alarm: bool,
    disk_alarm: bool,
    disk_checked: Option<Instant>,
    quarantine: PathBuf,
    publisher: mpsc::Sender<PublisherCmd>,
    identifiers: BTreeMap<String, Identifiers>,
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

/// Load the bundle the configuration names (verified, unless unsigned bundles are allowed), and check that the
/// daemon can serve it: at the scanner only the two signatures and the MRI-reported LN status are known, so a
/// nomogram that needs any other predictor (e.g. a pathology variable) is refused here, at start-up.
pub fn load_bundle(cfg: &DaemonConfig) -> Result<Bundle> {
    // The configuration's validation guarantees a key unless unsigned bundles are allowed.
    let trust = Trust::from_public_key(cfg.model.public_key.as_deref())?;
    let bundle = Bundle::load(&cfg.model.bundle, &trust)?;
    let servable = |n: &str| n == MRI_LN || n == "radiomics_signature" || n == "deep_signature";
    let other: Vec<&str> = bundle
        .manifest
        .nomogram
        .predictors
        .iter()
        .map(|p| p.name.as_str())
        .filter(|n| !servable(n))
        .collect();
    if !other.is_empty() {
        return Err(Error::Bundle {
            path: cfg.model.bundle.join(crate::model::bundle::MANIFEST),
            reason: format!(
                "the nomogram needs {} which the scanner cannot know; fit with --clinical-candidates {MRI_LN}",
                other.join(", ")
            ),
        });
    }
    Ok(bundle)
}

fn relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root).unwrap_or(path).display().to_string()
}

impl Daemon {
    fn event(&self, severity: &str, event: &str, detail: String, study: Option<StudyKey>) {
        match severity {
            "error" | "alarm" => tracing::error!(event, "{detail}"),
            "warning" => tracing::warn!(event, "{detail}"),
            _ => tracing::info!(event, "{detail}"),
        }
        self.metrics.events.with_label_values(&[event]).inc();
        // Spooled (fsync) like a result, published by the publisher and removed on PUBACK: an event survives a
        // broker outage and a restart. A full or unwritable event spool leaves it in the log, counted.
        let body = serde_json::to_string(&EventMessage::new(severity, event, detail, study));
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

    /// Raise an alarm: counted in `alnrisk_alarms_total{alarm}` and published as an `alarm` event.
    fn alarm(&self, alarm: &str, detail: String) {
        self.metrics.alarms.with_label_values(&[alarm]).inc();
        self.event("alarm", alarm, detail, None);
    }

    /// Move a file to quarantine with its `.reason.json`; count and report it.
    fn quarantine_file(&self, path: &Path, err: &Error) {
        self.quarantine(&[path.to_path_buf()], err, None);
    }

    /// Move files (one bad file, or every file of a series that failed) to `quarantine/<day>/` — a series into a
    /// folder of its own — with one `.reason.json`, one event and one count.
    fn quarantine(&self, files: &[PathBuf], err: &Error, series: Option<&StudyKey>) {
        let code = reason_code(err);
        let root = &self.cfg.watch.export_dir;
        let day = crate::time::utc_now().get(..10).unwrap_or("undated").to_string();
        let mut dir = self.quarantine.join(day);
        if let Some(k) = series {
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
            (None, [one]) => relative(one, root),
            _ => format!(
                "series of {} file(s) under {}",
                files.len(),
                files
                    .first()
                    .map(|f| relative(f.parent().unwrap_or(f), root))
                    .unwrap_or_default()
            ),
        };
        let note = serde_json::json!({
            "files": files.iter().map(|f| relative(f, root)).collect::<Vec<_>>(),
            "reason": code,
            "detail": err.to_string(),
            "at": crate::time::utc_now(),
        });
        let note_path = match (series, moved.first()) {
            (Some(_), _) => dir.join("series.reason.json"),
            (None, Some(dest)) => {
                let name = dest
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                dir.join(format!("{name}.reason.json"))
            }
            (None, None) => dir.join("unmoved.reason.json"),
        };
        if let Err(e) = fsio::write_durable(
            &note_path,
            serde_json::to_string_pretty(&note).unwrap_or_default().as_bytes(),
        ) {
            tracing::error!("quarantine note: {e}");
        }
        self.metrics.quarantined.with_label_values(&[code]).inc();
        self.event(
            "warning",
            "quarantined",
            format!("{what}: {code}: {err}"),
            series.cloned(),
        );
    }

    fn on_classified(&mut self, batch: Vec<(PathBuf, Classified, Instant, SystemTime)>) {
        for (path, c, at, wall) in batch {
            self.metrics.files_seen.inc();
            match c {
                Classified::Image(h) => {
                    let series_key = StudyKey::of(&self.secret, &h.series_uid);
                    if self.ledger.contains(&series_key, &self.predictor.bundle.sha256) {
                        tracing::debug!(file = %path.display(), "series already answered by this bundle");
                        continue;
                    }
                    if self.cfg.phi.include_identifiers
                        && let (Some(a), Some(n)) = (&h.accession_number, &h.patient_name)
                    {
                        self.identifiers.entry(h.study_uid.clone()).or_insert(Identifiers {
                            accession_number: a.clone(),
                            patient_name: n.clone(),
                        });
                    }
                    if let Some(Assembled::Ignored { path, reason }) = self.assembler.add_image(*h, at, wall) {
                        self.event(
                            "warning",
                            "ignored_file",
                            format!("{}: {reason}", relative(&path, &self.cfg.watch.export_dir)),
                            None,
                        );
                    }
                }
                Classified::Roi(r) => {
                    let sha = &self.predictor.bundle.sha256;
                    if r.series_uids
                        .iter()
                        .any(|u| self.ledger.contains(&StudyKey::of(&self.secret, u), sha))
                    {
                        tracing::debug!(file = %path.display(), "ROI of a series already answered by this bundle");
                        continue;
                    }
                    self.assembler.add_roi(&path, r, at, wall);
                }
                Classified::Label => self.assembler.add_label(&path, at, wall),
                Classified::LnSidecar(cmd) => {
                    self.on_ln_read(&cmd, "sidecar");
                    if let Err(e) = fsio::move_into(&path, &state_paths(&self.cfg).ln_reads) {
                        tracing::warn!(file = %path.display(), "could not file the LN read: {e}");
                    }
                }
                Classified::Bad(e) => self.quarantine_file(&path, &e),
            }
        }
    }

    fn on_ln_read(&mut self, cmd: &LnStatusCommand, via: &str) {
        let (Some(key), Some(v)) = (cmd.key(&self.secret), cmd.value()) else {
            self.event(
                "warning",
                "bad_ln_read",
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
            let line = serde_json::json!({"study_key": key.as_str(), "mri_ln_status": v as i64}).to_string();
            if let Err(e) = fsio::append_line(&self.cfg.state.dir.join(PENDING_LN_READS), &line) {
                tracing::error!("could not keep the LN read: {e}");
            }
            self.event(
                "info",
                "ln_read_pending",
                format!("LN read via {via} kept for a study not computed yet"),
                Some(key),
            );
            return;
        }
        for rec in records {
            if rec.ln == Some(v) {
                continue;
            }
            let clinical = BTreeMap::from([(MRI_LN.to_string(), v)]);
            match self
                .predictor
                .from_signatures(&rec.signatures, rec.out_of_distribution.clone(), &clinical)
            {
                Ok(p) => {
                    let original = rec.updates.clone().unwrap_or_else(|| rec.message_id.clone());
                    let mut msg =
                        ResultMessage::new(&p, key.clone(), rec.series_key.clone(), Some(v), Some(original.clone()));
                    msg.timestamps.insert("computed".into(), crate::time::utc_now());
                    let record = LedgerRecord {
                        message_id: msg.message_id.clone(),
                        kind: "update".into(),
                        updates: Some(original),
                        ln: Some(v),
                        at: crate::time::utc_now(),
                        ..rec
                    };
                    self.commit(msg, record, None);
                }
                Err(e) => self.event("error", "ln_update_failed", e.to_string(), Some(key.clone())),
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

    fn flush_held(&mut self) {
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
                    if let Some(t) = h.ready_at {
                        self.metrics.end_to_end.observe(t.elapsed().as_secs_f64());
                    }
                    if h.message.kind == "result" {
                        self.metrics.series_processed.with_label_values(&["published"]).inc();
                    }
                    let _ = self.publisher.try_send(PublisherCmd::Kick);
                    if self.spool_alarm && self.held.is_empty() {
                        self.spool_alarm = false;
                        self.event("info", "spool_full_cleared", "the spool has room again".into(), None);
                    }
                }
                Ok(Push::Full(why)) => {
                    self.held.push_front(h);
                    if !self.spool_alarm {
                        self.spool_alarm = true;
                        let held = self.held.len();
                        self.alarm(
                            "spool_full",
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

    fn update_gauges(&mut self) {
        let (depth, stale, room) = match self.outbox.lock() {
            Ok(o) => (o.depth(), o.stale(), o.has_room(4096)),
            Err(_) => (0, false, false),
        };
        self.metrics.outbox_depth.set(depth as i64);
        self.metrics
            .series_pending
            .set((self.assembler.pending() + self.ready.len() + self.in_flight) as i64);
        let disk_ok = self.check_disk();
        self.metrics.ready.store(
            room && disk_ok && !self.spool_alarm,
            std::sync::atomic::Ordering::Relaxed,
        );
        if stale && !self.stale_alarm {
            self.stale_alarm = true;
            let h = self.cfg.state.spool_max_age_h;
            self.alarm("spool_stale", format!("oldest spooled result is older than {h} h"));
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
                "disk_low",
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

    fn on_computed(&mut self, c: Computed) {
        self.in_flight = self.in_flight.saturating_sub(1);
        let ready = c.ready;
        let study_key = StudyKey::of(&self.secret, &ready.study_uid);
        let series_key = StudyKey::of(&self.secret, &ready.series_uid);
        match c.outcome {
            Ok((p, timing)) => {
                let ln = self.ln_reads.get(&study_key).copied();
                let p = match ln {
                    Some(v) => self
                        .predictor
                        .from_signatures(
                            &p.signatures,
                            p.out_of_distribution.clone(),
                            &BTreeMap::from([(MRI_LN.to_string(), v)]),
                        )
                        .unwrap_or(p),
                    None => p,
                };
                let mut msg = ResultMessage::new(&p, study_key.clone(), series_key.clone(), ln, None);
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
                if !p.out_of_distribution.is_empty() {
                    self.event(
                        "warning",
                        "out_of_distribution",
                        format!(
                            "{} input(s) outside the training range: {}",
                            p.out_of_distribution.len(),
                            p.out_of_distribution.join("; ")
                        ),
                        Some(study_key.clone()),
                    );
                }
                let record = LedgerRecord {
                    series_key,
                    member_keys: ready
                        .member_series
                        .iter()
                        .skip(1)
                        .map(|m| StudyKey::of(&self.secret, m))
                        .collect(),
                    study_key,
                    bundle_sha256: p.bundle_sha256.clone(),
                    message_id: msg.message_id.clone(),
                    kind: "result".into(),
                    updates: None,
                    ln,
                    signatures: p.signatures.clone(),
                    out_of_distribution: p.out_of_distribution.clone(),
                    at: crate::time::utc_now(),
                };
                self.commit(msg, record, Some(ready.last_arrival));
            }
            Err(e) => {
                self.metrics.series_processed.with_label_values(&["failed"]).inc();
                self.event(
                    "error",
                    "series_failed",
                    format!("series of {} file(s) could not be computed: {e}", ready.instances.len()),
                    Some(study_key),
                );
                let series_key = StudyKey::of(&self.secret, &ready.series_uid);
                let files: Vec<PathBuf> = ready
                    .files()
                    .into_iter()
                    .chain(std::iter::once(ready.roi.clone()))
                    .filter(|f| f.exists())
                    .collect();
                self.quarantine(&files, &e, Some(&series_key));
            }
        }
    }

    fn on_assembled(&mut self, items: Vec<Assembled>) {
        for a in items {
            match a {
                Assembled::Ready(r) => {
                    let series_key = StudyKey::of(&self.secret, &r.series_uid);
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
                        "info",
                        "series_not_selected",
                        format!("series not selected as breast DCE: {reason}"),
                        Some(StudyKey::of(&self.secret, &study_uid)),
                    );
                }
                Assembled::WaitingForRoi { study_uid, waited, .. } => self.event(
                    "warning",
                    "waiting_for_roi",
                    format!(
                        "series complete for {:.0} s without a ROI; still waiting",
                        waited.as_secs_f64()
                    ),
                    Some(StudyKey::of(&self.secret, &study_uid)),
                ),
                Assembled::Ignored { path, reason } => self.event(
                    "warning",
                    "ignored_file",
                    format!("{}: {reason}", relative(&path, &self.cfg.watch.export_dir)),
                    None,
                ),
            }
        }
    }
}

/// Compute one series (blocking): load, features, nomogram. Returns the prediction and the stage times (ms).
pub fn compute_series(
    predictor: &Predictor,
    ready: &ReadySeries,
    metrics: Option<&Metrics>,
) -> Result<(crate::model::Prediction, BTreeMap<String, f64>)> {
    let m = &predictor.bundle.manifest;
    let t0 = Instant::now();
    let files = ready.files();
    let dir = files
        .first()
        .and_then(|f| f.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let (studies, errors) = crate::ingest::series::assemble(&dir, ready.instances.clone());
    let not_assembled = |errors: Vec<Error>, reason: &str| {
        errors.into_iter().next().unwrap_or_else(|| Error::Series {
            series: "(daemon)".into(),
            dir: dir.clone(),
            reason: reason.into(),
        })
    };
    let series = if ready.member_series.len() > 1 {
        // A linked DCE set: link again from the same headers; the assembler linked exactly these members.
        studies
            .iter()
            .find(|s| s.uid == ready.study_uid)
            .and_then(|s| crate::ingest::series::link_with(s, &ready.series_uid))
            .filter(|l| l.member_series == ready.member_series)
            .ok_or_else(|| not_assembled(errors, "the linked DCE set could not be assembled again"))?
    } else {
        studies
            .into_iter()
            .flat_map(|s| s.series)
            .find(|s| s.series_uid == ready.series_uid)
            .ok_or_else(|| not_assembled(errors, "series could not be assembled"))?
    };
    let image = m.phase.load(&series)?;
    let roi = crate::roi::load(&ready.roi, &series, &m.roi.options())?;
    let case = crate::case::LoadedCase {
        image,
        mask: roi.volume,
        notes: Vec::new(),
    };
    let t1 = Instant::now();
    let features = predictor.features(&case, &dir, &ready.roi)?;
    let t2 = Instant::now();
    let p = predictor.predict_features(&features, &BTreeMap::new())?;
    let t3 = Instant::now();
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
    let timing = BTreeMap::from([
        ("load".to_string(), ms(t0, t1)),
        ("features".to_string(), ms(t1, t2)),
        ("nomogram".to_string(), ms(t2, t3)),
        ("total".to_string(), ms(t0, t3)),
    ]);
    if let Some(mx) = metrics {
        for (stage, a, b) in [("load", t0, t1), ("features", t1, t2), ("nomogram", t2, t3)] {
            mx.stage_duration
                .with_label_values(&[stage])
                .observe((b - a).as_secs_f64());
        }
    }
    Ok((p, timing))
}

fn status(state: &str, bundle: &Bundle) -> StatusMessage {
    StatusMessage {
        schema: payload::STATUS_SCHEMA.into(),
        state: state.into(),
        bundle: Some(payload::BundleRef {
            id: bundle.manifest.bundle_id.clone(),
            version: bundle.manifest.version.clone(),
            sha256: bundle.sha256.clone(),
        }),
        alnrisk_version: env!("CARGO_PKG_VERSION").into(),
        at: crate::time::utc_now(),
    }
}

fn sd_notify(state: &[sd_notify::NotifyState]) {
    let _ = sd_notify::notify(state);
}

/// Run the daemon until SIGTERM / SIGINT. Blocks; builds its own tokio runtime.
pub fn serve(cfg: DaemonConfig) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Compute(format!("tokio runtime: {e}")))?;
    rt.block_on(serve_async(cfg))
}

async fn serve_async(cfg: DaemonConfig) -> Result<()> {
    mqtt::install_crypto();
    let metrics = Metrics::new();
    let StatePaths {
        spool: spool_dir,
        events: events_dir,
        quarantine,
        ledger: ledger_path,
        ..
    } = state_paths(&cfg);
    std::fs::create_dir_all(&cfg.state.dir).map_err(|e| Error::io(&cfg.state.dir, e))?;
    if !cfg.watch.export_dir.is_dir() {
        return Err(Error::Config {
            file: PathBuf::from("(config)"),
            key: "watch.export_dir".into(),
            reason: format!("{} is not a folder", cfg.watch.export_dir.display()),
        });
    }
    let secret_path = cfg
        .phi
        .study_key_secret_file
        .clone()
        .unwrap_or_else(|| cfg.state.dir.join("study-key.secret"));
    let secret = payload::load_or_create_secret(&secret_path)?;

    // Model.
    let bundle = load_bundle(&cfg)?;
    if !bundle.signed {
        tracing::warn!("serving an UNSIGNED bundle (model.allow_unsigned = true): development only");
    }
    let device_choice: crate::deep::DeviceChoice = cfg.model.device.parse().map_err(|e: String| Error::Config {
        file: PathBuf::from("(config)"),
        key: "model.device".into(),
        reason: e,
    })?;
    let (device, note) = device_choice.open()?;
    if let Some(n) = note {
        tracing::info!("{n}");
    }
    metrics.gpu_in_use.set(i64::from(!device.is_cpu()));
    metrics
        .build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION"), &bundle.manifest.bundle_id])
        .set(1);
    let online = status("online", &bundle);
    let offline = status("offline", &bundle);
    let mut predictor = Predictor::new(bundle, &device)?;
    if let Some(kind) = &cfg.model.cuda_trunk {
        predictor.set_cuda_trunk(kind.parse().map_err(|e: String| Error::Config {
            file: PathBuf::from("(config)"),
            key: "model.cuda_trunk".into(),
            reason: e,
        })?)?;
    }
    let predictor = Arc::new(predictor);
    let t = Instant::now();
    predictor.warm_up()?;
    tracing::info!(
        ms = t.elapsed().as_millis() as u64,
        gpu = !device.is_cpu(),
        on = %predictor.compute_path(),
        "network warmed up"
    );

    // Durable state.
    let (outbox, problems) = Outbox::open(
        &spool_dir,
        OutboxBounds {
            max_entries: cfg.state.spool_max_entries,
            max_bytes: cfg.state.spool_max_bytes,
            max_age: Duration::from_secs_f64(cfg.state.spool_max_age_h * 3600.0),
        },
    )?;
    let (events, event_problems) = Outbox::open(
        &events_dir,
        OutboxBounds {
            max_entries: cfg.state.event_spool_max_entries,
            max_bytes: cfg.state.event_spool_max_entries as u64 * 4096,
            max_age: Duration::MAX,
        },
    )?;
    metrics.event_outbox_depth.set(events.depth() as i64);
    let events = Arc::new(Mutex::new(events));
    let mut ledger = Ledger::open(&ledger_path)?;
    // A crash between the spool write and the ledger append: the spool entry proves the series was committed.
    let spooled = outbox.all()?;
    for e in &spooled {
        if let Some(key) = StudyKey::parse(&e.series_key)
            && !ledger.contains(&key, &e.bundle_sha256)
            && let Ok(msg) = serde_json::from_str::<ResultMessage>(&e.payload)
        {
            ledger.record(LedgerRecord {
                series_key: key,
                member_keys: e.member_keys.iter().filter_map(|k| StudyKey::parse(k)).collect(),
                study_key: msg.study_key.clone(),
                bundle_sha256: e.bundle_sha256.clone(),
                message_id: msg.message_id.clone(),
                kind: msg.kind.clone(),
                updates: msg.updates.clone(),
                ln: match msg.mri_ln_status.as_str() {
                    "positive" => Some(1.0),
                    "negative" => Some(0.0),
                    _ => None,
                },
                signatures: msg.signatures.clone(),
                out_of_distribution: msg.out_of_distribution.clone(),
                at: crate::time::utc_now(),
            })?;
        }
    }
    let outbox = Arc::new(Mutex::new(outbox));

    // Broker.
    if cfg.mqtt.broker == config::BrokerKind::Embedded {
        broker::start_embedded(&cfg.mqtt.host, cfg.mqtt.port)?;
    }
    let (pub_tx, pub_rx) = mpsc::channel::<PublisherCmd>(1024);
    let (note_tx, mut note_rx) = mpsc::channel::<PublisherNote>(256);
    let publisher = tokio::spawn(mqtt::run_publisher(
        cfg.clone(),
        online,
        offline,
        outbox.clone(),
        events.clone(),
        metrics.clone(),
        pub_rx,
        note_tx,
    ));

    // Metrics endpoint.
    let http = if cfg.metrics.listen.is_empty() {
        None
    } else {
        let listener = tokio::net::TcpListener::bind(&cfg.metrics.listen)
            .await
            .map_err(|e| Error::io(PathBuf::from(&cfg.metrics.listen), e))?;
        Some(tokio::spawn(metrics::serve_http(listener, metrics.clone())))
    };

    // Watcher: inotify wakes the scan; the scan itself is the poller.
    let (core_tx, mut core_rx) = mpsc::channel::<CoreMsg>(256);
    let _inotify = if cfg.watch.poll_only {
        None
    } else {
        use notify::Watcher;
        let tx = core_tx.clone();
        let mut w = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            if let Ok(ev) = ev {
                if let notify::EventKind::Modify(notify::event::ModifyKind::Name(
                    notify::event::RenameMode::To | notify::event::RenameMode::Both,
                )) = ev.kind
                    && let Some(p) = ev.paths.last()
                {
                    let _ = tx.try_send(CoreMsg::Renamed(p.clone()));
                }
                let _ = tx.try_send(CoreMsg::Wake);
            }
        })
        .map_err(|e| Error::Compute(format!("inotify: {e}")))?;
        match w.watch(&cfg.watch.export_dir, notify::RecursiveMode::Recursive) {
            Ok(()) => Some(w),
            Err(e) => {
                tracing::warn!("inotify unavailable ({e}); polling only");
                None
            }
        }
    };

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
        metrics: metrics.clone(),
        outbox,
        events,
        ledger,
        ready: heapless::Deque::new(),
        in_flight: 0,
        ln_reads: BTreeMap::new(),
        held: VecDeque::new(),
        spool_alarm: false,
        stale_alarm: false,
        disk_alarm: false,
        disk_checked: None,
        quarantine,
        publisher: pub_tx.clone(),
        identifiers: BTreeMap::new(),
    };
    for p in problems.into_iter().chain(event_problems) {
        d.event("error", "spool_entry_corrupt", p.to_string(), None);
    }
    if let Ok(text) = std::fs::read_to_string(cfg.state.dir.join(PENDING_LN_READS)) {
        for line in text.lines() {
            if let Ok(c) = serde_json::from_str::<LnStatusCommand>(line)
                && let (Some(k), Some(v)) = (c.key(&d.secret), c.value())
            {
                d.ln_reads.insert(k, v);
            }
        }
    }
    d.update_gauges();
    metrics.tick();
    sd_notify(&[sd_notify::NotifyState::Ready]);
    tracing::info!(export = %cfg.watch.export_dir.display(), bundle = %d.predictor.bundle.manifest.bundle_id, "serving");

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::Compute(format!("signal handler: {e}")))?;
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.watch.poll_interval_ms.min(100)));
    let mut last_scan = Instant::now() - Duration::from_secs(3600);
    let mut scanning = false;
    let poll = Duration::from_millis(cfg.watch.poll_interval_ms);
    let mut wake = true;
    // WATCHDOG at half the interval systemd asks for (WATCHDOG_USEC), else every 10 s.
    let watchdog_every = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|u| u.parse::<u64>().ok())
        .map_or(Duration::from_secs(10), |us| Duration::from_micros(us / 2));
    let mut last_watchdog = Instant::now() - watchdog_every;
    let mut stopping = false;
    let mut stop_at = Instant::now();
    loop {
        // Scan the folder when due and when the ready queue has room (backpressure: the folder is the buffer).
        // inotify wakes come in bursts (several per file): walk at most every MIN_SCAN_INTERVAL.
        let due = (wake && last_scan.elapsed() >= MIN_SCAN_INTERVAL) || last_scan.elapsed() >= poll;
        if !stopping && !scanning && due && d.ready.len() < READY_QUEUE {
            wake = false;
            last_scan = Instant::now();
            let now = Instant::now();
            let files = d.watcher.scan(now);
            if !files.is_empty() {
                scanning = true;
                let tx = core_tx.clone();
                tokio::task::spawn_blocking(move || {
                    use rayon::prelude::*;
                    let out: Vec<_> = files
                        .par_iter()
                        .map(|p| (p.clone(), classify_guarded(p), now, SystemTime::now()))
                        .collect();
                    let _ = tx.blocking_send(CoreMsg::Classified(out));
                });
            }
        }
        // Assemble and dispatch.
        if !stopping {
            let items = d.assembler.tick(Instant::now(), READY_QUEUE - d.ready.len());
            d.on_assembled(items);
        }
        while d.in_flight < cfg.state.workers && d.held.is_empty() {
            let Some(r) = d.ready.pop_front() else { break };
            d.in_flight += 1;
            let (pred, tx, mx) = (d.predictor.clone(), core_tx.clone(), metrics.clone());
            tokio::task::spawn_blocking(move || {
                // A panic in a dependency must not leave the series in flight forever: it becomes a failure.
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| compute_series(&pred, &r, Some(&mx))))
                        .unwrap_or_else(|_| Err(Error::Compute("the computation panicked".into())));
                let _ = tx.blocking_send(CoreMsg::Computed(Box::new(Computed { ready: r, outcome })));
            });
        }
        if !d.held.is_empty() {
            d.flush_held();
        }
        d.update_gauges();
        metrics.tick();
        if last_watchdog.elapsed() >= watchdog_every {
            sd_notify(&[sd_notify::NotifyState::Watchdog]);
            last_watchdog = Instant::now();
        }
        if stopping {
            let depth = d.outbox.lock().map(|o| o.depth()).unwrap_or(0);
            if (d.in_flight == 0 && depth == 0) || stop_at.elapsed().as_secs_f64() > cfg.state.drain_s {
                if d.in_flight > 0 || depth > 0 {
                    tracing::warn!(
                        in_flight = d.in_flight,
                        spooled = depth,
                        "drain time over; spooled results go out after restart"
                    );
                }
                break;
            }
        }
        tokio::select! {
            msg = core_rx.recv() => match msg {
                Some(CoreMsg::Classified(batch)) => { scanning = false; d.on_classified(batch); wake = true; }
                Some(CoreMsg::Renamed(p)) => { d.watcher.mark_renamed(&p); wake = true; }
                Some(CoreMsg::Wake) => { wake = true; }
                Some(CoreMsg::Computed(c)) => d.on_computed(*c),
                None => break,
            },
            note = note_rx.recv() => match note {
                Some(PublisherNote::LnStatus(raw)) => match serde_json::from_slice::<LnStatusCommand>(&raw) {
                    Ok(cmd) => d.on_ln_read(&cmd, "mqtt"),
                    Err(e) => d.event("warning", "bad_ln_read", format!("cmd/ln-status payload: {e}"), None),
                },
                // Nothing to do but wake the loop, so that the outbox gauge follows at once.
                Some(PublisherNote::Acked(_)) => {}
                None => {}
            },
            _ = tick.tick() => {}
            _ = sigterm.recv(), if !stopping => {
                tracing::info!("SIGTERM: finishing in-flight work");
                sd_notify(&[sd_notify::NotifyState::Stopping]);
                stopping = true;
                stop_at = Instant::now();
            }
            _ = tokio::signal::ctrl_c(), if !stopping => {
                stopping = true;
                stop_at = Instant::now();
            }
        }
    }
    let _ = pub_tx.send(PublisherCmd::Stop).await;
    let _ = tokio::time::timeout(Duration::from_secs(3), publisher).await;
    if let Some(h) = http {
        h.abort();
    }
    tracing::info!("stopped");
    Ok(())
}
