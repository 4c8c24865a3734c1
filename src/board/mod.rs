//! `alnrisk board --config board.toml`: the department's wall screen. A small server that subscribes, as the
//! site's dashboard user of the shipped ACL, to `alnrisk/v1/{site}/+/{result,status,event}` and serves one page
//! showing every box of the site: online or offline (from the retained `status` and the broker's last will), the
//! bundle it serves, its latest results and its alarms.
//!
//! It needs nothing from the boxes but the broker, so it runs on any department PC or VM. The page follows the
//! console page's rules ([`crate::web`]): assets in the binary, a login, TLS with the site's certificate.
//!
//! - [`BoardConfig`]: the file.
//! - [`Fleet`]: what the board knows of each box, changed by every message ([`Fleet::on_message`]); pure, so its
//!   unit tests feed it messages.
//! - [`http`]: the page, its login and the Server-Sent Events that push every change.
//! - [`run`]: the MQTT subscription and the server, until Ctrl-C / SIGTERM.

pub mod http;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::daemon::config::{ServerTlsConfig, TlsConfig};
use crate::daemon::payload::{
    BundleRef, DeviceState, EventMessage, MessageKind, ResultMessage, Severity, StatusMessage,
};
use crate::error::{Error, Result};

/// The results kept per box.
pub const RESULTS_PER_BOX: usize = 6;
/// The alarms and errors kept per box.
pub const ALARMS_PER_BOX: usize = 6;
/// The boxes a board shows at most (a message naming another is ignored, logged).
pub const MAX_BOXES: usize = 64;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardConfig {
    /// The page.
    pub board: BoardPage,
    /// The broker.
    pub mqtt: BoardMqtt,
}

/// `[board]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardPage {
    /// The site whose boxes it shows (one topic level).
    pub site: String,
    /// Address of the page, e.g. `"0.0.0.0:8444"`.
    pub listen: String,
    /// Who may log in (`alnrisk console-user` writes it).
    pub password_file: PathBuf,
    /// Hours a login lasts.
    #[serde(default = "default_session_h")]
    pub session_h: f64,
    /// Folder of the session secret (`board-session.secret`); default: beside the password file.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// HTTPS with the site's certificate.
    #[serde(default)]
    pub tls: Option<ServerTlsConfig>,
}

/// `[mqtt]`: the dashboard user's connection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoardMqtt {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// User name (the shipped ACL's `dashboard-<site>`).
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Client id (default `alnrisk-board-<site>`).
    #[serde(default)]
    pub client_id: Option<String>,
    /// Keep-alive (s).
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u64,
    /// TLS to the broker (absent: plain TCP, loopback only).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

fn default_session_h() -> f64 {
    12.0
}
fn default_keep_alive() -> u64 {
    10
}

impl BoardConfig {
    /// Read and check `path`.
    pub fn load(path: &Path) -> Result<BoardConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let bad = |key: &str, reason: String| Error::Config {
            file: path.to_path_buf(),
            key: key.into(),
            reason,
        };
        let cfg: BoardConfig = toml::from_str(&text).map_err(|e| bad("(file)", e.message().replace('\n', " ")))?;
        let b = &cfg.board;
        if b.site.is_empty()
            || !b
                .site
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        {
            return Err(bad(
                "board.site",
                format!("{:?} is not one topic level ([A-Za-z0-9_-]+)", b.site),
            ));
        }
        if b.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(bad("board.listen", format!("{:?} is not an address:port", b.listen)));
        }
        if !b.password_file.is_file() {
            return Err(bad(
                "board.password_file",
                format!("{} is not a readable file", b.password_file.display()),
            ));
        }
        if !(b.session_h > 0.0 && b.session_h <= 744.0) {
            return Err(bad("board.session_h", "must be in (0, 744]".into()));
        }
        if cfg.mqtt.username.is_some() != cfg.mqtt.password_file.is_some() {
            return Err(bad(
                "mqtt.password_file",
                "a user name needs its password file and a password file its user".into(),
            ));
        }
        Ok(cfg)
    }
}

/// A box's connection, as the board knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BoxState {
    /// Its retained status says online.
    Online,
    /// It stopped, or the broker published its last will.
    Offline,
}

/// One result, as the board shows it (no identifiers: a department wall screen).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultShown {
    /// result, update or revision.
    pub kind: MessageKind,
    /// The first 8 digits of the study key.
    pub study: String,
    /// The answer when the LN read is known.
    pub probability: Option<f64>,
    /// While it is not: if negative, if positive.
    pub scenarios: Option<(f64, f64)>,
    /// The bundle's cutoff.
    pub cutoff: f64,
    /// The MRI LN read (`positive`, `negative`, `unknown`).
    pub ln: String,
    /// The reported factors it still waits for (no answer until they arrive).
    #[serde(default)]
    pub missing: Vec<String>,
    /// Out-of-distribution flags.
    pub flags: usize,
    /// When it was computed (RFC 3339).
    pub computed: String,
}

/// One alarm or error event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmShown {
    /// The event's name.
    pub event: String,
    /// alarm or error.
    pub severity: Severity,
    /// Its detail (the box keeps identifiers out of it).
    pub detail: String,
    /// When.
    pub at: String,
}

/// What the board knows of one box.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BoxShown {
    /// The device level of its topics.
    pub device: String,
    /// Online or offline; `None` before its status was seen.
    pub state: Option<BoxState>,
    /// The bundle it serves.
    pub bundle: Option<BundleRef>,
    /// Its alnrisk version.
    pub alnrisk_version: Option<String>,
    /// When its status last changed (the box's clock).
    pub state_since: Option<String>,
    /// The latest results, newest first.
    pub results: VecDeque<ResultShown>,
    /// Results seen since the board started.
    pub results_seen: u64,
    /// The latest alarms and errors, newest first.
    pub alarms: VecDeque<AlarmShown>,
}

/// Every box of the site.
#[derive(Debug, Default)]
pub struct Fleet {
    site: String,
    boxes: BTreeMap<String, BoxShown>,
}

impl Fleet {
    /// The boxes of `site`.
    pub fn new(site: &str) -> Fleet {
        Fleet {
            site: site.to_string(),
            boxes: BTreeMap::new(),
        }
    }

    /// Every box, by device name.
    pub fn boxes(&self) -> Vec<BoxShown> {
        self.boxes.values().cloned().collect()
    }

    /// A message on `topic`: the box it changed, if any (another site's, a malformed or an unknown topic change
    /// nothing).
    pub fn on_message(&mut self, topic: &str, payload: &[u8]) -> Option<BoxShown> {
        let mut levels = topic.split('/');
        let (Some("alnrisk"), Some("v1"), Some(site), Some(device), Some(kind), None) = (
            levels.next(),
            levels.next(),
            levels.next(),
            levels.next(),
            levels.next(),
            levels.next(),
        ) else {
            return None;
        };
        if site != self.site {
            return None;
        }
        if !self.boxes.contains_key(device) && self.boxes.len() >= MAX_BOXES {
            tracing::warn!("board: more than {MAX_BOXES} boxes; a message of another is ignored");
            return None;
        }
        let entry = || BoxShown {
            device: device.to_string(),
            state: None,
            bundle: None,
            alnrisk_version: None,
            state_since: None,
            results: VecDeque::new(),
            results_seen: 0,
            alarms: VecDeque::new(),
        };
        match kind {
            "status" => {
                let s: StatusMessage = serde_json::from_slice(payload).ok()?;
                let b = self.boxes.entry(device.to_string()).or_insert_with(entry);
                b.state = Some(match s.state {
                    DeviceState::Online => BoxState::Online,
                    DeviceState::Offline => BoxState::Offline,
                });
                b.bundle = s.bundle;
                b.alnrisk_version = Some(s.alnrisk_version);
                b.state_since = Some(s.at);
                Some(b.clone())
            }
            "result" => {
                let r: ResultMessage = serde_json::from_slice(payload).ok()?;
                let shown = ResultShown {
                    kind: r.kind,
                    study: r.study_key.as_str().chars().take(8).collect(),
                    probability: r.risk.as_ref().map(|f| f.probability),
                    scenarios: match (r.scenarios.get("if_ln_negative"), r.scenarios.get("if_ln_positive")) {
                        (Some(n), Some(p)) if r.risk.is_none() => Some((n.probability, p.probability)),
                        _ => None,
                    },
                    cutoff: r.cutoff,
                    ln: crate::model::LnRead::status_text(r.mri_ln_status).to_string(),
                    missing: r.missing_factors.clone(),
                    flags: r.out_of_distribution.len(),
                    computed: r.timestamps.get("computed").cloned().unwrap_or_default(),
                };
                let b = self.boxes.entry(device.to_string()).or_insert_with(entry);
                b.results.push_front(shown);
                b.results.truncate(RESULTS_PER_BOX);
                b.results_seen += 1;
                Some(b.clone())
            }
            "event" => {
                let e: EventMessage = serde_json::from_slice(payload).ok()?;
                if !matches!(e.severity, Severity::Alarm | Severity::Error) {
                    return None;
                }
                let b = self.boxes.entry(device.to_string()).or_insert_with(entry);
                b.alarms.push_front(AlarmShown {
                    event: e.event.name().to_string(),
                    severity: e.severity,
                    detail: e.detail,
                    at: e.at,
                });
                b.alarms.truncate(ALARMS_PER_BOX);
                Some(b.clone())
            }
            _ => None,
        }
    }
}

/// Subscribe and serve until Ctrl-C or SIGTERM. Blocks; builds its own tokio runtime.
pub fn run(cfg: BoardConfig) -> Result<()> {
    crate::daemon::runtime()?.block_on(run_async(cfg))
}

async fn run_async(cfg: BoardConfig) -> Result<()> {
    crate::daemon::mqtt::install_crypto();
    let b = &cfg.board;
    let state_dir = b
        .state_dir
        .clone()
        .or_else(|| b.password_file.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let gate = Arc::new(crate::web::Gate {
        title: "alnrisk department board",
        passwords: crate::web::login::PasswordFile::load(&b.password_file)?,
        sessions: crate::web::login::Sessions::new(
            crate::daemon::payload::load_or_create_secret(&state_dir.join("board-session.secret"))?,
            (b.session_h * 3600.0) as u64,
        ),
        secure: b.tls.is_some(),
    });
    let tls = b
        .tls
        .as_ref()
        .map(|t| crate::web::server_tls(t, "board.tls"))
        .transpose()?;
    let board = http::Board::new(Fleet::new(&b.site), gate);
    let server = crate::web::serve(&b.listen, tls, http::router(board.clone()), "department board").await?;
    let subscriber = tokio::spawn(subscribe(cfg.clone(), board));
    let mut sigterm =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|source| Error::Runtime {
            what: "SIGTERM handler",
            source,
        })?;
    tokio::select! {
        _ = sigterm.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    subscriber.abort();
    server.abort();
    tracing::info!("board stopped");
    Ok(())
}

/// The dashboard user's subscription: every message to the fleet, the connection's state to the page.
async fn subscribe(cfg: BoardConfig, board: Arc<http::Board>) {
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    let m = &cfg.mqtt;
    let site = &cfg.board.site;
    let client_id = m.client_id.clone().unwrap_or_else(|| format!("alnrisk-board-{site}"));
    let mut o = MqttOptions::new(client_id, m.host.clone(), m.port);
    o.set_keep_alive(Duration::from_secs(m.keep_alive_s.max(5)));
    o.set_clean_start(true);
    o.set_max_packet_size(Some(1 << 20));
    if let (Some(user), Some(file)) = (&m.username, &m.password_file) {
        match std::fs::read_to_string(file) {
            Ok(p) => o.set_credentials(user.clone(), p.trim_end_matches(['\n', '\r']).to_string()),
            Err(e) => {
                tracing::error!("board: the MQTT password file cannot be read: {}", e.kind());
                return;
            }
        };
    }
    if let Some(tls) = &m.tls {
        match crate::daemon::mqtt::tls_config(tls) {
            Ok(c) => o.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(
                Arc::new(c),
            ))),
            Err(e) => {
                tracing::error!("board: MQTT TLS: {e}");
                return;
            }
        };
    }
    let (client, mut events) = AsyncClient::new(o, 64);
    let filters: Vec<String> = ["result", "status", "event"]
        .iter()
        .map(|k| format!("alnrisk/v1/{site}/+/{k}"))
        .collect();
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!("board: connected to the broker");
                for f in &filters {
                    if let Err(e) = client.subscribe(f.clone(), QoS::AtLeastOnce).await {
                        tracing::error!("board: subscribe {f}: {e}");
                    }
                }
                board.broker(true);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let topic = String::from_utf8_lossy(&p.topic).to_string();
                board.on_message(&topic, &p.payload);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("board: broker connection: {e}");
                board.broker(false);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests;
