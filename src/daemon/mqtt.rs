//! The MQTT side (rumqttc, MQTT 5): connection options (TLS with the configured CA and client certificate,
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

use super::config::{DaemonConfig, TlsConfig};
use super::metrics::Metrics;
use super::outbox::Outbox;
use super::payload::{EventMessage, StatusMessage};
use crate::error::{Error, Result};

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

/// Connection options from the configuration.
pub fn options(cfg: &DaemonConfig, offline: &StatusMessage) -> Result<MqttOptions> {
    let m = &cfg.mqtt;
    let mut o = MqttOptions::new(cfg.client_id(), m.host.clone(), m.port);
    o.set_keep_alive(Duration::from_secs(m.keep_alive_s.max(5)));
    o.set_clean_start(true);
    o.set_connection_timeout(5);
    let will = serde_json::to_vec(offline).map_err(|e| Error::Mqtt(e.to_string()))?;
    o.set_last_will(LastWill::new(topic(cfg, "status"), will, QoS::AtLeastOnce, true, None));
    if let (Some(user), Some(file)) = (&m.username, &m.password_file) {
        let pass = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
        o.set_credentials(user.clone(), pass.trim_end_matches(['\n', '\r']).to_string());
    }
    if let Some(tls) = &m.tls {
        let cfg = tls_config(tls)?;
        o.set_transport(Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(Arc::new(
            cfg,
        ))));
    }
    Ok(o)
}

/// Requests to the publisher.
#[derive(Debug)]
pub enum PublisherCmd {
    /// A new entry is in the spool.
    Kick,
    /// Publish an event (not spooled).
    Event(EventMessage),
    /// Publish `offline`, disconnect and stop.
    Stop,
}

/// What the publisher tells the daemon.
#[derive(Debug)]
pub enum PublisherNote {
    /// An LN read on `cmd/ln-status` (raw payload).
    LnStatus(Vec<u8>),
    /// A spool entry was acknowledged and removed (its sequence number).
    Acked(u64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Sent {
    Spool(u64),
    Other,
}

/// Events waiting for a connection (bounded; the oldest are dropped with a counter when full).
const EVENT_QUEUE: usize = 256;

/// Run the publisher until [`PublisherCmd::Stop`].
#[allow(clippy::too_many_arguments)]
pub async fn run_publisher(
    cfg: DaemonConfig,
    online: StatusMessage,
    offline: StatusMessage,
    outbox: Arc<Mutex<Outbox>>,
    metrics: Arc<Metrics>,
    mut cmds: mpsc::Receiver<PublisherCmd>,
    notes: mpsc::Sender<PublisherNote>,
) -> Result<()> {
    let opts = options(&cfg, &offline)?;
    let (client, mut eventloop): (AsyncClient, EventLoop) = AsyncClient::new(opts, 64);
    let reconnect = Duration::from_millis(cfg.mqtt.reconnect_ms.max(50));
    let (result_topic, status_topic, event_topic, cmd_topic) = (
        topic(&cfg, "result"),
        topic(&cfg, "status"),
        topic(&cfg, "event"),
        topic(&cfg, "cmd/ln-status"),
    );
    let mut connected = false;
    let mut inflight: Option<(u64, Option<u16>)> = None;
    let mut sent: VecDeque<Sent> = VecDeque::new();
    let mut events: heapless::Deque<EventMessage, EVENT_QUEUE> = heapless::Deque::new();
    let mut stopping = false;
    let mut last_error = String::new();
    loop {
        // Send what can be sent.
        if connected {
            while let Some(ev) = events.pop_front() {
                let body = serde_json::to_vec(&ev).unwrap_or_default();
                if client
                    .try_publish(event_topic.clone(), QoS::AtLeastOnce, false, body)
                    .is_err()
                {
                    let _ = events.push_front(ev);
                    break;
                }
                sent.push_back(Sent::Other);
            }
            if inflight.is_none() && !stopping {
                let head = outbox.lock().map_err(|_| Error::Mqtt("outbox lock".into()))?.head()?;
                if let Some(entry) = head {
                    let t = if entry.topic == "result" {
                        result_topic.clone()
                    } else {
                        topic(&cfg, &entry.topic)
                    };
                    if client
                        .try_publish(t, QoS::AtLeastOnce, false, entry.payload.into_bytes())
                        .is_ok()
                    {
                        inflight = Some((entry.seq, None));
                        sent.push_back(Sent::Spool(entry.seq));
                    }
                }
            }
        }
        if stopping && inflight.is_none() && events.is_empty() {
            let body = serde_json::to_vec(&offline).unwrap_or_default();
            let _ = client.try_publish(status_topic.clone(), QoS::AtLeastOnce, true, body);
            let _ = client.try_disconnect();
            // Let the event loop flush the status and the disconnect.
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while let Ok(ev) = eventloop.poll().await {
                    if let Event::Outgoing(Outgoing::Disconnect) = ev {
                        break;
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
                Some(PublisherCmd::Event(ev)) => {
                    if events.is_full() {
                        events.pop_front();
                        metrics.events_dropped.inc();
                    }
                    let _ = events.push_back(ev);
                }
                Some(PublisherCmd::Stop) | None => {
                    stopping = true;
                    if !connected {
                        metrics.mqtt_connected.set(0);
                        return Ok(());
                    }
                }
            },
            ev = eventloop.poll() => match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    connected = true;
                    last_error.clear();
                    metrics.mqtt_connected.set(1);
                    tracing::info!(host = %cfg.mqtt.host, port = cfg.mqtt.port, "MQTT connected");
                    sent.clear();
                    let body = serde_json::to_vec(&online).unwrap_or_default();
                    let _ = client.try_publish(status_topic.clone(), QoS::AtLeastOnce, true, body);
                    sent.push_back(Sent::Other);
                    let _ = client.try_subscribe(cmd_topic.clone(), QoS::AtLeastOnce);
                    // A new session forgot what was in flight: publish it again.
                    inflight = None;
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                    if let Some(Sent::Spool(seq)) = sent.pop_front()
                        && let Some((s, p)) = inflight.as_mut()
                        && *s == seq
                    {
                        *p = Some(pkid);
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    if let Some((seq, Some(pkid))) = inflight
                        && pkid == ack.pkid
                    {
                        outbox.lock().map_err(|_| Error::Mqtt("outbox lock".into()))?.remove(seq)?;
                        inflight = None;
                        metrics.published.inc();
                        let _ = notes.send(PublisherNote::Acked(seq)).await;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if p.topic.as_ref() == cmd_topic.as_bytes() {
                        let _ = notes.send(PublisherNote::LnStatus(p.payload.to_vec())).await;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if connected || last_error != e.to_string() {
                        tracing::warn!(host = %cfg.mqtt.host, port = cfg.mqtt.port, "MQTT connection: {e}");
                        last_error = e.to_string();
                    }
                    connected = false;
                    metrics.mqtt_connected.set(0);
                    metrics.mqtt_connect_failures.inc();
                    sent.clear();
                    if let Some((_, p)) = inflight.as_mut() {
                        *p = None;
                    }
                    if stopping {
                        return Ok(());
                    }
                    tokio::time::sleep(reconnect).await;
                }
            }
        }
    }
}
