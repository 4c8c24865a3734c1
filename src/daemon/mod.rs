//! `alnrisk serve`: the scanner-side daemon. One examination travels
//! export folder → [`watch`] → `intake` (header read, on the blocking pool) → [`assemble`] → `compute` (the
//! bundle's [`crate::model::Predictor`], on a blocking worker) → `store` ([`outbox`] fsync, then [`ledger`]) →
//! [`mqtt`] publisher → PUBACK → removed from the spool.
//!
//! Three parts, each with one job:
//! - `core` decides. It is a state machine with private state: the driver tells it what happened
//!   (`Core::on`, `Core::tick`) and asks what to do next (`Core::next_work`). It owns the assembler, the ready
//!   queue, the revisions in progress, the LN reads and the held results, and makes its decisions durable
//!   through a `Store`; it does no other I/O, so its unit tests drive it with the store in memory.
//! - `driver` does the I/O the core asks for, on a thread of its own: walks of the export folder, workers,
//!   quarantine moves, disk checks. It decides nothing.
//! - This file starts everything ([`serve`]) on tokio: the publisher, `/metrics`, the [`console`] page, inotify
//!   and the signal handlers, which feed the driver through one channel.
//!
//! Stage queues are bounded (a `heapless` ready queue of [`READY_QUEUE`] series; the export folder itself is the
//! buffer in front of it: when the queue is full the folder is not walked). Bad files go to `quarantine/` with a
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
pub mod console;
mod core;
mod driver;
pub mod event;
pub mod fsio;
mod intake;
pub mod ledger;
pub mod listen;
pub mod metrics;
pub mod mqtt;
pub mod outbox;
pub mod pacs;
pub mod payload;
pub mod quarantine;
mod revision;
mod store;
pub mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

pub use self::compute::compute_series;
use self::config::DaemonConfig;
use self::core::{Core, Happened, LnVia};
pub use self::core::{READY_QUEUE, REMEMBERED_IDENTIFIERS, REMEMBERED_LN_READS};
use self::driver::{Driver, Input, notify_systemd};
use self::metrics::Metrics;
use self::mqtt::{PublisherCmd, PublisherNote};
use self::payload::{LnStatusCommand, StatusMessage};
use self::store::DiskStore;
pub use self::store::PENDING_LN_READS;
use crate::error::{Error, Result};
use crate::model::{Bundle, Predictor, Trust};

/// Load the bundle the configuration names (verified, unless unsigned bundles are allowed), and check that the
/// daemon can serve it: every predictor of its nomogram is a signature or a reported factor with its coding
/// (the LN read, or a clinical column `fit` let in, which arrives like the LN read: [`crate::model::reported`]).
pub fn load_bundle(cfg: &DaemonConfig) -> Result<Bundle> {
    // The configuration's validation guarantees a key unless unsigned bundles are allowed.
    let trust = Trust::from_public_key(cfg.model.public_key.as_deref())?;
    let bundle = Bundle::load(&cfg.model.bundle, &trust)?;
    let m = &bundle.manifest;
    let servable = |n: &str| {
        n == "radiomics_signature" || n == "deep_signature" || crate::model::reported::coding_of(m, n).is_some()
    };
    let other: Vec<&str> = m
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
                "the nomogram needs {} which is neither a signature nor a clinical factor the bundle codes",
                other.join(", ")
            ),
        });
    }
    Ok(bundle)
}

fn status(state: payload::DeviceState, bundle: &Bundle) -> StatusMessage {
    StatusMessage {
        schema: payload::STATUS_SCHEMA.into(),
        state,
        bundle: Some(payload::BundleRef {
            id: bundle.manifest.bundle_id.clone(),
            version: bundle.manifest.version.clone(),
            sha256: bundle.sha256.clone(),
        }),
        alnrisk_version: env!("CARGO_PKG_VERSION").into(),
        at: crate::time::utc_now(),
    }
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
    metrics.gpu_fallback.set(i64::from(self::metrics::gpu_fallback_at_start(
        cfg.model.device,
        device.is_cpu(),
        cfg!(feature = "cuda"),
    )));
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
    let (online, offline) = (
        status(payload::DeviceState::Online, &bundle),
        status(payload::DeviceState::Offline, &bundle),
    );
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

/// Start the report sender (`[dicom_out]`) and the C-STORE SCP (`[dicom_in]`) on threads of their own; both tell
/// the core what happened through `tx`.
fn start_pacs(
    cfg: &DaemonConfig,
    store: &mut DiskStore,
    secret: &[u8],
    metrics: &Arc<Metrics>,
    tx: &std::sync::mpsc::Sender<driver::Input>,
) -> Result<()> {
    let note_to = |tx: std::sync::mpsc::Sender<driver::Input>| {
        move |note: pacs::PacsNote| {
            let _ = tx.send(Input::Core(Happened::Pacs(note)));
        }
    };
    if let (Some(out), Some(spool)) = (&cfg.dicom_out, store.report_spool()) {
        let (kick_tx, kick_rx) = std::sync::mpsc::sync_channel::<()>(1);
        store.wake_reports(kick_tx);
        let (out, metrics, note) = (out.clone(), metrics.clone(), note_to(tx.clone()));
        std::thread::Builder::new()
            .name("dicom-out".into())
            .spawn(move || pacs::scu::run(out, spool, kick_rx, metrics, note))
            .map_err(|source| Error::Runtime {
                what: "dicom_out thread",
                source,
            })?;
        tracing::info!("Structured Reports go to the PACS of [dicom_out]");
    }
    if let Some(dicom_in) = &cfg.dicom_in {
        let receiver = pacs::scp::Receiver {
            cfg: dicom_in.clone(),
            folder: pacs::scp::folder(&cfg.watch.export_dir, dicom_in),
            export_dir: cfg.watch.export_dir.clone(),
            secret: secret.to_vec(),
            metrics: metrics.clone(),
        };
        let addr = receiver.spawn(note_to(tx.clone()))?;
        tracing::info!(%addr, ae_title = %dicom_in.ae_title, "C-STORE SCP listening");
    }
    Ok(())
}

/// Run the daemon until SIGTERM / SIGINT. Blocks; builds its own tokio runtime.
pub fn serve(cfg: DaemonConfig) -> Result<()> {
    runtime()?.block_on(serve_async(cfg))
}

/// The tokio runtime of a long-running command (`serve`, `board`): two workers, the box has few cores.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| Error::Runtime {
            what: "tokio runtime",
            source,
        })
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
    let mut store = DiskStore::open(&cfg)?;
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
    let (outbox, events) = store.spools();
    store.wake(pub_tx.clone());
    let publisher = tokio::spawn(mqtt::run_publisher(
        cfg.clone(),
        online,
        offline,
        outbox,
        events,
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

    // Everything reaches the driver through one channel.
    let (in_tx, in_rx) = std::sync::mpsc::channel::<Input>();
    let wake_sent = Arc::new(AtomicBool::new(false));
    // The DICOM side: reports to PACS, examinations received (its folder exists before the watch starts).
    start_pacs(&cfg, &mut store, &secret, &metrics, &in_tx)?;
    // Watcher: inotify wakes the walk; the walk itself is the poller.
    let _inotify = if cfg.watch.poll_only {
        None
    } else {
        let (tx, sent) = (in_tx.clone(), wake_sent.clone());
        watch::wake_on_changes(&cfg.watch.export_dir, move |change| match change {
            watch::FolderChange::RenamedInto(p) => {
                let _ = tx.send(Input::Renamed(p));
            }
            watch::FolderChange::Other => {
                if !sent.swap(true, Ordering::AcqRel) {
                    let _ = tx.send(Input::Wake);
                }
            }
        })?
    };
    // LN reads from the broker.
    let tx = in_tx.clone();
    let notes = tokio::spawn(async move {
        while let Some(note) = note_rx.recv().await {
            let happened = match note {
                PublisherNote::LnStatus(raw) => match serde_json::from_slice::<LnStatusCommand>(&raw) {
                    Ok(cmd) => Happened::LnRead(cmd, LnVia::Mqtt),
                    // what serde says may quote the payload: only where and what kind of error
                    Err(e) => Happened::BadLnPayload(format!(
                        "cmd/ln-status payload is not an LN read command ({:?} error at line {}, column {})",
                        e.classify(),
                        e.line(),
                        e.column()
                    )),
                },
                PublisherNote::LnStatusTooLarge(bytes) => Happened::BadLnPayload(format!(
                    "cmd/ln-status payload of {bytes} bytes: an LN read is at most {} bytes; dropped unread",
                    mqtt::LN_READ_MAX_BYTES
                )),
                // Nothing to tell the core: the outbox gauge follows at its next turn.
                PublisherNote::Acked(_) => continue,
            };
            if tx.send(Input::Core(happened)).is_err() {
                break;
            }
        }
    });

    let bundle_id = predictor.bundle.manifest.bundle_id.clone();
    let mut core = Core::new(&cfg, predictor.clone(), secret.clone(), metrics.clone(), store);
    // The console page: its LN reads take the path of cmd/ln-status.
    let ln_tx = in_tx.clone();
    let ln_sink: console::http::LnSink =
        Box::new(move |cmd| ln_tx.send(Input::Core(Happened::LnRead(cmd, LnVia::Console))).is_ok());
    let page = console::start(&cfg, &predictor.bundle, ln_sink).await?;
    if let Some((notes, _)) = &page {
        core.show_on(notes.clone());
    }
    metrics.tick();
    let driver = tokio::task::spawn_blocking({
        let d = Driver {
            cfg: cfg.clone(),
            core,
            predictor,
            secret,
            metrics: metrics.clone(),
            inputs: in_rx,
            answers: in_tx.clone(),
            runtime: tokio::runtime::Handle::current(),
            wake_sent,
        };
        move || driver::run(d)
    });
    notify_systemd(&[sd_notify::NotifyState::Ready]);
    tracing::info!(export = %cfg.watch.export_dir.display(), bundle = %bundle_id, "serving");

    let mut sigterm =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|source| Error::Runtime {
            what: "SIGTERM handler",
            source,
        })?;
    tokio::pin!(driver);
    tokio::select! {
        _ = sigterm.recv() => {
            tracing::info!("SIGTERM: finishing in-flight work");
            notify_systemd(&[sd_notify::NotifyState::Stopping]);
            let _ = in_tx.send(Input::Stop);
        }
        _ = tokio::signal::ctrl_c() => {
            let _ = in_tx.send(Input::Stop);
        }
        _ = &mut driver => {}
    }
    let _ = (&mut driver).await;
    notes.abort();
    let _ = pub_tx.send(PublisherCmd::Stop).await;
    let _ = tokio::time::timeout(Duration::from_secs(3), publisher).await;
    if let Some(h) = http {
        h.abort();
    }
    if let Some((_, h)) = page {
        h.abort();
    }
    tracing::info!("stopped");
    Ok(())
}
