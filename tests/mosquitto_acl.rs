//! The shipped mosquitto ACL (`firmware-config/mosquitto/alnrisk.acl`) on a real mosquitto: a device publishes
//! only on its own topics, a dashboard only reads. (The TLS half of the production broker is exercised in
//! `tests/serve.rs`; here a plain loopback listener carries the ACL.)

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use alnrisk::daemon::listen::Listener;
use rumqttc::v5::MqttOptions;

fn client(port: u16, user: &str) -> Listener {
    let mut o = MqttOptions::new(format!("{user}-{}", std::process::id()), "127.0.0.1", port);
    o.set_credentials(user, "secret-of-".to_string() + user);
    Listener::connect(o, "alnrisk/#").expect("connected and subscribed")
}

#[test]
fn devices_write_only_their_topics_and_dashboards_only_read() {
    let dir = common::tmp("acl", "broker");
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
    let port = common::free_port();
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
    let _broker = common::Mosquitto::with_config(conf, port);
    let dash = client(port, "dashboard-hospital-a");
    let device = client(port, "alnrisk-hospital-a-mri1-jetson");
    let publish = |c: &Listener, topic: &str| c.publish(topic, "{}").unwrap();
    let seen = || {
        dash.inbox
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.topic.clone())
            .collect::<Vec<_>>()
    };
    publish(&device, "alnrisk/v1/hospital-a/mri1-jetson/result");
    publish(&device, "alnrisk/v1/hospital-a/mri2-jetson/result"); // another device's topic
    publish(&device, "alnrisk/v1/hospital-b/mri1-jetson/result"); // another site
    publish(&dash, "alnrisk/v1/hospital-a/mri1-jetson/event"); // dashboards only read
    publish(&device, "alnrisk/v1/hospital-a/mri1-jetson/event");
    let t = Instant::now();
    while seen().len() < 2 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let got = seen();
    assert_eq!(
        got,
        [
            "alnrisk/v1/hospital-a/mri1-jetson/result",
            "alnrisk/v1/hospital-a/mri1-jetson/event"
        ],
        "only the device's own topics get through"
    );
}
