//! Reading images and label maps from research file formats into [`Volume`].
//!
//! - [`nrrd`]: NRRD (raw and gzip encodings, `space directions` / `space origin`), as written by 3D Slicer,
//!   ITK and PyRadiomics' test data.
//! - [`nifti`]: NIfTI-1 single-file (`.nii`, `.nii.gz`), with qform/sform converted to LPS as ITK does.
//!
//! Every reader checks the declared size against [`MAX_VOXELS`] / [`MAX_BYTES`] and against the bytes
//! actually present *before* allocating, so a hostile or truncated header yields a typed error, never an
//! out-of-memory abort or a panic. DICOM lives in its own module (`ingest`).

pub mod nifti;
pub mod nrrd;

use std::path::Path;

use crate::error::{Error, Result};
use crate::image::{PixelType, Volume};

/// The largest number of voxels a header may declare.
pub const MAX_VOXELS: u128 = 1 << 30;
/// The largest decoded payload a header may declare.
pub const MAX_BYTES: u128 = 4 << 30;

/// A CSV field, quoted when it holds a comma, quote or newline.
pub fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The file formats [`read_volume`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeFormat {
    /// NRRD (`.nrrd`, or a detached `.nhdr` header).
    Nrrd,
    /// NIfTI-1 (`.nii`, `.nii.gz`).
    Nifti,
}

impl VolumeFormat {
    /// The format a file name says (case-insensitive), if any: the one naming rule for images and label maps,
    /// which `extract`, the ROI loader and the daemon's export-folder intake all use.
    pub fn of(path: &Path) -> Option<VolumeFormat> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".nrrd") || name.ends_with(".nhdr") {
            Some(VolumeFormat::Nrrd)
        } else if name.ends_with(".nii") || name.ends_with(".nii.gz") {
            Some(VolumeFormat::Nifti)
        } else {
            None
        }
    }
}

/// Read an image or label map, choosing the reader from the file name ([`VolumeFormat::of`]).
pub fn read_volume(path: &Path) -> Result<Volume<f64>> {
    match VolumeFormat::of(path) {
        Some(VolumeFormat::Nrrd) => nrrd::read(path),
        Some(VolumeFormat::Nifti) => nifti::read(path),
        None => Err(Error::Unsupported {
            path: path.to_path_buf(),
            reason: "unknown image file extension (expected .nrrd, .nii or .nii.gz)".into(),
        }),
    }
}

/// Check a declared size before allocating anything for it.
pub(crate) fn check_declared_size(path: &Path, size: [usize; 3], pixel: PixelType) -> Result<usize> {
    let voxels = size.iter().map(|&s| s as u128).product::<u128>();
    let bytes = voxels * pixel.size() as u128;
    if voxels > MAX_VOXELS || bytes > MAX_BYTES {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            declared_bytes: bytes,
            limit_bytes: MAX_BYTES.min(MAX_VOXELS * pixel.size() as u128),
        });
    }
    if voxels == 0 {
        return Err(Error::Format {
            path: path.to_path_buf(),
            format: "image",
            reason: "declared size has a zero dimension".into(),
        });
    }
    Ok(voxels as usize)
}

/// Decode `n` little- or big-endian values of `pixel` type from `bytes` into `f64`.
///
/// One tight loop per sample type (monomorphised by [`cast_all`]), so the compiler vectorises the cast; bytes are
/// swapped only when the file's byte order differs from this machine's.
pub(crate) fn decode_samples(bytes: &[u8], n: usize, pixel: PixelType, big_endian: bool) -> Vec<f64> {
    let swap = big_endian != cfg!(target_endian = "big");
    match pixel {
        PixelType::U8 => cast_all(bytes, n, swap, |b: [u8; 1]| f64::from(b[0])),
        PixelType::I8 => cast_all(bytes, n, swap, |b: [u8; 1]| f64::from(i8::from_ne_bytes(b))),
        PixelType::U16 => cast_all(bytes, n, swap, |b| f64::from(u16::from_ne_bytes(b))),
        PixelType::I16 => cast_all(bytes, n, swap, |b| f64::from(i16::from_ne_bytes(b))),
        PixelType::U32 => cast_all(bytes, n, swap, |b| f64::from(u32::from_ne_bytes(b))),
        PixelType::I32 => cast_all(bytes, n, swap, |b| f64::from(i32::from_ne_bytes(b))),
        PixelType::F32 => cast_all(bytes, n, swap, |b| f64::from(f32::from_ne_bytes(b))),
        PixelType::U64 => cast_all(bytes, n, swap, |b| u64::from_ne_bytes(b) as f64),
        PixelType::I64 => cast_all(bytes, n, swap, |b| i64::from_ne_bytes(b) as f64),
        PixelType::F64 => cast_all(bytes, n, swap, f64::from_ne_bytes),
    }
}

/// The first `n` samples of `W` bytes each (fewer if `bytes` is short), in native order after an optional swap.
fn cast_all<const W: usize>(bytes: &[u8], n: usize, swap: bool, cast: impl Fn([u8; W]) -> f64) -> Vec<f64> {
    let samples = bytes.chunks_exact(W).take(n);
    let native = |c: &[u8]| {
        let mut a = [0u8; W];
        a.copy_from_slice(c);
        a
    };
    if swap {
        samples
            .map(|c| {
                let mut a = native(c);
                a.reverse();
                cast(a)
            })
            .collect()
    } else {
        samples.map(|c| cast(native(c))).collect()
    }
}

/// Read at most `limit` bytes of a gzip stream; a stream that is longer or corrupt is reported, not trusted.
pub(crate) fn gunzip_bounded(path: &Path, compressed: &[u8], expected: usize, format: &'static str) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::with_capacity(expected.min(1 << 28));
    let mut dec = flate2::read::MultiGzDecoder::new(compressed).take(expected as u64 + 1);
    dec.read_to_end(&mut out).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        format,
        reason: format!("gzip data is corrupt: {e}"),
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_decode_in_either_byte_order_for_every_type() {
        // (type, the value 0x0102… or -2 written out by hand in little-endian order, the value)
        let cases: [(PixelType, &[u8], f64); 10] = [
            (PixelType::U8, &[0xfe], 254.0),
            (PixelType::I8, &[0xfe], -2.0),
            (PixelType::U16, &[0x02, 0x01], 258.0),
            (PixelType::I16, &[0xfe, 0xff], -2.0),
            (PixelType::U32, &[0x04, 0x03, 0x02, 0x01], 16_909_060.0),
            (PixelType::I32, &[0xfe, 0xff, 0xff, 0xff], -2.0),
            (PixelType::F32, &[0x00, 0x00, 0xc0, 0x3f], 1.5),
            (
                PixelType::U64,
                &[0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01],
                72_623_859_790_382_856.0,
            ),
            (PixelType::I64, &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], -2.0),
            (PixelType::F64, &[0, 0, 0, 0, 0, 0, 0x04, 0xc0], -2.5),
        ];
        for (pixel, le, value) in cases {
            let mut little = le.to_vec();
            little.extend_from_slice(le);
            let mut big: Vec<u8> = le.iter().rev().copied().collect();
            big.extend(le.iter().rev());
            assert_eq!(
                decode_samples(&little, 2, pixel, false),
                vec![value, value],
                "{pixel:?} LE"
            );
            assert_eq!(decode_samples(&big, 2, pixel, true), vec![value, value], "{pixel:?} BE");
            // n bounds the count, a short buffer ends it
            assert_eq!(decode_samples(&little, 1, pixel, false), vec![value], "{pixel:?} n");
            assert_eq!(
                decode_samples(&little[..le.len() + 1], 2, pixel, false).len(),
                1 + usize::from(le.len() == 1)
            );
        }
    }
}
