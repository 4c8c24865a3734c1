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
    Ok(read_stored(path)?.to_volume())
}

/// Read an image or label map as its file stores it ([`StoredVolume`]), choosing the reader from the file name.
pub fn read_stored(path: &Path) -> Result<StoredVolume> {
    match VolumeFormat::of(path) {
        Some(VolumeFormat::Nrrd) => nrrd::read_stored(path),
        Some(VolumeFormat::Nifti) => nifti::read_stored(path),
        None => Err(Error::Unsupported {
            path: path.to_path_buf(),
            reason: "unknown image file extension (expected .nrrd, .nii or .nii.gz)".into(),
        }),
    }
}

/// A volume's samples as its file stores them (inflated, in the file's type and byte order), decoded to `f64` on
/// demand: all of them ([`StoredVolume::to_volume`]), one row at a time ([`StoredVolume::rows`]) or a box
/// ([`StoredVolume::region`]). Extraction reads whole images this way: its whole-image passes decode a row into
/// one small buffer and only the ROI's box becomes `f64`, so a CT volume is touched at its stored size once
/// rather than also at eight bytes a voxel (fresh memory is what a large extraction spent most on).
#[derive(Debug, Clone)]
pub struct StoredVolume {
    /// Where the voxels are.
    pub geometry: crate::image::Geometry,
    /// The type the values are reported in (`F64` once a NIfTI scaling applies), as [`Volume::pixel_type`].
    pub pixel_type: PixelType,
    bytes: Vec<u8>,
    start: usize,
    stored: PixelType,
    big_endian: bool,
    /// NIfTI's `scl_slope` and `scl_inter`, applied to every value after the cast.
    scale: Option<(f64, f64)>,
}

impl StoredVolume {
    /// `bytes[start..]` holds at least the geometry's voxel count of `stored` samples (the readers check it).
    pub(crate) fn new(
        geometry: crate::image::Geometry,
        bytes: Vec<u8>,
        start: usize,
        stored: PixelType,
        big_endian: bool,
        scale: Option<(f64, f64)>,
    ) -> StoredVolume {
        StoredVolume {
            pixel_type: if scale.is_some() { PixelType::F64 } else { stored },
            geometry,
            bytes,
            start,
            stored,
            big_endian,
            scale,
        }
    }

    /// Voxel count.
    pub fn len(&self) -> usize {
        self.geometry.size.iter().product()
    }

    /// Whether it has no voxel (never, from a reader).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Decode `n` values from voxel `first` on, appended to `out`.
    fn decode_into(&self, first: usize, n: usize, out: &mut Vec<f64>) {
        let w = self.stored.size();
        let at = self.start + first * w;
        let from = out.len();
        // (the readers checked that every voxel is present; a short slice would only give fewer values)
        let bytes = self.bytes.get(at..).unwrap_or_default();
        decode_samples_into(bytes, n, self.stored, self.big_endian, out);
        if let Some((slope, inter)) = self.scale {
            for v in &mut out[from..] {
                *v = *v * slope + inter;
            }
        }
    }

    /// Every value, as a [`Volume`].
    pub fn to_volume(&self) -> Volume<f64> {
        let mut data = Vec::new();
        self.decode_into(0, self.len(), &mut data);
        Volume {
            geometry: self.geometry.clone(),
            data,
            pixel_type: self.pixel_type,
        }
    }

    /// Call `f(r, values)` for every row along `i`, in storage order (`r = j + size_j · k`), decoding one row at
    /// a time into one buffer.
    pub fn rows(&self, mut f: impl FnMut(usize, &[f64])) {
        let [nx, ny, nz] = self.geometry.size;
        let mut row = Vec::with_capacity(nx);
        for r in 0..ny * nz {
            row.clear();
            self.decode_into(r * nx, nx, &mut row);
            f(r, &row);
        }
    }

    /// The values inside `bb`, as a [`Volume`] on the cropped grid (as [`Volume::crop`] of [`Self::to_volume`]).
    pub fn region(&self, bb: &crate::image::BoundingBox) -> Volume<f64> {
        let [nx, ny, _] = self.geometry.size;
        let mut data = Vec::with_capacity(bb.size.iter().product());
        for k in bb.start[2]..bb.start[2] + bb.size[2] {
            for j in bb.start[1]..bb.start[1] + bb.size[1] {
                self.decode_into(bb.start[0] + nx * (j + ny * k), bb.size[0], &mut data);
            }
        }
        Volume {
            geometry: self.geometry.cropped(bb),
            data,
            pixel_type: self.pixel_type,
        }
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
#[cfg(test)]
fn decode_samples(bytes: &[u8], n: usize, pixel: PixelType, big_endian: bool) -> Vec<f64> {
    let mut out = Vec::new();
    decode_samples_into(bytes, n, pixel, big_endian, &mut out);
    out
}

/// Decode `n` little- or big-endian values of `pixel` type from `bytes` into `f64`, appended to `out`.
///
/// One tight loop per sample type (monomorphised by [`cast_all`]), so the compiler vectorises the cast; bytes are
/// swapped only when the file's byte order differs from this machine's.
pub(crate) fn decode_samples_into(bytes: &[u8], n: usize, pixel: PixelType, big_endian: bool, out: &mut Vec<f64>) {
    let swap = big_endian != cfg!(target_endian = "big");
    match pixel {
        PixelType::U8 => cast_all(bytes, n, swap, out, |b: [u8; 1]| f64::from(b[0])),
        PixelType::I8 => cast_all(bytes, n, swap, out, |b: [u8; 1]| f64::from(i8::from_ne_bytes(b))),
        PixelType::U16 => cast_all(bytes, n, swap, out, |b| f64::from(u16::from_ne_bytes(b))),
        PixelType::I16 => cast_all(bytes, n, swap, out, |b| f64::from(i16::from_ne_bytes(b))),
        PixelType::U32 => cast_all(bytes, n, swap, out, |b| f64::from(u32::from_ne_bytes(b))),
        PixelType::I32 => cast_all(bytes, n, swap, out, |b| f64::from(i32::from_ne_bytes(b))),
        PixelType::F32 => cast_all(bytes, n, swap, out, |b| f64::from(f32::from_ne_bytes(b))),
        PixelType::U64 => cast_all(bytes, n, swap, out, |b| u64::from_ne_bytes(b) as f64),
        PixelType::I64 => cast_all(bytes, n, swap, out, |b| i64::from_ne_bytes(b) as f64),
        PixelType::F64 => cast_all(bytes, n, swap, out, f64::from_ne_bytes),
    }
}

/// The first `n` samples of `W` bytes each (fewer if `bytes` is short), in native order after an optional swap,
/// appended to `out`.
fn cast_all<const W: usize>(bytes: &[u8], n: usize, swap: bool, out: &mut Vec<f64>, cast: impl Fn([u8; W]) -> f64) {
    let samples = bytes.chunks_exact(W).take(n);
    out.reserve(samples.len());
    let native = |c: &[u8]| {
        let mut a = [0u8; W];
        a.copy_from_slice(c);
        a
    };
    if swap {
        out.extend(samples.map(|c| {
            let mut a = native(c);
            a.reverse();
            cast(a)
        }));
    } else {
        out.extend(samples.map(|c| cast(native(c))));
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
