//! The daemon's configuration (`firmware-config/*.toml`): one typed struct per TOML table, every key documented
//! in the shipped files, unknown keys refused, and [`DaemonConfig::load`] validating what serde cannot (paths,
//! regexes, bounds) with an error that names the key ([`Error::Config`]).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Who this box is (topic levels).
    pub site: SiteConfig,
    /// The console's export folder.
    pub watch: WatchConfig,
    /// Series completion and ROI matching.
    #[serde(default)]
    pub assemble: AssembleConfig,
    /// Which series are breast DCE (any rule matching selects the series). Empty: every MR series.
    #[serde(default)]
    pub select: Vec<SelectionRule>,
    /// The model bundle.
    pub model: ModelConfig,
    /// The MQTT broker.
    pub mqtt: MqttConfig,
    /// Protected health information.
    #[serde(default)]
    pub phi: PhiConfig,
    /// Spool, ledger and quarantine.
    pub state: StateConfig,
    /// Prometheus metrics and health checks.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The technologist's console page (off when the table is absent).
    #[serde(default)]
    pub console: Option<ConsoleConfig>,
    /// Structured Reports sent to PACS by C-STORE (off when the table is absent).
    #[serde(default)]
    pub dicom_out: Option<DicomOutConfig>,
    /// Images received over the DICOM network, a C-STORE SCP (off when the table is absent).
    #[serde(default)]
    pub dicom_in: Option<DicomInConfig>,
}

/// `[site]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    /// Site name: one MQTT topic level (`[A-Za-z0-9_-]+`).
    pub site: String,
    /// Device name: one MQTT topic level.
    pub device: String,
}

/// `[watch]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    /// The export folder.
    pub export_dir: PathBuf,
    /// `true` for network shares (SMB/NFS) where inotify sees nothing: poll only.
    #[serde(default)]
    pub poll_only: bool,
    /// Rescan interval (ms); also the polling period. inotify events trigger a scan sooner.
    #[serde(default = "default_poll_ms")]
    pub poll_interval_ms: u64,
    /// A file counts once its size and mtime have not changed for this long (ms), or once renamed into place.
    #[serde(default = "default_stable_ms")]
    pub stable_ms: u64,
    /// Image and ROI files last modified longer ago than this (hours) when the daemon first reads them are not
    /// computed; they are counted and reported (`too_old_skipped`). Bounds the backlog when the daemon starts
    /// beside, or serves a new bundle on, an export folder that keeps months of examinations. 0: no limit.
    #[serde(default)]
    pub max_age_h: f64,
}

/// `[assemble]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssembleConfig {
    /// A series without a known instance count is complete after this long with no new instance (s).
    pub quiet_period_s: f64,
    /// A selected series that has waited this long for its ROI gets a `waiting_for_roi` event, and a ROI that no
    /// series has matched for this long a `roi_without_series` event (s).
    pub roi_wait_s: f64,
}

impl Default for AssembleConfig {
    fn default() -> Self {
        AssembleConfig {
            quiet_period_s: 30.0,
            roi_wait_s: 600.0,
        }
    }
}

/// A `description_regex`, compiled as it is read: a configuration with an invalid one is refused, naming it.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct DescriptionRegex(pub regex::Regex);

impl TryFrom<String> for DescriptionRegex {
    type Error = regex::Error;
    fn try_from(text: String) -> std::result::Result<Self, regex::Error> {
        regex::Regex::new(&text).map(DescriptionRegex)
    }
}

impl DescriptionRegex {
    /// Whether `description` matches.
    pub fn is_match(&self, description: &str) -> bool {
        self.0.is_match(description)
    }
}

/// Deserialize a value by its `FromStr` (the device and trunk choices, whose parsers name the valid values).
fn parsed<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr<Err = String>,
{
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

fn parsed_opt<'de, D, T>(d: D) -> std::result::Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr<Err = String>,
{
    parsed(d).map(Some)
}

/// One `[[select]]` rule; every given field must match.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionRule {
    /// Rule name (in logs and events).
    pub name: String,
    /// Modality (exact, e.g. `MR`).
    pub modality: Option<String>,
    /// Regex that SeriesDescription must match (compiled when the configuration is read).
    pub description_regex: Option<DescriptionRegex>,
    /// Values ImageType must contain (e.g. `ORIGINAL`).
    #[serde(default)]
    pub image_type_contains: Vec<String>,
    /// Minimum number of dynamic phases (NumberOfTemporalPositions, or the phases found).
    pub min_temporal_positions: Option<i64>,
}

/// `[model]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Bundle folder (`bundle.json`, weights, `bundle.sig`).
    pub bundle: PathBuf,
    /// The signer's public key (`alnrisk keygen`). Required unless `allow_unsigned`.
    pub public_key: Option<PathBuf>,
    /// Accept an unsigned bundle (development only; every start says so).
    #[serde(default)]
    pub allow_unsigned: bool,
    /// `auto` (CUDA when built with it and a GPU answers, else CPU), `cpu`, `cuda` or `cuda:N`.
    #[serde(default, deserialize_with = "parsed")]
    pub device: crate::deep::DeviceChoice,
    /// On CUDA, the trunk's convolution path: `candle`, `nhwc`, `cudnn` or `cudnn-fused` (README "GPU"); absent:
    /// `ALNRISK_CUDA_TRUNK`, else `candle`. Ignored on the CPU.
    #[serde(default, deserialize_with = "parsed_opt")]
    pub cuda_trunk: Option<crate::deep::CudaTrunkKind>,
}

/// Which broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerKind {
    /// rumqttd inside the daemon, on `host:port` (development and the demo).
    Embedded,
    /// An external broker (mosquitto).
    External,
}

/// MQTT protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Protocol {
    /// MQTT 5 where the broker supports it, else 3.1.1 (the version that connected is kept).
    #[serde(rename = "auto")]
    Auto,
    /// MQTT 5 only.
    #[serde(rename = "5")]
    V5,
    /// MQTT 3.1.1 only.
    #[serde(rename = "3.1.1")]
    V311,
}

/// `[mqtt]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `embedded` or `external`.
    pub broker: BrokerKind,
    /// Broker host.
    #[serde(default = "default_host")]
    pub host: String,
    /// Broker port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// `"auto"` (default: MQTT 5, falling back to 3.1.1), `"5"` or `"3.1.1"`.
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    /// Client id (default `alnrisk-{site}-{device}`).
    pub client_id: Option<String>,
    /// User name.
    pub username: Option<String>,
    /// File holding the password (kept out of this file).
    pub password_file: Option<PathBuf>,
    /// Keep-alive (s).
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u64,
    /// Delay between reconnection attempts (ms).
    #[serde(default = "default_reconnect_ms")]
    pub reconnect_ms: u64,
    /// TLS; absent means plain TCP (loopback or embedded only).
    pub tls: Option<TlsConfig>,
}

/// `[mqtt.tls]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA certificate(s) that must sign the broker's certificate (PEM).
    pub ca: PathBuf,
    /// Client certificate (PEM), for brokers that require one.
    pub cert: Option<PathBuf>,
    /// Client private key (PEM, PKCS#8 or RSA).
    pub key: Option<PathBuf>,
}

impl TlsConfig {
    /// The files exist, and a client certificate comes with its key: `Err((key, reason))` names the key below
    /// `table` (`mqtt.tls`, `dicom_out.tls`).
    fn check(&self, table: &str) -> std::result::Result<(), (String, String)> {
        for (name, p) in [
            ("ca", Some(&self.ca)),
            ("cert", self.cert.as_ref()),
            ("key", self.key.as_ref()),
        ] {
            if let Some(p) = p
                && !p.is_file()
            {
                return Err((
                    format!("{table}.{name}"),
                    format!("{} is not a readable file", p.display()),
                ));
            }
        }
        if self.cert.is_some() != self.key.is_some() {
            return Err((
                format!("{table}.key"),
                "a client certificate needs its key and a key its certificate".into(),
            ));
        }
        Ok(())
    }
}

/// `[phi]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhiConfig {
    /// Put AccessionNumber and PatientName in result messages. Off unless a site decides otherwise.
    #[serde(default)]
    pub include_identifiers: bool,
    /// File holding the per-site secret of the study key (HMAC-SHA256 of StudyInstanceUID). Created with a
    /// random secret when missing.
    pub study_key_secret_file: Option<PathBuf>,
}

/// `[state]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Folder for `spool/`, `quarantine/`, `ledger.jsonl`, `ln-reads/` (the only writable paths).
    pub dir: PathBuf,
    /// Spool bound: total bytes.
    #[serde(default = "default_spool_bytes")]
    pub spool_max_bytes: u64,
    /// Spool bound: number of entries.
    #[serde(default = "default_spool_entries")]
    pub spool_max_entries: usize,
    /// Spool bound: an entry older than this raises an alarm (hours). Nothing is deleted.
    #[serde(default = "default_spool_age")]
    pub spool_max_age_h: f64,
    /// Events (quarantined files, alarms, …) waiting for the broker, spooled under `events/`: at most this many
    /// (4 KiB each at most); beyond it an event is only logged and counted (`alnrisk_events_dropped_total`).
    #[serde(default = "default_event_spool_entries")]
    pub event_spool_max_entries: usize,
    /// LN reads kept for studies not computed yet (in memory and in `ln-reads-pending.jsonl`, which is rewritten
    /// before it passes twice this): the oldest are forgotten first, so a flood of reads for unknown studies (or
    /// keys of another site) cannot grow the process or the disk.
    #[serde(default = "default_pending_ln_reads_max")]
    pub pending_ln_reads_max: usize,
    /// Free space on the state folder's file system below which a `disk_low` alarm goes out and
    /// `/health/ready` answers 503 (MB). The spool cannot take results on a full disk.
    #[serde(default = "default_min_free_mb")]
    pub min_free_mb: u64,
    /// Quarantined files are deleted, a day folder at a time, once older than this many days (each deletion
    /// reported); 0 keeps them for ever.
    #[serde(default)]
    pub quarantine_keep_days: u32,
    /// A series last answered more than this many days ago keeps only its keys in the ledger (still refused as
    /// a duplicate; no LN update or revision any more): compacted at start and daily. 0 keeps every answer.
    #[serde(default = "default_ledger_keep_days")]
    pub ledger_keep_days: u32,
    /// Compute workers (series processed at once).
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Seconds SIGTERM waits for in-flight work and the outbox before exiting.
    #[serde(default = "default_drain")]
    pub drain_s: f64,
}

/// `[metrics]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of `/metrics` and `/health/*`; loopback by default. Empty string: off.
    #[serde(default = "default_metrics")]
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: default_metrics(),
        }
    }
}

/// `[console]`: the page `alnrisk serve` shows on the console's screen ([`crate::daemon::console`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Address of the page, e.g. `"0.0.0.0:8443"` (the console's network) or `"127.0.0.1:8443"`.
    pub listen: String,
    /// Who may log in: `user:$argon2id$…` lines, written by `alnrisk console-user`. The page always asks.
    pub password_file: PathBuf,
    /// Serve over HTTPS with the site's certificate (absent: plain HTTP, for a page on loopback only).
    #[serde(default)]
    pub tls: Option<ServerTlsConfig>,
    /// Show PatientName, PatientID and AccessionNumber on the page (the technologist's own screen). Never on MQTT.
    #[serde(default)]
    pub show_identifiers: bool,
    /// Hours a login lasts.
    #[serde(default = "default_session_h")]
    pub session_h: f64,
}

/// `[console.tls]`: the server certificate of a page alnrisk serves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// Certificate chain (PEM), the server's first.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

/// `[dicom_out]`: where each answer's Structured Report is sent ([`super::pacs`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DicomOutConfig {
    /// The PACS's host name or address.
    pub host: String,
    /// Its DICOM port (104, 11112, …).
    pub port: u16,
    /// The PACS's AE title (called AE).
    pub called_ae: String,
    /// This box's AE title (calling AE), as the PACS administrator registered it.
    pub calling_ae: String,
    /// DICOM TLS (PS3.15 B.1); absent means plain TCP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// First delay before a failed send is tried again (s); it doubles up to `retry_max_s`.
    #[serde(default = "default_retry_min_s")]
    pub retry_min_s: f64,
    /// Longest delay between tries (s).
    #[serde(default = "default_retry_max_s")]
    pub retry_max_s: f64,
    /// Reports kept waiting for the PACS at most (a full spool holds results in memory, with an alarm).
    #[serde(default = "default_spool_entries")]
    pub spool_max_entries: usize,
}

/// `[dicom_in]`: the C-STORE SCP that takes examinations sent from the console ([`super::pacs`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DicomInConfig {
    /// Address to listen on, e.g. `"0.0.0.0:11112"`.
    pub listen: String,
    /// This box's AE title: an association that calls another is refused.
    pub ae_title: String,
    /// Calling AE titles allowed to send (the console, the PACS); any other is refused at association.
    pub allowed_calling_ae: Vec<String>,
    /// Folder below `watch.export_dir` where received instances are written for the ordinary intake.
    #[serde(default = "default_dicom_in_folder")]
    pub folder: String,
    /// Associations served at once; more wait in the listen queue.
    #[serde(default = "default_dicom_in_associations")]
    pub max_associations: usize,
}

fn default_retry_min_s() -> f64 {
    5.0
}
fn default_retry_max_s() -> f64 {
    300.0
}
fn default_dicom_in_folder() -> String {
    "dicom-in".into()
}
fn default_dicom_in_associations() -> usize {
    4
}

/// Whether `ae` is a valid AE title: 1–16 characters of the default repertoire, no backslash or control
/// character, not only spaces (PS3.5 6.2).
pub fn ae_title_ok(ae: &str) -> bool {
    let t = ae.trim();
    !t.is_empty() && ae.len() <= 16 && ae.chars().all(|c| c.is_ascii() && !c.is_ascii_control() && c != '\\')
}

fn default_session_h() -> f64 {
    12.0
}

fn default_ledger_keep_days() -> u32 {
    365
}
fn default_poll_ms() -> u64 {
    1000
}
fn default_stable_ms() -> u64 {
    2000
}
/// The dotted key of the value at byte `at` of TOML `text` (`select[0].description_regex`, `model.device`): the
/// table header above it (an array of tables counted from 0) and the key on its line. `None` when the line holds
/// no `key = value`.
fn key_at(text: &str, at: usize) -> Option<String> {
    let before = text.get(..at)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = &text[line_start..];
    let line = line.lines().next().unwrap_or_default();
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    let mut table = String::new();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for l in before[..line_start].lines().map(str::trim) {
        if let Some(name) = l.strip_prefix("[[").and_then(|r| r.strip_suffix("]]")) {
            let n = counts.entry(name.to_string()).and_modify(|c| *c += 1).or_insert(0);
            table = format!("{name}[{n}]");
        } else if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            table = name.to_string();
        }
    }
    Some(if table.is_empty() {
        key.to_string()
    } else {
        format!("{table}.{key}")
    })
}
fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    1883
}
fn default_protocol() -> Protocol {
    Protocol::Auto
}
fn default_keep_alive() -> u64 {
    30
}
fn default_reconnect_ms() -> u64 {
    1000
}
fn default_spool_bytes() -> u64 {
    256 * 1024 * 1024
}
fn default_spool_entries() -> usize {
    10_000
}
fn default_spool_age() -> f64 {
    72.0
}
fn default_event_spool_entries() -> usize {
    10_000
}
fn default_pending_ln_reads_max() -> usize {
    super::core::REMEMBERED_LN_READS
}
fn default_min_free_mb() -> u64 {
    512
}
fn default_workers() -> usize {
    1
}
fn default_drain() -> f64 {
    20.0
}
fn default_metrics() -> String {
    "127.0.0.1:9108".into()
}

fn topic_level_ok(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl DaemonConfig {
    /// Read and validate a configuration file.
    pub fn load(path: &Path) -> Result<DaemonConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parse and validate configuration text (`path` names it in errors).
    pub fn parse(text: &str, path: &Path) -> Result<DaemonConfig> {
        let cfg: DaemonConfig = toml::from_str(text).map_err(|e| Error::Config {
            file: path.to_path_buf(),
            key: e
                .span()
                .and_then(|s| key_at(text, s.start))
                .unwrap_or_else(|| "(file)".into()),
            reason: e.message().replace('\n', " "),
        })?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let bad = |key: &str, reason: String| {
            Err(Error::Config {
                file: path.to_path_buf(),
                key: key.into(),
                reason,
            })
        };
        if !topic_level_ok(&self.site.site) {
            return bad(
                "site.site",
                format!("{:?} is not one topic level ([A-Za-z0-9_-]+)", self.site.site),
            );
        }
        if !topic_level_ok(&self.site.device) {
            return bad(
                "site.device",
                format!("{:?} is not one topic level ([A-Za-z0-9_-]+)", self.site.device),
            );
        }
        if self.watch.poll_interval_ms == 0 || self.watch.poll_interval_ms > 60_000 {
            return bad("watch.poll_interval_ms", "must be 1…60000".into());
        }
        if self.watch.max_age_h.is_nan() || self.watch.max_age_h < 0.0 {
            return bad("watch.max_age_h", "must be ≥ 0 (0: no limit)".into());
        }
        if self.watch.stable_ms > 600_000 {
            return bad("watch.stable_ms", "must be at most 600000".into());
        }
        if !(self.assemble.quiet_period_s > 0.0 && self.assemble.quiet_period_s <= 3600.0) {
            return bad("assemble.quiet_period_s", "must be in (0, 3600]".into());
        }
        if self.assemble.roi_wait_s.is_nan() || self.assemble.roi_wait_s < 0.0 {
            return bad("assemble.roi_wait_s", "must be ≥ 0".into());
        }
        if !self.model.allow_unsigned && self.model.public_key.is_none() {
            return bad(
                "model.public_key",
                "required (the daemon serves only signed bundles unless model.allow_unsigned = true)".into(),
            );
        }
        if let Some(c) = &self.console {
            if c.listen.parse::<SocketAddr>().is_err() {
                return bad("console.listen", format!("{:?} is not an address:port", c.listen));
            }
            if !c.password_file.is_file() {
                return bad(
                    "console.password_file",
                    format!(
                        "{} is not a readable file (make it with `alnrisk console-user`)",
                        c.password_file.display()
                    ),
                );
            }
            if !(c.session_h > 0.0 && c.session_h <= 24.0 * 31.0) {
                return bad("console.session_h", "must be in (0, 744]".into());
            }
            if let Some(tls) = &c.tls {
                for (key, p) in [("console.tls.cert", &tls.cert), ("console.tls.key", &tls.key)] {
                    if !p.is_file() {
                        return bad(key, format!("{} is not a readable file", p.display()));
                    }
                }
            }
        }
        if let Some(tls) = &self.mqtt.tls
            && let Err((key, reason)) = tls.check("mqtt.tls")
        {
            return bad(&key, reason);
        }
        if self.mqtt.broker == BrokerKind::Embedded && self.mqtt.tls.is_some() {
            return bad(
                "mqtt.tls",
                "the embedded broker serves plain TCP on loopback; remove [mqtt.tls]".into(),
            );
        }
        if self.mqtt.username.is_some() != self.mqtt.password_file.is_some() {
            return bad("mqtt.password_file", "username and password_file go together".into());
        }
        if self.state.pending_ln_reads_max == 0 || self.state.pending_ln_reads_max > 1_000_000 {
            return bad("state.pending_ln_reads_max", "must be 1…1000000".into());
        }
        if self.state.workers == 0 || self.state.workers > 8 {
            return bad("state.workers", "must be 1…8".into());
        }
        if self.state.spool_max_entries == 0 {
            return bad("state.spool_max_entries", "must be ≥ 1".into());
        }
        if let Some(o) = &self.dicom_out {
            for (key, ae) in [
                ("dicom_out.called_ae", &o.called_ae),
                ("dicom_out.calling_ae", &o.calling_ae),
            ] {
                if !ae_title_ok(ae) {
                    return bad(
                        key,
                        format!("{ae:?} is not an AE title (1–16 characters, no backslash)"),
                    );
                }
            }
            if o.host.trim().is_empty() || o.port == 0 {
                return bad("dicom_out.host", "host and a port ≥ 1 are required".into());
            }
            if !(o.retry_min_s > 0.0 && o.retry_min_s <= o.retry_max_s && o.retry_max_s <= 86_400.0) {
                return bad(
                    "dicom_out.retry_min_s",
                    "must be 0 < retry_min_s ≤ retry_max_s ≤ 86400".into(),
                );
            }
            if o.spool_max_entries == 0 {
                return bad("dicom_out.spool_max_entries", "must be ≥ 1".into());
            }
            if let Some(tls) = &o.tls
                && let Err((key, reason)) = tls.check("dicom_out.tls")
            {
                return bad(&key, reason);
            }
        }
        if let Some(i) = &self.dicom_in {
            if i.listen.parse::<SocketAddr>().is_err() {
                return bad("dicom_in.listen", format!("{:?} is not an address:port", i.listen));
            }
            if !ae_title_ok(&i.ae_title) {
                return bad("dicom_in.ae_title", format!("{:?} is not an AE title", i.ae_title));
            }
            if i.allowed_calling_ae.is_empty() || !i.allowed_calling_ae.iter().all(|a| ae_title_ok(a)) {
                return bad(
                    "dicom_in.allowed_calling_ae",
                    "list at least one AE title (1–16 characters each): nobody else may send".into(),
                );
            }
            let f = Path::new(&i.folder);
            if i.folder.is_empty()
                || f.is_absolute()
                || f.components().any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return bad("dicom_in.folder", "a folder name relative to watch.export_dir".into());
            }
            if i.max_associations == 0 || i.max_associations > 64 {
                return bad("dicom_in.max_associations", "must be 1…64".into());
            }
        }
        if !self.metrics.listen.is_empty() && self.metrics.listen.parse::<SocketAddr>().is_err() {
            return bad("metrics.listen", format!("{:?} is not host:port", self.metrics.listen));
        }
        Ok(())
    }

    /// MQTT client id.
    pub fn client_id(&self) -> String {
        self.mqtt
            .client_id
            .clone()
            .unwrap_or_else(|| format!("alnrisk-{}-{}", self.site.site, self.site.device))
    }

    /// Topic prefix `alnrisk/v1/{site}/{device}`.
    pub fn topic_prefix(&self) -> String {
        format!("alnrisk/v1/{}/{}", self.site.site, self.site.device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[site]
site = "a"
device = "b"
[watch]
export_dir = "/tmp/x"
[model]
bundle = "/tmp/b"
allow_unsigned = true
[mqtt]
broker = "embedded"
[state]
dir = "/tmp/s"
"#;

    #[test]
    fn minimal_config_takes_defaults() {
        let c = DaemonConfig::parse(MINIMAL, Path::new("m.toml")).unwrap();
        assert_eq!(c.mqtt.port, 1883);
        assert_eq!(c.metrics.listen, "127.0.0.1:9108");
        assert!(!c.phi.include_identifiers);
        assert_eq!(c.topic_prefix(), "alnrisk/v1/a/b");
    }

    #[test]
    fn errors_name_the_key() {
        let e = DaemonConfig::parse(
            &MINIMAL.replace("device = \"b\"", "device = \"b/c\""),
            Path::new("m.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("site.device"), "{e}");
        let e = DaemonConfig::parse(
            &format!("{MINIMAL}\n[[select]]\nname=\"x\"\ndescription_regex=\"(\"\n"),
            Path::new("m.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("select[0].description_regex"), "{e}");
        let e = DaemonConfig::parse(&MINIMAL.replace("allow_unsigned = true", ""), Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.public_key"), "{e}");
        let e = DaemonConfig::parse(
            &MINIMAL.replace("[state]", "[state]\nspool_max_entriez = 3"),
            Path::new("m.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("spool_max_entriez"), "{e}");
        let e = DaemonConfig::parse(
            &MINIMAL.replace("[watch]", "[watch]\nmax_age_h = -1"),
            Path::new("m.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("watch.max_age_h"), "{e}");
        let e = DaemonConfig::parse(
            &MINIMAL.replace("allow_unsigned = true", "allow_unsigned = true\ncuda_trunk = \"cuDNN\""),
            Path::new("m.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("model.cuda_trunk") && e.contains("cudnn-fused"), "{e}");
        // a value the type refuses as it is read names its key too, and what is valid
        let e = DaemonConfig::parse(
            &MINIMAL.replace("allow_unsigned = true", "allow_unsigned = true\ndevice = \"gpu\""),
            Path::new("m.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("model.device") && e.contains("cuda:N"), "{e}");
        assert_eq!(
            key_at("a = 1\n[x]\nb = 2\n[[r]]\nc = 3\n[[r]]\nd = \"(\"\n", 40).as_deref(),
            Some("r[1].d")
        );
        let ok = MINIMAL.replace("allow_unsigned = true", "allow_unsigned = true\ncuda_trunk = \"cudnn\"");
        let c = DaemonConfig::parse(&ok, Path::new("m.toml")).unwrap();
        assert_eq!(c.model.cuda_trunk, Some(crate::deep::CudaTrunkKind::Cudnn));
    }
}
