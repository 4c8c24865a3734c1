//! The board's view of a site, from the messages the boxes publish.

use super::*;

fn status(state: &str) -> Vec<u8> {
    format!(
        r#"{{"schema":"alnrisk.status/1","state":"{state}","bundle":{{"id":"b1","version":"1.0","sha256":"ab"}},"alnrisk_version":"0.1.0","at":"2026-12-03T09:00:00Z"}}"#
    )
    .into_bytes()
}

#[test]
fn status_messages_and_the_last_will_set_a_box_online_and_offline() {
    let mut f = Fleet::new("site-a");
    let b = f
        .on_message("alnrisk/v1/site-a/mri1/status", &status("online"))
        .unwrap();
    assert_eq!((b.state, b.bundle.unwrap().id.as_str()), (Some(BoxState::Online), "b1"));
    let b = f
        .on_message("alnrisk/v1/site-a/mri1/status", &status("offline"))
        .unwrap();
    assert_eq!(b.state, Some(BoxState::Offline));
    assert_eq!(f.boxes().len(), 1);
    // another site, another topic, a body that is not a status: nothing
    assert!(
        f.on_message("alnrisk/v1/site-b/mri1/status", &status("online"))
            .is_none()
    );
    assert!(f.on_message("alnrisk/v1/site-a/mri1/cmd/ln-status", b"{}").is_none());
    assert!(f.on_message("alnrisk/v1/site-a/mri1/status", b"not json").is_none());
    assert!(
        f.on_message("alnrisk/v1/site-a/mri1/status/x", &status("online"))
            .is_none()
    );
    assert_eq!(f.boxes().len(), 1);
}

#[test]
fn only_alarms_and_errors_are_kept_and_at_most_a_few() {
    let mut f = Fleet::new("s");
    let event = |name: &str, severity: &str| {
        format!(
            r#"{{"schema":"alnrisk.event/1","severity":"{severity}","event":"{name}","detail":"d","at":"2026-12-03T09:00:00Z"}}"#
        )
        .into_bytes()
    };
    assert!(
        f.on_message("alnrisk/v1/s/m/event", &event("waiting_for_roi", "info"))
            .is_none()
    );
    for _ in 0..ALARMS_PER_BOX + 3 {
        f.on_message("alnrisk/v1/s/m/event", &event("spool_full", "alarm"));
    }
    let b = &f.boxes()[0];
    assert_eq!(b.alarms.len(), ALARMS_PER_BOX);
    assert_eq!(b.alarms[0].event, "spool_full");
    assert_eq!(b.state, None, "no status seen yet");
}
