//! TLS to the broker: the right CA connects, another CA is refused.

use super::harness::*;

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn tls_refuses_a_broker_signed_by_another_ca_and_connects_with_the_right_one() {
    let dir = tmp("tls-certs");
    // the real CA and the broker's certificate (localhost), and an unrelated CA
    let self_signed = |key: &str, crt: &str, subject: &str| {
        let args = [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", crt, "-days", "2",
        ];
        openssl(&[&args[..], &["-subj", subject]].concat(), &dir);
    };
    self_signed("ca.key", "ca.crt", "/CN=alnrisk test CA");
    self_signed("other.key", "other.crt", "/CN=someone else");
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        &dir,
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
        &dir,
    );
    let tls_port = free_port();
    let broker = Mosquitto::new(
        "tls",
        &format!(
            "listener {tls_port} 127.0.0.1\ncafile {d}/ca.crt\ncertfile {d}/server.crt\nkeyfile {d}/server.key\n",
            d = dir.display()
        ),
    );
    let sub = Subscriber::new(broker.port, "tls-sub");
    let tls = |ca: &str| {
        format!(
            "broker = \"external\"\nhost = \"localhost\"\nport = {tls_port}\nreconnect_ms = 300\n[mqtt.tls]\nca = \"{}\"\n",
            dir.join(ca).display()
        )
    };
    let wrong = Daemon::with("tls-wrong", DaemonOpts::mqtt(tls("other.crt")));
    assert_never_connects(&wrong);
    assert!(
        sub.of("status").iter().all(|s| s["state"] != "online"),
        "the wrong-CA daemon must not get through"
    );
    let log = wrong.log_text();
    assert!(
        log.to_lowercase().contains("certificate") || log.to_lowercase().contains("tls"),
        "{log}"
    );
    let right = Daemon::with("tls-right", DaemonOpts::mqtt(tls("ca.crt")));
    wait_for("TLS connection", Duration::from_secs(20), || {
        right.metric("alnrisk_mqtt_connected", None) == 1.0
    });
    right.drop_exam(&exam(10), "a", ReplayStyle::Atomic);
    let r = sub.wait("result", 1, Duration::from_secs(60));
    assert_eq!(r[0]["study_key"], key_of(&exam(10)).as_str());
    assert_valid(&r[0]);
}
