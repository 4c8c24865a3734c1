//! Nothing committed is lost: broker outages, `kill -9`, the event spool, a full spool, low disk, and MQTT 3.1.1 fallback.

use super::harness::*;

#[test]
fn broker_outage_results_arrive_in_order_exactly_once() {
    let mut broker = Mosquitto::new("outage", "");
    let sub = Subscriber::new(broker.port, "outage-sub");
    let d = Daemon::new("outage", broker.port);
    sub.wait("status", 1, Duration::from_secs(10));
    broker.stop();
    wait_for("the daemon to see the outage", Duration::from_secs(30), || {
        d.metric("alnrisk_mqtt_connected", None) == 0.0
    });
    d.drop_exam(&exam(4), "a", ReplayStyle::Atomic);
    wait_for("result A spooled", Duration::from_secs(60), || {
        d.metric("alnrisk_outbox_depth", None) == 1.0
    });
    d.drop_exam(&exam(5), "b", ReplayStyle::Atomic);
    wait_for("result B spooled", Duration::from_secs(60), || {
        d.metric("alnrisk_outbox_depth", None) == 2.0
    });
    assert_eq!(std::fs::read_dir(d.state.join("spool")).unwrap().count(), 2);
    broker.start();
    let results = sub.wait("result", 2, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
    let results_after = sub.of("result");
    assert_eq!(results_after.len(), 2, "exactly once: {results_after:?}");
    assert_eq!(results[0]["study_key"], key_of(&exam(4)).as_str());
    assert_eq!(results[1]["study_key"], key_of(&exam(5)).as_str());
    wait_for("the spool to drain", Duration::from_secs(10), || {
        d.metric("alnrisk_outbox_depth", None) == 0.0
    });
    assert_eq!(std::fs::read_dir(d.state.join("spool")).unwrap().count(), 0);
}

#[test]
fn kill_9_mid_series_then_restart_publishes_once_and_loses_no_file() {
    let broker = Mosquitto::new("crash", "");
    let sub = Subscriber::new(broker.port, "crash-sub");
    let mut d = Daemon::new("crash", broker.port);
    let src = exam(6);
    let files = alnrisk::ingest::list_files(&src).unwrap();
    // Half the series, then the daemon dies.
    for f in &files[..files.len() / 2] {
        let dest = d.export.join("x").join(f.strip_prefix(&src).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(f, dest).unwrap();
    }
    std::thread::sleep(Duration::from_millis(800));
    d.kill9();
    for f in &files[files.len() / 2..] {
        let dest = d.export.join("x").join(f.strip_prefix(&src).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(f, dest).unwrap();
    }
    d.start();
    let r = sub.wait("result", 1, Duration::from_secs(60));
    assert_eq!(r[0]["study_key"], key_of(&src).as_str());
    // Killed again after publishing: the broker publishes the last will (retained `offline`) ...
    d.kill9();
    wait_for("the last will", Duration::from_secs(10), || {
        sub.of("status").last().is_some_and(|s| s["state"] == "offline")
    });
    // ... and after a restart the ledger keeps the study from being published twice, even when the console
    // exports the same series again under another folder.
    d.start();
    d.drop_exam(&src, "again", ReplayStyle::Atomic);
    std::thread::sleep(Duration::from_secs(5));
    // Killed before the broker's PUBACK reached it, the daemon sends its spooled result again on restart (QoS 1
    // is at least once): the same message, which a subscriber drops by its id. A second answer would be a new id.
    let results = sub.of("result");
    let ids: std::collections::BTreeSet<&str> = results.iter().map(|r| r["message_id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1, "published once: {results:?}");
    assert!(
        results.iter().all(|r| r == &results[0]),
        "a redelivery is the same message"
    );
    assert!(sub.of("status").last().is_some_and(|s| s["state"] == "online"));
    assert_eq!(count_files(&d.export.join("x")), files.len(), "no file lost");
    assert_eq!(
        d.metric("alnrisk_series_processed_total", Some(("outcome", "published"))),
        0.0
    );
    assert!(quarantine_notes(&d.state).is_empty());
    assert!(d.log_text().contains("serving"));
}

#[test]
fn events_are_spooled_through_a_broker_outage_and_a_restart_none_lost() {
    let mut broker = Mosquitto::new("events", "");
    let sub = Subscriber::new(broker.port, "events-sub");
    broker.stop();
    let mut d = Daemon::new("events", broker.port);
    // More bad files than an in-memory event queue would have held (it was 256), while the broker is down.
    let junk = d.export.join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    for k in 0..300 {
        std::fs::write(junk.join(format!("N{k:03}.dcm")), format!("not DICOM {k}\n")).unwrap();
    }
    wait_for("300 quarantined", Duration::from_secs(60), || {
        quarantine_notes(&d.state).len() == 300
    });
    wait_for("300 events spooled", Duration::from_secs(10), || {
        d.metric("alnrisk_event_outbox_depth", None) == 300.0
    });
    assert_eq!(std::fs::read_dir(d.state.join("events")).unwrap().count(), 300);
    // The daemon dies and comes back before the broker does: the events are still there.
    d.kill9();
    d.start();
    assert_eq!(d.metric("alnrisk_event_outbox_depth", None), 300.0);
    broker.start();
    let events = sub.wait("event", 300, Duration::from_secs(60));
    let files: std::collections::BTreeSet<String> = events
        .iter()
        .filter(|e| e["event"] == "quarantined")
        // each file is named by its reference (`file <12 hex>`), never by its name
        .filter_map(|e| {
            e["detail"]
                .as_str()
                .and_then(|s| s.split(':').next())
                .filter(|r| r.starts_with("file "))
                .map(str::to_string)
        })
        .collect();
    assert_eq!(files.len(), 300, "every quarantined file's event arrived");
    wait_for("the event spool to drain", Duration::from_secs(20), || {
        d.metric("alnrisk_event_outbox_depth", None) == 0.0
    });
    assert_eq!(std::fs::read_dir(d.state.join("events")).unwrap().count(), 0);
    assert_eq!(d.metric("alnrisk_events_dropped_total", None), 0.0);
}

#[test]
fn full_spool_raises_an_alarm_holds_the_result_and_deletes_nothing() {
    let mut broker = Mosquitto::new("spool", "");
    let sub = Subscriber::new(broker.port, "spool-sub");
    broker.stop();
    let d = Daemon::with(
        "spool",
        DaemonOpts {
            spool_max_entries: 1,
            ..DaemonOpts::external(broker.port)
        },
    );
    d.drop_exam(&exam(8), "a", ReplayStyle::Atomic);
    wait_for("result A spooled", Duration::from_secs(60), || {
        d.metric("alnrisk_outbox_depth", None) == 1.0
    });
    d.drop_exam(&exam(9), "b", ReplayStyle::Atomic);
    wait_for("the spool_full alarm", Duration::from_secs(60), || {
        d.metric("alnrisk_alarms_total", Some(("alarm", "spool_full"))) == 1.0
    });
    assert_eq!(
        std::fs::read_dir(d.state.join("spool")).unwrap().count(),
        1,
        "nothing deleted, nothing over the bound"
    );
    assert_eq!(http_get(&d.metrics, "/health/ready").unwrap().0, 503);
    assert_eq!(count_files(&d.export), count_files(&exam(8)) + count_files(&exam(9)));
    broker.start();
    let results = sub.wait("result", 2, Duration::from_secs(60));
    assert_eq!(results[0]["study_key"], key_of(&exam(8)).as_str());
    assert_eq!(results[1]["study_key"], key_of(&exam(9)).as_str());
    let events = sub.wait("event", 1, Duration::from_secs(20));
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "spool_full" && e["severity"] == "alarm"),
        "{events:?}"
    );
}

#[test]
fn falls_back_to_mqtt_3_1_1_when_the_broker_does_not_speak_5() {
    // rumqttd with only a 3.1.1 listener, in this test process.
    let port = free_port();
    alnrisk::daemon::broker::start_embedded_version("127.0.0.1", port, alnrisk::daemon::mqtt::Version::V311).unwrap();
    let d = Daemon::new("v311", port);
    wait_for("a 3.1.1 connection", Duration::from_secs(30), || {
        d.metric("alnrisk_mqtt_connected", None) == 1.0
    });
    d.drop_exam(&exam(13), "a", ReplayStyle::Atomic);
    // PUBACKs are counted only when the broker sends them.
    wait_for("the result acknowledged", Duration::from_secs(60), || {
        d.metric("alnrisk_messages_published_total", None) == 1.0
    });
    assert!(d.log_text().contains("V311"), "{}", d.log_text());
}

#[test]
fn low_free_space_on_the_state_disk_raises_one_alarm_and_the_daemon_is_not_ready() {
    let broker = Mosquitto::new("disk", "");
    let sub = Subscriber::new(broker.port, "disk-sub");
    // No disk has a billion terabytes free: the alarm must go out.
    let d = Daemon::with(
        "disk",
        DaemonOpts {
            min_free_mb: 1 << 40,
            ..DaemonOpts::external(broker.port)
        },
    );
    let ev = sub.wait("event", 1, Duration::from_secs(20));
    let alarm = ev.iter().find(|e| e["event"] == "disk_low").expect("a disk_low event");
    assert_eq!(alarm["severity"], "alarm");
    assert!(alarm["detail"].as_str().unwrap().contains("MB free"), "{alarm}");
    assert_eq!(http_get(&d.metrics, "/health/ready").unwrap().0, 503);
    assert!(d.metric("alnrisk_state_free_bytes", None) > 0.0);
    // one alarm per episode, not one per check
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(d.metric("alnrisk_alarms_total", Some(("alarm", "disk_low"))), 1.0);
}

/// A tmpfs of `mb` MiB mounted on `dir` for the test's life (the test runs as root, as `.ci/run` does).
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: PathBuf, mb: usize) -> SmallDisk {
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount");
        assert!(
            st.success(),
            "this test fills a real file system: it mounts a tmpfs, which needs root (CAP_SYS_ADMIN)"
        );
        SmallDisk(dir)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_state_disk_that_fills_up_holds_the_result_with_alarms_quarantines_nothing_and_publishes_it_once_there_is_room() {
    let broker = Mosquitto::new("enospc", "");
    let sub = Subscriber::new(broker.port, "enospc-sub");
    let disk = SmallDisk::mount(tmp("enospc-state"), 16);
    let d = Daemon::with(
        "enospc",
        DaemonOpts {
            state_dir: Some(disk.0.join("state")),
            ..DaemonOpts::external(broker.port)
        },
    );
    wait_for("online", Duration::from_secs(20), || {
        sub.of("status").iter().any(|s| s["state"] == "online")
    });
    // fill the state disk to the last byte: every write of the daemon now fails with ENOSPC
    let filler = disk.0.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        while f.write_all(&chunk).is_ok() {}
        let small = [0u8; 512];
        while f.write_all(&small).is_ok() {}
        let _ = f.sync_all();
    }
    d.drop_exam(&exam(6), "a", ReplayStyle::Atomic);
    wait_for(
        "the spool_full alarm of a spool write that failed",
        Duration::from_secs(90),
        || d.metric("alnrisk_alarms_total", Some(("alarm", "spool_full"))) >= 1.0,
    );
    assert_eq!(
        http_get(&d.metrics, "/health/ready").unwrap().0,
        503,
        "not ready while it cannot spool"
    );
    assert!(sub.of("result").is_empty(), "nothing is published before it is spooled");
    assert_eq!(
        count_files(&d.export),
        count_files(&exam(6)),
        "the export folder is untouched"
    );
    assert_eq!(
        d.metric("alnrisk_quarantined_total", None),
        0.0,
        "a full disk is not the input's fault"
    );
    // room again: the held result is spooled and published, once
    std::fs::remove_file(&filler).unwrap();
    let results = sub.wait("result", 1, Duration::from_secs(60));
    assert_eq!(results[0]["study_key"], key_of(&exam(6)).as_str());
    wait_for("ready again", Duration::from_secs(30), || {
        http_get(&d.metrics, "/health/ready").is_some_and(|(c, _)| c == 200)
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(sub.of("result").len(), 1, "exactly once");
    assert!(d.child.is_some(), "the daemon ran through it");
    drop(d);
}
