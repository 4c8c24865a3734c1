//! The serve tests' shared parts: the fitted bundle (once per run), the examinations, the subscriber on `alnrisk/#`,
//! and the daemon under test with its configuration.

#![allow(dead_code)]

pub use std::io::Read;
pub use std::path::{Path, PathBuf};
pub use std::process::{Child, Command, Stdio};
pub use std::sync::OnceLock;
pub use std::time::Duration;

pub use crate::common::{Mosquitto, bin, free_port, http_get, tmp as tmp_in, wait_for};
pub use alnrisk::daemon::listen::Listener;
pub use alnrisk::daemon::payload::StudyKey;
pub use alnrisk::synth::replay::{ReplayStyle, replay};

pub const SECRET_HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

pub struct Fixture {
    pub cohort: PathBuf,
    pub bundle: PathBuf,
    pub public_key: PathBuf,
}

/// Synthetic cohort + signed bundle, made once for every test of this file.
pub fn fixture() -> &'static Fixture {
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

pub fn exam(n: usize) -> PathBuf {
    fixture().cohort.join(format!("SYN{n:04}"))
}

pub fn ucsf() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tcia-breast-mri-nact-pilot/UCSF-BR-06")
}

/// StudyInstanceUID of the first DICOM image below `dir`.
pub fn study_uid(dir: &Path) -> String {
    let files = alnrisk::ingest::list_files(dir).unwrap();
    let f = files.iter().find(|f| !f.to_string_lossy().contains("seg")).unwrap();
    alnrisk::ingest::header::read_instance(f).unwrap().study_uid
}

pub fn key_of(dir: &Path) -> String {
    StudyKey::of(&hex::decode(SECRET_HEX).unwrap(), &study_uid(dir))
        .as_str()
        .to_string()
}

// ---------------------------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------------------------
// subscriber

/// Everything published under `alnrisk/#`, collected by a persistent-session MQTT 5 client (it keeps its
/// subscription and queued messages across a broker restart).
pub struct Subscriber(pub Listener);

impl Subscriber {
    pub fn new(port: u16, id: &str) -> Subscriber {
        let o = alnrisk::daemon::listen::persistent_session(id, "127.0.0.1", port);
        Subscriber(Listener::connect(o, "alnrisk/#").expect("subscriber connected"))
    }

    /// The messages of `kind` (`result`, `status`, `event`) so far, each checked against its schema: every test
    /// that reads a message validates it.
    pub fn of(&self, kind: &str) -> Vec<serde_json::Value> {
        let messages = self.0.of(kind);
        for m in &messages {
            assert_valid_as(kind, m);
        }
        messages
    }

    pub fn everything(&self) -> String {
        format!("{:?}", self.0.inbox.lock().unwrap())
    }

    pub fn wait(&self, kind: &str, n: usize, timeout: Duration) -> Vec<serde_json::Value> {
        wait_for(&format!("{n} {kind} message(s)"), timeout, || self.of(kind).len() >= n);
        self.of(kind)
    }

    pub fn publish(&self, topic: &str, body: &str) {
        self.0.publish(topic, body).unwrap();
    }
}

/// At the end of a test that passed, every message the daemon sent (result, status, event) that the subscriber
/// saw, read or not, is checked against its schema.
impl Drop for Subscriber {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        for r in self.0.inbox.lock().unwrap().iter() {
            let kind = kind_of_topic(&r.topic);
            if ["result", "status", "event"].contains(&kind) {
                assert_valid_as(kind, &r.body);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// the daemon

pub struct Daemon {
    pub notify_socket: Option<PathBuf>,
    pub config: PathBuf,
    pub log: PathBuf,
    pub metrics: String,
    pub export: PathBuf,
    pub state: PathBuf,
    pub child: Option<Child>,
    /// `ALNRISK_FAULT_INJECTION` for the daemon (developer builds only).
    pub fault_injection: Option<String>,
    /// [`DaemonOpts::command`].
    pub command: Option<Vec<std::ffi::OsString>>,
}

pub struct DaemonOpts<'a> {
    pub mqtt: String,
    pub spool_max_entries: usize,
    pub extra: &'a str,
    /// state.min_free_mb (1 by default here: the tests are not about the build machine's free space).
    pub min_free_mb: u64,
    /// systemd's NOTIFY_SOCKET for the daemon.
    pub notify_socket: Option<PathBuf>,
    /// phi.include_identifiers.
    pub phi: bool,
    /// watch.max_age_h (0: no limit).
    pub max_age_h: f64,
    /// state.quarantine_keep_days (0: keep).
    pub quarantine_keep_days: u32,
    /// `ALNRISK_FAULT_INJECTION` (`panic:N`, `device:N`: the first N computes fail so).
    pub fault_injection: Option<String>,
    /// state.dir (default: `state/` in the daemon's folder).
    pub state_dir: Option<PathBuf>,
    /// state.pending_ln_reads_max (the daemon's default when `None`).
    pub pending_ln_reads_max: Option<usize>,
    /// The program (and its first arguments) that runs `serve` instead of this build's binary: the aarch64
    /// appliance under qemu-user, for example.
    pub command: Option<Vec<std::ffi::OsString>>,
    /// model.bundle (default: the fixture's), signed with the fixture's key.
    pub bundle: Option<PathBuf>,
}

impl<'a> DaemonOpts<'a> {
    /// Defaults with this `[mqtt]` table body.
    pub fn mqtt(mqtt: String) -> DaemonOpts<'a> {
        DaemonOpts {
            mqtt,
            spool_max_entries: 100,
            extra: "",
            min_free_mb: 1,
            notify_socket: None,
            phi: false,
            max_age_h: 0.0,
            quarantine_keep_days: 0,
            fault_injection: None,
            state_dir: None,
            pending_ln_reads_max: None,
            command: None,
            bundle: None,
        }
    }

    /// Defaults with the plain broker on loopback `port`.
    pub fn external(port: u16) -> DaemonOpts<'a> {
        Self::mqtt(format!(
            "broker = \"external\"\nhost = \"127.0.0.1\"\nport = {port}\nreconnect_ms = 300\n"
        ))
    }
}

/// The daemon keeps failing to connect (counted) and never gets online.
pub fn assert_never_connects(d: &Daemon) {
    wait_for("refused connection attempts", Duration::from_secs(20), || {
        d.metric("alnrisk_mqtt_connect_failures_total", None) >= 2.0
    });
    assert_eq!(d.metric("alnrisk_mqtt_connected", None), 0.0);
}

impl Daemon {
    pub fn new(name: &str, mqtt_port: u16) -> Daemon {
        Self::with(name, DaemonOpts::external(mqtt_port))
    }

    pub fn with(name: &str, o: DaemonOpts) -> Daemon {
        let f = fixture();
        let dir = tmp(&format!("daemon-{name}"));
        let export = dir.join("export");
        std::fs::create_dir_all(&export).unwrap();
        std::fs::write(dir.join("secret"), SECRET_HEX).unwrap();
        let metrics = format!("127.0.0.1:{}", free_port());
        let config = dir.join("alnrisk.toml");
        let state = o.state_dir.clone().unwrap_or_else(|| dir.join("state"));
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
{pending}drain_s = 5.0
[metrics]
listen = "{metrics}"
{extra}
"#,
                export = export.display(),
                bundle = o.bundle.as_deref().unwrap_or(&f.bundle).display(),
                key = f.public_key.display(),
                mqtt = o.mqtt,
                secret = dir.join("secret").display(),
                state = state.display(),
                spool = o.spool_max_entries,
                min_free_mb = o.min_free_mb,
                metrics = metrics,
                extra = o.extra,
                phi = o.phi,
                max_age_h = o.max_age_h,
                keep = o.quarantine_keep_days,
                pending = o
                    .pending_ln_reads_max
                    .map_or(String::new(), |n| format!("pending_ln_reads_max = {n}\n")),
            ),
        )
        .unwrap();
        let mut d = Daemon {
            notify_socket: o.notify_socket,
            config,
            log: dir.join("daemon.log"),
            metrics,
            export,
            state,
            child: None,
            fault_injection: o.fault_injection,
            command: o.command,
        };
        d.start();
        d
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = match self.command.as_deref() {
            Some([program, args @ ..]) => {
                let mut c = Command::new(program);
                c.args(args);
                c
            }
            _ => bin(),
        };
        if let Some(sock) = &self.notify_socket {
            cmd.env("NOTIFY_SOCKET", sock);
        }
        if let Some(f) = &self.fault_injection {
            cmd.env("ALNRISK_FAULT_INJECTION", f);
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
        // an emulated daemon (another architecture under qemu-user) starts many times slower
        let start_limit = Duration::from_secs(if self.command.is_some() { 300 } else { 30 });
        wait_for("the daemon's /health/live", start_limit, || {
            http_get(&m, "/health/live").is_some_and(|(code, _)| code == 200)
        });
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn term(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().unwrap();
        let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
        c.wait().unwrap()
    }

    pub fn metrics(&self) -> prometheus_parse::Scrape {
        let (code, body) = http_get(&self.metrics, "/metrics").expect("metrics endpoint");
        assert_eq!(code, 200);
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
    }

    pub fn metric(&self, name: &str, label: Option<(&str, &str)>) -> f64 {
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

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn drop_exam(&self, from: &Path, name: &str, style: ReplayStyle) {
        replay(from, &self.export.join(name), Duration::from_millis(2), style).unwrap();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The JSON Schema of a message kind (`result`, `status`, `event`, `ln-status`) from `firmware-config/schema/`,
/// compiled once.
pub fn schema(kind: &str) -> &'static jsonschema::Validator {
    static SCHEMAS: OnceLock<std::collections::BTreeMap<&'static str, jsonschema::Validator>> = OnceLock::new();
    let all = SCHEMAS.get_or_init(|| {
        ["result", "status", "event", "ln-status"]
            .into_iter()
            .map(|k| {
                let p =
                    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("firmware-config/schema/{k}-v1.schema.json"));
                let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
                (k, jsonschema::validator_for(&v).unwrap())
            })
            .collect()
    });
    &all[kind]
}

/// The message kind of a topic `alnrisk/v1/{site}/{device}/{kind}` (`cmd/ln-status` → `ln-status`).
pub fn kind_of_topic(topic: &str) -> &str {
    topic.rsplit('/').next().unwrap_or(topic)
}

/// `v` is valid by the schema of its `kind`.
pub fn assert_valid_as(kind: &str, v: &serde_json::Value) {
    let errors: Vec<String> = schema(kind).iter_errors(v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{kind} schema errors {errors:?} in {v}");
}

/// A result message is valid by `result-v1.schema.json`.
pub fn assert_valid(v: &serde_json::Value) {
    assert_valid_as("result", v);
}

/// Every message `l` received is valid by the schema of its topic's kind.
pub fn assert_all_valid(l: &Listener) {
    for r in l.inbox.lock().unwrap().iter() {
        assert_valid_as(kind_of_topic(&r.topic), &r.body);
    }
}

pub fn count_files(dir: &Path) -> usize {
    alnrisk::ingest::list_files(dir).map(|f| f.len()).unwrap_or(0)
}

pub fn quarantine_notes(state: &Path) -> Vec<serde_json::Value> {
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

/// A fresh temporary folder of this suite.
pub fn tmp(name: &str) -> PathBuf {
    tmp_in("serve", name)
}

/// `patients` synthetic examinations (seed 7, 64×64×16, the fixture cohort's patients) exported `vendor`-style
/// with the ROI as `roi` (seg, rtstruct, nifti).
pub fn synth_export(vendor: &str, roi: &str, patients: usize) -> PathBuf {
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
