//! The shipped files, tested as shipped: mosquitto runs on `firmware-config/mosquitto/mosquitto.conf` and its ACL
//! with only the paths and the listener's port rewritten, and the daemon on `firmware-config/alnrisk.toml` with only
//! paths, host and ports rewritten. The certificates (a site CA, the broker's, one per user) and the passwords are
//! made here for the user names the shipped files name. What must hold:
//! - the device connects with its client certificate and password, and publishes;
//! - the same certificate with a wrong password, and a certificate from another CA, are refused;
//! - a dashboard reads every device of its site but cannot publish (not a result, not an LN read);
//! - the LN bridge writes `cmd/ln-status` (the daemon answers with an update) and nothing else, and reads nothing;
//! - another device's user can neither read nor write this device's topics, and still writes its own.

use super::harness::*;
use alnrisk::daemon::config::TlsConfig;
use rumqttc::v5::MqttOptions;

const DASHBOARD: &str = "dashboard-hospital-a";
const BRIDGE: &str = "ln-bridge-hospital-a";
const OTHER_DEVICE: &str = "alnrisk-hospital-a-mri2-jetson";

fn shipped(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("firmware-config").join(path))
        .expect("a shipped file")
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA `name` (key `name.key`, certificate `name.crt`) in `dir`.
fn make_ca(dir: &Path, name: &str) {
    let (key, crt, subj) = (format!("{name}.key"), format!("{name}.crt"), format!("/CN={name} CA"));
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &crt, "-days", "2", "-subj",
            &subj,
        ],
    );
}

/// The extensions of a client certificate, as `firmware-config/mosquitto/README.md` makes them (an X.509 v3
/// certificate: rustls refuses the v1 that `openssl x509 -req` makes without extensions).
const CLIENT_EXT: &str =
    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n";

/// A certificate `name.crt` (key `name.key`) with common name `cn` and the extensions `ext`, signed by the CA `ca`.
fn make_cert(dir: &Path, ca: &str, name: &str, cn: &str, ext: &str) {
    let (key, csr, crt) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.crt"));
    let subj = format!("/CN={cn}");
    openssl(
        dir,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", &subj,
        ],
    );
    let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
    let mut args = vec![
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca_crt,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &crt,
        "-days",
        "2",
    ];
    let ext_file = format!("{name}.ext");
    std::fs::write(dir.join(&ext_file), ext).unwrap();
    args.extend(["-extfile", &ext_file]);
    openssl(dir, &args);
}

fn password_of(user: &str) -> String {
    format!("pw-{user}-{}", std::process::id())
}

/// A client of the test broker as `user`, with the client certificate `cert` (signed by the CA `ca`).
fn client_options(dir: &Path, port: u16, user: &str, password: &str, ca: &str, cert: &str) -> MqttOptions {
    let tls = TlsConfig {
        ca: dir.join(format!("{ca}.crt")),
        cert: Some(dir.join(format!("{cert}.crt"))),
        key: Some(dir.join(format!("{cert}.key"))),
    };
    let rustls = alnrisk::daemon::mqtt::tls_config(&tls).expect("the test certificates load");
    let mut o = MqttOptions::new(format!("{user}-{}", std::process::id()), "localhost", port);
    o.set_credentials(user, password);
    o.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(
        std::sync::Arc::new(rustls),
    )));
    o
}

/// Replace `from` by `to` in `text`, which must contain it (so a changed shipped file fails here, not silently).
fn rewrite(text: &mut String, from: &str, to: &str) {
    assert!(text.contains(from), "the shipped file no longer has {from:?}");
    *text = text.replace(from, to);
}

#[test]
fn the_shipped_broker_and_daemon_configs_work_as_shipped_with_client_certificates_passwords_and_the_acl() {
    let dir = tmp("shipped");
    let tls = dir.join("tls");
    std::fs::create_dir_all(&tls).unwrap();

    // the daemon's configuration as shipped: who it is, to the broker
    let mut daemon_toml: toml::Table = shipped("alnrisk.toml")
        .parse()
        .expect("the shipped alnrisk.toml parses");
    let device_user = daemon_toml["mqtt"]["username"]
        .as_str()
        .expect("mqtt.username")
        .to_string();
    let site = daemon_toml["site"]["site"].as_str().unwrap().to_string();
    let device = daemon_toml["site"]["device"].as_str().unwrap().to_string();
    let acl = shipped("mosquitto/alnrisk.acl");
    assert!(
        acl.lines().any(|l| l.trim() == format!("user {device_user}")),
        "the shipped ACL has no block for the shipped device user {device_user}"
    );

    // certificates: the site CA signs the broker's and every user's; another CA signs an impostor's
    make_ca(&tls, "ca");
    make_ca(&tls, "other-ca");
    make_cert(
        &tls,
        "ca",
        "broker",
        "localhost",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    );
    for user in [device_user.as_str(), DASHBOARD, BRIDGE, OTHER_DEVICE] {
        make_cert(&tls, "ca", user, user, CLIENT_EXT);
    }
    make_cert(&tls, "other-ca", "impostor", &device_user, CLIENT_EXT);
    // mosquitto may drop to its own user: let it read what it needs
    for e in std::fs::read_dir(&tls).unwrap().flatten() {
        std::fs::set_permissions(e.path(), std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    }
    let passwd = dir.join("alnrisk.passwd");
    for user in [device_user.as_str(), DASHBOARD, BRIDGE, OTHER_DEVICE] {
        let st = Command::new("mosquitto_passwd")
            .arg("-b")
            .args(if passwd.exists() { vec![] } else { vec!["-c"] })
            .arg(&passwd)
            .arg(user)
            .arg(password_of(user))
            .status()
            .expect("mosquitto_passwd (package mosquitto) must be installed");
        assert!(st.success());
    }
    std::fs::write(dir.join("alnrisk.acl"), &acl).unwrap();
    let persist = dir.join("persist");
    std::fs::create_dir_all(&persist).unwrap();
    std::fs::set_permissions(&persist, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();

    // the broker's configuration as shipped, paths and listener rewritten
    let port = free_port();
    let mut conf = shipped("mosquitto/mosquitto.conf");
    let d = dir.display().to_string();
    rewrite(
        &mut conf,
        "/etc/mosquitto/alnrisk.passwd",
        &format!("{d}/alnrisk.passwd"),
    );
    rewrite(&mut conf, "/etc/mosquitto/alnrisk.acl", &format!("{d}/alnrisk.acl"));
    rewrite(&mut conf, "/etc/mosquitto/tls/", &format!("{d}/tls/"));
    rewrite(&mut conf, "/var/lib/mosquitto/", &format!("{d}/persist/"));
    rewrite(
        &mut conf,
        "\nlistener 8883\n",
        &format!("\nlistener {port} 127.0.0.1\n"),
    );
    let conf_path = dir.join("mosquitto.conf");
    std::fs::write(&conf_path, &conf).unwrap();
    let _broker = Mosquitto::with_config(conf_path, port);

    let connect = |user: &str, password: &str, ca: &str, cert: &str| {
        Listener::connect(client_options(&tls, port, user, password, ca, cert), "alnrisk/#")
    };
    let dashboard = connect(DASHBOARD, &password_of(DASHBOARD), "ca", DASHBOARD).expect("the dashboard connects");
    let bridge = connect(BRIDGE, &password_of(BRIDGE), "ca", BRIDGE).expect("the bridge connects");
    let other = connect(OTHER_DEVICE, &password_of(OTHER_DEVICE), "ca", OTHER_DEVICE).expect("mri2 connects");
    assert!(
        connect(&device_user, "not-the-password", "ca", &device_user).is_err(),
        "the device's certificate with a wrong password must be refused"
    );
    assert!(
        connect(&device_user, &password_of(&device_user), "ca", "impostor").is_err(),
        "a certificate from another CA must be refused"
    );

    // the daemon's configuration as shipped, paths, host and ports rewritten
    let f = fixture();
    let export = dir.join("export");
    let state = dir.join("state");
    std::fs::create_dir_all(&export).unwrap();
    std::fs::write(dir.join("mqtt.password"), password_of(&device_user)).unwrap();
    let metrics = format!("127.0.0.1:{}", free_port());
    let path = |p: &Path| toml::Value::String(p.display().to_string());
    let table = |t: &toml::Table, name: &str| -> toml::Table { t[name].as_table().expect("a table").clone() };
    let (mut watch, mut model, mut mqtt, mut phi, mut st, mut met) = (
        table(&daemon_toml, "watch"),
        table(&daemon_toml, "model"),
        table(&daemon_toml, "mqtt"),
        table(&daemon_toml, "phi"),
        table(&daemon_toml, "state"),
        table(&daemon_toml, "metrics"),
    );
    watch.insert("export_dir".into(), path(&export));
    model.insert("bundle".into(), path(&f.bundle));
    model.insert("public_key".into(), path(&f.public_key));
    mqtt.insert("host".into(), "localhost".into());
    mqtt.insert("port".into(), i64::from(port).into());
    mqtt.insert("password_file".into(), path(&dir.join("mqtt.password")));
    let mut mtls = mqtt["tls"].as_table().unwrap().clone();
    mtls.insert("ca".into(), path(&tls.join("ca.crt")));
    mtls.insert("cert".into(), path(&tls.join(format!("{device_user}.crt"))));
    mtls.insert("key".into(), path(&tls.join(format!("{device_user}.key"))));
    mqtt.insert("tls".into(), mtls.into());
    phi.insert("study_key_secret_file".into(), path(&dir.join("study-key.secret")));
    st.insert("dir".into(), path(&state));
    met.insert("listen".into(), metrics.clone().into());
    for (name, t) in [
        ("watch", watch),
        ("model", model),
        ("mqtt", mqtt),
        ("phi", phi),
        ("state", st),
        ("metrics", met),
    ] {
        daemon_toml.insert(name.into(), t.into());
    }
    let config = dir.join("alnrisk.toml");
    std::fs::write(&config, toml::to_string(&daemon_toml).unwrap()).unwrap();
    std::fs::write(dir.join("study-key.secret"), SECRET_HEX).unwrap();
    let mut daemon = Daemon {
        notify_socket: None,
        config,
        log: dir.join("daemon.log"),
        metrics,
        export: export.clone(),
        state,
        child: None,
        fault_injection: None,
        command: None,
    };
    daemon.start();

    // the device connects with certificate and password and publishes its status and a result
    let topic = |leaf: &str| format!("alnrisk/v1/{site}/{device}/{leaf}");
    wait_for(
        "the device online, seen by the dashboard",
        Duration::from_secs(30),
        || dashboard.of("status").iter().any(|s| s["state"] == "online"),
    );
    daemon.drop_exam(&exam(12), "SYN0012", ReplayStyle::Atomic);
    let key = key_of(&exam(12));
    // production timing: the series is complete after the shipped quiet period (30 s)
    wait_for("the result, at the dashboard", Duration::from_secs(120), || {
        dashboard.of("result").iter().any(|r| r["study_key"] == key.as_str())
    });

    // forbidden: the dashboard and the other device publish on this device's topics, and send LN reads
    let positive = format!(r#"{{"study_key":"{key}","mri_ln_status":"positive"}}"#);
    dashboard
        .publish(&topic("result"), r#"{"forged":"dashboard"}"#)
        .unwrap();
    dashboard.publish(&topic("cmd/ln-status"), &positive).unwrap();
    other.publish(&topic("result"), r#"{"forged":"mri2"}"#).unwrap();
    other.publish(&topic("cmd/ln-status"), &positive).unwrap();
    bridge.publish(&topic("result"), r#"{"forged":"bridge"}"#).unwrap();
    // allowed: mri2 on its own topic; the bridge's LN read
    other
        .publish("alnrisk/v1/hospital-a/mri2-jetson/event", r#"{"own":"mri2"}"#)
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    bridge
        .publish(
            &topic("cmd/ln-status"),
            &format!(r#"{{"study_key":"{key}","mri_ln_status":"negative"}}"#),
        )
        .unwrap();
    wait_for("the update from the bridge's LN read", Duration::from_secs(30), || {
        dashboard.of("result").iter().any(|r| r["kind"] == "update")
    });
    std::thread::sleep(Duration::from_secs(2));

    let results = dashboard.of("result");
    assert!(
        results.iter().all(|r| r.get("forged").is_none()),
        "nobody but the device may write its result topic: {results:?}"
    );
    let updates: Vec<_> = results.iter().filter(|r| r["kind"] == "update").collect();
    assert_eq!(updates.len(), 1, "only the bridge's LN read is applied: {updates:?}");
    assert_eq!(updates[0]["mri_ln_status"], "negative", "{}", updates[0]);
    assert!(
        dashboard.of("event").iter().any(|e| e["own"] == "mri2"),
        "another device still writes its own topics"
    );
    let topics_seen = |l: &Listener| {
        l.inbox
            .lock()
            .unwrap()
            .iter()
            .map(|r| r.topic.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(topics_seen(&bridge), Vec::<String>::new(), "the bridge reads nothing");
    let mri2_saw = topics_seen(&other);
    assert!(
        mri2_saw.iter().all(|t| !t.contains(&format!("/{device}/"))),
        "another device reads none of this device's topics: {mri2_saw:?}"
    );
    assert_eq!(daemon.metric("alnrisk_mqtt_connected", None), 1.0);
}
