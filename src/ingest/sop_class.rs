//! What a DICOM file is, told by its SOP Class UID (0008,0016) (PS3.4 Annex B): the one place that decides
//! whether a file is an MR image, an ROI object, or something else. The UIDs are `dicom_dictionary_std`'s.

use dicom_dictionary_std::uids;

/// The kinds of instance alnrisk reads, and every other one with its UID.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InstanceKind {
    /// MR Image Storage (one 2D image per file).
    MrImage,
    /// Enhanced MR Image Storage (multi-frame).
    EnhancedMrImage,
    /// Segmentation Storage (DICOM SEG).
    Segmentation,
    /// RT Structure Set Storage (RTSTRUCT).
    RtStructureSet,
    /// Any other SOP class, with its UID.
    Other(String),
}

impl InstanceKind {
    /// The kind of a SOP Class UID (trailing NUL padding ignored).
    pub fn from_uid(uid: &str) -> InstanceKind {
        match uid.trim_end_matches(['\0', ' ']) {
            uids::MR_IMAGE_STORAGE => InstanceKind::MrImage,
            uids::ENHANCED_MR_IMAGE_STORAGE => InstanceKind::EnhancedMrImage,
            uids::SEGMENTATION_STORAGE => InstanceKind::Segmentation,
            uids::RT_STRUCTURE_SET_STORAGE => InstanceKind::RtStructureSet,
            other => InstanceKind::Other(other.to_string()),
        }
    }

    /// The SOP Class UID.
    pub fn uid(&self) -> &str {
        match self {
            InstanceKind::MrImage => uids::MR_IMAGE_STORAGE,
            InstanceKind::EnhancedMrImage => uids::ENHANCED_MR_IMAGE_STORAGE,
            InstanceKind::Segmentation => uids::SEGMENTATION_STORAGE,
            InstanceKind::RtStructureSet => uids::RT_STRUCTURE_SET_STORAGE,
            InstanceKind::Other(uid) => uid,
        }
    }

    /// An MR image (classic or Enhanced): what a series is made of.
    pub fn is_image(&self) -> bool {
        matches!(self, InstanceKind::MrImage | InstanceKind::EnhancedMrImage)
    }

    /// A SEG or an RTSTRUCT: what an ROI is read from.
    pub fn is_roi(&self) -> bool {
        matches!(self, InstanceKind::Segmentation | InstanceKind::RtStructureSet)
    }

    /// A short name for people: `MR`, `Enhanced MR`, `SEG`, `RTSTRUCT`, or the UID.
    pub fn name(&self) -> &str {
        match self {
            InstanceKind::MrImage => "MR",
            InstanceKind::EnhancedMrImage => "Enhanced MR",
            InstanceKind::Segmentation => "SEG",
            InstanceKind::RtStructureSet => "RTSTRUCT",
            InstanceKind::Other(uid) => uid,
        }
    }
}

impl std::fmt::Display for InstanceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_round_trips_through_its_uid_and_others_keep_theirs() {
        for k in [
            InstanceKind::MrImage,
            InstanceKind::EnhancedMrImage,
            InstanceKind::Segmentation,
            InstanceKind::RtStructureSet,
        ] {
            assert_eq!(InstanceKind::from_uid(k.uid()), k);
        }
        // the literal UIDs of PS3.4, not the dictionary's constants, so a wrong constant fails here
        assert_eq!(
            InstanceKind::from_uid("1.2.840.10008.5.1.4.1.1.4\0"),
            InstanceKind::MrImage
        );
        assert_eq!(
            InstanceKind::from_uid("1.2.840.10008.5.1.4.1.1.66.4"),
            InstanceKind::Segmentation
        );
        assert_eq!(
            InstanceKind::from_uid("1.2.840.10008.5.1.4.1.1.481.3"),
            InstanceKind::RtStructureSet
        );
        let ct = InstanceKind::from_uid("1.2.840.10008.5.1.4.1.1.2");
        assert_eq!(ct, InstanceKind::Other("1.2.840.10008.5.1.4.1.1.2".into()));
        assert!(!ct.is_image() && !ct.is_roi());
        assert!(InstanceKind::EnhancedMrImage.is_image() && InstanceKind::RtStructureSet.is_roi());
    }
}
