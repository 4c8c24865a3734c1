//! The embedded broker (`mqtt.broker = "embedded"`): rumqttd in-process on its own thread, MQTT 5 on the
//! configured address only. For development and the demo; production uses mosquitto (`firmware-config/mosquitto/`).

use crate::error::{Error, Result};

/// Start rumqttd listening on `host:port` (MQTT 5). Returns once the listener accepts connections.
pub fn start_embedded(host: &str, port: u16) -> Result<()> {
    start_embedded_version(host, port, super::mqtt::Version::V5)
}

/// Start rumqttd speaking only `version` on `host:port` (3.1.1 only is how the tests play an older broker).
pub fn start_embedded_version(host: &str, port: u16, version: super::mqtt::Version) -> Result<()> {
    let server = match version {
        super::mqtt::Version::V5 => "v5",
        super::mqtt::Version::V311 => "v4",
    };
    let text = format!(
        r#"id = 0
[router]
id = 0
max_connections = 64
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[{server}.1]
name = "{server}-1"
listen = "{host}:{port}"
next_connection_delay_ms = 1
[{server}.1.connections]
connection_timeout_ms = 60000
max_payload_size = 1048576
max_inflight_count = 100
"#
    );
    let config: rumqttd::Config =
        toml::from_str(&text).map_err(|e| Error::Mqtt(format!("embedded broker configuration: {e}")))?;
    let addr = format!("{host}:{port}");
    std::thread::Builder::new()
        .name("rumqttd".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!("embedded broker stopped: {e}");
            }
        })
        .map_err(|e| Error::Mqtt(format!("embedded broker thread: {e}")))?;
    for _ in 0..100 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Err(Error::Mqtt(format!(
        "embedded broker did not start listening on {addr}"
    )))
}
