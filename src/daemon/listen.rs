//! The other end of the daemon's topics, for tools and tests: an MQTT 5 client that subscribes to a filter and
//! collects every message (topic, JSON body, arrival time). `alnrisk demo`, `alnrisk bench-e2e` and the
//! integration tests read results through it, as a department dashboard would.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{Client, Event, MqttOptions};

use crate::error::{Error, Result};

/// One message received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Topic.
    pub topic: String,
    /// Body parsed as JSON (`Null` when it is not JSON).
    pub body: serde_json::Value,
    /// When it arrived.
    pub at: Instant,
}

/// A subscribed client and what it has received.
pub struct Listener {
    /// The client (to publish commands, or disconnect).
    pub client: Client,
    /// Everything received so far, in arrival order.
    pub inbox: Arc<Mutex<Vec<Received>>>,
}

/// Options of a dashboard-like subscriber on `host:port` with a persistent session: it keeps its subscription and
/// the QoS 1 messages queued for it across its own reconnection and a broker restart (with the broker's
/// persistence), and it advertises a 1 MiB Maximum Packet Size, so a larger message published on a topic it
/// subscribes to is not sent to it (rumqttc's default 10 KiB limit would drop the connection on it, and again at
/// every redelivery).
pub fn persistent_session(id: &str, host: &str, port: u16) -> MqttOptions {
    use rumqttc::v5::mqttbytes::v5::ConnectProperties;
    let mut o = MqttOptions::new(id, host, port);
    o.set_clean_start(false);
    let mut props = ConnectProperties::new();
    props.session_expiry_interval = Some(3600);
    props.max_packet_size = Some(1024 * 1024);
    o.set_connect_properties(props);
    o.set_keep_alive(Duration::from_secs(5));
    o
}

impl Listener {
    /// Connect with `opts`, subscribe to `filter` (QoS 1; again after every reconnection), and wait for the
    /// subscription to be acknowledged.
    pub fn connect(opts: MqttOptions, filter: &str) -> Result<Listener> {
        let (client, mut conn) = Client::new(opts, 64);
        let inbox = Arc::new(Mutex::new(Vec::new()));
        let (sink, c, filter) = (inbox.clone(), client.clone(), filter.to_string());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = c.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = tx.send(());
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let r = Received {
                            topic: String::from_utf8_lossy(&p.topic).to_string(),
                            body: serde_json::from_slice(&p.payload).unwrap_or(serde_json::Value::Null),
                            at: Instant::now(),
                        };
                        if let Ok(mut g) = sink.lock() {
                            g.push(r);
                        }
                    }
                    Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) => break,
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(15))
            .map_err(|_| Error::Mqtt("no subscription acknowledged within 15 s".into()))?;
        Ok(Listener { client, inbox })
    }

    /// Bodies of the messages whose topic ends with `/suffix`.
    pub fn of(&self, suffix: &str) -> Vec<serde_json::Value> {
        let end = format!("/{suffix}");
        self.inbox
            .lock()
            .map(|g| {
                g.iter()
                    .filter(|r| r.topic.ends_with(&end))
                    .map(|r| r.body.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Wait up to `timeout` for the first message that `f` accepts.
    pub fn wait_for(&self, timeout: Duration, f: impl Fn(&Received) -> bool) -> Option<Received> {
        let t = Instant::now();
        while t.elapsed() < timeout {
            if let Some(r) = self.inbox.lock().ok().and_then(|g| g.iter().find(|r| f(r)).cloned()) {
                return Some(r);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Publish a JSON body at QoS 1.
    pub fn publish(&self, topic: &str, body: &str) -> Result<()> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, body.as_bytes().to_vec())
            .map_err(|e| Error::Mqtt(e.to_string()))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.client.try_disconnect();
    }
}
