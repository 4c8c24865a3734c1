//! `alnrisk serve`: the scanner-side daemon. One examination travels
//! export folder → [`watch`] → `intake` (header read, on the blocking pool) → [`assemble`] → `compute` (the
//! bundle's [`crate::model::Predictor`], on a blocking worker) → [`outbox`] (fsync) + [`ledger`] → [`mqtt`]
//! publisher → PUBACK → removed from the spool.
//!
//! `core` holds the daemon's state and what it does with each message; it owns the watcher, the assembler,
//! the ledger and the LN reads. The workers only compute, and the publisher only drains the spool, so each piece
//! of state has one owner. This file starts everything ([`serve`]) and runs the loop that feeds the core. Stage
//! queues are bounded (a `heapless` ready queue of [`READY_QUEUE`] series; the export folder itself is the
//! buffer in front of it: when the queue is full the folder is not scanned). Bad files go to `quarantine/` with a
//! `.reason.json`, an event and a counter (kept as long as `state.quarantine_keep_days` says: `quarantine`);
//! nothing accepted is dropped: a series waits for its ROI indefinitely
//! (with an event), a result that finds the spool full waits in memory with an alarm until there is room, and a
//! restart recomputes whatever was not committed (its files are still in the export folder). A newer ROI for a
//! series already answered (a corrected outline) is a `revision`: the series is computed again with it.

pub mod assemble;
pub mod bounded;
#[cfg(feature = "tools")]
pub mod broker;
mod compute;
pub mod config;
mod core;
pub mod event;
pub mod fsio;
mod intake;
pub mod ledger;
pub mod listen;
pub mod metrics;
pub mod mqtt;
pub mod outbox;
pub mod payload;
mod quarantine;
mod revision;
pub mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

pub use self::compute::compute_series;
use self::config::DaemonConfig;
use self::core::{Computed, CoreMsg, Daemon, open_state};
pub use self::core::{PENDING_LN_READS, READY_QUEUE};
use self::event::EventKind;
use self::intake::Intake;
use self::metrics::Metrics;
use self::mqtt::{PublisherCmd, PublisherNote};
use self::payload::{LnStatusCommand, StatusMessage};
use crate::error::{Error, Result};
use crate::model::predict::MRI_LN;
use crate::model::{Bundle, Predictor, Trust};

/// Shortest time between two walks of the export folder when inotify keeps waking the loop.
const MIN_SCAN_INTERVAL: Duration = Duration::from_millis(100);

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

/// Load, check and warm up the model the configuration names, on its device (and CUDA trunk); returns the
/// predictor and the retained `online` / `offline` status messages naming its bundle.
fn open_model(cfg: &DaemonConfig, metrics: &Metrics) -> Result<(Arc<Predictor>, StatusMessage, StatusMessage)> {
    let bundle = load_bundle(cfg)?;
    if !bundle.signed {
        tracing::warn!("serving an UNSIGNED bundle (model.allow_unsigned = true): development only");
    }
    let (device, note) = cfg.model.device.open()?;
    if let Some(n) = note {
        tracing::info!("{n}");
    }
    metrics.gpu_in_use.set(i64::from(!device.is_cpu()));
    metrics
        .build_info
        .with_label_values(&[env!("CARGO_PKG_VERSION"), &bundle.manifest.bundle_id])
        .set(1);
    for (name, r) in &bundle.manifest.feature_ranges {
        if name.ends_with("_signature") {
            for (q, v) in [("0.01", r.p01), ("0.5", r.p50), ("0.99", r.p99)] {
                metrics.signature_training.with_label_values(&[name, q]).set(v);
            }
        }
    }
    let (online, offline) = (status("online", &bundle), status("offline", &bundle));
    let mut predictor = Predictor::new(bundle, &device)?;
    if let Some(kind) = cfg.model.cuda_trunk {
        predictor.set_cuda_trunk(kind)?;
    }
    metrics
        .compute_info
        .with_label_values(&[&predictor.compute_path()])
        .set(1);
    let t = Instant::now();
    predictor.warm_up()?;
    tracing::info!(
        ms = t.elapsed().as_millis() as u64,
        gpu = !device.is_cpu(),
        on = %predictor.compute_path(),
        "network warmed up"
    );
    Ok((Arc::new(predictor), online, offline))
}

/// Run the daemon until SIGTERM / SIGINT. Blocks; builds its own tokio runtime.
pub fn serve(cfg: DaemonConfig) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| Error::Runtime {
            what: "tokio runtime",
            source,
        })?;
    rt.block_on(serve_async(cfg))
}

async fn serve_async(cfg: DaemonConfig) -> Result<()> {
    mqtt::install_crypto();
    let metrics = Metrics::new();
    if !cfg.watch.export_dir.is_dir() {
        return Err(Error::Config {
            file: PathBuf::from("(config)"),
            key: "watch.export_dir".into(),
            reason: format!("{} is not a folder", cfg.watch.export_dir.display()),
        });
    }
    let state = open_state(&cfg, &metrics)?;
    let secret_path = cfg
        .phi
        .study_key_secret_file
        .clone()
        .unwrap_or_else(|| cfg.state.dir.join("study-key.secret"));
    let secret = payload::load_or_create_secret(&secret_path)?;
    let (predictor, online, offline) = open_model(&cfg, &metrics)?;

    // Broker and publisher.
    if cfg.mqtt.broker == config::BrokerKind::Embedded {
        #[cfg(feature = "tools")]
        broker::start_embedded(&cfg.mqtt.host, cfg.mqtt.port)?;
        #[cfg(not(feature = "tools"))]
        return Err(Error::Config {
            file: PathBuf::from("(config)"),
            key: "mqtt.broker".into(),
            reason: "the appliance build has no embedded broker; use an external one (mosquitto)".into(),
        });
    }
    let (pub_tx, pub_rx) = mpsc::channel::<PublisherCmd>(1024);
    let (note_tx, mut note_rx) = mpsc::channel::<PublisherNote>(256);
    let publisher = tokio::spawn(mqtt::run_publisher(
        cfg.clone(),
        online,
        offline,
        state.outbox.clone(),
        state.events.clone(),
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
        let tx = core_tx.clone();
        watch::wake_on_changes(&cfg.watch.export_dir, move |change| {
            let _ = tx.try_send(match change {
                watch::FolderChange::RenamedInto(p) => CoreMsg::Renamed(p),
                watch::FolderChange::Other => CoreMsg::Wake,
            });
        })?
    };

    let mut d = Daemon::new(&cfg, predictor, secret, metrics.clone(), state, pub_tx.clone());
    metrics.tick();
    sd_notify(&[sd_notify::NotifyState::Ready]);
    tracing::info!(export = %cfg.watch.export_dir.display(), bundle = %d.predictor.bundle.manifest.bundle_id, "serving");

    let mut sigterm =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|source| Error::Runtime {
            what: "SIGTERM handler",
            source,
        })?;
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
                    let out: Vec<Intake> = files.par_iter().map(|p| Intake::read(p, now)).collect();
                    let _ = tx.blocking_send(CoreMsg::Classified(out));
                });
            }
        }
        // Assemble and dispatch.
        if !stopping {
            let items = d.assembler.tick(Instant::now(), READY_QUEUE - d.ready.len());
            d.on_assembled(items);
        }
        // Revised ROIs: read their series' images again (blocking pool), one revision per series at a time.
        while !stopping && let Some(req) = d.next_revision() {
            let (tx, dir, secret) = (core_tx.clone(), cfg.watch.export_dir.clone(), d.secret.clone());
            tokio::task::spawn_blocking(move || {
                let got = revision::collect(&dir, &secret, &req);
                let _ = tx.blocking_send(CoreMsg::Recollected(Box::new((req, got))));
            });
        }
        while d.in_flight < cfg.state.workers && d.held.is_empty() {
            let Some(r) = d.ready.pop_front().or_else(|| d.revised.pop_front()) else {
                break;
            };
            d.in_flight += 1;
            let (pred, tx, mx) = (d.predictor.clone(), core_tx.clone(), metrics.clone());
            tokio::task::spawn_blocking(move || {
                // A panic in a dependency must not leave the series in flight forever: it becomes a failure.
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| compute_series(&pred, &r, Some(&mx))))
                        .unwrap_or_else(|panic| Err(Error::panicked("compute", panic.as_ref())));
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
                Some(CoreMsg::Recollected(r)) => { let (req, got) = *r; d.on_recollected(req, got); }
                None => break,
            },
            note = note_rx.recv() => match note {
                Some(PublisherNote::LnStatus(raw)) => match serde_json::from_slice::<LnStatusCommand>(&raw) {
                    Ok(cmd) => d.on_ln_read(&cmd, "mqtt"),
                    Err(e) => d.event(
                        EventKind::BadLnRead,
                        // what serde says may quote the payload: only where and what kind of error
                        format!(
                            "cmd/ln-status payload is not an LN read command ({:?} error at line {}, column {})",
                            e.classify(),
                            e.line(),
                            e.column()
                        ),
                        None,
                    ),
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
