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
pub(crate) fn decode_samples(bytes: &[u8], n: usize, pixel: PixelType, big_endian: bool) -> Vec<f64> {
    let w = pixel.size();
    let mut out = Vec::with_capacity(n);
    for chunk in bytes.chunks_exact(w).take(n) {
        let mut b = [0u8; 8];
        b[..w].copy_from_slice(chunk);
        if big_endian {
            b[..w].reverse();
        }
        let v = match pixel {
            PixelType::U8 => b[0] as f64,
            PixelType::I8 => b[0] as i8 as f64,
            PixelType::U16 => u16::from_le_bytes([b[0], b[1]]) as f64,
            PixelType::I16 => i16::from_le_bytes([b[0], b[1]]) as f64,
            PixelType::U32 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            PixelType::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            PixelType::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            PixelType::U64 => u64::from_le_bytes(b) as f64,
            PixelType::I64 => i64::from_le_bytes(b) as f64,
            PixelType::F64 => f64::from_le_bytes(b),
        };
        out.push(v);
    }
    out
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
