//! ROI revisions: a SEG, RTSTRUCT or label map that arrives for a series this bundle has already answered, drawn
//! later than the ROI that answer used (a radiologist corrected the outline and exported it again).
//!
//! The risk shown at the console must follow the ROI the radiologist stands by, so the series is computed again
//! with the new ROI and published as a `revision` whose `updates` names the series' first result (as an LN
//! update does): a dashboard replaces what it shows. The LN read known so far is kept. What counts:
//!
//! - a ROI is known by its identity (SOPInstanceUID; for a label map, the digest of its bytes), recorded in the
//!   ledger with every answer together with the ROIs set aside for it, so a restart or a re-export of a ROI
//!   already used (or already set aside) changes nothing;
//! - a ROI that says it was drawn *before* the one the answer used is not applied
//!   ([`super::assemble::supersedes`]);
//! - the series' images are read again from the export folder (the daemon never moves them unless they fail),
//!   found by their series keys in the ledger record, one copy of each instance; a linked DCE set is linked again
//!   and must be the same set.
//!
//! - a ROI that arrives while its series is being computed waits for the answer, then is weighed the same way.
//!
//! A DICOM ROI names its series, so the ledger finds the answer it revises. A label map has only its folder: the
//! ledger keeps the keys of the folders every answer's images lie in ([`FolderKey::of_path`], HMACs: folder names
//! may name the patient), so a new label map beside an answered series finds it by the folder rule, also after a
//! restart; the assembler does the same for series released but not answered yet.

use std::path::{Path, PathBuf};

use super::assemble::{ReadySeries, RevisionOf, RoiCandidate, supersedes};
use super::core::Daemon;
use super::event::EventKind;
use super::ledger::LedgerRecord;
use super::payload::{FolderKey, RoiKey, SeriesKey, StudyKey};
use crate::error::{Error, Result};
use crate::ingest::header::InstanceHeader;

/// A revised ROI and the latest ledger record of the series it revises.
#[derive(Debug, Clone)]
pub(super) struct RevisionRequest {
    /// The new ROI.
    pub roi: RoiCandidate,
    /// What the series' latest message was computed from.
    pub of: LedgerRecord,
}

/// What the daemon's core does with ROIs for answered series.
impl Daemon {
    /// Whether an answer of this bundle already used this ROI or set it aside for a newer one (a restart, or the
    /// same ROI exported again).
    pub(super) fn roi_known(&self, roi: &RoiCandidate) -> bool {
        let used = self
            .ledger
            .known_roi(&RoiKey::of(&self.secret, &roi.id), &self.predictor.bundle.sha256);
        if used {
            tracing::debug!(file = %roi.path.display(), "ROI already used or set aside by this bundle");
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
        self.revisions.push_back(RevisionRequest { roi, of });
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
    /// the folder rule ([`super::assemble::label_near`]), found through the ledger's folder keys: the label
    /// map's folder, its siblings and their sub-folders, within the export folder. `None` when none or several.
    pub(super) fn answered_beside(&self, label: &Path) -> Option<LedgerRecord> {
        let root = &self.cfg.watch.export_dir;
        let dir = label.parent()?;
        let mut near = vec![dir.to_path_buf()];
        if let Some(exam) = dir.parent().filter(|e| e.starts_with(root)) {
            let subdirs = |d: &Path| -> Vec<PathBuf> {
                std::fs::read_dir(d)
                    .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
                    .unwrap_or_default()
            };
            for sibling in subdirs(exam) {
                near.extend(subdirs(&sibling));
                near.push(sibling);
            }
        }
        let sha = &self.predictor.bundle.sha256;
        let mut series: Vec<&SeriesKey> = near
            .iter()
            .filter(|d| super::assemble::label_near(label, std::slice::from_ref(d)))
            .filter_map(|d| d.strip_prefix(root).ok())
            .filter_map(|rel| {
                self.ledger
                    .series_in_folder(&FolderKey::of_path(&self.secret, rel), sha)
            })
            .collect();
        series.sort();
        series.dedup();
        match series.as_slice() {
            [one] => self.ledger.latest(one, sha).cloned(),
            _ => None,
        }
    }

    /// The series' first answer was committed: weigh the ROIs that arrived for it while it was computed.
    pub(super) fn revise_awaiting(&mut self, answer: &LedgerRecord) {
        for roi in self.take_awaiting(&answer.series_key) {
            self.on_revised_roi(roi, answer.clone());
        }
    }

    /// The ROIs that arrived for the series while it was computed, taken out of the waiting list.
    fn take_awaiting(&mut self, series_key: &SeriesKey) -> Vec<RoiCandidate> {
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.awaiting_answer)
            .into_iter()
            .partition(|(k, _)| k == series_key);
        self.awaiting_answer = later;
        now.into_iter().map(|(_, roi)| roi).collect()
    }

    /// The series failed: the ROIs that arrived for it while it was computed are reported, not used.
    pub(super) fn drop_awaiting(&mut self, series_key: &SeriesKey, why: &str) {
        for roi in self.take_awaiting(series_key) {
            let file = self.file_ref(&roi.path);
            self.event(EventKind::IgnoredFile, format!("{file}: {why}"), None);
        }
    }

    /// The next revision whose series has none in progress, checked against the series' latest answer (an
    /// earlier revision may have committed since it was queued).
    pub(super) fn next_revision(&mut self) -> Option<RevisionRequest> {
        let sha = self.predictor.bundle.sha256.clone();
        while let Some(i) = self
            .revisions
            .iter()
            .position(|r| !self.revising.contains(&r.of.series_key))
        {
            let mut req = self.revisions.remove(i)?;
            if let Some(latest) = self.ledger.latest(&req.of.series_key, &sha) {
                req.of = latest.clone();
            }
            if self.roi_known(&req.roi) {
                continue;
            }
            if self.drawn_too_early(&req.roi, &req.of, "of a later revision; that revision stands") {
                continue;
            }
            self.revising.insert(req.of.series_key.clone());
            return Some(req);
        }
        None
    }

    /// The images of a revision were read: queue it for a worker, or report why it cannot be computed.
    pub(super) fn on_recollected(&mut self, req: RevisionRequest, got: Result<ReadySeries>) {
        match got {
            Ok(ready) => self.revised.push_back(Box::new(ready)),
            Err(e) => {
                self.revising.remove(&req.of.series_key);
                self.revision_failed(&req.roi.path, &req.of.study_key, &req.of.series_key, &e, e.to_string());
            }
        }
    }

    /// Whether `roi` says it was drawn before the ROI `of` was computed from; then it is reported
    /// (`roi_not_applied`: "drawn before the ROI {what}") and not applied.
    fn drawn_too_early(&self, roi: &RoiCandidate, of: &LedgerRecord, what: &str) -> bool {
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
        &self,
        roi: &Path,
        study_key: &StudyKey,
        series_key: &SeriesKey,
        err: &Error,
        detail: String,
    ) {
        self.event(EventKind::RevisionFailed, detail, Some(study_key.clone()));
        self.quarantine(&[roi.to_path_buf()], err, Some((series_key, study_key)));
    }
}

/// Read the headers of every image file in `export_dir` and keep the instances of the series (or linked set) of
/// `req.of`; the revision's [`ReadySeries`] with the new ROI. Blocking: runs in the worker pool.
pub(super) fn collect(export_dir: &Path, secret: &[u8], req: &RevisionRequest) -> Result<ReadySeries> {
    use rayon::prelude::*;
    let of = &req.of;
    let keys: Vec<&SeriesKey> = std::iter::once(&of.series_key).chain(&of.member_keys).collect();
    let files: Vec<PathBuf> = crate::ingest::list_files(export_dir)?
        .into_iter()
        .filter(|f| {
            f != &req.roi.path
                && f.file_name()
                    .is_some_and(|n| !super::watch::is_temporary(&n.to_string_lossy()))
        })
        .collect();
    let found: Vec<InstanceHeader> = files
        .par_iter()
        .filter_map(|f| crate::ingest::header::read_instance(f).ok())
        .filter(|h| keys.contains(&&SeriesKey::of(secret, &h.series_uid)))
        .collect();
    // One copy of each instance, as the assembler keeps them: a console may have exported the series twice.
    let mut unique = std::collections::BTreeMap::new();
    for h in found {
        let id = h.slices.first().map(|s| (s.sop_instance_uid.clone(), s.frame));
        unique.entry(id).or_insert(h);
    }
    let instances: Vec<InstanceHeader> = unique.into_values().collect();
    let missing = |reason: &str| Error::Series {
        series: "(revision)".into(),
        dir: export_dir.to_path_buf(),
        reason: format!("{reason}; the revised ROI was not applied"),
    };
    let Some(first) = instances
        .iter()
        .find(|h| SeriesKey::of(secret, &h.series_uid) == of.series_key)
    else {
        return Err(missing(
            "the answered series' images are no longer in the export folder",
        ));
    };
    let (series_uid, study_uid) = (first.series_uid.clone(), first.study_uid.clone());
    let member_series = if of.member_keys.is_empty() {
        vec![series_uid.clone()]
    } else {
        use crate::ingest::series::{Assembly, assemble_one};
        let linked = assemble_one(instances.clone(), &series_uid, Assembly::Linked)
            .map_err(|_| missing("the answered DCE set could not be linked again"))?;
        let mut found: Vec<SeriesKey> = linked.member_series.iter().map(|m| SeriesKey::of(secret, m)).collect();
        let mut recorded: Vec<SeriesKey> = keys.iter().map(|k| (*k).clone()).collect();
        found.sort();
        recorded.sort();
        if found != recorded {
            return Err(missing("the DCE set in the export folder is not the one answered"));
        }
        linked.member_series
    };
    Ok(ReadySeries {
        series_uid,
        study_uid,
        instances,
        roi: req.roi.path.clone(),
        roi_id: req.roi.id.clone(),
        roi_drawn_at: req.roi.drawn_at.clone(),
        set_aside_roi_ids: Vec::new(),
        revision: Some(RevisionOf {
            original: of.updates.clone().unwrap_or_else(|| of.message_id.clone()),
        }),
        // the revision starts and ends with its ROI file
        first_file: req.roi.wall,
        last_file: req.roi.wall,
        last_arrival: req.roi.arrived,
        rule: "revision".into(),
        member_series,
    })
}

#[cfg(all(test, feature = "tools"))]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Instant, SystemTime};

    use super::*;
    use crate::daemon::payload::MessageKind;
    use crate::synth::cohort::{CohortSpec, draw_patient, write_patient};
    use crate::synth::phantom::PhantomSpec;

    #[test]
    fn a_revision_reads_the_series_again_with_one_copy_of_each_instance() {
        let d = std::env::temp_dir().join(format!("alnrisk-revision-collect-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let export = d.join("export");
        let spec = CohortSpec {
            image: PhantomSpec {
                matrix: 24,
                slices: 6,
                phases: 3,
                snr: 20.0,
            },
            ..CohortSpec::default()
        };
        let (patient, mut rng) = draw_patient(spec.seed, 0, false);
        let (dce, seg, _) = write_patient(&spec, &patient, &mut rng, &export).unwrap();
        // a second patient's series beside it, and the first series exported a second time
        let (other, mut rng) = draw_patient(spec.seed, 1, false);
        write_patient(&spec, &other, &mut rng, &export).unwrap();
        let again = export.join("exported-again");
        std::fs::create_dir_all(&again).unwrap();
        let mut images = 0;
        for f in crate::ingest::list_files(&dce).unwrap() {
            std::fs::copy(&f, again.join(f.file_name().unwrap())).unwrap();
            images += 1;
        }
        assert_eq!(images, 6 * 3, "one classic file per slice and phase");

        let secret = b"site secret";
        let series_uid = crate::ingest::header::read_instance(&crate::ingest::list_files(&dce).unwrap()[0])
            .unwrap()
            .series_uid;
        let of = LedgerRecord {
            series_key: SeriesKey::of(secret, &series_uid),
            member_keys: vec![],
            study_key: StudyKey::of(secret, "study"),
            bundle_sha256: "sha".into(),
            message_id: "first".into(),
            kind: MessageKind::Result,
            updates: None,
            roi_key: Some(RoiKey::of(secret, "the first outline")),
            roi_drawn_at: None,
            set_aside_roi_keys: vec![],
            folder_keys: vec![],
            ln: None,
            signatures: BTreeMap::new(),
            out_of_distribution: vec![],
            at: "t".into(),
        };
        let refs = crate::roi::references(&seg).unwrap();
        let req = RevisionRequest {
            roi: RoiCandidate::dicom(&seg, &refs, Instant::now(), SystemTime::now()),
            of,
        };
        let ready = collect(&export, secret, &req).unwrap();
        assert_eq!(ready.series_uid, series_uid);
        assert_eq!(
            ready.instances.len(),
            images,
            "each instance once, none of the other patient's"
        );
        assert!(ready.instances.iter().all(|h| h.series_uid == series_uid));
        assert_eq!(ready.roi, seg);
        assert_eq!(ready.revision.as_ref().map(|r| r.original.as_str()), Some("first"));

        // the series gone from the export folder: an error that names the revised ROI
        std::fs::remove_dir_all(&dce).unwrap();
        std::fs::remove_dir_all(&again).unwrap();
        let e = collect(&export, secret, &req).unwrap_err().to_string();
        assert!(
            e.contains("no longer in the export folder") && e.contains("was not applied"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&d);
    }
}
