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
//! ledger keeps the keys of the folders every answer's images lie in ([`super::payload::FolderKey::of_path`], HMACs: folder names
//! may name the patient), so a new label map beside an answered series finds it by the folder rule, also after a
//! restart; the assembler does the same for series released but not answered yet.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use super::assemble::{ReadySeries, RevisionOf, RoiCandidate};
use super::ledger::LedgerRecord;
use super::payload::SeriesKey;
use crate::error::{Error, Result};
use crate::ingest::header::InstanceHeader;

/// A revised ROI and the latest ledger record of the series it revises.
#[derive(Debug, Clone)]
pub struct RevisionRequest {
    /// The new ROI.
    pub roi: RoiCandidate,
    /// What the series' latest message was computed from.
    pub of: LedgerRecord,
}

/// The revisions in progress, from a ROI that arrived to the revised series ready for a worker. One revision per
/// series at a time, so that a series' revisions commit in the order they were drawn.
#[derive(Debug, Default)]
pub struct Revisions {
    /// Revised ROIs waiting for their series' images to be read.
    queued: VecDeque<RevisionRequest>,
    /// Series with a revision being read or computed.
    in_progress: BTreeSet<SeriesKey>,
    /// ROIs for series released but not answered yet: weighed as revisions once the answer is committed.
    awaiting_answer: Vec<(SeriesKey, RoiCandidate)>,
    /// Revisions whose images were read, waiting for a worker.
    recollected: VecDeque<Box<ReadySeries>>,
}

impl Revisions {
    /// A revised ROI to apply.
    pub fn queue(&mut self, req: RevisionRequest) {
        self.queued.push_back(req);
    }

    /// A ROI for a series being computed: weighed when its answer is committed.
    pub fn await_answer(&mut self, series: SeriesKey, roi: RoiCandidate) {
        self.awaiting_answer.push((series, roi));
    }

    /// The ROIs that arrived for the series while it was computed, taken out of the waiting list.
    pub fn take_awaiting(&mut self, series: &SeriesKey) -> Vec<RoiCandidate> {
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.awaiting_answer)
            .into_iter()
            .partition(|(k, _)| k == series);
        self.awaiting_answer = later;
        now.into_iter().map(|(_, roi)| roi).collect()
    }

    /// The first queued revision whose series has none in progress, taken out of the queue.
    pub fn take_next(&mut self) -> Option<RevisionRequest> {
        let i = self
            .queued
            .iter()
            .position(|r| !self.in_progress.contains(&r.of.series_key))?;
        self.queued.remove(i)
    }

    /// The series' revision is being read, then computed.
    pub fn started(&mut self, series: &SeriesKey) {
        self.in_progress.insert(series.clone());
    }

    /// The series' revision was committed, or failed.
    pub fn finished(&mut self, series: &SeriesKey) {
        self.in_progress.remove(series);
    }

    /// A revision's images were read: it waits for a worker.
    pub fn recollected(&mut self, ready: ReadySeries) {
        self.recollected.push_back(Box::new(ready));
    }

    /// The next revision ready for a worker.
    pub fn pop_recollected(&mut self) -> Option<Box<ReadySeries>> {
        self.recollected.pop_front()
    }
}

/// Read the headers of every image file in `export_dir` and keep the instances of the series (or linked set) of
/// `req.of`; the revision's [`ReadySeries`] with the new ROI. Blocking: runs in the worker pool.
pub fn collect(export_dir: &Path, secret: &[u8], req: &RevisionRequest) -> Result<ReadySeries> {
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
        roi_object: req.roi.object.clone(),
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
    use crate::daemon::payload::{MessageKind, RoiKey, StudyKey};
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
            factors: BTreeMap::new(),
            signatures: BTreeMap::new(),
            out_of_distribution: vec![],
            at: "t".into(),
            retired: false,
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
