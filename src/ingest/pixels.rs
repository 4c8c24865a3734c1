//! Decoding pixel data into volumes: each file is decoded once, rescaled to real values.
//!
//! Values are `stored × slope + intercept`, from the Real World Value Mapping (first item of
//! RealWorldValueMappingSequence) when present, otherwise from RescaleSlope/RescaleIntercept (identity when
//! absent). Transfer syntaxes are whatever `dicom-pixeldata` decodes in pure Rust (uncompressed, deflate, RLE,
//! JPEG baseline/extended/lossless, JPEG 2000); anything else is reported with its UID.

use std::collections::BTreeMap;
use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_pixeldata::{ConvertOptions, ModalityLutOption, PixelDecoder};

use super::header::SliceHeader;
use super::series::Series;
use super::tags::{float, int, item};
use crate::error::{Error, Result};
use crate::image::{PixelType, Volume};

/// Largest plausible compression ratio of encapsulated pixel data; a declaration beyond it is refused before the
/// decoder allocates the declared size.
pub const MAX_COMPRESSION_RATIO: u64 = 200;

/// Decode the frames `frames` of one file as real values.
pub fn decode_frames(path: &Path, frames: &[u32]) -> Result<(Vec<Vec<f64>>, PixelType)> {
    let obj = crate::ingest::guard::open(path, false)?;
    let Some(pixel_data) = obj.element_opt(tags::PIXEL_DATA).ok().flatten() else {
        return Err(Error::dicom(path, "missing Pixel Data (7FE0,0010)"));
    };
    // Decoders allocate from Rows × Columns × Frames; refuse declarations the stored bytes cannot back.
    let dim = |t| int(&obj, t).unwrap_or(1).max(0) as u64;
    let declared =
        dim(tags::ROWS) * dim(tags::COLUMNS) * dim(tags::NUMBER_OF_FRAMES) * dim(tags::BITS_ALLOCATED).div_ceil(8);
    let (stored, encapsulated) = match pixel_data.value() {
        dicom_core::value::Value::PixelSequence(seq) => {
            (seq.fragments().iter().map(|f| f.len() as u64).sum::<u64>(), true)
        }
        _ => (pixel_data.to_bytes().map(|b| b.len() as u64).unwrap_or(0), false),
    };
    if (!encapsulated && stored < declared) || (encapsulated && declared > stored.saturating_mul(MAX_COMPRESSION_RATIO))
    {
        return Err(Error::dicom(
            path,
            format!(
                "Pixel Data holds {stored} bytes, too few for the {declared} bytes Rows × Columns × Frames declare"
            ),
        ));
    }
    let (slope, intercept) = match item(&obj, tags::REAL_WORLD_VALUE_MAPPING_SEQUENCE) {
        Some(rw) => (
            float(rw, tags::REAL_WORLD_VALUE_SLOPE).unwrap_or(1.0),
            float(rw, tags::REAL_WORLD_VALUE_INTERCEPT).unwrap_or(0.0),
        ),
        None => (
            float(&obj, tags::RESCALE_SLOPE).unwrap_or(1.0),
            float(&obj, tags::RESCALE_INTERCEPT).unwrap_or(0.0),
        ),
    };
    let ts = obj.meta().transfer_syntax().trim_end_matches('\0').to_string();
    let decoded = obj.decode_pixel_data().map_err(|e| Error::Unsupported {
        path: path.to_path_buf(),
        reason: format!("cannot decode pixel data (transfer syntax {ts}): {e}"),
    })?;
    let signed = matches!(
        decoded.pixel_representation(),
        dicom_pixeldata::PixelRepresentation::Signed
    );
    let bits = decoded.bits_allocated();
    let opts = ConvertOptions::new().with_modality_lut(ModalityLutOption::None);
    let mut out = Vec::with_capacity(frames.len());
    for &f in frames {
        let mut v: Vec<f64> = decoded
            .to_vec_frame_with_options(f, &opts)
            .map_err(|e| Error::dicom(path, format!("frame {f}: {e}")))?;
        if slope != 1.0 || intercept != 0.0 {
            v.iter_mut().for_each(|x| *x = *x * slope + intercept);
        }
        out.push(v);
    }
    let ptype = if slope != 1.0 || intercept != 0.0 || slope.fract() != 0.0 {
        PixelType::F64
    } else {
        match (bits, signed) {
            (8, false) => PixelType::U8,
            (8, true) => PixelType::I8,
            (16, false) => PixelType::U16,
            (16, true) => PixelType::I16,
            (32, false) => PixelType::U32,
            (32, true) => PixelType::I32,
            _ => PixelType::F64,
        }
    };
    Ok((out, ptype))
}

/// Decode one phase (0-based) of a series into a volume on the series grid. Each file is opened once.
pub fn load_phase(series: &Series, phase: usize) -> Result<Volume<f64>> {
    let slices: &[SliceHeader] = series.phases.get(phase).ok_or_else(|| Error::Series {
        series: series.series_uid.clone(),
        dir: series.dir.clone(),
        reason: format!("phase {} requested, the series has {}", phase + 1, series.phases.len()),
    })?;
    let g = &series.geometry;
    let plane = g.size[0] * g.size[1];
    let mut data = vec![0.0; plane * slices.len()];
    let mut by_file: BTreeMap<&Path, Vec<(usize, u32)>> = BTreeMap::new();
    for (k, s) in slices.iter().enumerate() {
        by_file.entry(s.file.as_path()).or_default().push((k, s.frame));
    }
    let mut ptype = PixelType::F64;
    for (file, list) in by_file {
        let frames: Vec<u32> = list.iter().map(|x| x.1).collect();
        let (decoded, t) = decode_frames(file, &frames)?;
        ptype = t;
        for ((k, _), values) in list.iter().zip(decoded) {
            if values.len() != plane {
                return Err(Error::dicom(
                    file,
                    format!("frame has {} pixels, expected {plane}", values.len()),
                ));
            }
            data[k * plane..(k + 1) * plane].copy_from_slice(&values);
        }
    }
    Ok(Volume {
        geometry: g.clone(),
        data,
        pixel_type: ptype,
    })
}
