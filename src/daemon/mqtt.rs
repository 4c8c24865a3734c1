//! The MQTT side (rumqttc; MQTT 5 where the broker speaks it, else 3.1.1): connection options (TLS with the configured CA and client certificate,
//! username/password, last will `offline` on the retained status topic), and the publisher loop that drains the
//! durable outbox one message at a time: publish QoS 1 → PUBACK → remove from the spool → next. Window 1 keeps
//! results in order; on every (re)connection the message in flight is published again (a new session has
//! forgotten it), so a result is delivered at least once and, with its deterministic message id, can be
//! de-duplicated by a consumer. Status and events are published directly (not spooled); `cmd/ln-status`
//! messages are passed to the daemon.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet};
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions};
use rumqttc::{Outgoing, Transport};
use tokio::sync::mpsc;

use super::config::{DaemonConfig, Protocol, TlsConfig};
use super::metrics::Metrics;
use super::outbox::Outbox;
use super::payload::StatusMessage;
use crate::error::{Error, Result};

/// The largest packet the daemon takes from the broker (advertised as MQTT 5's Maximum Packet Size, so the
/// broker does not send it anything larger; the 3.1.1 client's limit too). Only `cmd/ln-status` comes in; a
/// message up to this size is read, counted and reported, not parsed, when it is larger than an LN read can be.
pub const MAX_INCOMING_PACKET: usize = 16 * 1024 * 1024;

/// The largest `cmd/ln-status` payload parsed as an LN read (one is under 200 bytes).
pub const LN_READ_MAX_BYTES: usize = 4096;

/// The largest packet the daemon sends (a result is a few KiB; the shipped broker's `message_size_limit`).
const MAX_OUTGOING_PACKET: usize = 256 * 1024;

/// Install rustls' ring provider (once per process).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A rustls client configuration that trusts only `tls.ca` and presents the client certificate when given.
pub fn tls_config(tls: &TlsConfig) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    install_crypto();
    let mut roots = rustls::RootCertStore::empty();
    let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(&tls.ca)
        .and_then(|it| it.collect::<std::result::Result<_, _>>())
        .map_err(|e| Error::Mqtt(format!("{}: CA certificate: {e}", tls.ca.display())))?;
    if certs.is_empty() {
        return Err(Error::Mqtt(format!(
            "{}: no certificate in the CA file",
            tls.ca.display()
        )));
    }
    for c in certs {
        roots
            .add(c)
            .map_err(|e| Error::Mqtt(format!("{}: CA certificate: {e}", tls.ca.display())))?;
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<std::result::Result<_, _>>())
                .map_err(|e| Error::Mqtt(format!("{}: client certificate: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| Error::Mqtt(format!("{}: client key: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::Mqtt(format!("client certificate: {e}")))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// Topic of a kind (`result`, `status`, `event`, `cmd/ln-status`).
pub fn topic(cfg: &DaemonConfig, kind: &str) -> String {
    format!("{}/{kind}", cfg.topic_prefix())
}

/// MQTT protocol version of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// MQTT 5.
    V5,
    /// MQTT 3.1.1.
    V311,
}

/// What the connection reports, the same for both protocol versions.
#[derive(Debug)]
enum LinkEvent {
    Connected,
    Published(u16),
    Acked(u16),
    Message {
        topic: String,
        payload: Vec<u8>,
    },
    Disconnected,
    /// The error, and whether the broker answered at the MQTT level (TCP and TLS worked): only such failures
    /// suggest that it does not speak this protocol version.
    Failed(String, bool),
    Other,
}

/// One MQTT connection (rumqttc's v5 or v3.1.1 client and event loop) behind one interface.
enum Link {
    V5(AsyncClient, Box<EventLoop>),
    V311(rumqttc::AsyncClient, Box<rumqttc::EventLoop>),
}

impl Link {
    fn new(cfg: &DaemonConfig, offline: &StatusMessage, version: Version) -> Result<Link> {
        let m = &cfg.mqtt;
        let will = serde_json::to_vec(offline).map_err(|e| Error::Mqtt(e.to_string()))?;
        let keep_alive = Duration::from_secs(m.keep_alive_s.max(5));
        let credentials = match (&m.username, &m.password_file) {
            (Some(user), Some(file)) => {
                let pass = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
                Some((user.clone(), pass.trim_end_matches(['\n', '\r']).to_string()))
            }
            _ => None,
        };
        let transport = match &m.tls {
            Some(tls) => {
                let c = tls_config(tls)?;
                Some(Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(Arc::new(
                    c,
                ))))
            }
            None => None,
        };
        Ok(match version {
            Version::V5 => {
                let mut o = MqttOptions::new(cfg.client_id(), m.host.clone(), m.port);
                o.set_keep_alive(keep_alive);
                o.set_clean_start(true);
                o.set_connection_timeout(5);
                o.set_max_packet_size(Some(MAX_INCOMING_PACKET as u32));
                o.set_last_will(LastWill::new(topic(cfg, "status"), will, QoS::AtLeastOnce, true, None));
                if let Some((u, p)) = credentials {
                    o.set_credentials(u, p);
                }
                if let Some(t) = transport {
                    o.set_transport(t);
                }
                let (c, e) = AsyncClient::new(o, 64);
                Link::V5(c, Box::new(e))
            }
            Version::V311 => {
                let mut o = rumqttc::MqttOptions::new(cfg.client_id(), m.host.clone(), m.port);
                o.set_keep_alive(keep_alive);
                o.set_clean_session(true);
                o.set_max_packet_size(MAX_INCOMING_PACKET, MAX_OUTGOING_PACKET);
                o.set_last_will(rumqttc::LastWill::new(
                    topic(cfg, "status"),
                    will,
                    rumqttc::QoS::AtLeastOnce,
                    true,
                ));
                if let Some((u, p)) = credentials {
                    o.set_credentials(u, p);
                }
                if let Some(t) = transport {
                    o.set_transport(t);
                }
                let (c, e) = rumqttc::AsyncClient::new(o, 64);
                Link::V311(c, Box::new(e))
            }
        })
    }

    async fn poll(&mut self) -> LinkEvent {
        use rumqttc::Packet as P4;
        match self {
            Link::V5(_, e) => match e.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => LinkEvent::Connected,
                Ok(Event::Incoming(Packet::PubAck(a))) => LinkEvent::Acked(a.pkid),
                Ok(Event::Incoming(Packet::Publish(p))) => LinkEvent::Message {
                    topic: String::from_utf8_lossy(&p.topic).to_string(),
                    payload: p.payload.to_vec(),
                },
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => LinkEvent::Published(pkid),
                Ok(Event::Outgoing(Outgoing::Disconnect)) => LinkEvent::Disconnected,
                Ok(_) => LinkEvent::Other,
                Err(err) => {
                    use rumqttc::v5::ConnectionError as E;
                    let mqtt_level = matches!(err, E::MqttState(_) | E::ConnectionRefused(_) | E::NotConnAck(_));
                    LinkEvent::Failed(err.to_string(), mqtt_level)
                }
            },
            Link::V311(_, e) => match e.poll().await {
                Ok(rumqttc::Event::Incoming(P4::ConnAck(_))) => LinkEvent::Connected,
                Ok(rumqttc::Event::Incoming(P4::PubAck(a))) => LinkEvent::Acked(a.pkid),
                Ok(rumqttc::Event::Incoming(P4::Publish(p))) => LinkEvent::Message {
                    topic: p.topic.clone(),
                    payload: p.payload.to_vec(),
                },
                Ok(rumqttc::Event::Outgoing(Outgoing::Publish(pkid))) => LinkEvent::Published(pkid),
                Ok(rumqttc::Event::Outgoing(Outgoing::Disconnect)) => LinkEvent::Disconnected,
                Ok(_) => LinkEvent::Other,
                Err(err) => {
                    use rumqttc::ConnectionError as E;
                    let mqtt_level = matches!(err, E::MqttState(_) | E::ConnectionRefused(_) | E::NotConnAck(_));
                    LinkEvent::Failed(err.to_string(), mqtt_level)
                }
            },
        }
    }

    /// Queue a QoS 1 publish; false when the request queue is full.
    fn publish(&self, topic: &str, retain: bool, payload: Vec<u8>) -> bool {
        match self {
            Link::V5(c, _) => c.try_publish(topic, QoS::AtLeastOnce, retain, payload).is_ok(),
            Link::V311(c, _) => c.try_publish(topic, rumqttc::QoS::AtLeastOnce, retain, payload).is_ok(),
        }
    }

    fn subscribe(&self, topic: &str) {
        let _ = match self {
            Link::V5(c, _) => c.try_subscribe(topic, QoS::AtLeastOnce).is_ok(),
            Link::V311(c, _) => c.try_subscribe(topic, rumqttc::QoS::AtLeastOnce).is_ok(),
        };
    }

    fn disconnect(&self) {
        let _ = match self {
            Link::V5(c, _) => c.try_disconnect().is_ok(),
            Link::V311(c, _) => c.try_disconnect().is_ok(),
        };
    }
}

/// Requests to the publisher.
#[derive(Debug)]
pub enum PublisherCmd {
    /// A new entry is in the result spool or the event spool.
    Kick,
    /// Publish `offline`, disconnect and stop.
    Stop,
}

/// What the publisher tells the daemon.
#[derive(Debug)]
pub enum PublisherNote {
    /// An LN read on `cmd/ln-status` (raw payload, at most [`LN_READ_MAX_BYTES`]).
    LnStatus(Vec<u8>),
    /// A `cmd/ln-status` message too large to be an LN read (its size in bytes): dropped unread.
    LnStatusTooLarge(usize),
    /// A spool entry was acknowledged and removed (its sequence number).
    Acked(u64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Sent {
    Spool(u64),
    Event(u64),
    Other,
}

/// Publish the head of `spool` (QoS 1) on the topic `topic_of` gives for its topic suffix; returns its sequence
/// number when it went into the client's queue.
fn publish_head(spool: &Mutex<Outbox>, link: &Link, topic_of: impl Fn(&str) -> String) -> Result<Option<u64>> {
    let head = spool.lock().map_err(|_| Error::Mqtt("spool lock".into()))?.head()?;
    Ok(head.and_then(|e| {
        link.publish(&topic_of(&e.topic), false, e.payload.into_bytes())
            .then_some(e.seq)
    }))
}

/// Remove an acknowledged entry from a spool, on the blocking pool (the removal fsyncs the spool folder, and the
/// core may hold the spool's lock while it fsyncs a push); the spool's depth after.
async fn remove_acked(spool: &Arc<Mutex<Outbox>>, seq: u64) -> Result<usize> {
    let spool = spool.clone();
    tokio::task::spawn_blocking(move || {
        let mut o = spool.lock().map_err(|_| Error::Mqtt("spool lock".into()))?;
        o.remove(seq)?;
        Ok(o.depth())
    })
    .await
    .map_err(|e| Error::Mqtt(format!("spool removal did not finish: {e}")))?
}

/// Run the publisher until [`PublisherCmd::Stop`].
#[allow(clippy::too_many_arguments)]
pub async fn run_publisher(
    cfg: DaemonConfig,
    online: StatusMessage,
    offline: StatusMessage,
    outbox: Arc<Mutex<Outbox>>,
    events: Arc<Mutex<Outbox>>,
    metrics: Arc<Metrics>,
    mut cmds: mpsc::Receiver<PublisherCmd>,
    notes: mpsc::Sender<PublisherNote>,
) -> Result<()> {
    // `auto`: MQTT 5 first; after two attempts that the broker refused at the MQTT level (TCP and TLS worked)
    // without ever having connected, try 3.1.1, alternating until one connects; that version is kept.
    let mut version = match cfg.mqtt.protocol {
        Protocol::V311 => Version::V311,
        _ => Version::V5,
    };
    let mut link = Link::new(&cfg, &offline, version)?;
    let mut locked = cfg.mqtt.protocol != Protocol::Auto;
    let mut failures_in_a_row = 0u32;
    let reconnect = Duration::from_millis(cfg.mqtt.reconnect_ms.max(50));
    let (result_topic, status_topic, event_topic, cmd_topic) = (
        topic(&cfg, "result"),
        topic(&cfg, "status"),
        topic(&cfg, "event"),
        topic(&cfg, "cmd/ln-status"),
    );
    let mut connected = false;
    // One result and one event in flight at a time (each: spool sequence number, packet id once sent), so each
    // stream stays in order and an event never waits behind a result or takes its spool room.
    let mut inflight: Option<(u64, Option<u16>)> = None;
    let mut event_inflight: Option<(u64, Option<u16>)> = None;
    let mut sent: VecDeque<Sent> = VecDeque::new();
    let mut stopping = false;
    let mut last_error = String::new();
    loop {
        // Send what can be sent.
        if connected {
            if event_inflight.is_none()
                && !stopping
                && let Some(seq) = publish_head(&events, &link, |_| event_topic.clone())?
            {
                event_inflight = Some((seq, None));
                sent.push_back(Sent::Event(seq));
            }
            if inflight.is_none()
                && !stopping
                && let Some(seq) = publish_head(&outbox, &link, |t| {
                    if t == "result" {
                        result_topic.clone()
                    } else {
                        topic(&cfg, t)
                    }
                })?
            {
                inflight = Some((seq, None));
                sent.push_back(Sent::Spool(seq));
            }
        }
        if stopping && inflight.is_none() && event_inflight.is_none() {
            let body = serde_json::to_vec(&offline).unwrap_or_default();
            link.publish(&status_topic, true, body);
            link.disconnect();
            // Let the event loop flush the status and the disconnect.
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                loop {
                    match link.poll().await {
                        LinkEvent::Disconnected | LinkEvent::Failed(..) => break,
                        _ => {}
                    }
                }
            })
            .await;
            metrics.mqtt_connected.set(0);
            return Ok(());
        }
        tokio::select! {
            cmd = cmds.recv(), if !stopping => match cmd {
                Some(PublisherCmd::Kick) => {}
                Some(PublisherCmd::Stop) | None => {
                    stopping = true;
                    if !connected {
                        metrics.mqtt_connected.set(0);
                        return Ok(());
                    }
                }
            },
            ev = link.poll() => match ev {
                LinkEvent::Connected => {
                    connected = true;
                    locked = true;
                    failures_in_a_row = 0;
                    last_error.clear();
                    metrics.mqtt_connected.set(1);
                    tracing::info!(host = %cfg.mqtt.host, port = cfg.mqtt.port, ?version, "MQTT connected");
                    sent.clear();
                    let body = serde_json::to_vec(&online).unwrap_or_default();
                    link.publish(&status_topic, true, body);
                    sent.push_back(Sent::Other);
                    link.subscribe(&cmd_topic);
                    // A new session forgot what was in flight: publish it again.
                    inflight = None;
                    event_inflight = None;
                }
                LinkEvent::Published(pkid) => {
                    let slot = match sent.pop_front() {
                        Some(Sent::Spool(seq)) => Some((&mut inflight, seq)),
                        Some(Sent::Event(seq)) => Some((&mut event_inflight, seq)),
                        _ => None,
                    };
                    if let Some((slot, seq)) = slot
                        && let Some((s, p)) = slot.as_mut()
                        && *s == seq
                    {
                        *p = Some(pkid);
                    }
                }
                LinkEvent::Acked(pkid) => {
                    if let Some((seq, Some(p))) = inflight
                        && p == pkid
                    {
                        remove_acked(&outbox, seq).await?;
                        inflight = None;
                        metrics.published.inc();
                        let _ = notes.send(PublisherNote::Acked(seq)).await;
                    } else if let Some((seq, Some(p))) = event_inflight
                        && p == pkid
                    {
                        let depth = remove_acked(&events, seq).await?;
                        metrics.event_outbox_depth.set(depth as i64);
                        event_inflight = None;
                    }
                }
                LinkEvent::Message { topic, payload } => {
                    if topic == cmd_topic {
                        let note = if payload.len() > LN_READ_MAX_BYTES {
                            PublisherNote::LnStatusTooLarge(payload.len())
                        } else {
                            PublisherNote::LnStatus(payload)
                        };
                        let _ = notes.send(note).await;
                    }
                }
                LinkEvent::Disconnected | LinkEvent::Other => {}
                LinkEvent::Failed(e, mqtt_level) => {
                    if connected || last_error != e {
                        tracing::warn!(host = %cfg.mqtt.host, port = cfg.mqtt.port, ?version, "MQTT connection: {e}");
                        last_error = e;
                    }
                    connected = false;
                    metrics.mqtt_connected.set(0);
                    metrics.mqtt_connect_failures.inc();
                    sent.clear();
                    for slot in [&mut inflight, &mut event_inflight] {
                        if let Some((_, p)) = slot.as_mut() {
                            *p = None;
                        }
                    }
                    if stopping {
                        return Ok(());
                    }
                    // A broker that is down says nothing about versions: only MQTT-level refusals count.
                    if mqtt_level {
                        failures_in_a_row += 1;
                    }
                    if !locked && failures_in_a_row >= 2 {
                        version = if version == Version::V5 { Version::V311 } else { Version::V5 };
                        tracing::info!(?version, "trying the other MQTT protocol version");
                        link = Link::new(&cfg, &offline, version)?;
                        failures_in_a_row = 0;
                    }
                    tokio::time::sleep(reconnect).await;
                }
            }
        }
    }
}
