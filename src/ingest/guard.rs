//! Opening DICOM files safely.
//!
//! `dicom-object` reserves memory for a value from its declared length before reading it, so a corrupt or
//! hostile length field can make it allocate gigabytes (our fuzzing found exactly that). [`open`] therefore
//! walks the element lengths first — cheaply, without decoding values — and refuses any length that runs past
//! the end of the file, before handing the bytes to the parser. Every DICOM read in the project goes
//! through [`open`].
//!
//! The walk covers the file meta group (explicit VR little endian) and data sets in implicit or explicit VR
//! little endian, descending into sequences and items; encapsulated pixel-data fragments are skipped by
//! their lengths. Deflated and big-endian data sets are not walked (their lengths cannot be checked before
//! inflating/decoding); their size is still bounded by the file size check.

use std::path::Path;

use dicom_core::dictionary::DataDictionary;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::{StandardDataDictionary, tags};
use dicom_object::{DefaultDicomObject, OpenFileOptions};

use crate::error::{Error, Result};

/// Largest DICOM file we read.
pub const MAX_FILE_BYTES: u64 = 2 << 30;

fn u16le(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes([*b.get(o)?, *b.get(o + 1)?]))
}

fn u32le(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes([
        *b.get(o)?,
        *b.get(o + 1)?,
        *b.get(o + 2)?,
        *b.get(o + 3)?,
    ]))
}

/// The value representations of PS3.5 Table 6.2-1; anything else in an explicit-VR data set is corruption
/// (and the parser's reading of it could not be predicted here).
fn known_vr(vr: &[u8]) -> bool {
    matches!(
        vr,
        b"AE"
            | b"AS"
            | b"AT"
            | b"CS"
            | b"DA"
            | b"DS"
            | b"DT"
            | b"FL"
            | b"FD"
            | b"IS"
            | b"LO"
            | b"LT"
            | b"OB"
            | b"OD"
            | b"OF"
            | b"OL"
            | b"OV"
            | b"OW"
            | b"PN"
            | b"SH"
            | b"SL"
            | b"SQ"
            | b"SS"
            | b"ST"
            | b"SV"
            | b"TM"
            | b"UC"
            | b"UI"
            | b"UL"
            | b"UN"
            | b"UR"
            | b"US"
            | b"UT"
            | b"UV"
    )
}

fn long_form(vr: &[u8]) -> bool {
    matches!(
        vr,
        b"OB" | b"OW" | b"OF" | b"OD" | b"OL" | b"OV" | b"SQ" | b"UT" | b"UN" | b"UC" | b"UR" | b"SV" | b"UV"
    )
}

/// Walk elements from `pos` to `end`; `explicit` selects the VR encoding. Returns a description of the first
/// impossible length.
fn walk(b: &[u8], mut pos: usize, end: usize, explicit: bool) -> std::result::Result<(), String> {
    let dict = StandardDataDictionary;
    let mut in_fragments = false;
    while pos + 8 <= end {
        let group = u16le(b, pos).unwrap_or(0);
        let element = u16le(b, pos + 2).unwrap_or(0);
        let tag = Tag(group, element);
        if group == 0xFFFE {
            // item, item delimiter or sequence delimiter: 4-byte length, no VR
            let len = u32le(b, pos + 4).unwrap_or(0);
            pos += 8;
            match element {
                0xE000 if in_fragments => {
                    if len as usize > end - pos {
                        return Err(format!(
                            "pixel data fragment of {len} bytes runs past the end of the file"
                        ));
                    }
                    pos += len as usize;
                }
                0xE000 if len != u32::MAX && len as usize > end - pos => {
                    return Err(format!("item of {len} bytes runs past the end of the file"));
                }
                0xE0DD => in_fragments = false,
                _ => {}
            }
            continue;
        }
        let (is_sq, len, header) = if explicit {
            let vr = &b[pos + 4..pos + 6];
            if !known_vr(vr) {
                return Err(format!(
                    "element {tag} has an invalid value representation {:?}",
                    String::from_utf8_lossy(vr)
                ));
            }
            if long_form(vr) {
                (vr == b"SQ", u32le(b, pos + 8).ok_or("truncated element header")?, 12)
            } else {
                (false, u16le(b, pos + 6).unwrap_or(0) as u32, 8)
            }
        } else {
            let sq = dict.by_tag(tag).map(|e| e.vr.relaxed() == VR::SQ).unwrap_or(false);
            (sq, u32le(b, pos + 4).unwrap_or(0), 8)
        };
        pos += header;
        if len == u32::MAX {
            // undefined length: a sequence, or encapsulated pixel data; the contents follow as items
            if tag == tags::PIXEL_DATA {
                in_fragments = true;
            }
            continue;
        }
        if len as usize > end - pos {
            return Err(format!(
                "element {tag} declares {len} bytes, {} remain in the file",
                end - pos
            ));
        }
        if !is_sq {
            pos += len as usize;
        }
    }
    Ok(())
}

/// Read and check a DICOM file, then parse it; `until_pixels` stops before Pixel Data.
pub fn open(path: &Path, until_pixels: bool) -> Result<DefaultDicomObject> {
    let size = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    if size > MAX_FILE_BYTES {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            declared_bytes: size as u128,
            limit_bytes: MAX_FILE_BYTES as u128,
        });
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    // "DICM" after the 128-byte preamble (or, without preamble, at the start); the parser reads from it
    let magic = if bytes.get(128..132) == Some(b"DICM") {
        128
    } else if bytes.get(0..4) == Some(b"DICM") {
        0
    } else {
        return Err(Error::dicom(path, "not a DICOM Part 10 file (no DICM prefix)"));
    };
    let start = magic + 4;
    if bytes.get(start..start + 2) != Some(&[0x02, 0x00]) {
        return Err(Error::dicom(path, "no file meta group after the DICM prefix"));
    }
    // file meta group: explicit VR LE, its length in (0002,0000)
    let meta_len = u32le(&bytes, start + 8).ok_or_else(|| Error::dicom(path, "truncated file meta group"))? as usize;
    let meta_end = start + 12 + meta_len;
    if meta_end > bytes.len() {
        return Err(Error::dicom(
            path,
            "file meta group length runs past the end of the file",
        ));
    }
    walk(&bytes, start, meta_end, true).map_err(|r| Error::dicom(path, r))?;
    let ts = find_transfer_syntax(&bytes[start..meta_end]).unwrap_or_default();
    match ts.as_str() {
        "1.2.840.10008.1.2" => walk(&bytes, meta_end, bytes.len(), false),
        "1.2.840.10008.1.2.1.99" | "1.2.840.10008.1.2.2" => Ok(()),
        _ => walk(&bytes, meta_end, bytes.len(), true),
    }
    .map_err(|r| Error::dicom(path, format!("corrupt element lengths: {r}")))?;
    let mut opts = OpenFileOptions::new();
    if until_pixels {
        opts = opts.read_until(tags::PIXEL_DATA);
    }
    opts.from_reader(&bytes[magic..])
        .map_err(|e| Error::dicom(path, format!("not a readable DICOM file: {e}")))
}

fn find_transfer_syntax(meta: &[u8]) -> Option<String> {
    let mut pos = 0;
    while pos + 8 <= meta.len() {
        let (g, e) = (u16le(meta, pos)?, u16le(meta, pos + 2)?);
        let vr = meta.get(pos + 4..pos + 6)?;
        let (len, header) = if long_form(vr) {
            (u32le(meta, pos + 8)? as usize, 12)
        } else {
            (u16le(meta, pos + 6)? as usize, 8)
        };
        if (g, e) == (0x0002, 0x0010) {
            let v = meta.get(pos + header..pos + header + len)?;
            return Some(String::from_utf8_lossy(v).trim_end_matches(['\0', ' ']).to_string());
        }
        pos += header + len;
    }
    None
}
