//! DICOM Segmentation (SEG) → [`Mask`].
//!
//! Frames are placed by their per-frame PlanePositionSequence ImagePositionPatient, never by frame order:
//! - the slice is `round_half_up(k)` where `k` is the continuous slice index of the position; `|k − slice|`
//!   must be ≤ [`SLICE_TOLERANCE`] (a fraction of the slice spacing), otherwise the frame matches no slice;
//! - in-plane, a frame whose position is within half a pixel (+1e−3) of the slice origin is index-aligned
//!   (real SEGs carry such offsets, and decimal formatting differs); an offset that is a whole number of
//!   pixels (±1e−3) shifts the frame; any other offset is refused;
//! - a frame without a position is placed through its per-frame Referenced SOP Instance UID.
//!
//! The SEG must belong to the series: a ReferencedSeriesSequence naming another series, referenced SOP
//! instances of which none is in the series, or another FrameOfReferenceUID, are errors. BINARY frames are
//! bit-packed (LSB first, continuous across frames); FRACTIONAL values are compared to
//! `threshold × MaximumFractionalValue` (see [`super::RoiOptions`]).

use std::collections::HashMap;
use std::path::Path;

use dicom_dictionary_std::tags;

use super::{Mask, RoiChoice, RoiOptions, round_half_up};
use crate::error::{Error, Result};
use crate::ingest::Series;
use crate::ingest::tags::{Dataset, float, floats, int, item, items, string};

/// Largest distance, in slice spacings, between a frame and the slice it is assigned to.
pub const SLICE_TOLERANCE: f64 = 0.25;

/// A referenced image: SOP Instance UID and, for multi-frame instances, the 1-based frame number.
type ImageRef = (String, Option<i64>);

fn refs(ds: &Dataset, out: &mut Vec<ImageRef>) {
    let push = |it: &Dataset, out: &mut Vec<ImageRef>| {
        if let Some(u) = string(it, tags::REFERENCED_SOP_INSTANCE_UID) {
            out.push((u, int(it, tags::REFERENCED_FRAME_NUMBER)));
        }
    };
    for seq in [tags::SOURCE_IMAGE_SEQUENCE, tags::REFERENCED_IMAGE_SEQUENCE] {
        for it in items(ds, seq) {
            push(it, out);
        }
    }
    for d in items(ds, tags::DERIVATION_IMAGE_SEQUENCE) {
        for it in items(d, tags::SOURCE_IMAGE_SEQUENCE) {
            push(it, out);
        }
    }
}

/// Read a SEG onto the grid of `series`.
pub fn read(path: &Path, series: &Series, opts: &RoiOptions) -> Result<Mask> {
    let obj = crate::ingest::guard::open(path, false)?;
    let ds: &Dataset = &obj;
    let bad = |reason: String| Error::invalid_roi(path, reason);
    if crate::ingest::InstanceKind::from_uid(&string(ds, tags::SOP_CLASS_UID).unwrap_or_default())
        != crate::ingest::InstanceKind::Segmentation
    {
        return Err(Error::dicom(path, "not a Segmentation Storage object"));
    }
    // Does it belong to this series?
    super::check_frame_of_reference(path, string(ds, tags::FRAME_OF_REFERENCE_UID), series)?;
    for rs in items(ds, tags::REFERENCED_SERIES_SEQUENCE) {
        if let Some(uid) = string(rs, tags::SERIES_INSTANCE_UID)
            && !series.member_series.contains(&uid)
        {
            return Err(bad(format!(
                "references another series ({uid}, not {})",
                series.member_series.join(" / ")
            )));
        }
    }
    // images of the series: (SOP Instance UID, frame) → slice; classic instances are keyed with no frame
    let mut by_uid: HashMap<(&str, Option<i64>), usize> = HashMap::new();
    let mut instances: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for phase in &series.phases {
        for (k, s) in phase.iter().enumerate() {
            let multi = phase
                .iter()
                .filter(|o| o.sop_instance_uid == s.sop_instance_uid)
                .count()
                > 1
                || s.frame > 0;
            let frame = if multi { Some(s.frame as i64 + 1) } else { None };
            by_uid.insert((s.sop_instance_uid.as_str(), frame), k);
            instances.insert(s.sop_instance_uid.as_str());
        }
    }
    let mut top_refs = Vec::new();
    refs(ds, &mut top_refs);
    for rs in items(ds, tags::REFERENCED_SERIES_SEQUENCE) {
        for it in items(rs, tags::REFERENCED_INSTANCE_SEQUENCE) {
            if let Some(u) = string(it, tags::REFERENCED_SOP_INSTANCE_UID) {
                top_refs.push((u, None));
            }
        }
    }
    if !top_refs.is_empty() && !top_refs.iter().any(|(u, _)| instances.contains(u.as_str())) {
        return Err(bad(format!(
            "none of its {} referenced images belongs to the series",
            top_refs.len()
        )));
    }

    let g = &series.geometry;
    let rows = int(ds, tags::ROWS).unwrap_or(0);
    let cols = int(ds, tags::COLUMNS).unwrap_or(0);
    if rows as usize != g.size[1] || cols as usize != g.size[0] {
        return Err(bad(format!(
            "SEG is {rows}×{cols}, the series {}×{}",
            g.size[1], g.size[0]
        )));
    }
    let frames = int(ds, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(0) as usize;
    let bits = int(ds, tags::BITS_ALLOCATED).unwrap_or(1);
    let kind = string(ds, tags::SEGMENTATION_TYPE).unwrap_or_default();
    let max_frac = float(ds, tags::MAXIMUM_FRACTIONAL_VALUE).unwrap_or(255.0);
    let plane = g.size[0] * g.size[1];
    let need_bits = (frames as u128) * plane as u128 * bits.max(1) as u128;
    if need_bits > (crate::ingest::header::MAX_PIXEL_BYTES as u128) * 8 {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            declared_bytes: need_bits / 8,
            limit_bytes: crate::ingest::header::MAX_PIXEL_BYTES as u128,
        });
    }
    let pixels = obj
        .element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        .ok_or_else(|| Error::dicom(path, "missing Pixel Data (7FE0,0010)"))?
        .to_bytes()
        .map_err(|e| Error::Unsupported {
            path: path.to_path_buf(),
            reason: format!("SEG pixel data must be uncompressed: {e}"),
        })?;
    if (pixels.len() as u128) * 8 < need_bits {
        return Err(Error::dicom(
            path,
            format!(
                "pixel data holds {} bytes, {} needed",
                pixels.len(),
                need_bits.div_ceil(8)
            ),
        ));
    }

    // Segment choice.
    let segments: Vec<(i64, String)> =
        super::numbered(ds, tags::SEGMENT_SEQUENCE, tags::SEGMENT_NUMBER, tags::SEGMENT_LABEL);
    // a SEG without a SegmentSequence (non-conformant) is read as segment 1
    let chosen = match opts.choice.pick(&segments) {
        Some(s) => s.0,
        None if segments.is_empty() && opts.choice == RoiChoice::First => 1,
        None => {
            return Err(bad(format!(
                "no segment matches {:?}; segments: {segments:?}",
                opts.choice
            )));
        }
    };

    let shared = item(ds, tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE);
    let per_frame = items(ds, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    let mut mask = Mask::empty(g, String::new());
    let mut placed = 0;
    for f in 0..frames {
        let pf = per_frame.get(f);
        let group = |seq| {
            pf.and_then(|p| item(p, seq))
                .or_else(|| shared.and_then(|s| item(s, seq)))
        };
        let segment = group(tags::SEGMENT_IDENTIFICATION_SEQUENCE)
            .and_then(|s| int(s, tags::REFERENCED_SEGMENT_NUMBER))
            .unwrap_or(chosen);
        if segment != chosen {
            continue;
        }
        let position = group(tags::PLANE_POSITION_SEQUENCE).and_then(|p| floats(p, tags::IMAGE_POSITION_PATIENT));
        let mut frame_refs = Vec::new();
        if let Some(p) = pf {
            refs(p, &mut frame_refs);
        }
        let by_ref = frame_refs
            .iter()
            .find_map(|(u, f)| by_uid.get(&(u.as_str(), *f)).copied());
        let (slice, shift) = match position {
            Some(p) if p.len() == 3 => {
                let c = g.physical_to_continuous_index([p[0], p[1], p[2]]);
                let k = round_half_up(c[2]);
                if (c[2] - k as f64).abs() > SLICE_TOLERANCE || k < 0 || k as usize >= g.size[2] {
                    return Err(bad(format!(
                        "frame {} at {:?} matches no slice of the series (continuous slice index {:.3})",
                        f + 1,
                        p,
                        c[2]
                    )));
                }
                if let Some(r) = by_ref
                    && r != k as usize
                {
                    return Err(bad(format!(
                        "frame {}: position says slice {k}, its referenced image slice {r}",
                        f + 1
                    )));
                }
                let shift = |x: f64| -> Result<i64> {
                    if x.abs() <= 0.5 + 1e-3 {
                        Ok(0)
                    } else if (x - x.round()).abs() <= 1e-3 {
                        Ok(x.round() as i64)
                    } else {
                        Err(bad(format!(
                            "frame {}: in-plane offset of {x:.3} pixels is not a whole number",
                            f + 1
                        )))
                    }
                };
                (k as usize, [shift(c[0])?, shift(c[1])?])
            }
            _ => match by_ref {
                Some(r) => (r, [0, 0]),
                None => {
                    return Err(bad(format!(
                        "frame {} has neither a position nor a reference to a series image",
                        f + 1
                    )));
                }
            },
        };
        placed += 1;
        let base = f * plane;
        for j in 0..g.size[1] {
            for i in 0..g.size[0] {
                let idx = base + j * g.size[0] + i;
                let inside = if bits == 1 {
                    pixels[idx / 8] >> (idx % 8) & 1 == 1
                } else {
                    let v = pixels[idx] as f64;
                    if kind == "FRACTIONAL" {
                        v > 0.0 && v >= opts.fractional_threshold * max_frac
                    } else {
                        v > 0.0
                    }
                };
                if !inside {
                    continue;
                }
                let (ti, tj) = (i as i64 + shift[0], j as i64 + shift[1]);
                if ti < 0 || tj < 0 || ti as usize >= g.size[0] || tj as usize >= g.size[1] {
                    continue;
                }
                let o = g.offset(ti as usize, tj as usize, slice);
                mask.volume.data[o] = 1.0;
            }
        }
    }
    if mask.voxels() == 0 {
        return Err(bad(format!("segment {chosen} is empty ({placed} frame(s))")));
    }
    let label = RoiChoice::Number(chosen)
        .pick(&segments)
        .map(|s| s.1.clone())
        .unwrap_or_default();
    mask.source = format!(
        "SEG {} segment {chosen} '{label}' ({kind}, {placed} frames)",
        path.display()
    );
    Ok(mask)
}
