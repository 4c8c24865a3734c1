//! A radiologist's corrected outline, for exercising ROI revisions (the daemon's `revision` messages): a copy of
//! a BINARY DICOM SEG as a new object — new SOPInstanceUID and SeriesInstanceUID, drawn at another time on the
//! same day — with its segment eroded in-plane. Works on the SEG alone (no series needed): frames are eroded one
//! by one, so the result stays on the same frames and positions.

use std::path::Path;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;

use crate::error::{Error, Result};

/// Write `dest`: the BINARY SEG `src` revised. `seed` names the new object (its UIDs are derived from it with
/// [`super::dicom::uid`]); `content_time` (DICOM TM, e.g. `110000`) is when it was drawn; each frame's segment
/// loses `erode` rings of pixels (4-neighbourhood; a frame may become empty).
pub fn write_revised_seg(src: &Path, dest: &Path, seed: &str, content_time: &str, erode: usize) -> Result<()> {
    let bad = |reason: String| Error::Format {
        path: src.to_path_buf(),
        format: "DICOM SEG",
        reason,
    };
    let mut obj = dicom_object::open_file(src).map_err(|e| bad(e.to_string()))?;
    let int = |tag| -> Result<usize> {
        obj.element(tag)
            .ok()
            .and_then(|e| e.to_int::<i64>().ok())
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| bad(format!("no usable {tag}")))
    };
    let (rows, cols, frames) = (int(tags::ROWS)?, int(tags::COLUMNS)?, int(tags::NUMBER_OF_FRAMES)?);
    if int(tags::BITS_ALLOCATED)? != 1 {
        return Err(bad("only BINARY segmentations (1 bit per pixel) are revised".into()));
    }
    let mut bits = obj
        .element(tags::PIXEL_DATA)
        .map_err(|e| bad(e.to_string()))?
        .to_bytes()
        .map_err(|e| bad(e.to_string()))?
        .to_vec();
    let plane = rows * cols;
    if bits.len() * 8 < plane * frames {
        return Err(bad(format!(
            "{} bytes of pixel data for {frames} frames of {rows}×{cols}",
            bits.len()
        )));
    }
    // PS3.5 8.1.1: one bit per pixel, frames back to back, the first pixel in the least significant bit
    let get = |b: &[u8], n: usize| b[n / 8] >> (n % 8) & 1 == 1;
    for f in 0..frames {
        for _ in 0..erode {
            let before = bits.clone();
            for r in 0..rows {
                for c in 0..cols {
                    let n = f * plane + r * cols + c;
                    let inside = |rr: usize, cc: usize| get(&before, f * plane + rr * cols + cc);
                    let edge = r == 0
                        || c == 0
                        || r + 1 == rows
                        || c + 1 == cols
                        || !inside(r - 1, c)
                        || !inside(r + 1, c)
                        || !inside(r, c - 1)
                        || !inside(r, c + 1);
                    if get(&before, n) && edge {
                        bits[n / 8] &= !(1 << (n % 8));
                    }
                }
            }
        }
    }
    let sop = super::dicom::uid(&format!("{seed}/instance"));
    let series = super::dicom::uid(&format!("{seed}/series"));
    for (tag, vr, value) in [
        (tags::SOP_INSTANCE_UID, VR::UI, sop.clone()),
        (tags::SERIES_INSTANCE_UID, VR::UI, series),
        (tags::CONTENT_TIME, VR::TM, content_time.to_string()),
        (
            tags::SERIES_DESCRIPTION,
            VR::LO,
            "SYNTHETIC TUMOUR ROI (REVISED)".into(),
        ),
    ] {
        obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
    }
    obj.put(DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(bits)));
    obj.update_meta(|m| m.media_storage_sop_instance_uid = sop);
    obj.write_to_file(dest)
        .map_err(|e| Error::io(dest, std::io::Error::other(e.to_string())))
}
