//! Series assembly: ready files → complete, selected DCE series with their ROI ([`ReadySeries`]).
//!
//! - Instances are grouped by SeriesInstanceUID (a re-sent instance replaces the earlier copy).
//! - A series is complete when it reaches the instance count its tags give (ImagesInAcquisition ×
//!   NumberOfTemporalPositions, or the frames of one Enhanced MR file), or else after the quiet period with no
//!   new instance (Orthanc's StableAge, MONAI Informatics Gateway's timeout).
//! - Separate single-phase series of one study that share a frame of reference and a grid (Siemens-style
//!   exports, one series per dynamic) are linked into one DCE set ([`crate::ingest::series::link_with`]). A
//!   single-phase series is therefore complete only when its whole study has been quiet for the quiet period, even
//!   when its own instance count is reached: the next phase may still be on its way. The set is keyed by its
//!   first member (acquisition order) and carries every member's UID.
//! - Complete series go through the `[[select]]` rules (Modality, SeriesDescription regex, ImageType,
//!   temporal positions); those not selected are reported, not computed.
//! - A SEG / RTSTRUCT is matched to its series through its references (series UID, referenced instances, or the
//!   frame of reference); a label map (`.nii`, `.nii.gz`, `.nrrd`) by the folder rule: the series whose files lie
//!   in the label's folder, in a sibling folder (`exam/dce/…` + `exam/roi/label.nii.gz`) or one level below a
//!   sibling (`exam/dce/s01/…`, a folder per phase), when exactly one series (or linked DCE set) does.
//! - A selected series waiting for its ROI longer than `roi_wait` is reported once (`waiting_for_roi`) and keeps
//!   waiting: nothing accepted is dropped. So is a ROI that no series has matched for `roi_wait`
//!   (`roi_without_series`).
//! - Two ROIs for one series before it is computed: the newer one is used ([`supersedes`]) and the other is
//!   reported as ignored. A ROI for a series already computed is the daemon core's business (a revision).
//!
//! Pure state: the daemon feeds it headers and time; it does no I/O.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::config::SelectionRule;
use super::pacs::sr::InstanceRef;
use crate::ingest::header::InstanceHeader;
use crate::ingest::series::Assembly;
use crate::roi::RoiReferences;

/// A series ready to compute.
#[derive(Debug, Clone)]
pub struct ReadySeries {
    /// SeriesInstanceUID.
    pub series_uid: String,
    /// StudyInstanceUID.
    pub study_uid: String,
    /// Instance headers (one per file).
    pub instances: Vec<InstanceHeader>,
    /// The ROI file.
    pub roi: PathBuf,
    /// The ROI object's identity ([`RoiCandidate::id`]).
    pub roi_id: String,
    /// The SEG or RTSTRUCT as a report references it ([`RoiCandidate::object`]).
    pub roi_object: Option<InstanceRef>,
    /// When the ROI was drawn, when it says ([`crate::roi::dicom_date_time`]).
    pub roi_drawn_at: Option<String>,
    /// Identities of the other ROIs for this series that arrived before it was computed and were set aside (the
    /// ledger records them, so that a restart does not take one of them for a revision).
    pub set_aside_roi_ids: Vec<String>,
    /// Set when this is the recomputation of an answered series with a revised ROI.
    pub revision: Option<RevisionOf>,
    /// Wall time of the first and last file.
    pub first_file: SystemTime,
    /// Wall time of the last file (image or ROI) that made it ready.
    pub last_file: SystemTime,
    /// Monotonic time of that last file.
    pub last_arrival: Instant,
    /// Which selection rule matched.
    pub rule: String,
    /// Every SeriesInstanceUID the phases come from: `[series_uid]`, or the members of a linked DCE set in
    /// acquisition order (the first is `series_uid`).
    pub member_series: Vec<String>,
}

/// What a revision replaces: the series' first answer (its LN read and latest message are the ledger's at commit).
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionOf {
    /// Message id of the series' first result (what every later message of the series `updates`).
    pub original: String,
}

/// One ROI object: where it is, what it is, when it was drawn and when it arrived.
#[derive(Debug, Clone)]
pub struct RoiCandidate {
    /// The file.
    pub path: PathBuf,
    /// Identity: the SOPInstanceUID of a SEG / RTSTRUCT, or `sha256:` + the hex digest of a label map's bytes.
    pub id: String,
    /// When it was drawn (DICOM ROIs that say so).
    pub drawn_at: Option<String>,
    /// The SEG or RTSTRUCT as a Structured Report references it (`None` for a label map).
    pub object: Option<InstanceRef>,
    /// Monotonic arrival time.
    pub arrived: Instant,
    /// Wall time of arrival.
    pub wall: SystemTime,
}

impl RoiCandidate {
    /// A SEG or RTSTRUCT, known by its SOPInstanceUID (by its path if it has none).
    pub fn dicom(path: &Path, refs: &RoiReferences, arrived: Instant, wall: SystemTime) -> RoiCandidate {
        RoiCandidate {
            path: path.to_path_buf(),
            id: refs
                .sop_instance_uid
                .clone()
                .unwrap_or_else(|| format!("file:{}", path.display())),
            drawn_at: refs.drawn_at.clone(),
            object: match (&refs.own_series_uid, &refs.sop_class_uid, &refs.sop_instance_uid) {
                (Some(series), Some(class), Some(instance)) => Some(InstanceRef {
                    series_uid: series.clone(),
                    sop_class_uid: class.clone(),
                    sop_instance_uid: instance.clone(),
                }),
                _ => None,
            },
            arrived,
            wall,
        }
    }

    /// A label map, known by the sha256 (hex) of its bytes.
    pub fn label(path: &Path, sha256: &str, arrived: Instant, wall: SystemTime) -> RoiCandidate {
        RoiCandidate {
            path: path.to_path_buf(),
            id: format!("sha256:{sha256}"),
            drawn_at: None,
            object: None,
            arrived,
            wall,
        }
    }
}

/// Whether a ROI drawn at `new` that arrived after one drawn at `old` replaces it: the later arrival wins, unless
/// both say when they were drawn and the later arrival was drawn earlier (a stale copy exported late).
pub fn supersedes(new: Option<&str>, old: Option<&str>) -> bool {
    !matches!((new, old), (Some(n), Some(o)) if n < o)
}

impl ReadySeries {
    /// Image files.
    pub fn files(&self) -> Vec<PathBuf> {
        self.instances
            .iter()
            .filter_map(|i| i.slices.first().map(|s| s.file.clone()))
            .collect()
    }
}

/// What a tick reports.
#[derive(Debug, Clone)]
pub enum Assembled {
    /// Complete, selected, with its ROI.
    Ready(Box<ReadySeries>),
    /// Complete but not breast DCE by the rules; its files are left where they are.
    NotSelected {
        /// SeriesInstanceUID.
        series_uid: String,
        /// StudyInstanceUID.
        study_uid: String,
        /// Why.
        reason: String,
    },
    /// Complete and selected, still without a ROI after the configured wait.
    WaitingForRoi {
        /// SeriesInstanceUID.
        series_uid: String,
        /// StudyInstanceUID.
        study_uid: String,
        /// How long it has waited.
        waited: Duration,
    },
    /// A ROI that no series awaiting one has matched for the ROI wait; it keeps waiting.
    RoiWithoutSeries {
        /// The file.
        path: PathBuf,
        /// How long it has waited.
        waited: Duration,
    },
    /// A ROI that belongs to a series already released to be computed (by its references, or a label map by the
    /// folder rule): a candidate revision, for the daemon core to weigh against the series' answer.
    RoiForAnswered {
        /// The series' key (the first member of a linked set).
        series_uid: String,
        /// The ROI.
        roi: RoiCandidate,
    },
    /// A file that came after its series was dispatched, or the older of two ROIs for one series: kept, not used.
    Ignored {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
        /// The file it gave way to (the ROI used instead), if any.
        instead: Option<PathBuf>,
    },
}

#[derive(Debug)]
struct Pending {
    study_uid: String,
    /// `[key]`, or the members of a linked DCE set.
    members: Vec<String>,
    instances: BTreeMap<(String, u32), InstanceHeader>,
    first_wall: SystemTime,
    last_wall: SystemTime,
    last: Instant,
    complete_since: Option<Instant>,
    rule: Option<String>,
    roi: Option<RoiCandidate>,
    /// Identities of ROIs that lost to `roi`.
    set_aside: Vec<String>,
    waiting_reported: bool,
}

impl Pending {
    fn slices(&self) -> usize {
        self.instances.values().map(|i| i.slices.len()).sum()
    }

    fn expected(&self) -> Option<usize> {
        let first = self.instances.values().next()?;
        if first.slices.len() > 1 {
            // Enhanced MR: one file holds the series.
            return Some(first.slices.len());
        }
        let per = first.images_in_acquisition?;
        let ntp = first.number_of_temporal_positions.unwrap_or(1);
        (per > 0 && ntp > 0).then(|| (per * ntp) as usize)
    }

    /// One phase by its slices (one image per position), from classic single-frame files. Enhanced MR files
    /// and linked sets are not.
    fn single_phase(&self) -> bool {
        if self.members.len() != 1 || self.instances.values().any(|i| i.slices.len() != 1) {
            return false;
        }
        let slices: Vec<_> = self.instances.values().flat_map(|i| i.slices.iter().cloned()).collect();
        crate::ingest::series::split_phases(&slices).is_some_and(|(_, phases)| phases.len() == 1)
    }

    fn dirs(&self) -> Vec<PathBuf> {
        let mut d: Vec<PathBuf> = self
            .instances
            .values()
            .filter_map(|i| i.slices.first().and_then(|s| s.file.parent().map(Path::to_path_buf)))
            .collect();
        d.sort();
        d.dedup();
        d
    }
}

#[derive(Debug, Clone)]
enum RoiFile {
    Dicom(RoiReferences),
    Label,
}

/// A ROI not matched to a series yet.
#[derive(Debug)]
struct Orphan {
    roi: RoiCandidate,
    kind: RoiFile,
    /// `roi_without_series` was reported.
    reported: bool,
}

/// The folder rule of label maps: a series whose files lie in one of `dirs` owns the label map at `label` when
/// it lies in the label's folder, in a sibling of it (`exam/dce` + `exam/roi`), or one level below a sibling
/// (`exam/dce/s01`, one folder per phase, + `exam/roi`).
pub(super) fn label_near(label: &Path, dirs: &[PathBuf]) -> bool {
    let Some(dir) = label.parent() else { return false };
    let exam = dir.parent();
    dirs.iter().any(|d| {
        d == dir
            || (exam.is_some() && d.parent() == exam)
            || (exam.is_some() && d.parent().and_then(Path::parent) == exam)
    })
}

#[cfg(test)]
fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Attach `roi` to `p`; of two different ROIs the one that does not [`supersedes`] the other is returned as
/// ignored.
fn attach(p: &mut Pending, roi: RoiCandidate) -> Option<Assembled> {
    let Some(old) = p.roi.take() else {
        p.roi = Some(roi);
        return None;
    };
    if old.id == roi.id {
        // the same object again (re-sent, or a second copy): nothing to choose
        p.roi = Some(roi);
        return None;
    }
    let (used, ignored, reason) = if supersedes(roi.drawn_at.as_deref(), old.drawn_at.as_deref()) {
        let reason = "superseded by a newer ROI for the same series".to_string();
        (roi, old, reason)
    } else {
        let reason = "drawn before the ROI already matched to its series".to_string();
        (old, roi, reason)
    };
    let instead = Some(used.path.clone());
    p.roi = Some(used);
    p.set_aside.push(ignored.id);
    Some(Assembled::Ignored {
        path: ignored.path,
        reason,
        instead,
    })
}

/// The assembler's state.
#[derive(Debug)]
pub struct SeriesAssembler {
    quiet: Duration,
    roi_wait: Duration,
    rules: Vec<SelectionRule>,
    pending: BTreeMap<String, Pending>,
    /// Member SeriesInstanceUID → the key of the linked set it joined.
    linked_into: BTreeMap<String, String>,
    orphan_rois: Vec<Orphan>,
    dispatched: super::bounded::BoundedSet<String>,
    /// Series (and linked sets) released to be computed since start, by key: their members and folders, so that a
    /// ROI arriving later can be told to belong to one (in memory only: after a restart the ledger knows). The
    /// last [`REMEMBERED_SERIES`], oldest first in `answered_order`.
    answered: BTreeMap<String, AnsweredSet>,
    answered_order: std::collections::VecDeque<String>,
    /// Ignored ROIs found while matching, and ROIs for answered series, reported by the next tick.
    notices: Vec<Assembled>,
}

/// How many released series the assembler remembers for late ROIs (label maps need it; a DICOM ROI of an older
/// one still finds it through the ledger). A few hundred bytes each.
pub const REMEMBERED_SERIES: usize = 4096;

/// What a ROI needs to find a series after it was released.
#[derive(Debug)]
struct AnsweredSet {
    members: Vec<String>,
    dirs: Vec<PathBuf>,
}

impl SeriesAssembler {
    /// New assembler, selecting by `rules` (their regexes compiled when the configuration was read).
    pub fn new(quiet: Duration, roi_wait: Duration, rules: &[SelectionRule]) -> SeriesAssembler {
        SeriesAssembler {
            quiet,
            roi_wait,
            rules: rules.to_vec(),
            pending: BTreeMap::new(),
            linked_into: BTreeMap::new(),
            orphan_rois: Vec::new(),
            dispatched: super::bounded::BoundedSet::new(REMEMBERED_SERIES),
            answered: BTreeMap::new(),
            answered_order: Default::default(),
            notices: Vec::new(),
        }
    }

    /// An MR image file arrived. Returns an [`Assembled::Ignored`] when its series was already dispatched.
    pub fn add_image(&mut self, h: InstanceHeader, now: Instant, wall: SystemTime) -> Option<Assembled> {
        if self.dispatched.contains_key(&h.series_uid) {
            return Some(Assembled::Ignored {
                path: h.slices.first().map(|s| s.file.clone()).unwrap_or_default(),
                reason: "instance arrived after its series was computed".into(),
                instead: None,
            });
        }
        let key = self.linked_into.get(&h.series_uid).unwrap_or(&h.series_uid).clone();
        let p = self.pending.entry(key).or_insert_with(|| Pending {
            study_uid: h.study_uid.clone(),
            members: vec![h.series_uid.clone()],
            instances: BTreeMap::new(),
            first_wall: wall,
            last_wall: wall,
            last: now,
            complete_since: None,
            rule: None,
            roi: None,
            set_aside: Vec::new(),
            waiting_reported: false,
        });
        let key = (
            h.slices.first().map(|s| s.sop_instance_uid.clone()).unwrap_or_default(),
            h.slices.first().map_or(0, |s| s.frame),
        );
        p.instances.insert(key, h);
        p.last = now;
        p.last_wall = wall;
        p.complete_since = None;
        self.match_orphans();
        None
    }

    /// A SEG or RTSTRUCT arrived ([`RoiCandidate::dicom`]), with its references.
    pub fn add_roi(&mut self, roi: RoiCandidate, refs: RoiReferences) {
        self.orphan_rois.push(Orphan {
            roi,
            kind: RoiFile::Dicom(refs),
            reported: false,
        });
        self.match_orphans();
    }

    /// A label map arrived ([`RoiCandidate::label`]).
    pub fn add_label(&mut self, roi: RoiCandidate) {
        self.orphan_rois.push(Orphan {
            roi,
            kind: RoiFile::Label,
            reported: false,
        });
        self.match_orphans();
    }

    fn matches(p: &Pending, path: &Path, roi: &RoiFile) -> bool {
        match roi {
            RoiFile::Dicom(r) => {
                if r.series_uids.iter().any(|s| p.members.contains(s)) {
                    return true;
                }
                if !r.series_uids.is_empty() {
                    return false;
                }
                if !r.instance_uids.is_empty() {
                    return p
                        .instances
                        .values()
                        .flat_map(|i| i.slices.iter())
                        .any(|s| r.instance_uids.binary_search(&s.sop_instance_uid).is_ok());
                }
                let first = p.instances.values().next();
                r.frame_of_reference_uid.is_some()
                    && first.is_some_and(|f| f.frame_of_reference_uid == r.frame_of_reference_uid)
                    && r.study_uid.as_deref().is_none_or(|s| s == p.study_uid)
            }
            RoiFile::Label => label_near(path, &p.dirs()),
        }
    }

    fn match_orphans(&mut self) {
        let mut keep = Vec::new();
        for o in std::mem::take(&mut self.orphan_rois) {
            let hits: Vec<String> = self
                .pending
                .iter()
                .filter(|(_, p)| Self::matches(p, &o.roi.path, &o.kind))
                .map(|(uid, _)| uid.clone())
                .collect();
            let one = match o.kind {
                RoiFile::Label => (hits.len() == 1).then(|| hits[0].clone()),
                RoiFile::Dicom(_) => hits.first().cloned(),
            };
            match one.and_then(|uid| self.pending.get_mut(&uid)) {
                Some(p) => self.notices.extend(attach(p, o.roi)),
                None => match self.answered_owner(&o) {
                    Some(series_uid) => self.notices.push(Assembled::RoiForAnswered { series_uid, roi: o.roi }),
                    None => keep.push(o),
                },
            }
        }
        self.orphan_rois = keep;
    }

    /// The one released series (or set) a ROI belongs to: a DICOM ROI naming one of its members, or a label map
    /// by the folder rule; `None` when none does or the folder rule names several.
    fn answered_owner(&self, o: &Orphan) -> Option<String> {
        let hits: Vec<&String> = self
            .answered
            .iter()
            .filter(|(_, a)| match &o.kind {
                RoiFile::Dicom(r) => r.series_uids.iter().any(|s| a.members.contains(s)),
                RoiFile::Label => label_near(&o.roi.path, &a.dirs),
            })
            .map(|(k, _)| k)
            .collect();
        match (&o.kind, hits.as_slice()) {
            (_, [one]) => Some((*one).clone()),
            (RoiFile::Dicom(_), [first, ..]) => Some((*first).clone()),
            _ => None,
        }
    }

    fn select(&self, p: &Pending) -> Result<String, String> {
        let Some(first) = p.instances.values().next() else {
            return Err("no instances".into());
        };
        if self.rules.is_empty() {
            return if first.modality == "MR" {
                Ok("any-mr".into())
            } else {
                Err(format!("modality {}", first.modality))
            };
        }
        let slices: Vec<_> = p.instances.values().flat_map(|i| i.slices.iter().cloned()).collect();
        let phases = crate::ingest::series::split_phases(&slices).map_or(0, |(_, ph)| ph.len() as i64);
        let temporal = first
            .number_of_temporal_positions
            .unwrap_or(phases)
            .max(phases)
            .max(p.members.len() as i64);
        let mut why = Vec::new();
        for rule in &self.rules {
            let mut fails = Vec::new();
            if let Some(m) = &rule.modality
                && &first.modality != m
            {
                fails.push(format!("modality {} ≠ {m}", first.modality));
            }
            if let Some(re) = &rule.description_regex
                && !re.is_match(&first.series_description)
            {
                fails.push(format!(
                    "description {:?} does not match /{}/",
                    first.series_description,
                    re.0.as_str()
                ));
            }
            for t in &rule.image_type_contains {
                if !first.image_type.iter().any(|x| x.eq_ignore_ascii_case(t)) {
                    fails.push(format!("ImageType lacks {t}"));
                }
            }
            if let Some(n) = rule.min_temporal_positions
                && temporal < n
            {
                fails.push(format!("{temporal} temporal positions < {n}"));
            }
            if fails.is_empty() {
                return Ok(rule.name.clone());
            }
            why.push(format!("{}: {}", rule.name, fails.join(", ")));
        }
        Err(why.join("; "))
    }

    /// Advance time: complete, select and release what is ready (at most `max_ready` series; the rest stay
    /// pending until the next tick).
    pub fn tick(&mut self, now: Instant, max_ready: usize) -> Vec<Assembled> {
        let mut out = std::mem::take(&mut self.notices);
        for o in &mut self.orphan_rois {
            let waited = now.saturating_duration_since(o.roi.arrived);
            if !o.reported && waited >= self.roi_wait {
                o.reported = true;
                out.push(Assembled::RoiWithoutSeries {
                    path: o.roi.path.clone(),
                    waited,
                });
            }
        }
        let mut released = 0;
        let uids: Vec<String> = self.pending.keys().cloned().collect();
        for uid in uids {
            let Some(p) = self.pending.get(&uid) else { continue };
            let complete = match p.expected() {
                Some(n) if p.slices() >= n => true,
                _ => now.duration_since(p.last) >= self.quiet,
            };
            if !complete {
                continue;
            }
            let uid = if p.rule.is_none() && p.single_phase() {
                if !self.study_quiet(&p.study_uid, now) {
                    continue;
                }
                match self.link(&uid, &mut out) {
                    Some(key) => key,
                    None => uid,
                }
            } else {
                uid
            };
            let Some(p) = self.pending.get(&uid) else { continue };
            if p.rule.is_none() {
                match self.select(p) {
                    Ok(rule) => {
                        if let Some(p) = self.pending.get_mut(&uid) {
                            p.rule = Some(rule);
                            p.complete_since = Some(now);
                        }
                    }
                    Err(reason) => {
                        let study_uid = p.study_uid.clone();
                        if let Some(p) = self.pending.remove(&uid) {
                            self.dispatch(p.members);
                        }
                        out.push(Assembled::NotSelected {
                            series_uid: uid,
                            study_uid,
                            reason,
                        });
                        continue;
                    }
                }
            }
            let Some(p) = self.pending.get_mut(&uid) else { continue };
            match p.roi.clone() {
                Some(_) if released >= max_ready => {}
                Some(roi) => {
                    released += 1;
                    let Some(p) = self.pending.remove(&uid) else { continue };
                    self.dispatch(p.members.clone());
                    self.remember_answered(
                        &uid,
                        AnsweredSet {
                            members: p.members.clone(),
                            dirs: p.dirs(),
                        },
                    );
                    let (last_arrival, last_file) = if roi.arrived > p.last {
                        (roi.arrived, roi.wall)
                    } else {
                        (p.last, p.last_wall)
                    };
                    out.push(Assembled::Ready(Box::new(ReadySeries {
                        series_uid: uid,
                        study_uid: p.study_uid,
                        instances: p.instances.into_values().collect(),
                        roi: roi.path,
                        roi_id: roi.id,
                        roi_object: roi.object,
                        roi_drawn_at: roi.drawn_at,
                        set_aside_roi_ids: p.set_aside,
                        revision: None,
                        first_file: p.first_wall,
                        last_file,
                        last_arrival,
                        rule: p.rule.unwrap_or_default(),
                        member_series: p.members,
                    })));
                }
                None => {
                    let since = p.complete_since.unwrap_or(now);
                    if !p.waiting_reported && now.duration_since(since) >= self.roi_wait {
                        p.waiting_reported = true;
                        out.push(Assembled::WaitingForRoi {
                            series_uid: uid.clone(),
                            study_uid: p.study_uid.clone(),
                            waited: now.duration_since(since),
                        });
                    }
                }
            }
        }
        out
    }

    /// Remember a released series for the ROIs that may follow it, forgetting the oldest beyond
    /// [`REMEMBERED_SERIES`].
    fn remember_answered(&mut self, key: &str, set: AnsweredSet) {
        if self.answered.insert(key.to_string(), set).is_none() {
            self.answered_order.push_back(key.to_string());
        }
        while self.answered_order.len() > REMEMBERED_SERIES {
            if let Some(old) = self.answered_order.pop_front() {
                self.answered.remove(&old);
            }
        }
    }

    /// Mark series as dispatched: later instances of them are reported, not assembled.
    fn dispatch(&mut self, members: Vec<String>) {
        for m in members {
            self.linked_into.remove(&m);
            self.dispatched.add(m);
        }
    }

    /// No instance of any series of the study has arrived for the quiet period.
    fn study_quiet(&self, study_uid: &str, now: Instant) -> bool {
        self.pending
            .values()
            .filter(|q| q.study_uid == study_uid)
            .all(|q| now.duration_since(q.last) >= self.quiet)
    }

    /// Link the single-phase series `uid` with the other single-phase series of its study that share its frame
    /// of reference and grid into one pending DCE set; returns the set's key, or `None` when nothing links. Of
    /// two ROIs among the members the newer is used and the other reported as ignored.
    fn link(&mut self, uid: &str, out: &mut Vec<Assembled>) -> Option<String> {
        let study_uid = self.pending.get(uid)?.study_uid.clone();
        let candidates: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, q)| q.study_uid == study_uid && q.rule.is_none() && q.single_phase())
            .map(|(k, _)| k.clone())
            .collect();
        if candidates.len() < 2 {
            return None;
        }
        let instances: Vec<InstanceHeader> = candidates
            .iter()
            .filter_map(|k| self.pending.get(k))
            .flat_map(|q| q.instances.values().cloned())
            .collect();
        let linked = crate::ingest::series::assemble_one(instances, uid, Assembly::Linked).ok()?;
        let mut parts = linked
            .member_series
            .iter()
            .filter_map(|m| self.pending.remove(m))
            .collect::<Vec<_>>()
            .into_iter();
        let mut set = parts.next()?;
        for q in parts {
            set.instances.extend(q.instances);
            set.first_wall = set.first_wall.min(q.first_wall);
            set.last_wall = set.last_wall.max(q.last_wall);
            set.last = set.last.max(q.last);
            set.set_aside.extend(q.set_aside);
            if let Some(roi) = q.roi {
                out.extend(attach(&mut set, roi));
            }
        }
        set.members = linked.member_series.clone();
        set.complete_since = None;
        set.waiting_reported = false;
        for m in &linked.member_series {
            self.linked_into.insert(m.clone(), linked.series_uid.clone());
        }
        self.pending.insert(linked.series_uid.clone(), set);
        // a label map that was ambiguous between the members now points at one set
        self.match_orphans();
        Some(linked.series_uid)
    }

    /// Series being assembled.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ingest::header::SliceHeader;

    /// One classic MR image of `series` in `/export/{dir}/` (study `1.2.3`, frame of reference `9.9`): phase
    /// `phase`, slice `k`; with `images_in_acq`, the series says how many it has (two phases of that many).
    pub(crate) fn image(series: &str, dir: &str, phase: usize, k: usize, images_in_acq: Option<i64>) -> InstanceHeader {
        InstanceHeader {
            kind: crate::ingest::InstanceKind::MrImage,
            study_uid: "1.2.3".into(),
            series_uid: series.into(),
            frame_of_reference_uid: Some("9.9".into()),
            modality: "MR".into(),
            series_description: "Ax VIBRANT dyn".into(),
            series_number: Some(5),
            image_type: vec!["ORIGINAL".into(), "PRIMARY".into()],
            number_of_temporal_positions: images_in_acq.map(|_| 2),
            images_in_acquisition: images_in_acq,
            accession_number: None,
            patient_name: None,
            patient_id: None,
            study: Default::default(),
            slices: vec![SliceHeader {
                file: PathBuf::from(format!("/export/{dir}/IM{phase}{k}.dcm")),
                frame: 0,
                sop_instance_uid: format!("{series}.{phase}.{k}"),
                position: [0.0, 0.0, k as f64],
                orientation: [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
                pixel_spacing: [1.0, 1.0],
                rows: 4,
                columns: 4,
                instance_number: Some((phase * 10 + k) as i64),
                temporal_position_identifier: Some(phase as i64 + 1),
                temporal_position_index: None,
                acquisition_number: None,
                trigger_time: None,
                acquisition_time: None,
                content_time: None,
            }],
        }
    }

    fn rule(min_phases: i64, re: &str) -> SelectionRule {
        SelectionRule {
            name: "dce".into(),
            modality: Some("MR".into()),
            description_regex: Some(crate::daemon::config::DescriptionRegex::try_from(re.to_string()).unwrap()),
            image_type_contains: vec!["ORIGINAL".into()],
            min_temporal_positions: Some(min_phases),
        }
    }

    fn add_seg(a: &mut SeriesAssembler, path: &str, refs: RoiReferences, t: Instant) {
        a.add_roi(RoiCandidate::dicom(Path::new(path), &refs, t, SystemTime::now()), refs);
    }

    fn add_series(a: &mut SeriesAssembler, uid: &str, dir: &str, count: Option<i64>, t: Instant) {
        for p in 0..2 {
            for k in 0..3 {
                a.add_image(image(uid, dir, p, k, count), t, SystemTime::now());
            }
        }
    }

    #[test]
    fn expected_count_completes_without_the_quiet_period_and_roi_waits_with_one_event() {
        let t0 = Instant::now();
        let mut a = SeriesAssembler::new(Duration::from_secs(30), Duration::from_secs(5), &[rule(2, "(?i)dyn")]);
        add_series(&mut a, "1.1", "exam/dce", Some(3), t0);
        // complete (3 per phase × 2 phases) but no ROI yet
        assert!(a.tick(t0, 4).is_empty());
        let out = a.tick(t0 + Duration::from_secs(6), 4);
        assert!(matches!(out.as_slice(), [Assembled::WaitingForRoi { .. }]), "{out:?}");
        assert!(a.tick(t0 + Duration::from_secs(20), 4).is_empty(), "reported once");
        add_seg(
            &mut a,
            "/export/exam/roi/seg.dcm",
            RoiReferences {
                series_uids: vec!["1.1".into()],
                ..Default::default()
            },
            t0 + Duration::from_secs(21),
        );
        let out = a.tick(t0 + Duration::from_secs(21), 4);
        let [Assembled::Ready(r)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(
            (r.series_uid.as_str(), r.instances.len(), r.rule.as_str()),
            ("1.1", 6, "dce")
        );
        assert_eq!(
            r.last_arrival,
            t0 + Duration::from_secs(21),
            "the ROI was the last file"
        );
        // a late instance of a dispatched series is reported, not silently used
        let late = a.add_image(image("1.1", "exam/dce", 0, 9, Some(3)), t0, SystemTime::now());
        assert!(matches!(late, Some(Assembled::Ignored { .. })));
    }

    #[test]
    fn without_a_count_the_quiet_period_completes_and_rules_select() {
        let t0 = Instant::now();
        let mut a = SeriesAssembler::new(Duration::from_secs(2), Duration::from_secs(60), &[rule(2, "(?i)dyn")]);
        add_series(&mut a, "2.1", "e1/dce", None, t0);
        // a label map by the exam-folder rule (sibling folder)
        a.add_label(RoiCandidate::label(
            Path::new("/export/e1/roi/label.nii.gz"),
            "/export/e1/roi/label.nii.gz",
            t0,
            SystemTime::now(),
        ));
        assert!(
            a.tick(t0 + Duration::from_secs(1), 4).is_empty(),
            "still within the quiet period"
        );
        let out = a.tick(t0 + Duration::from_secs(3), 4);
        assert!(matches!(out.as_slice(), [Assembled::Ready(_)]), "{out:?}");
        // a series the rules reject: three phases required
        let mut b = SeriesAssembler::new(Duration::from_secs(2), Duration::from_secs(60), &[rule(3, "(?i)dyn")]);
        add_series(&mut b, "3.1", "e2/dce", None, t0);
        let out = b.tick(t0 + Duration::from_secs(3), 4);
        let [Assembled::NotSelected { reason, .. }] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert!(reason.contains("temporal positions"), "{reason}");
    }

    #[test]
    fn roi_matches_by_referenced_instances_and_only_its_series() {
        let t0 = Instant::now();
        let mut a = SeriesAssembler::new(Duration::from_secs(1), Duration::from_secs(60), &[]);
        add_series(&mut a, "4.1", "e/a", None, t0);
        add_series(&mut a, "4.2", "e/b", None, t0);
        add_seg(
            &mut a,
            "/export/e/seg.dcm",
            RoiReferences {
                instance_uids: vec!["4.2.0.1".into()],
                ..Default::default()
            },
            t0,
        );
        let out = a.tick(t0 + Duration::from_secs(2), 1);
        let [Assembled::Ready(r)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(r.series_uid, "4.2");
        assert_eq!(a.pending(), 1, "the other series keeps waiting for its own ROI");
        // max_ready bounds what one tick releases
        a.add_label(RoiCandidate::label(
            Path::new("/export/e/a/label.nrrd"),
            "/export/e/a/label.nrrd",
            t0,
            SystemTime::now(),
        ));
        assert!(a.tick(t0 + Duration::from_secs(3), 0).is_empty());
        assert_eq!(a.tick(t0 + Duration::from_secs(3), 1).len(), 1);
    }
    /// One single-phase series (a Siemens-style dynamic): 3 slices, its own count (ImagesInAcquisition = 3).
    fn dynamic(a: &mut SeriesAssembler, uid: &str, dir: &str, rows: u32, t: Instant) {
        for k in 0..3 {
            let mut h = image(uid, dir, 0, k, Some(3));
            h.number_of_temporal_positions = None;
            h.slices[0].rows = rows;
            a.add_image(h, t, SystemTime::now());
        }
    }

    #[test]
    fn single_phase_series_of_one_grid_are_linked_into_one_dce_set_once_the_study_is_quiet() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut a = SeriesAssembler::new(s(2), s(60), &[rule(2, "(?i)dyn")]);
        dynamic(&mut a, "5.1", "e/dce/s01", 4, t0);
        // complete by its own count, but the study is still arriving: not released, not rejected
        assert!(a.tick(t0 + s(1), 4).is_empty());
        dynamic(&mut a, "5.2", "e/dce/s02", 4, t0 + s(1));
        dynamic(&mut a, "5.3", "e/dce/s03", 4, t0 + s(1));
        // a single-phase series on another grid (8 rows) is not a member, nor is a subtraction on the same grid
        dynamic(&mut a, "5.9", "e/t2", 8, t0 + s(1));
        for k in 0..3 {
            let mut h = image("5.8", "e/sub", 0, k, Some(3));
            h.number_of_temporal_positions = None;
            h.image_type = vec!["DERIVED".into(), "PRIMARY".into(), "SUBTRACTION".into()];
            a.add_image(h, t0 + s(1), SystemTime::now());
        }
        add_seg(
            &mut a,
            "/export/e/roi/seg.dcm",
            RoiReferences {
                series_uids: vec!["5.2".into()],
                ..Default::default()
            },
            t0 + s(1),
        );
        assert!(a.tick(t0 + s(2), 4).is_empty(), "the study is quiet only from t0 + 3 s");
        let out = a.tick(t0 + s(4), 4);
        let ready: Vec<_> = out
            .iter()
            .filter_map(|x| match x {
                Assembled::Ready(r) => Some(r),
                _ => None,
            })
            .collect();
        let [r] = ready.as_slice() else { panic!("{out:?}") };
        assert_eq!(r.member_series, ["5.1", "5.2", "5.3"]);
        assert_eq!(
            (r.series_uid.as_str(), r.instances.len(), r.rule.as_str()),
            ("5.1", 9, "dce")
        );
        assert!(r.roi.ends_with("seg.dcm"), "the ROI of a member is the set's ROI");
        // the 8-row series and the subtraction stay single series: rejected by the rules
        for other in ["5.8", "5.9"] {
            assert!(
                out.iter()
                    .any(|x| matches!(x, Assembled::NotSelected { series_uid, .. } if series_uid == other)),
                "{other}: {out:?}"
            );
        }
        // a late instance of any member is reported, not assembled into a new series
        let late = a.add_image(image("5.3", "e/dce/s03", 0, 7, Some(3)), t0 + s(5), SystemTime::now());
        assert!(matches!(late, Some(Assembled::Ignored { .. })), "{late:?}");
        assert_eq!(a.pending(), 0);
    }
    #[test]
    fn a_label_map_beside_a_folder_per_phase_goes_to_the_linked_set_and_a_stray_one_to_nothing() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut a = SeriesAssembler::new(s(1), s(60), &[rule(2, "(?i)dyn")]);
        for (uid, dir) in [("6.1", "e/dce/s01"), ("6.2", "e/dce/s02"), ("6.3", "e/dce/s03")] {
            dynamic(&mut a, uid, dir, 4, t0);
        }
        // a label at the top of the export folder belongs to no examination
        a.add_label(RoiCandidate::label(
            Path::new("/export/label.nii.gz"),
            "/export/label.nii.gz",
            t0,
            SystemTime::now(),
        ));
        // before linking, three series share the exam folder: the label waits (ambiguous), then goes to the set
        a.add_label(RoiCandidate::label(
            Path::new("/export/e/roi/tumour.nii.gz"),
            "/export/e/roi/tumour.nii.gz",
            t0,
            SystemTime::now(),
        ));
        let out = a.tick(t0 + s(2), 4);
        let [Assembled::Ready(r)] = out.as_slice() else {
            panic!("{out:?}")
        };
        assert_eq!(r.member_series, ["6.1", "6.2", "6.3"]);
        assert!(r.roi.ends_with("e/roi/tumour.nii.gz"), "{:?}", r.roi);
        assert_eq!(a.orphan_rois.len(), 1, "the stray label is kept, unmatched");
    }

    fn seg_drawn(series: &str, sop: &str, drawn_at: Option<&str>) -> RoiReferences {
        RoiReferences {
            series_uids: vec![series.into()],
            sop_instance_uid: Some(sop.into()),
            drawn_at: drawn_at.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn of_two_rois_before_computing_the_newer_is_used_and_the_other_reported() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut a = SeriesAssembler::new(s(30), s(60), &[rule(2, "(?i)dyn")]);
        add_series(&mut a, "7.1", "e/dce", None, t0);
        // v2 (drawn 10:30) arrives first, then v1 (drawn 10:00) exported late: v2 stays
        add_seg(
            &mut a,
            "/export/e/roi/v2.dcm",
            seg_drawn("7.1", "9.2", Some("20190307103000.000000")),
            t0,
        );
        add_seg(
            &mut a,
            "/export/e/roi/v1.dcm",
            seg_drawn("7.1", "9.1", Some("20190307100000.000000")),
            t0 + s(1),
        );
        // v3 without a drawing time: the later arrival wins
        add_seg(&mut a, "/export/e/roi/v3.dcm", seg_drawn("7.1", "9.3", None), t0 + s(2));
        // the same object again under another name changes nothing but the path
        add_seg(
            &mut a,
            "/export/e/roi/v3-copy.dcm",
            seg_drawn("7.1", "9.3", None),
            t0 + s(3),
        );
        let out = a.tick(t0 + s(40), 4);
        let ignored: Vec<(String, String)> = out
            .iter()
            .filter_map(|o| match o {
                Assembled::Ignored { path, reason, instead } => Some((
                    file_name(path),
                    format!("{reason} ({})", instead.as_deref().map(file_name).unwrap_or_default()),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(ignored.len(), 2, "{out:?}");
        assert_eq!(ignored[0].0, "v1.dcm");
        assert!(
            ignored[0].1.contains("drawn before") && ignored[0].1.contains("v2.dcm"),
            "{ignored:?}"
        );
        assert_eq!(ignored[1].0, "v2.dcm");
        assert!(
            ignored[1].1.contains("superseded") && ignored[1].1.contains("v3.dcm"),
            "{ignored:?}"
        );
        let [r] = out
            .iter()
            .filter_map(|o| match o {
                Assembled::Ready(r) => Some(r),
                _ => None,
            })
            .collect::<Vec<_>>()[..]
        else {
            panic!("{out:?}")
        };
        assert_eq!((r.roi_id.as_str(), file_name(&r.roi).as_str()), ("9.3", "v3-copy.dcm"));
        assert_eq!(
            r.set_aside_roi_ids,
            ["9.1", "9.2"],
            "recorded, so a restart cannot revive them"
        );
        assert_eq!(r.revision, None);
    }

    #[test]
    fn a_roi_that_matches_no_series_is_reported_once_after_the_roi_wait_and_kept() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut a = SeriesAssembler::new(s(1), s(10), &[rule(2, "(?i)dyn")]);
        add_seg(&mut a, "/export/x/seg.dcm", seg_drawn("8.1", "9.8", None), t0);
        assert!(a.tick(t0 + s(9), 4).is_empty());
        let out = a.tick(t0 + s(10), 4);
        assert!(
            matches!(out.as_slice(), [Assembled::RoiWithoutSeries { path, waited }]
                if path.ends_with("x/seg.dcm") && *waited == s(10)),
            "{out:?}"
        );
        assert!(a.tick(t0 + s(20), 4).is_empty(), "reported once");
        // its series arrives after all: the ROI was kept and is used
        add_series(&mut a, "8.1", "x/dce", None, t0 + s(20));
        let out = a.tick(t0 + s(22), 4);
        assert!(
            matches!(out.as_slice(), [Assembled::Ready(r)] if r.roi_id == "9.8"),
            "{out:?}"
        );
    }

    #[test]
    fn a_later_arrival_supersedes_unless_it_says_it_was_drawn_earlier() {
        let (early, late) = (Some("20190307100000.000000"), Some("20190307103000.000000"));
        assert!(supersedes(late, early));
        assert!(!supersedes(early, late));
        assert!(supersedes(early, early), "same time: the later arrival");
        assert!(supersedes(None, late) && supersedes(early, None) && supersedes(None, None));
    }

    #[test]
    fn a_roi_for_a_series_already_released_is_handed_on_as_a_candidate_revision() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut a = SeriesAssembler::new(s(1), s(60), &[rule(2, "(?i)dyn")]);
        add_series(&mut a, "9.1", "e/dce", None, t0);
        add_seg(&mut a, "/export/e/roi/seg.dcm", seg_drawn("9.1", "9.9.1", None), t0);
        // a second examination in a folder of its own, still pending when the label map below arrives
        add_series(&mut a, "9.2", "f/dce", None, t0 + s(5));
        let out = a.tick(t0 + s(2), 4);
        assert!(
            matches!(out.as_slice(), [Assembled::Ready(r)] if r.series_uid == "9.1"),
            "{out:?}"
        );
        // a SEG naming the released series, and a label map in its examination's ROI folder
        add_seg(
            &mut a,
            "/export/e/roi/seg-v2.dcm",
            seg_drawn("9.1", "9.9.2", None),
            t0 + s(3),
        );
        a.add_label(RoiCandidate::label(
            Path::new("/export/e/roi/v3.nii.gz"),
            "ab",
            t0 + s(3),
            SystemTime::now(),
        ));
        let out = a.tick(t0 + s(4), 4);
        let handed: Vec<(&str, &str)> = out
            .iter()
            .filter_map(|o| match o {
                Assembled::RoiForAnswered { series_uid, roi } => Some((series_uid.as_str(), roi.id.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(handed, [("9.1", "9.9.2"), ("9.1", "sha256:ab")], "{out:?}");
        assert!(a.orphan_rois.is_empty());
        // a label map between two examinations' folders belongs to neither
        a.add_label(RoiCandidate::label(
            Path::new("/export/g.nii.gz"),
            "cd",
            t0 + s(6),
            SystemTime::now(),
        ));
        assert!(
            a.tick(t0 + s(6), 0)
                .iter()
                .all(|o| !matches!(o, Assembled::RoiForAnswered { .. }))
        );
        assert_eq!(a.orphan_rois.len(), 1);
    }

    #[test]
    fn released_series_are_remembered_up_to_a_bound_oldest_forgotten_first() {
        let mut a = SeriesAssembler::new(Duration::from_secs(1), Duration::from_secs(1), &[]);
        let set = |k: usize| AnsweredSet {
            members: vec![format!("s{k}")],
            dirs: vec![PathBuf::from(format!("/export/e{k}/dce"))],
        };
        for k in 0..=REMEMBERED_SERIES {
            a.remember_answered(&format!("s{k}"), set(k));
        }
        a.remember_answered("s5", set(5));
        assert_eq!(
            (a.answered.len(), a.answered_order.len()),
            (REMEMBERED_SERIES, REMEMBERED_SERIES)
        );
        assert!(!a.answered.contains_key("s0") && a.answered.contains_key("s1"));
        assert!(a.answered.contains_key(&format!("s{REMEMBERED_SERIES}")));
    }
}
