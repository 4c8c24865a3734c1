//! The kinds of event the daemon publishes on its `event` topic, each with its one severity: the closed set a
//! dashboard and the fleet's alerting rules key on (`event` in the payload, the `event` label of
//! `alnrisk_events_total`, the `alarm` label of `alnrisk_alarms_total`).

use serde::{Deserialize, Serialize};

/// How bad an event is: `info`, `warning`, `error` or `alarm` in the payload. An alarm needs someone at the
/// box (spool full or stale, state disk low); an error lost a piece of work (a series that failed, kept in
/// quarantine); a warning is bad input handled (a quarantined file, an unreadable LN read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something worth knowing.
    Info,
    /// Bad input, handled.
    Warning,
    /// Work that failed.
    Error,
    /// Needs someone at the box.
    Alarm,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A bad file was moved to quarantine (warning).
    Quarantined,
    /// Quarantined files past `state.quarantine_keep_days` were deleted (info).
    QuarantinePurged,
    /// A file of the export folder is not used (a duplicate, a ROI superseded; warning).
    IgnoredFile,
    /// Files older than `watch.max_age_h` are not computed (info).
    TooOldSkipped,
    /// A series is not breast DCE by the selection rules (info).
    SeriesNotSelected,
    /// A complete series has no ROI yet (warning).
    WaitingForRoi,
    /// A ROI matches no series awaiting one (warning).
    RoiWithoutSeries,
    /// A series could not be computed (error).
    SeriesFailed,
    /// A newer ROI for an answered series: it is computed again (info).
    RoiRevised,
    /// A ROI drawn before the one an answer used is not applied (warning).
    RoiNotApplied,
    /// A revision could not be computed; the answer stands (error).
    RevisionFailed,
    /// An LN read that cannot be used (warning).
    BadLnRead,
    /// An LN read kept for a study not computed yet (info).
    LnReadPending,
    /// An LN read could not be applied to an answer (error).
    LnUpdateFailed,
    /// Inputs outside the training range of the bundle (warning).
    OutOfDistribution,
    /// An acquisition outside the training cohort's (a protocol change at the scanner; warning).
    AcquisitionOutsideTraining,
    /// A spool entry could not be read; it is kept on disk (error).
    SpoolEntryCorrupt,
    /// The result spool has room again (info).
    SpoolFullCleared,
    /// The result spool is full; results are held in memory (alarm).
    SpoolFull,
    /// The oldest spooled result is older than `state.spool_max_age_h` (alarm).
    SpoolStale,
    /// The state disk is below `state.min_free_mb` (alarm).
    DiskLow,
    /// Computing a series failed by alnrisk's own fault (a panic, the GPU, the model), not the input's: it is
    /// tried again and its files stay where they are (alarm).
    ComputeFault,
    /// PACS stored a Structured Report (info).
    ReportSent,
    /// PACS cannot be reached or does not store; reports wait in the spool and are tried again (alarm).
    PacsUnreachable,
    /// PACS stores again after an outage (info).
    PacsReachable,
    /// PACS refused a report for good; it is kept in `pacs/refused/` (alarm).
    ReportRefused,
    /// A DICOM association from an AE title that is not allowed was rejected (warning).
    AssociationRefused,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 27] = [
        EventKind::Quarantined,
        EventKind::QuarantinePurged,
        EventKind::IgnoredFile,
        EventKind::TooOldSkipped,
        EventKind::SeriesNotSelected,
        EventKind::WaitingForRoi,
        EventKind::RoiWithoutSeries,
        EventKind::SeriesFailed,
        EventKind::RoiRevised,
        EventKind::RoiNotApplied,
        EventKind::RevisionFailed,
        EventKind::BadLnRead,
        EventKind::LnReadPending,
        EventKind::LnUpdateFailed,
        EventKind::OutOfDistribution,
        EventKind::AcquisitionOutsideTraining,
        EventKind::SpoolEntryCorrupt,
        EventKind::SpoolFullCleared,
        EventKind::SpoolFull,
        EventKind::SpoolStale,
        EventKind::DiskLow,
        EventKind::ComputeFault,
        EventKind::ReportSent,
        EventKind::PacsUnreachable,
        EventKind::PacsReachable,
        EventKind::ReportRefused,
        EventKind::AssociationRefused,
    ];

    /// How bad it is. An alarm needs someone at the box; an error lost a piece of work; a warning is bad input
    /// handled; info is worth knowing.
    pub fn severity(self) -> Severity {
        use EventKind::*;
        match self {
            SpoolFull | SpoolStale | DiskLow | ComputeFault | PacsUnreachable | ReportRefused => Severity::Alarm,
            SeriesFailed | RevisionFailed | LnUpdateFailed | SpoolEntryCorrupt => Severity::Error,
            Quarantined
            | IgnoredFile
            | WaitingForRoi
            | RoiWithoutSeries
            | RoiNotApplied
            | BadLnRead
            | OutOfDistribution
            | AcquisitionOutsideTraining
            | AssociationRefused => Severity::Warning,
            QuarantinePurged | TooOldSkipped | SeriesNotSelected | RoiRevised | LnReadPending | SpoolFullCleared
            | ReportSent | PacsReachable => Severity::Info,
        }
    }

    /// Whether it is an alarm (also counted in `alnrisk_alarms_total`).
    pub fn is_alarm(self) -> bool {
        self.severity() == Severity::Alarm
    }

    /// The name in the payload and in metric labels (`waiting_for_roi`).
    pub fn name(self) -> &'static str {
        use EventKind::*;
        match self {
            Quarantined => "quarantined",
            QuarantinePurged => "quarantine_purged",
            IgnoredFile => "ignored_file",
            TooOldSkipped => "too_old_skipped",
            SeriesNotSelected => "series_not_selected",
            WaitingForRoi => "waiting_for_roi",
            RoiWithoutSeries => "roi_without_series",
            SeriesFailed => "series_failed",
            RoiRevised => "roi_revised",
            RoiNotApplied => "roi_not_applied",
            RevisionFailed => "revision_failed",
            BadLnRead => "bad_ln_read",
            LnReadPending => "ln_read_pending",
            LnUpdateFailed => "ln_update_failed",
            OutOfDistribution => "out_of_distribution",
            AcquisitionOutsideTraining => "acquisition_outside_training",
            SpoolEntryCorrupt => "spool_entry_corrupt",
            SpoolFullCleared => "spool_full_cleared",
            SpoolFull => "spool_full",
            SpoolStale => "spool_stale",
            DiskLow => "disk_low",
            ComputeFault => "compute_fault",
            ReportSent => "report_sent",
            PacsUnreachable => "pacs_unreachable",
            PacsReachable => "pacs_reachable",
            ReportRefused => "report_refused",
            AssociationRefused => "association_refused",
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_serialises_as_its_name_and_the_alarms_are_the_four_that_need_someone() {
        for k in EventKind::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), serde_json::json!(k.name()));
            let back: EventKind = serde_json::from_value(serde_json::json!(k.name())).unwrap();
            assert_eq!(back, k);
        }
        let alarms: Vec<&str> = EventKind::ALL
            .iter()
            .filter(|k| k.is_alarm())
            .map(|k| k.name())
            .collect();
        assert_eq!(
            alarms,
            [
                "spool_full",
                "spool_stale",
                "disk_low",
                "compute_fault",
                "pacs_unreachable",
                "report_refused"
            ]
        );
        let mut names: Vec<&str> = EventKind::ALL.iter().map(|k| k.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), EventKind::ALL.len(), "names are unique");
        assert_eq!(EventKind::SeriesFailed.severity(), Severity::Error);
        assert_eq!(EventKind::Quarantined.severity(), Severity::Warning);
    }
}
