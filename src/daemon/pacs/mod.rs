//! The daemon's DICOM network side, beside MQTT: each answer as a Structured Report into PACS, and examinations
//! received over the DICOM network.
//!
//! - [`sr`] writes the report (Comprehensive 3D SR, TID 1500) of an answer, filed into the examination's study.
//! - [`spool`] keeps the reports durably until PACS has them ([`ReportMaker`] on the store's side, at commit:
//!   a report is on disk before its answer is spooled for MQTT; [`ReportSpool`] shared with the sender).
//! - [`scu`] is the sender: C-STORE with retries and backoff, permanent refusals set aside with an alarm.
//! - [`scp`] is the receiver: a C-STORE SCP whose instances enter the export folder's intake.
//! - [`dimse`] writes and reads the C-STORE and C-ECHO command sets that `dicom-ul`'s associations carry.
//!
//! The sender and the receiver run on threads of their own and tell the core what happened ([`PacsNote`]), which
//! makes the events; they count in the metrics themselves. Neither an event nor a metric label names a patient,
//! a UID or an AE title: the identifiers go only into the reports, to the PACS the site configured.

pub mod dimse;
pub mod scp;
pub mod scu;
pub mod spool;
pub mod sr;

pub use self::spool::{ReportMade, ReportMaker, ReportSpool};

/// What the sender or the receiver tells the core (which publishes the events).
#[derive(Debug, Clone, PartialEq)]
pub enum PacsNote {
    /// A report was stored by PACS.
    Sent,
    /// PACS could not be reached or did not store a report (the first failure of an outage; the reason has no
    /// identifier).
    Unreachable(String),
    /// PACS stores again after an outage.
    Reachable,
    /// PACS refused a report for good; it is kept in `pacs/refused/`.
    Refused(String),
    /// An association from an AE title that is not allowed (or calling another AE) was rejected.
    AssociationRefused,
    /// A received instance failed the intake's checks: answered with a failure status, quarantined by the walk.
    ReceivedUnreadable,
}
