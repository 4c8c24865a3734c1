//! Prometheus metrics (the `prometheus` crate, Prometheus naming) and the HTTP endpoints `/metrics`,
//! `/health/live` and `/health/ready` (axum), on loopback by default.
//!
//! Live: the daemon's main loop has ticked within the last 30 s. Ready: the bundle is loaded, the watcher runs,
//! and the spool has room (a full spool means results cannot be taken any more).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Every metric the daemon exports.
pub struct Metrics {
    /// The registry they live in.
    pub registry: Registry,
    /// `alnrisk_series_processed_total{outcome}`: published, revised, failed, not_selected, duplicate, too_old.
    pub series_processed: IntCounterVec,
    /// `alnrisk_stage_duration_seconds{stage}`.
    pub stage_duration: HistogramVec,
    /// `alnrisk_end_to_end_seconds`: last file of a series → result spooled.
    pub end_to_end: Histogram,
    /// `alnrisk_outbox_depth`.
    pub outbox_depth: IntGauge,
    /// `alnrisk_event_outbox_depth`: events spooled, waiting for the broker.
    pub event_outbox_depth: IntGauge,
    /// `alnrisk_state_free_bytes`: free space on the state folder's file system.
    pub state_free_bytes: IntGauge,
    /// `alnrisk_mqtt_connected`.
    pub mqtt_connected: IntGauge,
    /// `alnrisk_mqtt_connect_failures_total`.
    pub mqtt_connect_failures: IntCounter,
    /// `alnrisk_messages_published_total`: results and updates acknowledged by the broker.
    pub published: IntCounter,
    /// `alnrisk_quarantined_total{reason}`.
    pub quarantined: IntCounterVec,
    /// `alnrisk_dicom_out_total{outcome}`: C-STORE of Structured Reports to PACS (`sent`, `failed`, `refused`).
    pub dicom_out: IntCounterVec,
    /// `alnrisk_dicom_out_pending`: reports in the spool, waiting for PACS.
    pub dicom_out_pending: IntGauge,
    /// `alnrisk_dicom_in_total{outcome}`: instances and associations at the C-STORE SCP (`stored`,
    /// `unreadable`, `failed`, `refused_ae`).
    pub dicom_in: IntCounterVec,
    /// `alnrisk_quarantine_files`: quarantined input files kept in `state.dir/quarantine` (notes not counted).
    pub quarantine_files: IntGauge,
    /// `alnrisk_quarantine_bytes`: bytes in `state.dir/quarantine`.
    pub quarantine_bytes: IntGauge,
    /// `alnrisk_quarantine_purged_files_total`: quarantined files deleted after `state.quarantine_keep_days`.
    pub quarantine_purged_files: IntCounter,
    /// `alnrisk_events_total{event}`.
    pub events: IntCounterVec,
    /// `alnrisk_events_dropped_total`: events that could not be spooled (event spool full or unwritable); they
    /// are in the log.
    pub events_dropped: IntCounter,
    /// `alnrisk_alarms_total{alarm}`: spool_full, spool_stale, disk_low.
    pub alarms: IntCounterVec,
    /// `alnrisk_gpu_in_use`.
    pub gpu_in_use: IntGauge,
    /// `alnrisk_gpu_fallback`: 1 when the network was meant for the GPU and runs on the CPU — a CUDA build whose
    /// `model.device = "auto"` found no device at start ([`gpu_fallback_at_start`]), or a fault of ours on the GPU
    /// (the rest of the run is on the CPU). A CPU-only build is on the CPU by design: 0.
    pub gpu_fallback: IntGauge,
    /// `alnrisk_build_info{version,bundle}` (always 1).
    pub build_info: IntGaugeVec,
    /// `alnrisk_compute_info{path}` (always 1): where the network runs — `cpu`, or `cuda (… trunk)` with the
    /// CUDA trunk the box chose, so a fleet can see which boxes run which path.
    pub compute_info: IntGaugeVec,
    /// `alnrisk_signature_value{signature}`: each answered series' signature values (results, not LN updates or
    /// revisions: one observation per series) — the live distribution, without labels or outcomes, that
    /// post-market monitoring compares with the training one.
    pub signature_value: HistogramVec,
    /// `alnrisk_signature_training{signature,training_quantile}`: the bundle's training quantiles (0.01, 0.5,
    /// 0.99) of each signature, to plot beside the live histogram. (Not `quantile`: that label belongs to summaries,
    /// and `promtool check metrics` refuses it on a gauge.)
    pub signature_training: GaugeVec,
    /// `alnrisk_files_seen_total`: files taken from the export folder.
    pub files_seen: IntCounter,
    /// `alnrisk_series_pending`: series being assembled or waiting.
    pub series_pending: IntGauge,
    /// `alnrisk_ready`: 1 when `/health/ready` would answer 200 apart from liveness (see [`Metrics::set_ready`]).
    pub ready_gauge: IntGauge,
    /// Health: the main loop's last tick (unix seconds).
    pub last_tick: AtomicU64,
    /// Health: ready.
    pub ready: AtomicBool,
}

fn must<T>(r: prometheus::Result<T>) -> T {
    // The metric definitions are static; a failure here is a programming error caught by the tests.
    r.unwrap_or_else(|e| panic!("metric definition: {e}"))
}

impl Metrics {
    /// Create and register every metric.
    pub fn new() -> Arc<Metrics> {
        let registry = Registry::new();
        let series_processed = must(IntCounterVec::new(
            Opts::new("alnrisk_series_processed_total", "Series finished, by outcome"),
            &["outcome"],
        ));
        let stage_duration = must(HistogramVec::new(
            HistogramOpts::new("alnrisk_stage_duration_seconds", "Time per pipeline stage").buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["stage"],
        ));
        let end_to_end = must(Histogram::with_opts(
            HistogramOpts::new(
                "alnrisk_end_to_end_seconds",
                "Last file of a series to its result in the outbox",
            )
            .buckets(vec![0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0]),
        ));
        let outbox_depth = must(IntGauge::new("alnrisk_outbox_depth", "Messages in the durable outbox"));
        let event_outbox_depth = must(IntGauge::new(
            "alnrisk_event_outbox_depth",
            "Events spooled, waiting for the broker",
        ));
        let state_free_bytes = must(IntGauge::new(
            "alnrisk_state_free_bytes",
            "Free space on the state folder's file system (bytes available to the daemon)",
        ));
        let mqtt_connected = must(IntGauge::new(
            "alnrisk_mqtt_connected",
            "1 while connected to the broker",
        ));
        let mqtt_connect_failures = must(IntCounter::new(
            "alnrisk_mqtt_connect_failures_total",
            "Failed or lost broker connections",
        ));
        let published = must(IntCounter::new(
            "alnrisk_messages_published_total",
            "Result messages acknowledged by the broker",
        ));
        let quarantined = must(IntCounterVec::new(
            Opts::new("alnrisk_quarantined_total", "Files moved to quarantine, by reason"),
            &["reason"],
        ));
        let dicom_out = must(IntCounterVec::new(
            Opts::new(
                "alnrisk_dicom_out_total",
                "Structured Reports sent to PACS by C-STORE, by outcome (sent, failed, refused)",
            ),
            &["outcome"],
        ));
        let dicom_out_pending = must(IntGauge::new(
            "alnrisk_dicom_out_pending",
            "Structured Reports in the spool waiting for PACS",
        ));
        let dicom_in = must(IntCounterVec::new(
            Opts::new(
                "alnrisk_dicom_in_total",
                "Instances received by the C-STORE SCP, by outcome (stored, unreadable, failed), and associations refused (refused_ae)",
            ),
            &["outcome"],
        ));
        let quarantine_files = must(IntGauge::new(
            "alnrisk_quarantine_files",
            "Quarantined input files kept in the state folder",
        ));
        let quarantine_bytes = must(IntGauge::new(
            "alnrisk_quarantine_bytes",
            "Bytes in the quarantine folder",
        ));
        let quarantine_purged_files = must(IntCounter::new(
            "alnrisk_quarantine_purged_files_total",
            "Quarantined files deleted after state.quarantine_keep_days",
        ));
        let events = must(IntCounterVec::new(
            Opts::new("alnrisk_events_total", "Events raised, by kind"),
            &["event"],
        ));
        let events_dropped = must(IntCounter::new(
            "alnrisk_events_dropped_total",
            "Events that could not be spooled (event spool full or unwritable); they are in the log",
        ));
        let alarms = must(IntCounterVec::new(
            Opts::new("alnrisk_alarms_total", "Alarms raised"),
            &["alarm"],
        ));
        let gpu_in_use = must(IntGauge::new("alnrisk_gpu_in_use", "1 when the network runs on a GPU"));
        let gpu_fallback = must(IntGauge::new(
            "alnrisk_gpu_fallback",
            "1 when a build for the GPU computes on the CPU (no CUDA device at start, or a fault on the GPU)",
        ));
        let build_info = must(IntGaugeVec::new(
            Opts::new("alnrisk_build_info", "Build and bundle served"),
            &["version", "bundle"],
        ));
        let compute_info = must(IntGaugeVec::new(
            Opts::new(
                "alnrisk_compute_info",
                "Where the network runs (cpu, or cuda with its trunk)",
            ),
            &["path"],
        ));
        let signature_value = must(HistogramVec::new(
            HistogramOpts::new(
                "alnrisk_signature_value",
                "Signature values of the answered series (one observation per series)",
            )
            .buckets((-12..=12).map(|k| f64::from(k) * 0.5).collect()),
            &["signature"],
        ));
        let signature_training = must(GaugeVec::new(
            Opts::new(
                "alnrisk_signature_training",
                "The bundle's training quantiles of each signature",
            ),
            &["signature", "training_quantile"],
        ));
        let files_seen = must(IntCounter::new(
            "alnrisk_files_seen_total",
            "Files taken from the export folder",
        ));
        let series_pending = must(IntGauge::new(
            "alnrisk_series_pending",
            "Series being assembled or waiting",
        ));
        let ready_gauge = must(IntGauge::new(
            "alnrisk_ready",
            "1 when the daemon can take results (spool has room, state disk not low)",
        ));
        // Every label value an alert rule watches exists from the start at 0, so that the first increment is an
        // increase (a series that appears at 1 shows no `increase()`): firmware-config/prometheus/.
        for outcome in ["published", "revised", "failed", "not_selected", "duplicate", "too_old"] {
            series_processed.with_label_values(&[outcome]);
        }
        for reason in crate::error::Error::REASON_CODES {
            quarantined.with_label_values(&[reason]);
        }
        for kind in super::event::EventKind::ALL {
            if kind.is_alarm() {
                alarms.with_label_values(&[kind.name()]);
            }
        }
        for kind in [
            super::event::EventKind::Quarantined,
            super::event::EventKind::OutOfDistribution,
            super::event::EventKind::AcquisitionOutsideTraining,
            super::event::EventKind::RevisionFailed,
            super::event::EventKind::QuarantinePurged,
        ] {
            events.with_label_values(&[kind.name()]);
        }
        for outcome in ["sent", "failed", "refused"] {
            dicom_out.with_label_values(&[outcome]);
        }
        for outcome in ["stored", "unreadable", "failed", "refused_ae"] {
            dicom_in.with_label_values(&[outcome]);
        }
        for c in [
            Box::new(series_processed.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(stage_duration.clone()),
            Box::new(end_to_end.clone()),
            Box::new(outbox_depth.clone()),
            Box::new(event_outbox_depth.clone()),
            Box::new(state_free_bytes.clone()),
            Box::new(mqtt_connected.clone()),
            Box::new(mqtt_connect_failures.clone()),
            Box::new(published.clone()),
            Box::new(quarantined.clone()),
            Box::new(quarantine_files.clone()),
            Box::new(dicom_out.clone()),
            Box::new(dicom_out_pending.clone()),
            Box::new(dicom_in.clone()),
            Box::new(quarantine_bytes.clone()),
            Box::new(quarantine_purged_files.clone()),
            Box::new(events.clone()),
            Box::new(events_dropped.clone()),
            Box::new(alarms.clone()),
            Box::new(gpu_in_use.clone()),
            Box::new(gpu_fallback.clone()),
            Box::new(build_info.clone()),
            Box::new(compute_info.clone()),
            Box::new(signature_value.clone()),
            Box::new(signature_training.clone()),
            Box::new(files_seen.clone()),
            Box::new(series_pending.clone()),
            Box::new(ready_gauge.clone()),
        ] {
            must(registry.register(c));
        }
        Arc::new(Metrics {
            registry,
            series_processed,
            stage_duration,
            end_to_end,
            outbox_depth,
            event_outbox_depth,
            state_free_bytes,
            mqtt_connected,
            mqtt_connect_failures,
            published,
            quarantined,
            dicom_out,
            dicom_out_pending,
            dicom_in,
            quarantine_files,
            quarantine_bytes,
            quarantine_purged_files,
            events,
            events_dropped,
            alarms,
            gpu_in_use,
            gpu_fallback,
            build_info,
            compute_info,
            signature_value,
            signature_training,
            files_seen,
            series_pending,
            ready_gauge,
            last_tick: AtomicU64::new(0),
            ready: AtomicBool::new(false),
        })
    }

    /// Whether the daemon can take results: `/health/ready` and `alnrisk_ready`.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
        self.ready_gauge.set(i64::from(ready));
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        use prometheus::Encoder;
        let mut buf = Vec::new();
        let _ = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }

    /// Record a main-loop tick.
    pub fn tick(&self) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        self.last_tick.store(now, Ordering::Relaxed);
    }

    /// Whether the main loop ticked recently.
    pub fn live(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        now.saturating_sub(self.last_tick.load(Ordering::Relaxed)) <= 30
    }
}

/// Whether a start on `device` after asking for `choice` is a fallback to the CPU (`alnrisk_gpu_fallback`): only
/// a build with CUDA (`cuda_built`) that asked for `auto` and got the CPU. An explicit `cuda` fails instead, and
/// `cpu` or a CPU-only build is the CPU by design.
pub fn gpu_fallback_at_start(choice: crate::deep::DeviceChoice, on_cpu: bool, cuda_built: bool) -> bool {
    cuda_built && on_cpu && matches!(choice, crate::deep::DeviceChoice::Auto)
}

/// Serve `/metrics`, `/health/live`, `/health/ready` on `listener` until the task is dropped.
pub async fn serve_http(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    use axum::http::StatusCode;
    use axum::routing::get;
    let m1 = metrics.clone();
    let m2 = metrics.clone();
    let m3 = metrics;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = m1.clone();
                async move { ([("content-type", "text/plain; version=0.0.4")], m.render()) }
            }),
        )
        .route(
            "/health/live",
            get(move || {
                let m = m2.clone();
                async move {
                    if m.live() {
                        (StatusCode::OK, "live\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "stalled\n")
                    }
                }
            }),
        )
        .route(
            "/health/ready",
            get(move || {
                let m = m3.clone();
                async move {
                    if m.ready.load(Ordering::Relaxed) && m.live() {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                    }
                }
            }),
        );
    if let Err(e) = axum::serve(listener, app).await {
        tracing::error!("metrics server: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_series_alert_rules_watch_exist_at_zero_from_the_start() {
        let m = Metrics::new();
        let text = m.render();
        for line in [
            "alnrisk_alarms_total{alarm=\"disk_low\"} 0",
            "alnrisk_alarms_total{alarm=\"spool_full\"} 0",
            "alnrisk_series_processed_total{outcome=\"failed\"} 0",
            "alnrisk_events_total{event=\"acquisition_outside_training\"} 0",
            "alnrisk_ready 0",
            "alnrisk_quarantined_total{reason=\"malformed\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        m.set_ready(true);
        assert!(m.render().lines().any(|l| l == "alnrisk_ready 1"));
        assert!(m.ready.load(Ordering::Relaxed));
    }

    #[test]
    fn only_a_cuda_build_that_asked_for_auto_and_got_the_cpu_falls_back() {
        use crate::deep::DeviceChoice;
        assert!(gpu_fallback_at_start(DeviceChoice::Auto, true, true));
        assert!(!gpu_fallback_at_start(DeviceChoice::Auto, false, true), "on the GPU");
        assert!(
            !gpu_fallback_at_start(DeviceChoice::Auto, true, false),
            "a CPU-only build"
        );
        assert!(
            !gpu_fallback_at_start(DeviceChoice::Cpu, true, true),
            "asked for the CPU"
        );
        assert!(!gpu_fallback_at_start(DeviceChoice::Cuda(0), false, true));
        assert!(Metrics::new().render().lines().any(|l| l == "alnrisk_gpu_fallback 0"));
    }
}
