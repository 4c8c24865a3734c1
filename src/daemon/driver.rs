//! The thin I/O loop around the core: it walks the export folder, runs the work the core hands out, measures
//! the disk, and tells the core what happened. It decides nothing.
//!
//! It runs on a thread of its own ([`run`] is started by [`super::serve`] on tokio's blocking pool), so the
//! fsyncs of the core's store never stall an async thread. What it does, each turn:
//!
//! 1. walk the export folder when the core wants files and a walk is due (inotify wakes it; the walk is also the
//!    poller); the stable files are read on the blocking pool and come back as [`Happened::Classified`];
//! 2. [`Core::tick`];
//! 3. every [`DISK_CHECK`] the state disk's free space, and every [`super::quarantine::SWEEP_EVERY`] the
//!    quarantine survey, told to the core;
//! 4. the core's [`Work`] until it has none: a series to compute (a worker on the blocking pool, a panic caught
//!    and reported as the series' failure; a series tried again after a fault of ours runs on the CPU), a revision's images to read, files to quarantine and sidecars to
//!    file (done here, in order, before the next walk);
//! 5. gauges and the systemd watchdog; on SIGTERM, leave once nothing is in flight and the spool is empty, or
//!    when `state.drain_s` is over;
//! 6. wait for the next [`Input`] or the tick.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use super::compute::compute_series;
use super::config::DaemonConfig;
use super::core::{Computed, Core, Happened, Work, today};
use super::fsio;
use super::intake::Intake;
use super::metrics::Metrics;
use super::quarantine::Quarantine;
use super::revision;
use super::store::{DiskStore, StatePaths};
use super::watch::ExportWatcher;
use crate::error::Error;
use crate::model::Predictor;

/// Shortest time between two walks of the export folder when inotify keeps waking the loop.
const MIN_SCAN_INTERVAL: Duration = Duration::from_millis(100);

/// How often free disk space is looked at.
pub const DISK_CHECK: Duration = Duration::from_secs(5);

/// What reaches the driver from elsewhere: the core's inputs, and the I/O side's own.
pub enum Input {
    /// Something for the core.
    Core(Happened),
    /// A walk's files were read ([`Happened::Classified`]; the next walk may start).
    Walked(Vec<Intake>),
    /// A file renamed into place (stable at once).
    Renamed(PathBuf),
    /// Something changed in the export folder: walk it soon.
    Wake,
    /// SIGTERM or SIGINT: finish in-flight work and leave.
    Stop,
}

/// What the driver works with.
pub struct Driver {
    pub cfg: DaemonConfig,
    pub core: Core<DiskStore>,
    pub predictor: Arc<Predictor>,
    pub secret: Vec<u8>,
    pub metrics: Arc<Metrics>,
    /// Where inputs arrive.
    pub inputs: Receiver<Input>,
    /// A sender for the workers' answers.
    pub answers: Sender<Input>,
    /// The tokio runtime whose blocking pool runs the workers.
    pub runtime: tokio::runtime::Handle,
    /// Set while an [`Input::Wake`] is on its way (inotify sends one per burst, not one per event).
    pub wake_sent: Arc<AtomicBool>,
}

/// Run the loop until a stop has drained (or `state.drain_s` is over). Blocking.
pub fn run(d: Driver) {
    let Driver {
        cfg,
        mut core,
        predictor,
        secret,
        metrics,
        inputs,
        answers,
        runtime,
        wake_sent,
    } = d;
    let mut watcher = ExportWatcher::new(&cfg.watch.export_dir, Duration::from_millis(cfg.watch.stable_ms));
    let mut quarantine = Quarantine::new(&cfg, metrics.clone());
    let ln_reads_dir = StatePaths::of(&cfg).ln_reads;
    let tick = Duration::from_millis(cfg.watch.poll_interval_ms.min(100));
    let poll = Duration::from_millis(cfg.watch.poll_interval_ms);
    let mut last_scan = Instant::now() - Duration::from_secs(3600);
    let mut last_disk_check: Option<Instant> = None;
    let mut scanning = false;
    let mut wake = true;
    // WATCHDOG at half the interval systemd asks for (WATCHDOG_USEC), else every 10 s.
    let watchdog_every = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|u| u.parse::<u64>().ok())
        .map_or(Duration::from_secs(10), |us| Duration::from_micros(us / 2));
    let mut last_watchdog = Instant::now() - watchdog_every;
    let mut stop_at: Option<Instant> = None;
    // The network on the CPU, once a fault of ours made the daemon leave the GPU (until the next start).
    let mut fallback: Option<Arc<Predictor>> = None;
    loop {
        // 1. Walk the folder when due and when the core has room (backpressure: the folder is the buffer).
        // inotify wakes come in bursts (several per file): walk at most every MIN_SCAN_INTERVAL.
        let due = (wake && last_scan.elapsed() >= MIN_SCAN_INTERVAL) || last_scan.elapsed() >= poll;
        if core.wants_files() && !scanning && due {
            wake = false;
            last_scan = Instant::now();
            let now = Instant::now();
            let files = watcher.scan(now);
            if !files.is_empty() {
                scanning = true;
                let (tx, root) = (answers.clone(), cfg.watch.export_dir.clone());
                runtime.spawn_blocking(move || {
                    use rayon::prelude::*;
                    let out: Vec<Intake> = files.par_iter().map(|p| Intake::read(p, now, &root)).collect();
                    let _ = tx.send(Input::Walked(out));
                });
            }
        }
        // 2–3. Time, the disk, the quarantine.
        core.tick(Instant::now());
        if last_disk_check.is_none_or(|t| t.elapsed() >= DISK_CHECK) {
            last_disk_check = Some(Instant::now());
            match rustix::fs::statvfs(&cfg.state.dir) {
                Ok(s) => core.on(Happened::DiskFree(s.f_bavail.saturating_mul(s.f_frsize))),
                Err(e) => tracing::warn!(dir = %cfg.state.dir.display(), "cannot read free space: {e}"),
            }
        }
        if let Some(purged) = quarantine.sweep(today())
            && !purged.is_empty()
        {
            core.on(Happened::QuarantinePurged(purged));
        }
        // 4. The core's work.
        while let Some(work) = core.next_work() {
            match work {
                Work::Compute(r) => {
                    let pred = fallback.clone().unwrap_or_else(|| predictor.clone());
                    spawn_compute(&runtime, pred, r, &answers, &metrics);
                }
                Work::ComputeOnCpu(r) => {
                    let pred = cpu_predictor(&predictor, &mut fallback, &metrics);
                    spawn_compute(&runtime, pred, r, &answers, &metrics);
                }
                Work::Recollect(req) => {
                    let (tx, dir, secret) = (answers.clone(), cfg.watch.export_dir.clone(), secret.clone());
                    runtime.spawn_blocking(move || {
                        let got = revision::collect(&dir, &secret, &req);
                        let _ = tx.send(Input::Core(Happened::Recollected(Box::new((*req, got)))));
                    });
                }
                Work::Quarantine(order) => quarantine.put(&order),
                Work::FileLnRead(path) => {
                    if let Err(e) = fsio::move_into(&path, &ln_reads_dir) {
                        tracing::warn!("could not file the LN read sidecar: {}", e.neutral());
                    }
                }
            }
        }
        // 5. Gauges, watchdog, drain.
        metrics.tick();
        if last_watchdog.elapsed() >= watchdog_every {
            notify_systemd(&[sd_notify::NotifyState::Watchdog]);
            last_watchdog = Instant::now();
        }
        if let Some(at) = stop_at {
            let (in_flight, spooled) = core.backlog();
            if (in_flight == 0 && spooled == 0) || at.elapsed().as_secs_f64() > cfg.state.drain_s {
                if in_flight > 0 || spooled > 0 {
                    tracing::warn!(
                        in_flight,
                        spooled,
                        "drain time over; spooled results go out after restart"
                    );
                }
                break;
            }
        }
        // 6. Wait.
        match inputs.recv_timeout(tick) {
            Ok(Input::Core(h)) => core.on(h),
            Ok(Input::Walked(batch)) => {
                scanning = false;
                core.on(Happened::Classified(batch));
                wake = true;
            }
            Ok(Input::Renamed(p)) => {
                watcher.mark_renamed(&p);
                wake = true;
            }
            Ok(Input::Wake) => {
                wake_sent.store(false, Ordering::Release);
                wake = true;
            }
            Ok(Input::Stop) => {
                if stop_at.is_none() {
                    core.stop();
                    stop_at = Some(Instant::now());
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
}

/// Compute `r` with `pred` on the blocking pool; the answer comes back as [`Happened::Computed`].
fn spawn_compute(
    runtime: &tokio::runtime::Handle,
    pred: Arc<Predictor>,
    r: Box<crate::daemon::assemble::ReadySeries>,
    answers: &Sender<Input>,
    metrics: &Arc<Metrics>,
) {
    let (tx, mx) = (answers.clone(), metrics.clone());
    runtime.spawn_blocking(move || {
        // A panic in a dependency must not leave the series in flight forever: it becomes a failure (of ours).
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| compute_series(&pred, &r, Some(&mx))))
            .unwrap_or_else(|panic| Err(Error::panicked("compute", panic.as_ref())));
        let _ = tx.send(Input::Core(Happened::Computed(Box::new(Computed {
            ready: r,
            outcome,
        }))));
    });
}

/// The predictor to try again with after a fault of ours: the served one when it is on the CPU already, else the
/// bundle's network loaded on the CPU (once; `alnrisk_gpu_in_use` goes to 0, `alnrisk_gpu_fallback` to 1, and every later series is computed
/// there too, until the next start). If even that cannot be loaded, the served one.
fn cpu_predictor(served: &Arc<Predictor>, fallback: &mut Option<Arc<Predictor>>, metrics: &Metrics) -> Arc<Predictor> {
    if served.on_cpu() {
        return served.clone();
    }
    if let Some(p) = fallback {
        return p.clone();
    }
    match Predictor::new(served.bundle.clone(), &candle_core::Device::Cpu) {
        Ok(p) => {
            tracing::warn!("a fault of ours on the GPU: computing on the CPU from now on (until the next start)");
            metrics.gpu_in_use.set(0);
            metrics.gpu_fallback.set(1);
            let p = Arc::new(p);
            *fallback = Some(p.clone());
            p
        }
        Err(e) => {
            tracing::error!("the CPU fallback could not be loaded ({e}); trying again on the GPU");
            served.clone()
        }
    }
}

/// Tell systemd how the service stands (`READY`, `WATCHDOG`, `STOPPING`); nothing without `NOTIFY_SOCKET`.
pub fn notify_systemd(state: &[sd_notify::NotifyState]) {
    let _ = sd_notify::notify(state);
}
