//! `alnrisk serve` end to end, as separate processes against a real mosquitto on loopback (installed by
//! `.ci/run`): the synthetic and the real UCSF-BR-06 examination checked against the JSON Schema, the LN read
//! update, a broker outage, `kill -9` in the middle of a series, a burst of bad files, a full spool, TLS with the
//! right and a wrong CA, the shipped broker and daemon configurations with client certificates and the ACL, and `/metrics` parsed as Prometheus text. The bundle is fitted once (reduced-width VGG,
//! small synthetic cohort) and signed with a key made here.
//!
//! One test binary, split by concern (one bundle fitted for all): [`harness`] holds the fixture, the subscriber
//! and the daemon under test; the other modules are the tests.

#[path = "../common/mod.rs"]
mod common;
mod harness;

mod aarch64;
mod bad_mqtt;
mod board;
mod console;
mod delivery;
mod end_to_end;
mod factors;
mod fleet;
mod intake;
mod package;
mod pacs;
mod privacy;
mod revision;
mod shipped;
mod tls;
