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
    read_stored(path)?.to_volume()
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

/// A volume's samples as its file stores them (in the file's type and byte order), decoded to `f64` on demand:
/// all of them ([`StoredVolume::to_volume`]), one row at a time ([`StoredVolume::rows`]) or a box
/// ([`StoredVolume::region`]). Extraction reads whole images this way: its whole-image passes decode a row into
/// one small buffer and only the ROI's box becomes `f64`, so a CT volume is touched at its stored size once
/// rather than also at eight bytes a voxel (fresh memory is what a large extraction spent most on).
///
/// An uncompressed payload of at least [`STREAM_MIN_BYTES`] stays in its file and is read
/// in runs of rows into one buffer of about [`STREAM_RUN_BYTES`] on every pass, so a 78 MB CT pair costs
/// neither 78 MB of fresh memory nor its page faults. A file that changes under it (shorter than its header
/// said) gives [`Error::Io`] on the pass that finds it.
#[derive(Debug)]
pub struct StoredVolume {
    /// Where the voxels are.
    pub geometry: crate::image::Geometry,
    /// The type the values are reported in (`F64` once a NIfTI scaling applies), as [`Volume::pixel_type`].
    pub pixel_type: PixelType,
    samples: Samples,
    stored: PixelType,
    big_endian: bool,
    /// NIfTI's `scl_slope` and `scl_inter`, applied to every value after the cast.
    scale: Option<(f64, f64)>,
}

/// An uncompressed file at least this large is opened by its header alone, and its samples are read from it
/// pass by pass ([`StoredVolume`]).
pub const STREAM_MIN_BYTES: u64 = 4 << 20;
/// About how many bytes of rows one read of samples left in their file brings in (L2-sized, so a pass reuses
/// warm memory).
pub const STREAM_RUN_BYTES: usize = 512 << 10;

/// Where a [`StoredVolume`]'s samples are.
#[derive(Debug)]
pub(crate) enum Samples {
    /// In memory: `bytes[start..]` (inflated payloads, small files, parsed buffers).
    Memory { bytes: Vec<u8>, start: usize },
    /// In an uncompressed file, from byte `start` on, read in runs of about `run_bytes` (at least one row).
    File {
        file: std::fs::File,
        path: std::path::PathBuf,
        start: u64,
        run_bytes: usize,
    },
}

impl StoredVolume {
    /// `samples` hold at least the geometry's voxel count of `stored` samples (the readers check it).
    pub(crate) fn new(
        geometry: crate::image::Geometry,
        samples: Samples,
        stored: PixelType,
        big_endian: bool,
        scale: Option<(f64, f64)>,
    ) -> StoredVolume {
        StoredVolume {
            pixel_type: if scale.is_some() { PixelType::F64 } else { stored },
            geometry,
            samples,
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

    /// Bytes of one row along `i`.
    fn row_bytes(&self) -> usize {
        self.geometry.size[0] * self.stored.size()
    }

    /// Call `f(first, bytes)` for consecutive runs of whole rows covering `rows` in order, `bytes` holding the
    /// stored samples of rows `first..` (one run for samples in memory; for samples in a file, runs of about
    /// its `run_bytes` read into one buffer). Rows past the end give nothing (the readers checked that every
    /// row is present, in the file as it was when read).
    fn row_runs(&self, rows: std::ops::Range<usize>, mut f: impl FnMut(usize, &[u8])) -> Result<()> {
        let row_bytes = self.row_bytes();
        let rows = rows.start..rows.end.min(self.geometry.size[1] * self.geometry.size[2]);
        if rows.is_empty() || row_bytes == 0 {
            return Ok(());
        }
        match &self.samples {
            Samples::Memory { bytes, start } => {
                let all = bytes.get(*start..).unwrap_or_default();
                let at = rows.start * row_bytes;
                let run = all.get(at..(rows.end * row_bytes).min(all.len())).unwrap_or_default();
                f(rows.start, run);
            }
            Samples::File {
                file,
                path,
                start,
                run_bytes,
            } => {
                use std::os::unix::fs::FileExt;
                let per_run = (run_bytes / row_bytes).max(1).min(rows.len());
                let mut buf = vec![0u8; per_run * row_bytes];
                let mut first = rows.start;
                while first < rows.end {
                    let n = per_run.min(rows.end - first);
                    let run = &mut buf[..n * row_bytes];
                    file.read_exact_at(run, start + (first * row_bytes) as u64)
                        .map_err(|e| Error::io(path, e))?;
                    f(first, run);
                    first += n;
                }
            }
        }
        Ok(())
    }

    /// Decode the stored samples in `bytes` (whole values), appended to `out`, scaled where NIfTI says so.
    fn decode_into(&self, bytes: &[u8], out: &mut Vec<f64>) {
        let from = out.len();
        decode_samples_into(
            bytes,
            bytes.len() / self.stored.size(),
            self.stored,
            self.big_endian,
            out,
        );
        if let Some((slope, inter)) = self.scale {
            for v in &mut out[from..] {
                *v = *v * slope + inter;
            }
        }
    }

    /// Every value, as a [`Volume`].
    pub fn to_volume(&self) -> Result<Volume<f64>> {
        let mut data = Vec::with_capacity(self.len());
        let [_, ny, nz] = self.geometry.size;
        self.row_runs(0..ny * nz, |_, run| self.decode_into(run, &mut data))?;
        Ok(Volume {
            geometry: self.geometry.clone(),
            data,
            pixel_type: self.pixel_type,
        })
    }

    /// Call `f(r, values)` for every row along `i`, in storage order (`r = j + size_j · k`), decoding one row at
    /// a time into one buffer.
    pub fn rows(&self, f: impl FnMut(usize, &[f64])) -> Result<()> {
        self.rows_where(|_| true, f)
    }

    /// [`Self::rows`] for the rows whose stored bytes `keep` accepts; the others are not decoded.
    fn rows_where(&self, keep: impl Fn(&[u8]) -> bool, mut f: impl FnMut(usize, &[f64])) -> Result<()> {
        let [nx, ny, nz] = self.geometry.size;
        let row_bytes = self.row_bytes();
        let mut row = Vec::with_capacity(nx);
        self.row_runs(0..ny * nz, |first, run| {
            for (i, bytes) in run.chunks(row_bytes).enumerate() {
                if keep(bytes) {
                    row.clear();
                    self.decode_into(bytes, &mut row);
                    f(first + i, &row);
                }
            }
        })
    }

    /// Count, sum, minimum and maximum of every value, the same bits as [`ValueSummary::add`] over
    /// [`Self::to_volume`]'s data. Integers of up to 32 bits, unscaled, are summed as integers, exactly (at most
    /// 2³¹ · 2³⁰ < 2⁶³ for the largest volume a reader accepts, [`MAX_VOXELS`]); where a value's magnitude times
    /// the count could reach 2⁵³, adding in `f64` would round, so those images are added as `f64` like the rest.
    pub fn summary(&self) -> Result<ValueSummary> {
        let n = self.len();
        let swap = self.big_endian != cfg!(target_endian = "big");
        let exact_in_f64 = |largest: u64| (n as u128) * (largest as u128) < (1u128 << 53);
        if self.scale.is_none() {
            match self.stored {
                PixelType::U8 => return self.integer_summary(swap, |b: [u8; 1]| b[0]),
                PixelType::I8 => return self.integer_summary(swap, i8::from_ne_bytes),
                PixelType::U16 => return self.integer_summary(swap, u16::from_ne_bytes),
                PixelType::I16 => return self.integer_summary(swap, i16::from_ne_bytes),
                PixelType::U32 if exact_in_f64(u32::MAX.into()) => {
                    return self.integer_summary(swap, u32::from_ne_bytes);
                }
                PixelType::I32 if exact_in_f64(1 << 31) => return self.integer_summary(swap, i32::from_ne_bytes),
                _ => {}
            }
        }
        let mut summary = ValueSummary::empty();
        self.rows(|_, row| summary.add(row))?;
        Ok(summary)
    }

    /// [`Self::summary`] of samples stored as integers `T` of `W` bytes, in integer arithmetic: the sum is exact,
    /// and so equal, bit for bit, to adding the same values one after the other in `f64` while every partial sum
    /// stays below 2⁵³, which the caller ensures. The minimum and maximum are kept in `T`, and the byte order is
    /// decided once, outside the loop, so the loop vectorises.
    fn integer_summary<const W: usize, T: Copy + Ord + Into<i64>>(
        &self,
        swap: bool,
        value: impl Fn([u8; W]) -> T,
    ) -> Result<ValueSummary> {
        let native = |c: &[u8]| {
            let mut a = [0u8; W];
            a.copy_from_slice(c);
            value(a)
        };
        let swapped = |c: &[u8]| {
            let mut a = [0u8; W];
            a.copy_from_slice(c);
            a.reverse();
            value(a)
        };
        let mut folded: Option<(usize, i64, T, T)> = None;
        let [_, ny, nz] = self.geometry.size;
        self.row_runs(0..ny * nz, |_, run| {
            let Some(first) = run.get(..W) else {
                return;
            };
            let v0 = if swap { swapped(first) } else { native(first) };
            let (sum, min, max) = if swap {
                fold_integers::<W, T>(run, v0, swapped)
            } else {
                fold_integers::<W, T>(run, v0, native)
            };
            let count = run.len() / W;
            folded = Some(match folded {
                None => (count, sum, min, max),
                Some((c, s, lo, hi)) => (c + count, s + sum, lo.min(min), hi.max(max)),
            });
        })?;
        Ok(match folded {
            None => ValueSummary::empty(),
            Some((count, sum, min, max)) => ValueSummary {
                count,
                sum: sum as f64,
                min: min.into() as f64,
                max: max.into() as f64,
            },
        })
    }

    /// [`Self::rows`], but only the rows that hold a non-zero value: a row whose bytes are all zero is skipped
    /// without being decoded (a label map is mostly such rows). Where a scaling applies, zero bytes need not mean
    /// the value 0, and every row is given.
    pub fn nonzero_rows(&self, f: impl FnMut(usize, &[f64])) -> Result<()> {
        if self.scale.is_some() {
            return self.rows(f);
        }
        // (an OR over 64-byte pieces: the comparison vectorises, where `all` stops at each byte)
        let any_set = |bytes: &[u8]| {
            !bytes
                .chunks(64)
                .all(|piece| piece.iter().fold(0u8, |acc, &b| acc | b) == 0)
        };
        self.rows_where(any_set, f)
    }

    /// The values inside `bb`, as a [`Volume`] on the cropped grid (as [`Volume::crop`] of [`Self::to_volume`]).
    pub fn region(&self, bb: &crate::image::BoundingBox) -> Result<Volume<f64>> {
        let ny = self.geometry.size[1];
        let (row_bytes, w) = (self.row_bytes(), self.stored.size());
        let (x0, x1) = (bb.start[0] * w, (bb.start[0] + bb.size[0]) * w);
        let mut data = Vec::with_capacity(bb.size.iter().product());
        for k in bb.start[2]..bb.start[2] + bb.size[2] {
            let rows = bb.start[1] + ny * k..bb.start[1] + bb.size[1] + ny * k;
            self.row_runs(rows, |_, run| {
                for row in run.chunks(row_bytes) {
                    self.decode_into(row.get(x0..x1.min(row.len())).unwrap_or_default(), &mut data);
                }
            })?;
        }
        Ok(Volume {
            geometry: self.geometry.cropped(bb),
            data,
            pixel_type: self.pixel_type,
        })
    }
}

/// Count, sum, minimum and maximum of a whole image: PyRadiomics' image diagnostics (mean, minimum, maximum).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueSummary {
    /// How many values.
    pub count: usize,
    /// Their sum, added one after the other in storage order.
    pub sum: f64,
    /// The smallest value (NaN is skipped).
    pub min: f64,
    /// The largest value (NaN is skipped).
    pub max: f64,
}

impl ValueSummary {
    /// The summary of no value: sum 0, minimum +∞, maximum −∞.
    pub fn empty() -> ValueSummary {
        ValueSummary {
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// Add `values`, one after the other.
    pub fn add(&mut self, values: &[f64]) {
        self.count += values.len();
        for &v in values {
            self.sum += v;
            if v < self.min {
                self.min = v;
            }
            if v > self.max {
                self.max = v;
            }
        }
    }

    /// The mean (NaN for no value).
    pub fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }
}

/// Sum, minimum and maximum of the samples of `W` bytes in `bytes`, read by `value`, starting from `v0`.
///
/// Samples of one or two bytes are summed in `i32` over blocks of [`I32_BLOCK`] values (at most
/// 65,535 · 32,768 < 2³¹ in magnitude, so no block sum overflows) and the block sums in `i64`: the same exact
/// integer, with twice the lanes per vector register of widening every value to `i64`.
#[inline(always)]
fn fold_integers<const W: usize, T: Copy + Ord + Into<i64>>(
    bytes: &[u8],
    v0: T,
    value: impl Fn(&[u8]) -> T,
) -> (i64, T, T) {
    let (mut sum, mut min, mut max) = (0i64, v0, v0);
    if W <= 2 {
        for block in bytes.chunks(W * I32_BLOCK) {
            let mut block_sum = 0i32;
            for c in block.chunks_exact(W) {
                let v = value(c);
                let wide: i64 = v.into();
                block_sum += wide as i32;
                min = min.min(v);
                max = max.max(v);
            }
            sum += i64::from(block_sum);
        }
    } else {
        for c in bytes.chunks_exact(W) {
            let v = value(c);
            sum += v.into();
            min = min.min(v);
            max = max.max(v);
        }
    }
    (sum, min, max)
}

/// Values per `i32` block sum in [`fold_integers`].
const I32_BLOCK: usize = 1 << 15;

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

/// DEFLATE's largest expansion: one 258-byte match per 2 bits at best, so no stream inflates to more than about
/// 1,032 times its size.
const MAX_DEFLATE_RATIO: usize = 1032;

/// Read at most `expected + 1` bytes of a gzip stream; a stream that is corrupt is reported, not trusted.
///
/// The payload is inflated in one call of libdeflate into a buffer of exactly `expected` bytes, the fast path for
/// a well-formed file: one gzip member that inflates to the declared size and nothing after it. Anything else
/// (a shorter or longer stream, several members, trailing bytes, corruption) goes through the streaming decoder,
/// which reports it as before; so the fast path changes the speed, never the outcome.
pub(crate) fn gunzip_bounded(path: &Path, compressed: &[u8], expected: usize, format: &'static str) -> Result<Vec<u8>> {
    if let Some(whole) = gunzip_exact(compressed, expected) {
        return Ok(whole);
    }
    gunzip_streaming(path, compressed, expected, format)
}

/// The one-member gzip stream `compressed` inflated, when it is exactly `expected` bytes and nothing follows it.
fn gunzip_exact(compressed: &[u8], expected: usize) -> Option<Vec<u8>> {
    use libdeflate_sys::*;
    // A header that declares more than the stream could ever hold gets no buffer of that size.
    if expected == 0 || expected > compressed.len().saturating_mul(MAX_DEFLATE_RATIO) {
        return None;
    }
    let mut out = vec![0u8; expected];
    let (mut read, mut written) = (0usize, 0usize);
    // SAFETY: the decompressor is checked for null, used by this thread only and freed once. libdeflate reads at
    // most `compressed.len()` bytes from `compressed` and writes at most `out.len()` bytes to `out`, both live
    // slices of those lengths, and writes the two counts through valid pointers to local variables.
    let result = unsafe {
        let d = libdeflate_alloc_decompressor();
        if d.is_null() {
            return None;
        }
        let r = libdeflate_gzip_decompress_ex(
            d,
            compressed.as_ptr().cast(),
            compressed.len(),
            out.as_mut_ptr().cast(),
            out.len(),
            &mut read,
            &mut written,
        );
        libdeflate_free_decompressor(d);
        r
    };
    (result == libdeflate_result_LIBDEFLATE_SUCCESS && read == compressed.len() && written == expected).then_some(out)
}

/// [`gunzip_bounded`] through flate2's streaming decoder: every member, at most `expected + 1` bytes.
fn gunzip_streaming(path: &Path, compressed: &[u8], expected: usize, format: &'static str) -> Result<Vec<u8>> {
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

    fn gzip(data: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).expect("in memory");
        enc.finish().expect("in memory")
    }

    #[test]
    fn the_fast_inflate_gives_what_the_streaming_decoder_gives_or_leaves_the_stream_to_it() {
        let path = Path::new("case.nrrd");
        let data: Vec<u8> = (0..50_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let one = gzip(&data);
        let mut two = gzip(&data[..20_000]);
        two.extend(gzip(&data[20_000..]));
        let mut trailing = one.clone();
        trailing.extend_from_slice(b"junk");
        let mut corrupt = one.clone();
        let mid = corrupt.len() / 2;
        corrupt[mid] ^= 0x55;
        let truncated = one[..one.len() - 100].to_vec();
        // (stream, declared size, whether the one-call path may take it)
        let cases: [(&[u8], usize, bool); 7] = [
            (&one, data.len(), true),
            (&one, data.len() - 1, false), // longer than declared
            (&one, data.len() + 1, false), // shorter than declared
            (&two, data.len(), false),     // two members
            (&trailing, data.len(), false),
            (&corrupt, data.len(), false),
            (&truncated, data.len(), false),
        ];
        for (k, (stream, expected, fast)) in cases.into_iter().enumerate() {
            assert_eq!(gunzip_exact(stream, expected).is_some(), fast, "case {k}");
            let streaming = gunzip_streaming(path, stream, expected, "NRRD").map_err(|e| e.to_string());
            let bounded = gunzip_bounded(path, stream, expected, "NRRD").map_err(|e| e.to_string());
            assert_eq!(bounded, streaming, "case {k}");
        }
        assert_eq!(gunzip_exact(&one, data.len()), Some(data.clone()));
        // a declared size no stream of this length can reach gets no buffer
        assert_eq!(gunzip_exact(&one, one.len() * MAX_DEFLATE_RATIO + 1), None);
    }

    fn stored(values: &[f64], pixel: PixelType, big_endian: bool, scale: Option<(f64, f64)>) -> StoredVolume {
        let mut bytes = vec![0xAA; 3]; // samples start at an odd offset, as after a header
        for &v in values {
            let mut le: Vec<u8> = match pixel {
                PixelType::U8 => vec![v as u8],
                PixelType::I8 => (v as i8).to_le_bytes().to_vec(),
                PixelType::U16 => (v as u16).to_le_bytes().to_vec(),
                PixelType::I16 => (v as i16).to_le_bytes().to_vec(),
                PixelType::U32 => (v as u32).to_le_bytes().to_vec(),
                PixelType::I32 => (v as i32).to_le_bytes().to_vec(),
                PixelType::U64 => (v as u64).to_le_bytes().to_vec(),
                PixelType::I64 => (v as i64).to_le_bytes().to_vec(),
                PixelType::F32 => (v as f32).to_le_bytes().to_vec(),
                PixelType::F64 => v.to_le_bytes().to_vec(),
            };
            if big_endian {
                le.reverse();
            }
            bytes.extend(le);
        }
        let geometry = crate::image::Geometry::new([4, 3, values.len() / 12], [1.0; 3], [0.0; 3]);
        StoredVolume::new(geometry, Samples::Memory { bytes, start: 3 }, pixel, big_endian, scale)
    }

    /// [`stored`], with the samples left in a file and read two rows (plus a byte) at a time.
    fn stored_in_file(values: &[f64], pixel: PixelType, big_endian: bool, scale: Option<(f64, f64)>) -> StoredVolume {
        let in_memory = stored(values, pixel, big_endian, scale);
        let Samples::Memory { bytes, .. } = &in_memory.samples else {
            unreachable!("stored() keeps the samples in memory")
        };
        static FILES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = FILES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("alnrisk-stored-{}-{n}.raw", std::process::id()));
        std::fs::write(&path, bytes).expect("temp file");
        let file = std::fs::File::open(&path).expect("temp file");
        std::fs::remove_file(&path).ok(); // the open handle keeps it readable
        let samples = Samples::File {
            file,
            path,
            start: 3,
            run_bytes: 2 * 4 * pixel.size() + 1,
        };
        StoredVolume::new(in_memory.geometry.clone(), samples, pixel, big_endian, scale)
    }

    #[test]
    fn the_whole_image_summary_is_the_sum_in_order_of_the_decoded_values_for_every_type() {
        use PixelType::*;
        // 24 values: negative where the type allows, zeros, the type's extremes
        let values = |pixel: PixelType| -> Vec<f64> {
            let (lo, hi) = match pixel {
                U8 => (0.0, 255.0),
                I8 => (-128.0, 127.0),
                U16 => (0.0, 65_535.0),
                I16 => (-32_768.0, 32_767.0),
                U32 => (0.0, 4_294_967_295.0),
                I32 => (-2_147_483_648.0, 2_147_483_647.0),
                _ => (-1.0e6, 1.0e6),
            };
            (0..24)
                .map(|i| match i % 6 {
                    0 => lo,
                    1 => hi,
                    2 => 0.0,
                    _ => ((i * 37 % 23) as f64 * (hi - lo) / 23.0 + lo).round().clamp(lo, hi),
                })
                .collect()
        };
        for pixel in [U8, I8, U16, I16, U32, I32, U64, I64, F32, F64] {
            for big_endian in [false, true] {
                for scale in [None, Some((0.5, -3.0))] {
                    let v = stored(&values(pixel), pixel, big_endian, scale);
                    let in_file = stored_in_file(&values(pixel), pixel, big_endian, scale);
                    let decoded = v.to_volume().expect("in memory").data;
                    assert_eq!(in_file.to_volume().expect("in file").data, decoded, "{pixel:?}");
                    let mut expected = ValueSummary::empty();
                    expected.add(&decoded);
                    let got = v.summary().expect("in memory");
                    assert_eq!(in_file.summary().expect("in file"), got, "{pixel:?} from the file");
                    assert_eq!(got.count, 24);
                    assert_eq!(
                        (got.sum.to_bits(), got.min.to_bits(), got.max.to_bits()),
                        (expected.sum.to_bits(), expected.min.to_bits(), expected.max.to_bits()),
                        "{pixel:?} big-endian {big_endian} scale {scale:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn nonzero_rows_are_the_rows_holding_a_value_other_than_zero() {
        let mut values = vec![0.0; 24];
        values[5] = 1.0; // row 1
        values[13] = 2.0; // row 3
        values[23] = 1.0; // row 5
        for (pixel, scale) in [
            (PixelType::U8, None),
            (PixelType::I16, None),
            (PixelType::F32, None),
            (PixelType::U8, Some((1.0, 0.5))),
        ] {
            for v in [
                stored(&values, pixel, false, scale),
                stored_in_file(&values, pixel, false, scale),
            ] {
                let mut all = Vec::new();
                v.rows(|r, row| all.push((r, row.to_vec()))).expect("rows");
                let mut nonzero = Vec::new();
                v.nonzero_rows(|r, row| nonzero.push((r, row.to_vec()))).expect("rows");
                if scale.is_some() {
                    assert_eq!(nonzero, all, "a scaled zero is not zero: every row");
                } else {
                    all.retain(|(_, row)| row.iter().any(|&x| x != 0.0));
                    assert_eq!(nonzero, all, "{pixel:?}");
                    assert_eq!(nonzero.iter().map(|(r, _)| *r).collect::<Vec<_>>(), vec![1, 3, 5]);
                }
            }
        }
    }

    #[test]
    fn a_region_is_the_crop_of_the_whole_volume_in_memory_and_in_a_file() {
        let values: Vec<f64> = (0..48).map(|i| (i * 7 % 31) as f64 - 9.0).collect();
        let bb = crate::image::BoundingBox {
            start: [1, 1, 1],
            size: [2, 2, 3],
        };
        for v in [
            stored(&values, PixelType::I16, true, None),
            stored_in_file(&values, PixelType::I16, true, None),
        ] {
            let whole = v.to_volume().expect("whole");
            assert_eq!(whole.data, values);
            let region = v.region(&bb).expect("region");
            assert_eq!(region.data, whole.crop(&bb).data);
            assert_eq!(region.geometry, whole.crop(&bb).geometry);
        }
    }

    #[test]
    fn a_file_that_shrinks_under_a_stored_volume_gives_an_io_error() {
        let path = std::env::temp_dir().join(format!("alnrisk-shrinks-{}.raw", std::process::id()));
        std::fs::write(&path, vec![1u8; 3 + 48]).expect("temp file");
        let samples = Samples::File {
            file: std::fs::File::open(&path).expect("open"),
            path: path.clone(),
            start: 3,
            run_bytes: STREAM_RUN_BYTES,
        };
        let geometry = crate::image::Geometry::new([4, 3, 4], [1.0; 3], [0.0; 3]);
        let v = StoredVolume::new(geometry, samples, PixelType::U8, false, None);
        assert_eq!(v.summary().expect("whole file").count, 48);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(30))
            .expect("truncate");
        let err = v.summary().expect_err("the samples are gone");
        std::fs::remove_file(&path).ok();
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }
}
