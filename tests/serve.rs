//! `alnrisk serve` end to end, as separate processes against a real mosquitto on loopback (installed by
//! `.ci/run`): the synthetic and the real UCSF-BR-06 examination checked against the JSON Schema, the LN read
//! update, a broker outage, `kill -9` in the middle of a series, a burst of bad files, a full spool, TLS with the
//! right and a wrong CA, and `/metrics` parsed as Prometheus text. The bundle is fitted once (reduced-width VGG,
//! small synthetic cohort) and signed with a key made here.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use alnrisk::daemon::listen::Listener;
use alnrisk::daemon::payload::StudyKey;
use alnrisk::synth::replay::{ReplayStyle, replay};

const SECRET_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_alnrisk"))
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("alnrisk-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while t.elapsed() < timeout {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

struct Fixture {
    cohort: PathBuf,
    bundle: PathBuf,
    public_key: PathBuf,
}

/// Synthetic cohort + signed bundle, made once for every test of this file.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let d = tmp("fixture");
        let cohort = d.join("cohort");
        let out = bin()
            .args([
                "synth",
                "--patients",
                "40",
                "--seed",
                "7",
                "--matrix",
                "64",
                "--slices",
                "16",
                "--out",
            ])
            .arg(&cohort)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = bin().args(["keygen", "--out"]).arg(d.join("signing")).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let bundle = d.join("bundle");
        let out = bin()
            .args(["fit", "--cohort"])
            .arg(cohort.join("cohort.csv"))
            .arg("--out")
            .arg(&bundle)
            .arg("--report")
            .arg(d.join("report"))
            .args([
                "--vgg-scale",
                "8",
                "--views",
                "2",
                "--epochs",
                "10",
                "--clinical-candidates",
                "mri_ln_status",
            ])
            .arg("--key")
            .arg(d.join("signing.key"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(bundle.join("bundle.json")).unwrap()).unwrap();
        let predictors = manifest["nomogram"]["predictors"].to_string();
        assert!(
            predictors.contains("mri_ln_status"),
            "the tests need a nomogram with the LN read: {predictors}"
        );
        Fixture {
            cohort,
            bundle,
            public_key: d.join("signing.pub"),
        }
    })
}

fn exam(n: usize) -> PathBuf {
    fixture().cohort.join(format!("SYN{n:04}"))
}

fn ucsf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tcia-breast-mri-nact-pilot/UCSF-BR-06")
}

/// StudyInstanceUID of the first DICOM image below `dir`.
fn study_uid(dir: &Path) -> String {
    let files = alnrisk::ingest::list_files(dir).unwrap();
    let f = files.iter().find(|f| !f.to_string_lossy().contains("seg")).unwrap();
    alnrisk::ingest::header::read_instance(f).unwrap().study_uid
}

fn key_of(dir: &Path) -> String {
    StudyKey::of(&hex::decode(SECRET_HEX).unwrap(), &study_uid(dir))
        .as_str()
        .to_string()
}

// ---------------------------------------------------------------------------------------------------------------
// mosquitto

struct Mosquitto {
    conf: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Mosquitto {
    /// A private mosquitto on loopback (`port`, plain), with persistence, plus extra config lines.
    fn new(name: &str, extra: &str) -> Mosquitto {
        let dir = tmp(&format!("mosq-{name}"));
        let port = free_port();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "user root\nper_listener_settings false\nallow_anonymous true\npersistence true\npersistence_location {}/\n\
                 listener {port} 127.0.0.1\n{extra}\n",
                dir.display()
            ),
        )
        .unwrap();
        let mut m = Mosquitto {
            conf,
            port,
            child: None,
        };
        m.start();
        m
    }

    fn start(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto must be installed (.ci/run installs it: apt-get install -y mosquitto)");
        self.child = Some(child);
        let port = self.port;
        wait_for("mosquitto to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// subscriber

/// Everything published under `alnrisk/#`, collected by a persistent-session MQTT 5 client (it keeps its
/// subscription and queued messages across a broker restart).
struct Subscriber(Listener);

impl Subscriber {
    fn new(port: u16, id: &str) -> Subscriber {
        use rumqttc::v5::MqttOptions;
        use rumqttc::v5::mqttbytes::v5::ConnectProperties;
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_clean_start(false);
        let mut props = ConnectProperties::new();
        props.session_expiry_interval = Some(3600);
        o.set_connect_properties(props);
        o.set_keep_alive(Duration::from_secs(5));
        Subscriber(Listener::connect(o, "alnrisk/#").expect("subscriber connected"))
    }

    fn of(&self, kind: &str) -> Vec<serde_json::Value> {
        self.0.of(kind)
    }

    fn everything(&self) -> String {
        format!("{:?}", self.0.inbox.lock().unwrap())
    }

    fn wait(&self, kind: &str, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
        wait_for(&format!("{n} {kind} message(s)"), timeout, || self.of(kind).len() >= n);
        self.of(kind)
    }

    fn publish(&self, topic: &str, body: &str) {
        self.0.publish(topic, body).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------------------------
// the daemon

struct Daemon {
    notify_socket: Option<PathBuf>,
    config: PathBuf,
    log: PathBuf,
    metrics: String,
    export: PathBuf,
    state: PathBuf,
    child: Option<Child>,
}

struct DaemonOpts<'a> {
    mqtt: String,
    spool_max_entries: usize,
    extra: &'a str,
    /// state.min_free_mb (1 by default here: the tests are not about the build machine's free space).
    min_free_mb: u64,
    /// systemd's NOTIFY_SOCKET for the daemon.
    notify_socket: Option<PathBuf>,
    /// phi.include_identifiers.
    phi: bool,
    /// watch.max_age_h (0: no limit).
    max_age_h: f64,
    /// state.quarantine_keep_days (0: keep).
    quarantine_keep_days: u32,
}

impl<'a> DaemonOpts<'a> {
    /// Defaults with this `[mqtt]` table body.
    fn mqtt(mqtt: String) -> DaemonOpts<'a> {
        DaemonOpts {
            mqtt,
            spool_max_entries: 100,
            extra: "",
            min_free_mb: 1,
            notify_socket: None,
            phi: false,
            max_age_h: 0.0,
            quarantine_keep_days: 0,
        }
    }

    /// Defaults with the plain broker on loopback `port`.
    fn external(port: u16) -> DaemonOpts<'a> {
        Self::mqtt(format!(
            "broker = \"external\"\nhost = \"127.0.0.1\"\nport = {port}\nreconnect_ms = 300\n"
        ))
    }
}

/// The daemon keeps failing to connect (counted) and never gets online.
fn assert_never_connects(d: &Daemon) {
    wait_for("refused connection attempts", Duration::from_secs(20), || {
        d.metric("alnrisk_mqtt_connect_failures_total", None) >= 2.0
    });
    assert_eq!(d.metric("alnrisk_mqtt_connected", None), 0.0);
}

impl Daemon {
    fn new(name: &str, mqtt_port: u16) -> Daemon {
        Self::with(name, DaemonOpts::external(mqtt_port))
    }

    fn with(name: &str, o: DaemonOpts) -> Daemon {
        let f = fixture();
        let dir = tmp(&format!("daemon-{name}"));
        let export = dir.join("export");
        std::fs::create_dir_all(&export).unwrap();
        std::fs::write(dir.join("secret"), SECRET_HEX).unwrap();
        let metrics = format!("127.0.0.1:{}", free_port());
        let config = dir.join("alnrisk.toml");
        std::fs::write(
            &config,
            format!(
                r#"[site]
site = "test-site"
device = "{name}"
[watch]
export_dir = "{export}"
poll_interval_ms = 200
stable_ms = 300
max_age_h = {max_age_h}
[assemble]
quiet_period_s = 1.5
roi_wait_s = 3.0
[[select]]
name = "dce"
modality = "MR"
min_temporal_positions = 2
[model]
bundle = "{bundle}"
public_key = "{key}"
device = "cpu"
[mqtt]
{mqtt}
[phi]
study_key_secret_file = "{secret}"
include_identifiers = {phi}
[state]
dir = "{state}"
spool_max_entries = {spool}
min_free_mb = {min_free_mb}
quarantine_keep_days = {keep}
drain_s = 5.0
[metrics]
listen = "{metrics}"
{extra}
"#,
                export = export.display(),
                bundle = f.bundle.display(),
                key = f.public_key.display(),
                mqtt = o.mqtt,
                secret = dir.join("secret").display(),
                state = dir.join("state").display(),
                spool = o.spool_max_entries,
                min_free_mb = o.min_free_mb,
                metrics = metrics,
                extra = o.extra,
                phi = o.phi,
                max_age_h = o.max_age_h,
                keep = o.quarantine_keep_days,
            ),
        )
        .unwrap();
        let mut d = Daemon {
            notify_socket: o.notify_socket,
            config,
            log: dir.join("daemon.log"),
            metrics,
            export,
            state: dir.join("state"),
            child: None,
        };
        d.start();
        d
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = bin();
        if let Some(sock) = &self.notify_socket {
            cmd.env("NOTIFY_SOCKET", sock);
        }
        let child = cmd
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", "info,rumqttd=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let m = self.metrics.clone();
        wait_for("the daemon's /health/live", Duration::from_secs(30), || {
            http_get(&m, "/health/live").is_some_and(|(code, _)| code == 200)
        });
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn term(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().unwrap();
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        c.wait().unwrap()
    }

    fn metrics(&self) -> prometheus_parse::Scrape {
        let (code, body) = http_get(&self.metrics, "/metrics").expect("metrics endpoint");
        assert_eq!(code, 200);
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
    }

    fn metric(&self, name: &str, label: Option<(&str, &str)>) -> f64 {
        self.metrics()
            .samples
            .iter()
            .filter(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn drop_exam(&self, from: &Path, name: &str, style: ReplayStyle) {
        replay(from, &self.export.join(name), Duration::from_millis(2), style).unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    // axum answers with a content length; no chunked decoding needed
    Some((code, body))
}

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config/schema/result-v1.schema.json"),
    )
    .unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

fn assert_valid(v: &serde_json::Value) {
    let s = schema();
    let errors: Vec<String> = s.iter_errors(v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "schema errors {errors:?} in {v}");
}

fn count_files(dir: &Path) -> usize {
    alnrisk::ingest::list_files(dir).map(|f| f.len()).unwrap_or(0)
}

fn quarantine_notes(state: &Path) -> Vec<serde_json::Value> {
    let q = state.join("quarantine");
    let mut out = Vec::new();
    let mut stack = vec![q];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".reason.json") {
                out.push(serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap());
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------------

#[test]
fn synthetic_and_ucsf_exams_end_to_end_schema_phi_ln_update_and_metrics() {
    // The broker `.ci/run` started on loopback (ALNRISK_TEST_MQTT=127.0.0.1:1883), else a private one.
    let shared = std::env::var("ALNRISK_TEST_MQTT")
        .ok()
        .and_then(|a| a.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()))
        .filter(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok());
    let private = shared.is_none().then(|| Mosquitto::new("e2e", ""));
    let port = shared.or(private.as_ref().map(|m| m.port)).unwrap();
    let sub = Subscriber::new(port, &format!("e2e-sub-{}", std::process::id()));
    let d = Daemon::new("e2e", port);
    wait_for("status online", Duration::from_secs(10), || {
        sub.of("status").iter().any(|s| s["state"] == "online")
    });

    // A synthetic examination whose ROI arrives late (after a waiting_for_roi event), and the real UCSF-BR-06
    // examination with its fractional SEG.
    let syn = exam(3);
    d.drop_exam(&syn.join("dce"), "syn/dce", ReplayStyle::Atomic);
    let ev = sub.wait("event", 1, Duration::from_secs(30));
    assert!(ev.iter().any(|e| e["event"] == "waiting_for_roi"), "{ev:?}");
    d.drop_exam(&syn.join("roi"), "syn/roi", ReplayStyle::Atomic);
    d.drop_exam(&ucsf(), "ucsf", ReplayStyle::SlowWrite);
    let results = sub.wait("result", 2, Duration::from_secs(180));
    for r in &results {
        assert_valid(r);
        assert_eq!(r["kind"], "result");
        assert_eq!(r["mri_ln_status"], "unknown");
        assert!(r["risk"].is_null());
        let neg = r["scenarios"]["if_ln_negative"]["probability"].as_f64().unwrap();
        let pos = r["scenarios"]["if_ln_positive"]["probability"].as_f64().unwrap();
        assert!(neg != pos && (0.0..=1.0).contains(&neg) && (0.0..=1.0).contains(&pos));
        assert!(r["timing_ms"]["last_file_to_result"].as_f64().unwrap() > 0.0);
    }
    let keys: Vec<&str> = results.iter().map(|r| r["study_key"].as_str().unwrap()).collect();
    let (syn_key, ucsf_key) = (key_of(&syn), key_of(&ucsf()));
    assert!(
        keys.contains(&syn_key.as_str()) && keys.contains(&ucsf_key.as_str()),
        "{keys:?}"
    );

    // The real examination is not on the synthetic cohort's intensity scale (whole-image 99th percentile 93, where
    // the synthetic exams lie in the hundreds): answered, flagged, and reported to the people who run the box as an
    // acquisition the model was not validated on. Its spacings match the cohort's (0.703 vs 0.7 mm, 2 mm).
    let ucsf_result = results.iter().find(|r| r["study_key"] == ucsf_key.as_str()).unwrap();
    let flags = ucsf_result["out_of_distribution"].to_string();
    assert!(flags.contains("acquisition image_intensity_p99: 93 outside"), "{flags}");
    assert!(!flags.contains("spacing"), "{flags}");
    let acq_event = |key: &str| {
        sub.of("event")
            .iter()
            .any(|e| e["event"] == "acquisition_outside_training" && e["study_key"] == key)
    };
    wait_for("the acquisition event", Duration::from_secs(10), || {
        acq_event(&ucsf_key)
    });
    assert_eq!(
        d.metric("alnrisk_events_total", Some(("event", "acquisition_outside_training"))),
        1.0,
        "the synthetic exam, acquired as the cohort was, raises none"
    );

    // No UID or name anywhere in what left the box.
    let everything = sub.everything();
    for uid in [study_uid(&syn), study_uid(&ucsf())] {
        assert!(!everything.contains(&uid), "a StudyInstanceUID was published");
    }
    assert!(!everything.contains("UCSF-BR-06") && !everything.contains("patient_name"));

    // The LN read arrives on cmd/ln-status: an update of the same result.
    let first = results
        .iter()
        .find(|r| r["study_key"] == ucsf_key.as_str())
        .unwrap()
        .clone();
    sub.publish(
        "alnrisk/v1/test-site/e2e/cmd/ln-status",
        &format!(r#"{{"study_key":"{ucsf_key}","mri_ln_status":"positive"}}"#),
    );
    let all = sub.wait("result", 3, Duration::from_secs(20));
    let update = all.iter().find(|r| r["kind"] == "update").unwrap();
    assert_valid(update);
    assert_eq!(update["updates"], first["message_id"]);
    assert_eq!(update["mri_ln_status"], "positive");
    assert_eq!(
        update["risk"]["probability"],
        first["scenarios"]["if_ln_positive"]["probability"]
    );
    // ... and a sidecar file for the synthetic study
    std::fs::write(
        d.export.join("syn.ln.json"),
        format!(
            r#"{{"study_instance_uid":"{}","mri_ln_status":"negative"}}"#,
            study_uid(&syn)
        ),
    )
    .unwrap();
    let all = sub.wait("result", 4, Duration::from_secs(20));
    let syn_update = all
        .iter()
        .find(|r| r["kind"] == "update" && r["study_key"] == syn_key.as_str())
        .unwrap();
    assert_eq!(syn_update["mri_ln_status"], "negative");

    // /metrics parses and its counters match what happened.
    assert_eq!(
        d.metric("alnrisk_series_processed_total", Some(("outcome", "published"))),
        2.0
    );
    // (the PUBACK may reach the daemon after the subscriber has the message)
    wait_for("4 PUBACKs counted", Duration::from_secs(10), || {
        d.metric("alnrisk_messages_published_total", None) == 4.0
    });
    assert_eq!(d.metric("alnrisk_mqtt_connected", None), 1.0);
    wait_for("an empty outbox", Duration::from_secs(10), || {
        d.metric("alnrisk_outbox_depth", None) == 0.0
    });
    assert_eq!(
        d.metric("alnrisk_events_total", Some(("event", "waiting_for_roi"))),
        1.0
    );
    assert_eq!(d.metric("alnrisk_quarantined_total", None), 0.0);
    assert_eq!(d.metric("alnrisk_end_to_end_seconds_count", None), 2.0);
    assert_eq!(d.metric("alnrisk_compute_info", Some(("path", "cpu"))), 1.0);
    // The signatures' live distribution (one observation per answered series; the LN updates add none) beside
    // the bundle's training quantiles.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture().bundle.join("bundle.json")).unwrap()).unwrap();
    let scrape = d.metrics();
    let signatures: Vec<String> = results[0]["signatures"].as_object().unwrap().keys().cloned().collect();
    assert!(!signatures.is_empty());
    for sig in signatures.iter().map(String::as_str) {
        // (prometheus_parse keeps a labelled histogram's buckets, not its _sum and _count)
        let buckets = scrape
            .samples
            .iter()
            .find_map(|s| match &s.value {
                prometheus_parse::Value::Histogram(b)
                    if s.metric == "alnrisk_signature_value" && s.labels.get("signature") == Some(sig) =>
                {
                    Some(b.clone())
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("no histogram for {sig}"));
        let published: Vec<f64> = results.iter().map(|r| r["signatures"][sig].as_f64().unwrap()).collect();
        assert_eq!(buckets.len(), 26, "-6 … 6 by 0.5, and +Inf");
        for b in &buckets {
            let below = published.iter().filter(|v| **v <= b.less_than).count() as f64;
            assert_eq!(b.count, below, "{sig}: bucket le {}", b.less_than);
        }
        let training = |q: &str| {
            scrape
                .samples
                .iter()
                .find(|s| {
                    s.metric == "alnrisk_signature_training"
                        && s.labels.get("signature") == Some(sig)
                        && s.labels.get("quantile") == Some(q)
                })
                .map(|s| match s.value {
                    prometheus_parse::Value::Gauge(v) => v,
                    _ => f64::NAN,
                })
        };
        for (q, field) in [("0.01", "p01"), ("0.5", "p50"), ("0.99", "p99")] {
            assert_eq!(
                training(q),
                manifest["feature_ranges"][sig][field].as_f64(),
                "{sig} {q}"
            );
        }
    }
    assert_eq!(http_get(&d.metrics, "/health/ready").unwrap().0, 200);
    // Nothing was moved out of the export folder.
    // (the LN sidecar was filed under state/ln-reads)
    assert_eq!(count_files(&d.export), count_files(&syn) + count_files(&ucsf()));
    assert_eq!(count_files(&d.state.join("ln-reads")), 1);

    // `serve --check` validates the same configuration and shows the acquisitions the bundle was fitted on
    let check = bin()
        .arg("serve")
        .arg("--config")
        .arg(&d.config)
        .arg("--check")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success() && text.contains("configuration valid"), "{text}");
    let spacing = &manifest["acquisition_ranges"]["pixel_spacing_mm"];
    assert!(
        text.contains(&format!(
            "pixel_spacing_mm     {} … {}",
            spacing["min"].as_f64().unwrap(),
            spacing["max"].as_f64().unwrap()
        )),
        "{text}"
    );
}

#[test]
fn broker_outage_results_arrive_in_order_exactly_once() {
    let mut broker = Mosquitto::new("outage", "");
    let sub = Subscriber::new(broker.port, "outage-sub");
    let d = Daemon::new("outage", broker.port);
    sub.wait("status", 1, Duration::from_secs(10));
    broker.stop();
    wait_for("the daemon to see the outage", Duration::from_secs(30), || {
        d.metric("alnrisk_mqtt_connected", None) == 0.0
    });
    d.drop_exam(&exam(4), "a", ReplayStyle::Atomic);
    wait_for("result A spooled", Duration::from_secs(60), || {
        d.metric("alnrisk_outbox_depth", None) == 1.0
    });
    d.drop_exam(&exam(5), "b", ReplayStyle::Atomic);
    wait_for("result B spooled", Duration::from_secs(60), || {
        d.metric("alnrisk_outbox_depth", None) == 2.0
    });
    assert_eq!(std::fs::read_dir(d.state.join("spool")).unwrap().count(), 2);
    broker.start();
    let results = sub.wait("result", 2, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    let results_after = sub.of("result");
    assert_eq!(results_after.len(), 2, "exactly once: {results_after:?}");
    assert_eq!(results[0]["study_key"], key_of(&exam(4)).as_str());
    assert_eq!(results[1]["study_key"], key_of(&exam(5)).as_str());
    wait_for("the spool to drain", Duration::from_secs(10), || {
        d.metric("alnrisk_outbox_depth", None) == 0.0
    });
    assert_eq!(std::fs::read_dir(d.state.join("spool")).unwrap().count(), 0);
}

#[test]
fn kill_9_mid_series_then_restart_publishes_once_and_loses_no_file() {
    let broker = Mosquitto::new("crash", "");
    let sub = Subscriber::new(broker.port, "crash-sub");
    let mut d = Daemon::new("crash", broker.port);
    let src = exam(6);
    let files = alnrisk::ingest::list_files(&src).unwrap();
    // Half the series, then the daemon dies.
    for f in &files[..files.len() / 2] {
        let dest = d.export.join("x").join(f.strip_prefix(&src).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(f, dest).unwrap();
    }
    std::thread::sleep(Duration::from_millis(800));
    d.kill9();
    for f in &files[files.len() / 2..] {
        let dest = d.export.join("x").join(f.strip_prefix(&src).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(f, dest).unwrap();
    }
    d.start();
    let r = sub.wait("result", 1, Duration::from_secs(60));
    assert_eq!(r[0]["study_key"], key_of(&src).as_str());
    // Killed again after publishing: the broker publishes the last will (retained `offline`) ...
    d.kill9();
    wait_for("the last will", Duration::from_secs(10), || {
        sub.of("status").last().is_some_and(|s| s["state"] == "offline")
    });
    // ... and after a restart the ledger keeps the study from being published twice, even when the console
    // exports the same series again under another folder.
    d.start();
    d.drop_exam(&src, "again", ReplayStyle::Atomic);
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(sub.of("result").len(), 1, "published once");
    assert!(sub.of("status").last().is_some_and(|s| s["state"] == "online"));
    assert_eq!(count_files(&d.export.join("x")), files.len(), "no file lost");
    assert_eq!(
        d.metric("alnrisk_series_processed_total", Some(("outcome", "published"))),
        0.0
    );
    assert!(quarantine_notes(&d.state).is_empty());
    assert!(d.log_text().contains("serving"));
}

#[test]
fn an_ln_read_before_the_images_survives_a_restart_and_is_applied() {
    let broker = Mosquitto::new("early-ln", "");
    let sub = Subscriber::new(broker.port, "early-ln-sub");
    let mut d = Daemon::new("early-ln", broker.port);
    sub.wait("status", 1, Duration::from_secs(10));
    let key = key_of(&exam(11));
    sub.publish(
        "alnrisk/v1/test-site/early-ln/cmd/ln-status",
        &format!(r#"{{"study_key":"{key}","mri_ln_status":"positive"}}"#),
    );
    wait_for("the read kept", Duration::from_secs(10), || {
        d.metric("alnrisk_events_total", Some(("event", "ln_read_pending"))) == 1.0
    });
    d.kill9();
    d.start();
    d.drop_exam(&exam(11), "a", ReplayStyle::Atomic);
    let r = sub.wait("result", 1, Duration::from_secs(60));
    assert_eq!(r[0]["study_key"], key.as_str());
    assert_eq!(r[0]["mri_ln_status"], "positive");
    assert!(r[0]["risk"]["probability"].as_f64().is_some(), "{}", r[0]);
    assert_valid(&r[0]);
}

#[test]
fn bad_input_burst_is_quarantined_with_reasons_and_the_valid_study_is_published() {
    let broker = Mosquitto::new("burst", "");
    let sub = Subscriber::new(broker.port, "burst-sub");
    let d = Daemon::new("burst", broker.port);
    let src = exam(7);
    let real = alnrisk::ingest::list_files(&src).unwrap();
    let junk = d.export.join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    let mut rng = alnrisk::rng::Rng::new(5);
    for k in 0..200 {
        let path = junk.join(format!("J{k:03}.dcm"));
        let bytes: Vec<u8> = match k % 3 {
            // random bytes
            0 => (0..(64 + k * 37)).map(|_| (rng.uniform() * 256.0) as u8).collect(),
            // a real file cut short
            1 => {
                let b = std::fs::read(&real[k % real.len()]).unwrap();
                b[..b.len() * (1 + k % 5) / 7].to_vec()
            }
            // not DICOM at all
            _ => format!("patient list {k}\nthis is a text file\n").into_bytes(),
        };
        std::fs::write(path, bytes).unwrap();
    }
    d.drop_exam(&src, "valid", ReplayStyle::Atomic);
    let r = sub.wait("result", 1, Duration::from_secs(60));
    assert_eq!(r[0]["study_key"], key_of(&src).as_str());
    wait_for("200 quarantined", Duration::from_secs(30), || {
        quarantine_notes(&d.state).len() == 200
    });
    let notes = quarantine_notes(&d.state);
    assert!(notes.iter().all(|n| n["reason"].as_str().is_some_and(|s| !s.is_empty())
        && n["detail"].as_str().is_some_and(|s| s.contains("J"))));
    assert_eq!(count_files(&junk), 0, "every bad file moved out of the export folder");
    assert_eq!(d.metric("alnrisk_quarantined_total", None), 200.0);
    assert_eq!(d.metric("alnrisk_events_total", Some(("event", "quarantined"))), 200.0);
    assert_eq!(
        d.metric("alnrisk_series_processed_total", Some(("outcome", "published"))),
        1.0
    );
    let events = sub.wait("event", 200, Duration::from_secs(20));
    assert_eq!(events.iter().filter(|e| e["event"] == "quarantined").count(), 200);
}

#[test]
fn events_are_spooled_through_a_broker_outage_and_a_restart_none_lost() {
    let mut broker = Mosquitto::new("events", "");
    let sub = Subscriber::new(broker.port, "events-sub");
    broker.stop();
    let mut d = Daemon::new("events", broker.port);
    // More bad files than an in-memory event queue would have held (it was 256), while the broker is down.
    let junk = d.export.join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    for k in 0..300 {
        std::fs::write(junk.join(format!("N{k:03}.dcm")), format!("not DICOM {k}\n")).unwrap();
    }
    wait_for("300 quarantined", Duration::from_secs(60), || {
        quarantine_notes(&d.state).len() == 300
    });
    wait_for("300 events spooled", Duration::from_secs(10), || {
        d.metric("alnrisk_event_outbox_depth", None) == 300.0
    });
    assert_eq!(std::fs::read_dir(d.state.join("events")).unwrap().count(), 300);
    // The daemon dies and comes back before the broker does: the events are still there.
    d.kill9();
    d.start();
    assert_eq!(d.metric("alnrisk_event_outbox_depth", None), 300.0);
    broker.start();
    let events = sub.wait("event", 300, Duration::from_secs(60));
    let files: std::collections::BTreeSet<String> = events
        .iter()
        .filter(|e| e["event"] == "quarantined")
        .filter_map(|e| {
            e["detail"]
                .as_str()
                .and_then(|s| s.split("N").nth(1))
                .map(|s| s[..3].to_string())
        })
        .collect();
    assert_eq!(files.len(), 300, "every quarantined file's event arrived");
    wait_for("the event spool to drain", Duration::from_secs(20), || {
        d.metric("alnrisk_event_outbox_depth", None) == 0.0
    });
    assert_eq!(std::fs::read_dir(d.state.join("events")).unwrap().count(), 0);
    assert_eq!(d.metric("alnrisk_events_dropped_total", None), 0.0);
}

#[test]
fn full_spool_raises_an_alarm_holds_the_result_and_deletes_nothing() {
    let mut broker = Mosquitto::new("spool", "");
    let sub = Subscriber::new(broker.port, "spool-sub");
    broker.stop();
    let d = Daemon::with(
        "spool",
        DaemonOpts {
            spool_max_entries: 1,
            ..DaemonOpts::external(broker.port)
        },
    );
    d.drop_exam(&exam(8), "a", ReplayStyle::Atomic);
    wait_for("result A spooled", Duration::from_secs(60), || {
        d.metric("alnrisk_outbox_depth", None) == 1.0
    });
    d.drop_exam(&exam(9), "b", ReplayStyle::Atomic);
    wait_for("the spool_full alarm", Duration::from_secs(60), || {
        d.metric("alnrisk_alarms_total", Some(("alarm", "spool_full"))) == 1.0
    });
    assert_eq!(
        std::fs::read_dir(d.state.join("spool")).unwrap().count(),
        1,
        "nothing deleted, nothing over the bound"
    );
    assert_eq!(http_get(&d.metrics, "/health/ready").unwrap().0, 503);
    assert_eq!(count_files(&d.export), count_files(&exam(8)) + count_files(&exam(9)));
    broker.start();
    let results = sub.wait("result", 2, Duration::from_secs(60));
    assert_eq!(results[0]["study_key"], key_of(&exam(8)).as_str());
    assert_eq!(results[1]["study_key"], key_of(&exam(9)).as_str());
    let events = sub.wait("event", 1, Duration::from_secs(20));
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "spool_full" && e["severity"] == "alarm"),
        "{events:?}"
    );
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tls_refuses_a_broker_signed_by_another_ca_and_connects_with_the_right_one() {
    let dir = tmp("tls-certs");
    // the real CA and the broker's certificate (localhost), and an unrelated CA
    let self_signed = |key: &str, crt: &str, subject: &str| {
        let args = [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "2",
        ];
        openssl(&[&args[..], &["-subj", subject]].concat(), &dir);
    };
    self_signed("ca.key", "ca.crt", "/CN=alnrisk test CA");
    self_signed("other.key", "other.crt", "/CN=someone else");
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        &dir,
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
        &dir,
    );
    let tls_port = free_port();
    let broker = Mosquitto::new(
        "tls",
        &format!(
            "listener {tls_port} 127.0.0.1\ncafile {d}/ca.crt\ncertfile {d}/server.crt\nkeyfile {d}/server.key\n",
            d = dir.display()
        ),
    );
    let sub = Subscriber::new(broker.port, "tls-sub");
    let tls = |ca: &str| {
        format!(
            "broker = \"external\"\nhost = \"localhost\"\nport = {tls_port}\nreconnect_ms = 300\n[mqtt.tls]\nca = \"{}\"\n",
            dir.join(ca).display()
        )
    };
    let wrong = Daemon::with("tls-wrong", DaemonOpts::mqtt(tls("other.crt")));
    assert_never_connects(&wrong);
    assert!(
        sub.of("status").iter().all(|s| s["state"] != "online"),
        "the wrong-CA daemon must not get through"
    );
    let log = wrong.log_text();
    assert!(
        log.to_lowercase().contains("certificate") || log.to_lowercase().contains("tls"),
        "{log}"
    );
    let right = Daemon::with("tls-right", DaemonOpts::mqtt(tls("ca.crt")));
    wait_for("TLS connection", Duration::from_secs(20), || {
        right.metric("alnrisk_mqtt_connected", None) == 1.0
    });
    right.drop_exam(&exam(10), "a", ReplayStyle::Atomic);
    let r = sub.wait("result", 1, Duration::from_secs(60));
    assert_eq!(r[0]["study_key"], key_of(&exam(10)).as_str());
    assert_valid(&r[0]);
}

#[test]
fn identifiers_only_with_the_phi_switch_password_login_and_sd_notify() {
    // A broker that wants a user name and password.
    let dir = tmp("passwd");
    let passwd = dir.join("passwd");
    let st = Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&passwd)
        .args(["alnrisk-box", "s3cret"])
        .status()
        .expect("mosquitto_passwd");
    assert!(st.success());
    let auth_port = free_port();
    let broker = Mosquitto::new(
        "passwd",
        &format!("listener {auth_port} 127.0.0.1\npassword_file {}\n", passwd.display()),
    );
    std::fs::write(dir.join("password"), "s3cret\n").unwrap();
    // per_listener_settings is off: anonymous access stays allowed for the test subscriber on the plain port,
    // and a wrong password is refused on both.
    let sub = Subscriber::new(broker.port, "phi-sub");
    // systemd's notification socket, as the unit's Type=notify provides it.
    let sock_path = dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let with_password = format!(
        "broker = \"external\"\nhost = \"127.0.0.1\"\nport = {auth_port}\nreconnect_ms = 300\n\
         username = \"alnrisk-box\"\npassword_file = \"{}\"\n",
        dir.join("password").display()
    );
    let d = Daemon::with(
        "phi",
        DaemonOpts {
            notify_socket: Some(sock_path.clone()),
            phi: true,
            ..DaemonOpts::mqtt(with_password.clone())
        },
    );
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).expect("READY=1 from the daemon");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    let n = sock.recv(&mut buf).expect("WATCHDOG=1 from the daemon");
    assert!(String::from_utf8_lossy(&buf[..n]).contains("WATCHDOG=1"));
    wait_for("password login", Duration::from_secs(20), || {
        d.metric("alnrisk_mqtt_connected", None) == 1.0
    });
    d.drop_exam(&exam(12), "a", ReplayStyle::Atomic);
    let r = sub.wait("result", 1, Duration::from_secs(60));
    assert_valid(&r[0]);
    assert_eq!(r[0]["identifiers"]["patient_name"], "SYNTHETIC^SYN0012");
    assert_eq!(r[0]["identifiers"]["accession_number"], "SYNACC0012");
    // a wrong password never gets in
    std::fs::write(dir.join("password"), "wrong\n").unwrap();
    let bad = Daemon::with("phi-bad", DaemonOpts::mqtt(with_password.clone()));
    assert_never_connects(&bad);
}

#[test]
fn falls_back_to_mqtt_3_1_1_when_the_broker_does_not_speak_5() {
    // rumqttd with only a 3.1.1 listener, in this test process.
    let port = free_port();
    alnrisk::daemon::broker::start_embedded_version("127.0.0.1", port, alnrisk::daemon::mqtt::Version::V311).unwrap();
    let d = Daemon::new("v311", port);
    wait_for("a 3.1.1 connection", Duration::from_secs(30), || {
        d.metric("alnrisk_mqtt_connected", None) == 1.0
    });
    d.drop_exam(&exam(13), "a", ReplayStyle::Atomic);
    // PUBACKs are counted only when the broker sends them.
    wait_for("the result acknowledged", Duration::from_secs(60), || {
        d.metric("alnrisk_messages_published_total", None) == 1.0
    });
    assert!(d.log_text().contains("V311"), "{}", d.log_text());
}

/// `patients` synthetic examinations (seed 7, 64×64×16, the fixture cohort's patients) exported `vendor`-style
/// with the ROI as `roi` (seg, rtstruct, nifti).
fn synth_export(vendor: &str, roi: &str, patients: usize) -> PathBuf {
    let dir = tmp(&format!("{vendor}-{roi}"));
    let out = bin()
        .args(["synth", "--seed", "7", "--matrix", "64", "--slices", "16", "--patients"])
        .arg(patients.to_string())
        .args(["--vendor", vendor, "--roi", roi, "--out"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    dir
}

#[test]
fn an_enhanced_mr_export_completes_at_its_last_file_not_after_the_quiet_period() {
    let dir = synth_export("enhanced", "seg", 1);
    let broker = Mosquitto::new("enhanced", "");
    let sub = Subscriber::new(broker.port, "enhanced-sub");
    let d = Daemon::new("enhanced", broker.port);
    d.drop_exam(&dir.join("SYN0001"), "e", ReplayStyle::Atomic);
    let r = sub.wait("result", 1, Duration::from_secs(30));
    assert_valid(&r[0]);
    // The frame count of the one Enhanced MR file says the series is complete: no 1.5 s quiet period is waited.
    let waited = r[0]["timing_ms"]["last_file_to_result"].as_f64().unwrap();
    assert!(waited < 1500.0, "completion waited {waited} ms");
}

#[test]
fn a_siemens_export_one_series_per_phase_is_linked_computed_once_and_matches_the_ge_export() {
    let dir = synth_export("siemens", "seg", 1);
    // the sentinel: another patient, one folder per phase too, its ROI an ITK-SNAP-style label map in `roi/`
    let (siemens, sentinel) = (dir.join("SYN0001"), synth_export("siemens", "nifti", 2).join("SYN0002"));
    assert_eq!(
        std::fs::read_dir(siemens.join("dce")).unwrap().count(),
        3,
        "one folder (series) per phase"
    );
    let broker = Mosquitto::new("siemens", "");
    let sub = Subscriber::new(broker.port, "siemens-sub");
    let mut d = Daemon::new("siemens", broker.port);
    // The rule asks for ≥ 2 temporal positions: no single-phase series passes it alone.
    d.drop_exam(&siemens, "s", ReplayStyle::Atomic);
    d.drop_exam(&exam(1), "ge", ReplayStyle::Atomic);
    let r = sub.wait("result", 2, Duration::from_secs(120));
    for x in &r {
        assert_valid(x);
    }
    let events = sub.of("event");
    assert!(
        !events.iter().any(|e| e["event"] == "series_not_selected"),
        "{events:?}"
    );
    // The same patient exported GE-style (one series, repeated positions) gives the same answer.
    assert_eq!(r[0]["study_key"], r[1]["study_key"], "the same synthetic patient");
    for s in ["if_ln_negative", "if_ln_positive"] {
        let (a, b) = (
            r[0]["scenarios"][s]["probability"].as_f64().unwrap(),
            r[1]["scenarios"][s]["probability"].as_f64().unwrap(),
        );
        assert!((a - b).abs() < 1e-9, "{s}: {a} vs {b}");
    }

    // Restart and export the Siemens study again: every member is known to the ledger, so no phase is
    // computed on its own (or rejected) — then a sentinel study shows the daemon got past those files.
    d.kill9();
    d.start();
    d.drop_exam(&siemens, "again", ReplayStyle::Atomic);
    d.drop_exam(&sentinel, "sentinel", ReplayStyle::Atomic);
    let r = sub.wait("result", 3, Duration::from_secs(120));
    assert_eq!(r.len(), 3, "{r:?}");
    assert_eq!(r[2]["study_key"], key_of(&sentinel).as_str());
    let events = sub.of("event");
    assert!(
        !events.iter().any(|e| e["event"] == "series_not_selected"),
        "{events:?}"
    );
}

#[test]
fn low_free_space_on_the_state_disk_raises_one_alarm_and_the_daemon_is_not_ready() {
    let broker = Mosquitto::new("disk", "");
    let sub = Subscriber::new(broker.port, "disk-sub");
    // No disk has a billion terabytes free: the alarm must go out.
    let d = Daemon::with(
        "disk",
        DaemonOpts {
            min_free_mb: 1 << 40,
            ..DaemonOpts::external(broker.port)
        },
    );
    let ev = sub.wait("event", 1, Duration::from_secs(20));
    let alarm = ev.iter().find(|e| e["event"] == "disk_low").expect("a disk_low event");
    assert_eq!(alarm["severity"], "alarm");
    assert!(alarm["detail"].as_str().unwrap().contains("MB free"), "{alarm}");
    assert_eq!(http_get(&d.metrics, "/health/ready").unwrap().0, 503);
    assert!(d.metric("alnrisk_state_free_bytes", None) > 0.0);
    // one alarm per episode, not one per check
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(d.metric("alnrisk_alarms_total", Some(("alarm", "disk_low"))), 1.0);
}

#[test]
fn sigterm_drains_and_marks_the_device_offline() {
    let broker = Mosquitto::new("term", "");
    let sub = Subscriber::new(broker.port, "term-sub");
    let mut d = Daemon::new("term", broker.port);
    sub.wait("status", 1, Duration::from_secs(10));
    let status = d.term();
    assert!(status.success(), "{status:?}: {}", d.log_text());
    let s = sub.wait("status", 2, Duration::from_secs(10));
    assert_eq!(s.last().unwrap()["state"], "offline");
}

#[test]
fn a_bad_configuration_stops_the_daemon_with_the_key_named() {
    let dir = tmp("badcfg");
    let cfg = dir.join("bad.toml");
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config/dev.toml"))
        .unwrap()
        .replace("poll_interval_ms = 500", "poll_interval_ms = 0");
    std::fs::write(&cfg, text).unwrap();
    let out = bin().arg("serve").arg("--config").arg(&cfg).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("watch.poll_interval_ms"), "{err}");
    // the shipped files are valid as they are (paths aside)
    for f in ["dev.toml", "alnrisk.toml"] {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config").join(f);
        let full = std::fs::read_to_string(&p).unwrap();
        // The production file's [mqtt.tls] names certificates that exist only on the appliance: check it apart.
        let text = match (full.split_once("[mqtt.tls]"), full.split_once("[phi]")) {
            (Some((before, _)), Some((_, after))) if f == "alnrisk.toml" => format!("{before}[phi]{after}"),
            _ => full.clone(),
        };
        alnrisk::daemon::config::DaemonConfig::parse(&text, &p).unwrap_or_else(|e| panic!("{f}: {e}"));
    }
}

/// A radiologist's corrected outline of the SEG `src`, exported into `dest` atomically (`.part`, then renamed): a
/// new object drawn at `content_time`, eroded by `erode` pixels.
fn revised_seg(src: &Path, dest: &Path, seed: &str, content_time: &str, erode: usize) {
    let part = dest.with_extension("part");
    alnrisk::synth::revision::write_revised_seg(src, &part, seed, content_time, erode).unwrap();
    std::fs::rename(part, dest).unwrap();
}

#[test]
fn a_revised_roi_is_computed_again_and_replaces_the_answer_once_across_a_restart() {
    let broker = Mosquitto::new("revise", "");
    let sub = Subscriber::new(broker.port, "revise-sub");
    let mut d = Daemon::new("revise", broker.port);
    let src = exam(14);
    let seg = src.join("roi/seg.dcm");
    d.drop_exam(&src, "a", ReplayStyle::Atomic);
    let first = sub.wait("result", 1, Duration::from_secs(60))[0].clone();
    assert_eq!(first["kind"], "result");
    assert!(first["roi_key"].is_string(), "{first}");
    // The console exports the same examination again (not computed again; the revision below reads one copy).
    d.drop_exam(&src, "again", ReplayStyle::Atomic);

    // The radiologist corrects the outline (drawn at 11:00; the first was drawn at 10:00) and exports it again.
    revised_seg(&seg, &d.export.join("a/roi/seg-v2.dcm"), "revise/v2", "110000", 1);
    let all = sub.wait("result", 2, Duration::from_secs(60));
    let rev = &all[1];
    assert_valid(rev);
    assert_eq!(rev["kind"], "revision");
    assert_eq!(rev["updates"], first["message_id"]);
    assert_ne!(rev["message_id"], first["message_id"]);
    let secret = hex::decode(SECRET_HEX).unwrap();
    let sop = |f: &Path| alnrisk::roi::references(f).unwrap().sop_instance_uid.unwrap();
    let v2_sop = sop(&d.export.join("a/roi/seg-v2.dcm"));
    assert_eq!(rev["roi_key"], StudyKey::of_roi(&secret, &v2_sop).as_str());
    let original_sop = sop(&seg);
    assert_eq!(first["roi_key"], StudyKey::of_roi(&secret, &original_sop).as_str());
    for k in ["study_key", "series_key", "bundle"] {
        assert_eq!(rev[k], first[k], "{k}");
    }
    assert_ne!(rev["signatures"], first["signatures"], "computed from the new outline");
    assert_eq!(
        d.metric("alnrisk_series_processed_total", Some(("outcome", "revised"))),
        1.0
    );
    assert!(
        sub.of("event")
            .iter()
            .any(|e| e["event"] == "roi_revised" && e["study_key"] == first["study_key"]),
        "{}",
        sub.everything()
    );

    // A copy of an older outline (drawn at 09:00) exported late is reported, not applied.
    revised_seg(&seg, &d.export.join("a/roi/seg-v0.dcm"), "revise/v0", "090000", 0);
    wait_for("roi_not_applied", Duration::from_secs(20), || {
        sub.of("event").iter().any(|e| e["event"] == "roi_not_applied")
    });

    // The LN read updates the revised answer, not the first one.
    let key = first["study_key"].as_str().unwrap().to_string();
    sub.publish(
        "alnrisk/v1/test-site/revise/cmd/ln-status",
        &format!(r#"{{"study_key":"{key}","mri_ln_status":"positive"}}"#),
    );
    let all = sub.wait("result", 3, Duration::from_secs(20));
    let update = &all[2];
    assert_valid(update);
    assert_eq!(update["kind"], "update");
    assert_eq!(update["updates"], first["message_id"]);
    assert_eq!(update["roi_key"], rev["roi_key"]);
    assert_eq!(update["signatures"], rev["signatures"]);
    assert_eq!(
        update["risk"]["probability"],
        rev["scenarios"]["if_ln_positive"]["probability"]
    );
    // The read is corrected, then corrected back: every message has an id of its own (a dashboard that drops ids
    // it has seen must not drop the last one).
    for read in ["negative", "positive"] {
        sub.publish(
            "alnrisk/v1/test-site/revise/cmd/ln-status",
            &format!(r#"{{"study_key":"{key}","mri_ln_status":"{read}"}}"#),
        );
    }
    let all = sub.wait("result", 5, Duration::from_secs(20));
    let mut ids: Vec<&str> = all.iter().map(|m| m["message_id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 5, "{}", sub.everything());
    assert_eq!(
        (&all[3]["mri_ln_status"], &all[4]["mri_ln_status"]),
        (&"negative".into(), &"positive".into())
    );
    assert_eq!(all[4]["risk"], update["risk"]);

    // After a restart the folder holds three outlines of one series: nothing is computed or published again.
    d.kill9();
    d.start();
    wait_for("the restarted daemon's scan", Duration::from_secs(20), || {
        d.metric("alnrisk_files_seen_total", None) >= count_files(&d.export) as f64
    });
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(sub.of("result").len(), 5, "{}", sub.everything());
    assert_eq!(
        sub.of("event").iter().filter(|e| e["event"] == "roi_revised").count(),
        1
    );
    assert_eq!(d.metric("alnrisk_series_processed_total", None), 0.0);
    assert!(
        quarantine_notes(&d.state).is_empty(),
        "{:?}",
        quarantine_notes(&d.state)
    );
}

#[test]
fn files_older_than_max_age_are_counted_and_reported_not_computed_and_new_ones_are() {
    let broker = Mosquitto::new("old", "");
    let sub = Subscriber::new(broker.port, "old-sub");
    let d = Daemon::with(
        "old",
        DaemonOpts {
            max_age_h: 1.0,
            ..DaemonOpts::external(broker.port)
        },
    );
    sub.wait("status", 1, Duration::from_secs(10));
    // An examination exported two hours ago, already in the folder (as at a first start beside a full folder).
    let staging = tmp("old-staging").join("exam");
    replay(&exam(15), &staging, Duration::ZERO, ReplayStyle::Atomic).unwrap();
    let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 3600);
    let files = alnrisk::ingest::list_files(&staging).unwrap();
    for f in &files {
        std::fs::File::options()
            .write(true)
            .open(f)
            .and_then(|f| f.set_modified(two_hours_ago))
            .unwrap();
    }
    std::fs::rename(&staging, d.export.join("old")).unwrap();
    let ev = sub.wait("event", 1, Duration::from_secs(20));
    let skipped: Vec<_> = ev.iter().filter(|e| e["event"] == "too_old_skipped").collect();
    assert_eq!(skipped.len(), 1, "{}", sub.everything());
    let detail = skipped[0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(&format!(
            "{} image file(s) (1 series not reported before) and 1 ROI object(s)",
            files.len() - 1
        )),
        "{detail}"
    );
    assert_eq!(
        d.metric("alnrisk_series_processed_total", Some(("outcome", "too_old"))),
        1.0
    );
    // A fresh examination is computed as ever; the old one never is, and its files stay where they are.
    d.drop_exam(&exam(16), "new", ReplayStyle::Atomic);
    let r = sub.wait("result", 1, Duration::from_secs(60));
    assert_eq!(r[0]["study_key"], key_of(&exam(16)).as_str());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(sub.of("result").len(), 1);
    assert_eq!(count_files(&d.export.join("old")), files.len());
    assert!(
        sub.of("event")
            .iter()
            .all(|e| e["event"] != "roi_without_series" && e["event"] != "waiting_for_roi"),
        "{}",
        sub.everything()
    );
}

#[test]
fn quarantine_days_past_the_retention_are_deleted_reported_and_counted() {
    let broker = Mosquitto::new("retention", "");
    let sub = Subscriber::new(broker.port, "retention-sub");
    let mut d = Daemon::with(
        "retention",
        DaemonOpts {
            quarantine_keep_days: 30,
            ..DaemonOpts::external(broker.port)
        },
    );
    sub.wait("status", 1, Duration::from_secs(10));
    // What earlier runs quarantined: a day long past the retention, a recent day, and a folder that is no date.
    d.kill9();
    let q = d.state.join("quarantine");
    let today = alnrisk::time::utc_now()[..10].to_string();
    let recent = alnrisk::time::civil_date(alnrisk::time::days_from_civil(&today).unwrap() - 30);
    for (day, files) in [
        ("2020-01-01", 3),
        (recent.as_str(), 1),
        (today.as_str(), 1),
        ("kept-by-hand", 1),
    ] {
        for k in 0..files {
            std::fs::create_dir_all(q.join(day)).unwrap();
            std::fs::write(q.join(day).join(format!("bad{k}.dcm")), [7u8; 1000]).unwrap();
            std::fs::write(q.join(day).join(format!("bad{k}.dcm.reason.json")), b"{}").unwrap();
        }
    }
    d.start();
    let purge_events = || -> Vec<serde_json::Value> {
        sub.of("event")
            .into_iter()
            .filter(|e| e["event"] == "quarantine_purged")
            .collect()
    };
    wait_for("the purge event", Duration::from_secs(20), || {
        !purge_events().is_empty()
    });
    let purged = purge_events();
    assert_eq!(purged.len(), 1, "{}", sub.everything());
    assert!(
        purged[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("deleted the 3 file(s) (3006 bytes) quarantined on 2020-01-01"),
        "{}",
        purged[0]
    );
    assert!(!q.join("2020-01-01").exists());
    for kept in [recent.as_str(), today.as_str(), "kept-by-hand"] {
        assert!(q.join(kept).join("bad0.dcm").exists(), "{kept} was deleted");
    }
    assert_eq!(d.metric("alnrisk_quarantine_purged_files_total", None), 3.0);
    assert_eq!(d.metric("alnrisk_quarantine_files", None), 3.0);
    assert_eq!(d.metric("alnrisk_quarantine_bytes", None), 3.0 * 1002.0);
    // a new bad file raises the gauges at once
    std::fs::write(d.export.join("not-dicom.dcm"), b"hello").unwrap();
    wait_for("the bad file quarantined", Duration::from_secs(20), || {
        d.metric("alnrisk_quarantine_files", None) == 4.0
    });
    assert!(d.metric("alnrisk_quarantine_bytes", None) > 3.0 * 1002.0 + 5.0);
    assert_eq!(count_files(&q.join(&today)), 4, "two inputs and their notes");
}

#[test]
fn a_new_label_map_beside_an_answered_series_is_a_revision() {
    let broker = Mosquitto::new("relabel", "");
    let sub = Subscriber::new(broker.port, "relabel-sub");
    let mut d = Daemon::new("relabel", broker.port);
    let src = synth_export("ge", "nifti", 1).join("SYN0001");
    d.drop_exam(&src, "x", ReplayStyle::Atomic);
    let first = sub.wait("result", 1, Duration::from_secs(60))[0].clone();

    // The outline redrawn one voxel tighter and saved beside the first label map (a research workstation's way).
    let label = alnrisk::io::nifti::read(&src.join("roi/tumour.nii.gz")).unwrap();
    let inside: Vec<bool> = label.data.iter().map(|&v| v > 0.0).collect();
    let tighter = alnrisk::synth::phantom::jitter(&inside, label.geometry.size, -1);
    assert!(tighter.iter().any(|&b| b) && tighter != inside);
    let revised = alnrisk::image::Volume {
        data: tighter.iter().map(|&b| f64::from(u8::from(b))).collect(),
        ..label
    };
    let dest = d.export.join("x/roi/tumour-v2.nii.gz");
    let part = d.export.join("x/roi/tumour-v2.part");
    alnrisk::io::nifti::write(&part, &revised).unwrap();
    std::fs::rename(&part, &dest).unwrap();

    let all = sub.wait("result", 2, Duration::from_secs(60));
    let rev = &all[1];
    assert_valid(rev);
    assert_eq!(rev["kind"], "revision");
    assert_eq!(rev["updates"], first["message_id"]);
    use sha2::Digest;
    let digest = hex::encode(sha2::Sha256::digest(std::fs::read(&dest).unwrap()));
    let secret = hex::decode(SECRET_HEX).unwrap();
    assert_eq!(
        rev["roi_key"],
        StudyKey::of_roi(&secret, &format!("sha256:{digest}")).as_str()
    );
    assert_ne!(rev["signatures"], first["signatures"]);

    // After a restart both label maps are known: nothing is computed again, nothing is reported as unmatched.
    d.kill9();
    d.start();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(sub.of("result").len(), 2, "{}", sub.everything());
    assert!(
        sub.of("event").iter().all(|e| e["event"] != "roi_without_series"),
        "{}",
        sub.everything()
    );

    // A third outline after the restart still finds its series, through the ledger's folder keys.
    let tightest = alnrisk::synth::phantom::jitter(&tighter, revised.geometry.size, -1);
    assert!(tightest.iter().any(|&b| b));
    let third = alnrisk::image::Volume {
        data: tightest.iter().map(|&b| f64::from(u8::from(b))).collect(),
        ..revised
    };
    alnrisk::io::nifti::write(&part, &third).unwrap();
    std::fs::rename(&part, d.export.join("x/roi/tumour-v3.nii.gz")).unwrap();
    let all = sub.wait("result", 3, Duration::from_secs(60));
    assert_eq!(
        (all[2]["kind"].as_str(), &all[2]["updates"]),
        (Some("revision"), &first["message_id"])
    );
}
