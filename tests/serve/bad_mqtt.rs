//! Bad input over MQTT: `cmd/ln-status` messages that are not JSON, are of the wrong type, carry an unknown field or
//! are 10 MB, and LN reads for studies this box never saw (keys of another site) by the thousand. Each gets an event
//! and a count; the daemon stays connected, its memory and its pending-reads file stay bounded, and a good read
//! still updates the answer. The messages go in with `mosquitto_pub`, as any other client would send them.

use super::harness::*;

/// Publish each line of `lines` as one message on `topic` (`mosquitto_pub -l`), QoS 1.
fn publish_lines(port: u16, topic: &str, lines: &str) {
    let mut child = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", topic, "-l"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub (package mosquitto-clients) must be installed");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
}

/// Publish the file `file` as one message on `topic`.
fn publish_file(port: u16, topic: &str, file: &Path) {
    let st = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1", "-t", topic, "-f"])
        .arg(file)
        .status()
        .expect("mosquitto_pub (package mosquitto-clients) must be installed");
    assert!(st.success());
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

#[test]
fn bad_ln_reads_over_mqtt_are_each_reported_and_counted_with_bounded_memory_and_no_crash() {
    let broker = Mosquitto::new("bad-mqtt", "");
    let sub = Subscriber::new(broker.port, "bad-mqtt-sub");
    // The daemon keeps 4,096 pending reads by default; a smaller bound shows the same bounding with fewer
    // messages (each read is an fsynced line and an fsynced event: 12,000 of them took minutes on a loaded 2-core
    // CI machine).
    let bound = 256;
    let d = Daemon::with(
        "bad-mqtt",
        DaemonOpts {
            pending_ln_reads_max: Some(bound),
            ..DaemonOpts::external(broker.port)
        },
    );
    let src = exam(15);
    d.drop_exam(&src, "a", ReplayStyle::Atomic);
    let key = key_of(&src);
    sub.wait("result", 1, Duration::from_secs(60));
    let pid = d.child.as_ref().unwrap().id();
    let rss_before = rss_kib(pid);
    let topic = "alnrisk/v1/test-site/bad-mqtt/cmd/ln-status";

    // not JSON; JSON of the wrong type (an array, a number as key, an object as status); an unknown field
    let malformed = [
        "this is not JSON {{{".to_string(),
        "[1, 2, 3]".to_string(),
        r#"{"study_key": 5, "mri_ln_status": "positive"}"#.to_string(),
        format!(r#"{{"study_key": "{key}", "mri_ln_status": {{"read": "positive"}}}}"#),
        format!(r#"{{"study_key": "{key}", "mri_ln_status": "positive", "patient": "DOE^JANE"}}"#),
        format!(r#"{{"study_key": "{key}", "mri_ln_status": "maybe"}}"#),
    ];
    publish_lines(broker.port, topic, &(malformed.join("\n") + "\n"));
    // 10 MB that begins like an LN read
    let big = tmp("bad-mqtt-big").join("big.json");
    let mut body = format!(r#"{{"study_key": "{key}", "mri_ln_status": "positive", "pad": ""#).into_bytes();
    body.resize(10 * 1024 * 1024, b'x');
    body.extend_from_slice(b"\"}");
    std::fs::write(&big, &body).unwrap();
    publish_file(broker.port, topic, &big);
    let bad = malformed.len() + 1;
    wait_for("a bad_ln_read event per bad message", Duration::from_secs(30), || {
        sub.of("event").iter().filter(|e| e["event"] == "bad_ln_read").count() >= bad
    });

    // LN reads for studies this box never saw, by the thousand (keys of another site), past twice the bound the
    // daemon keeps, so the pending file is rewritten more than once
    let unknown = 5 * bound;
    let lines: String = (0..unknown)
        .map(|k| {
            let other = StudyKey::of(b"another site's secret", &format!("1.2.3.{k}"));
            format!(
                "{{\"study_key\": \"{}\", \"mri_ln_status\": \"negative\"}}\n",
                other.as_str()
            )
        })
        .collect();
    publish_lines(broker.port, topic, &lines);
    wait_for(
        "an ln_read_pending event per unknown study",
        Duration::from_secs(180),
        || d.metric("alnrisk_events_total", Some(("event", "ln_read_pending"))) >= unknown as f64,
    );

    // every bad message counted and reported, none applied; the daemon is up, connected and bounded
    assert_eq!(
        d.metric("alnrisk_events_total", Some(("event", "bad_ln_read"))),
        bad as f64,
        "{}",
        d.log_text()
    );
    let events = sub.of("event");
    let details: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "bad_ln_read")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert!(
        details.iter().any(|t| t.contains("bytes")),
        "the 10 MB message is reported by its size: {details:?}"
    );
    assert!(details.iter().all(|t| !t.contains("DOE")), "{details:?}");
    assert!(
        sub.of("result").iter().all(|r| r["kind"] == "result"),
        "no bad message was applied"
    );
    assert!(d.child.as_ref().is_some_and(|_| rss_kib(pid) > 0), "the daemon runs");
    assert_eq!(d.metric("alnrisk_mqtt_connected", None), 1.0);
    let rss_after = rss_kib(pid);
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory bounded: {rss_before} KiB before, {rss_after} KiB after"
    );
    let pending = std::fs::read_to_string(d.state.join("ln-reads-pending.jsonl")).unwrap_or_default();
    assert!(
        (bound..=2 * bound + 1).contains(&pending.lines().count()),
        "the pending LN reads file is bounded: {} lines",
        pending.lines().count()
    );

    // a good read still works
    publish_lines(
        broker.port,
        topic,
        &format!("{{\"study_key\": \"{key}\", \"mri_ln_status\": \"positive\"}}\n"),
    );
    wait_for("the update", Duration::from_secs(30), || {
        sub.of("result").iter().any(|r| r["kind"] == "update")
    });
    let update = sub.of("result").into_iter().find(|r| r["kind"] == "update").unwrap();
    assert_eq!(update["mri_ln_status"], "positive");
}
