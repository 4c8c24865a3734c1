//! What a file in the export folder is, once it is stable: an image instance (its header), an ROI object (what it
//! references), a label map, an LN-read sidecar — or a bad file, with the typed error that sends it to quarantine
//! and the short reason code that labels its counter.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use super::payload::LnStatusCommand;
use super::watch::StableFile;
use crate::error::Error;
use crate::ingest::header::InstanceHeader;
use crate::roi::RoiReferences;

/// What a ready file turned out to be.
#[derive(Debug)]
pub(super) enum Classified {
    Image(Box<InstanceHeader>),
    Roi(RoiReferences),
    /// A label map, with the sha256 of its bytes (its identity) and the folders near it where the series it
    /// outlines may lie ([`folders_near`]).
    Label {
        sha256: String,
        near: Vec<PathBuf>,
    },
    LnSidecar(LnStatusCommand),
    Bad(Error),
}

/// A stable file of the export folder, read.
pub(super) struct Intake {
    pub path: PathBuf,
    pub what: Classified,
    /// When the watcher found it stable (monotonic).
    pub stable_at: Instant,
    /// When it was read.
    pub read_at: SystemTime,
    /// Its modification time, as the watcher saw it when it found the file stable.
    pub modified: Option<SystemTime>,
}

impl Intake {
    /// Read the file of the export folder `root` the watcher found stable at `stable_at` ([`classify_guarded`];
    /// blocking).
    pub fn read(file: &StableFile, stable_at: Instant, root: &Path) -> Intake {
        Intake {
            path: file.path.clone(),
            modified: file.modified,
            what: classify_guarded(&file.path, root),
            stable_at,
            read_at: SystemTime::now(),
        }
    }
}

/// The folders where the series a label map outlines may lie, within the export folder `root`: its own folder,
/// and (when its folder is inside an examination folder below `root`) its sibling folders and their
/// sub-folders. The core matches them by the folder rule ([`super::assemble::label_near`]) against the folders
/// of answered series.
pub(super) fn folders_near(label: &Path, root: &Path) -> Vec<PathBuf> {
    let Some(dir) = label.parent() else {
        return Vec::new();
    };
    let mut near = vec![dir.to_path_buf()];
    if let Some(exam) = dir.parent().filter(|e| e.starts_with(root)) {
        let subdirs = |d: &Path| -> Vec<PathBuf> {
            let mut dirs: Vec<PathBuf> = std::fs::read_dir(d)
                .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
                .unwrap_or_default();
            dirs.sort();
            dirs
        };
        for sibling in subdirs(exam) {
            near.extend(subdirs(&sibling));
            near.push(sibling);
        }
    }
    near
}

pub(super) fn classify(path: &Path, root: &Path) -> Classified {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.ends_with(".ln.json") {
        let parsed = std::fs::read(path).map_err(|e| Error::io(path, e)).and_then(|b| {
            serde_json::from_slice::<LnStatusCommand>(&b).map_err(|e| Error::Format {
                path: path.to_path_buf(),
                format: "LN read JSON",
                reason: e.to_string(),
            })
        });
        return match parsed {
            Ok(c) => Classified::LnSidecar(c),
            Err(e) => Classified::Bad(e),
        };
    }
    if crate::io::VolumeFormat::of(path).is_some() {
        return match std::fs::read(path) {
            Ok(bytes) => {
                use sha2::Digest;
                Classified::Label {
                    sha256: hex::encode(sha2::Sha256::digest(&bytes)),
                    near: folders_near(path, root),
                }
            }
            Err(e) => Classified::Bad(Error::io(path, e)),
        };
    }
    use crate::ingest::header::{DicomFile, not_an_image, read_dicom};
    match read_dicom(path) {
        Ok(DicomFile::Image(h)) => Classified::Image(h),
        Ok(DicomFile::Roi(_)) => match crate::roi::references(path) {
            Ok(r) => Classified::Roi(r),
            Err(e) => Classified::Bad(e),
        },
        Ok(DicomFile::Other(kind)) => Classified::Bad(not_an_image(path, &kind)),
        Err(e) => Classified::Bad(e),
    }
}

/// [`classify`], with a panic in a parser turned into a quarantine reason instead of a stalled scan.
pub(super) fn classify_guarded(path: &Path, root: &Path) -> Classified {
    std::panic::catch_unwind(|| classify(path, root))
        .unwrap_or_else(|_| Classified::Bad(Error::dicom(path, "the parser panicked on this file")))
}
