//! The shipped mosquitto ACL (`firmware-config/mosquitto/alnrisk.acl`) on a real mosquitto: a device publishes
//! only on its own topics, a dashboard only reads. (The TLS half of the production broker is exercised in
//! `tests/serve.rs`; here a plain loopback listener carries the ACL.)

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{Client, Event, MqttOptions};

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn client(port: u16, user: &str) -> (Client, Arc<Mutex<Vec<String>>>) {
    let mut o = MqttOptions::new(format!("{user}-{}", std::process::id()), "127.0.0.1", port);
    o.set_credentials(user, "secret-of-".to_string() + user);
    let (c, mut conn) = Client::new(o, 16);
    let got = Arc::new(Mutex::new(Vec::new()));
    let (g, cc) = (got.clone(), c.clone());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for ev in conn.iter() {
            match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let _ = cc.try_subscribe("alnrisk/#", QoS::AtLeastOnce);
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    let _ = tx.send(());
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    g.lock().unwrap().push(String::from_utf8_lossy(&p.topic).to_string());
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("connected and subscribed");
    (c, got)
}

#[test]
fn devices_write_only_their_topics_and_dashboards_only_read() {
    let dir: PathBuf = std::env::temp_dir().join(format!("alnrisk-acl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let acl = Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config/mosquitto/alnrisk.acl");
    let passwd = dir.join("passwd");
    for user in ["alnrisk-hospital-a-mri1-jetson", "dashboard-hospital-a"] {
        let st = Command::new("mosquitto_passwd")
            .arg("-b")
            .args(if passwd.exists() { vec![] } else { vec!["-c"] })
            .arg(&passwd)
            .arg(user)
            .arg(format!("secret-of-{user}"))
            .status()
            .expect("mosquitto_passwd (package mosquitto) must be installed");
        assert!(st.success());
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join("m.conf");
    std::fs::write(
        &conf,
        format!(
            "user root\nper_listener_settings false\nallow_anonymous false\npassword_file {}\nacl_file {}\nlistener {port} 127.0.0.1\n",
            passwd.display(),
            acl.display()
        ),
    )
    .unwrap();
    let _broker = Broker(
        Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t.elapsed() < Duration::from_secs(10), "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (dash, seen) = client(port, "dashboard-hospital-a");
    let (device, _) = client(port, "alnrisk-hospital-a-mri1-jetson");
    let publish = |c: &Client, topic: &str| c.publish(topic, QoS::AtLeastOnce, false, b"{}".to_vec()).unwrap();
    publish(&device, "alnrisk/v1/hospital-a/mri1-jetson/result");
    publish(&device, "alnrisk/v1/hospital-a/mri2-jetson/result"); // another device's topic
    publish(&device, "alnrisk/v1/hospital-b/mri1-jetson/result"); // another site
    publish(&dash, "alnrisk/v1/hospital-a/mri1-jetson/event"); // dashboards only read
    publish(&device, "alnrisk/v1/hospital-a/mri1-jetson/event");
    let t = Instant::now();
    while seen.lock().unwrap().len() < 2 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let got = seen.lock().unwrap().clone();
    assert_eq!(
        got,
        [
            "alnrisk/v1/hospital-a/mri1-jetson/result",
            "alnrisk/v1/hospital-a/mri1-jetson/event"
        ],
        "only the device's own topics get through"
    );
}
