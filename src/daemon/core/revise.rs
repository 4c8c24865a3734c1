//! What the core decides about ROIs for answered series ([`super::super::revision`] says what counts as a
//! revision; the [`Revisions`](super::super::revision::Revisions) component holds them while they are read and
//! computed).

use std::path::{Path, PathBuf};

use super::Core;
use crate::daemon::assemble::ReadySeries;
use crate::daemon::assemble::{RoiCandidate, supersedes};
use crate::daemon::event::EventKind;
use crate::daemon::ledger::LedgerRecord;
use crate::daemon::payload::{FolderKey, RoiKey, SeriesKey, StudyKey};
use crate::daemon::revision::RevisionRequest;
use crate::daemon::store::Store;
use crate::error::{Error, Result};

/// What the daemon's core does with ROIs for answered series.
impl<S: Store> Core<S> {
    /// Whether an answer of this bundle already used this ROI or set it aside for a newer one (a restart, or the
    /// same ROI exported again).
    pub(super) fn roi_known(&self, roi: &RoiCandidate) -> bool {
        let used = self
            .store
            .ledger()
            .known_roi(&RoiKey::of(&self.secret, &roi.id), self.model.bundle_sha256());
        if used {
            tracing::debug!("ROI already used or set aside by this bundle");
        }
        used
    }

    /// A ROI for a series already answered: a revision, unless it is the answer's own ROI or one set aside for
    /// it (nothing to do), was drawn before the ROI of the answer (reported, not applied), or the answer predates
    /// ROI identities (nothing can be said).
    pub(super) fn on_revised_roi(&mut self, roi: RoiCandidate, of: LedgerRecord) {
        let key = RoiKey::of(&self.secret, &roi.id);
        if of.roi_key.as_ref() == Some(&key) || of.set_aside_roi_keys.contains(&key) {
            return;
        }
        let file = self.file_ref(&roi.path);
        if of.roi_key.is_none() {
            tracing::info!(
                file,
                "ROI for a series answered before ROIs were identified: not a revision"
            );
            return;
        }
        if self.drawn_too_early(&roi, &of, "the series was answered with; the answer stands") {
            return;
        }
        self.event(
            EventKind::RoiRevised,
            format!("{file}: a newer ROI for a series already answered; computing it again"),
            Some(of.study_key.clone()),
        );
        self.revisions.queue(RevisionRequest { roi, of });
    }

    /// The keys of the folders `files` lie in, relative to the export folder ([`FolderKey::of_path`]).
    pub(super) fn folder_keys(&self, files: &[PathBuf]) -> Vec<FolderKey> {
        let root = &self.cfg.watch.export_dir;
        let mut keys: Vec<FolderKey> = files
            .iter()
            .filter_map(|f| f.parent()?.strip_prefix(root).ok())
            .map(|rel| FolderKey::of_path(&self.secret, rel))
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// The latest answer of the one series this bundle answered from a folder that owns the label map `label` by
    /// the folder rule ([`crate::daemon::assemble::label_near`]), found through the ledger's folder keys among the
    /// folders `near` it (its own, its siblings and their sub-folders: [`crate::daemon::intake`]).
    /// `None` when none or several.
    pub(super) fn answered_beside(&self, label: &Path, near: &[PathBuf]) -> Option<LedgerRecord> {
        let root = &self.cfg.watch.export_dir;
        let sha = self.model.bundle_sha256();
        let ledger = self.store.ledger();
        let mut series: Vec<SeriesKey> = near
            .iter()
            .filter(|d| crate::daemon::assemble::label_near(label, std::slice::from_ref(d)))
            .filter_map(|d| d.strip_prefix(root).ok())
            .filter_map(|rel| ledger.series_in_folder(&FolderKey::of_path(&self.secret, rel), sha))
            .collect();
        series.sort();
        series.dedup();
        match series.as_slice() {
            [one] => ledger.latest(one, sha),
            _ => None,
        }
    }

    /// The series' first answer was committed: weigh the ROIs that arrived for it while it was computed.
    pub(super) fn revise_awaiting(&mut self, answer: &LedgerRecord) {
        for roi in self.revisions.take_awaiting(&answer.series_key) {
            self.on_revised_roi(roi, answer.clone());
        }
    }

    /// The series failed: the ROIs that arrived for it while it was computed are reported, not used.
    pub(super) fn drop_awaiting(&mut self, series_key: &SeriesKey, why: &str) {
        for roi in self.revisions.take_awaiting(series_key) {
            let file = self.file_ref(&roi.path);
            self.event(EventKind::IgnoredFile, format!("{file}: {why}"), None);
        }
    }

    /// The next revision whose series has none in progress, checked against the series' latest answer (an
    /// earlier revision may have committed since it was queued).
    pub(super) fn next_revision(&mut self) -> Option<RevisionRequest> {
        while let Some(mut req) = self.revisions.take_next() {
            if let Some(latest) = self
                .store
                .ledger()
                .latest(&req.of.series_key, self.model.bundle_sha256())
            {
                req.of = latest;
            }
            if self.roi_known(&req.roi) {
                continue;
            }
            if self.drawn_too_early(&req.roi, &req.of, "of a later revision; that revision stands") {
                continue;
            }
            self.revisions.started(&req.of.series_key);
            return Some(req);
        }
        None
    }

    /// The images of a revision were read: queue it for a worker, or report why it cannot be computed.
    pub(super) fn on_recollected(&mut self, req: RevisionRequest, got: Result<ReadySeries>) {
        match got {
            Ok(ready) => self.revisions.recollected(ready),
            Err(e) => {
                self.revisions.finished(&req.of.series_key);
                let detail = e.neutral();
                self.revision_failed(&req.roi.path, &req.of.study_key, &req.of.series_key, &e, detail);
            }
        }
    }

    /// Whether `roi` says it was drawn before the ROI `of` was computed from; then it is reported
    /// (`roi_not_applied`: "drawn before the ROI {what}") and not applied.
    fn drawn_too_early(&mut self, roi: &RoiCandidate, of: &LedgerRecord, what: &str) -> bool {
        if supersedes(roi.drawn_at.as_deref(), of.roi_drawn_at.as_deref()) {
            return false;
        }
        let file = self.file_ref(&roi.path);
        self.event(
            EventKind::RoiNotApplied,
            format!("{file}: drawn before the ROI {what}"),
            Some(of.study_key.clone()),
        );
        true
    }

    /// A revision could not be read or computed: the series' answer stands; only the new ROI goes to quarantine.
    pub(super) fn revision_failed(
        &mut self,
        roi: &Path,
        study_key: &StudyKey,
        series_key: &SeriesKey,
        err: &Error,
        detail: String,
    ) {
        self.event(EventKind::RevisionFailed, detail, Some(study_key.clone()));
        self.quarantine(vec![roi.to_path_buf()], err, Some((series_key, study_key)));
    }
}
