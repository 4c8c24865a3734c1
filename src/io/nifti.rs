//! NIfTI-1 reader for single-file images (`.nii`, `.nii.gz`).
//!
//! We parse the 348-byte header ourselves rather than through the `nifti` crate: the crate decodes the whole
//! payload before we could check its declared size, and ITK's orientation rules (which we must match exactly
//! for geometry checks against SimpleITK) are a few lines once the header is in hand.
//!
//! Orientation, as ITK's `NiftiImageIO` does it:
//! 1. use the sform when `sform_code > 0` and its 3×3 part is orthogonal once the column norms (spacings) are
//!    divided out; otherwise
//! 2. the qform when `qform_code > 0` (quaternion `b,c,d`, `a = √(1−b²−c²−d²)`, third column times `qfac`,
//!    spacing = `pixdim[1..3]`); otherwise
//! 3. identity direction, spacing `pixdim[1..3]`, origin 0.
//!
//! NIfTI is RAS+; LPS is obtained by negating the x and y rows of the direction and origin. When
//! `scl_slope` is non-zero and not the identity, values are rescaled and the pixel type becomes `F64`.

use std::path::Path;

use super::{Samples, StoredVolume};
use crate::error::{Error, Result};
use crate::image::{Geometry, PixelType, Volume};

const FORMAT: &str = "NIfTI-1";

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::format(path, FORMAT, reason)
}

struct Reader<'a> {
    b: &'a [u8],
    big: bool,
}

impl Reader<'_> {
    fn i16(&self, o: usize) -> i16 {
        let a = [self.b[o], self.b[o + 1]];
        if self.big {
            i16::from_be_bytes(a)
        } else {
            i16::from_le_bytes(a)
        }
    }
    fn f32(&self, o: usize) -> f64 {
        let a = [self.b[o], self.b[o + 1], self.b[o + 2], self.b[o + 3]];
        (if self.big {
            f32::from_be_bytes(a)
        } else {
            f32::from_le_bytes(a)
        }) as f64
    }
}

/// Read a `.nii` or `.nii.gz` file.
pub fn read(path: &Path) -> Result<Volume<f64>> {
    read_stored(path)?.to_volume()
}

/// Read a NIfTI-1 file as it stores its samples ([`StoredVolume`]).
pub fn read_stored(path: &Path) -> Result<StoredVolume> {
    let file = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let gz = file.starts_with(&[0x1f, 0x8b]);
    if gz {
        // Decode the header first to learn the payload size, then decode exactly that much.
        let head = super::gunzip_bounded(path, &file, 352 - 1, FORMAT)?;
        if head.len() < 348 {
            return Err(bad(path, "file is shorter than a NIfTI-1 header"));
        }
        let (need_total, _) = header_payload_bytes(path, &head)?;
        let all = super::gunzip_bounded(path, &file, need_total, FORMAT)?;
        parse_stored(path, all)
    } else {
        parse_stored(path, file)
    }
}

/// Total bytes (header + offset + payload) a header declares, and the voxel count.
fn header_payload_bytes(path: &Path, b: &[u8]) -> Result<(usize, usize)> {
    let r = reader(path, b)?;
    let (size, pixel) = dims_and_type(path, &r)?;
    let n = super::check_declared_size(path, size, pixel)?;
    let vox_offset = r.f32(108).max(348.0) as usize;
    Ok((vox_offset + n * pixel.size(), n))
}

fn reader<'a>(path: &Path, b: &'a [u8]) -> Result<Reader<'a>> {
    if b.len() < 348 {
        return Err(bad(path, "file is shorter than a NIfTI-1 header"));
    }
    let le = i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let be = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    let big = if le == 348 {
        false
    } else if be == 348 {
        true
    } else {
        return Err(bad(path, "sizeof_hdr is not 348 (not a NIfTI-1 file)"));
    };
    if &b[344..347] != b"n+1" {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            reason: "only single-file NIfTI-1 ('n+1' magic) is supported".into(),
        });
    }
    Ok(Reader { b, big })
}

fn dims_and_type(path: &Path, r: &Reader) -> Result<([usize; 3], PixelType)> {
    let ndim = r.i16(40);
    if !(1..=7).contains(&ndim) {
        return Err(bad(path, format!("dim[0] = {ndim} is out of range")));
    }
    let mut size = [1usize; 3];
    for d in 0..ndim as usize {
        let s = r.i16(42 + 2 * d);
        if s < 1 {
            return Err(bad(path, format!("dim[{}] = {s} is not positive", d + 1)));
        }
        if d < 3 {
            size[d] = s as usize;
        } else if s > 1 {
            return Err(Error::Unsupported {
                path: path.to_path_buf(),
                reason: format!("4D+ NIfTI (dim[{}] = {s}) is not supported", d + 1),
            });
        }
    }
    let pixel = match r.i16(70) {
        2 => PixelType::U8,
        4 => PixelType::I16,
        8 => PixelType::I32,
        16 => PixelType::F32,
        64 => PixelType::F64,
        256 => PixelType::I8,
        512 => PixelType::U16,
        768 => PixelType::U32,
        1024 => PixelType::I64,
        1280 => PixelType::U64,
        other => {
            return Err(Error::Unsupported {
                path: path.to_path_buf(),
                reason: format!("NIfTI datatype {other} is not supported"),
            });
        }
    };
    Ok((size, pixel))
}

/// Parse NIfTI-1 bytes, keeping the samples as stored.
fn parse_stored(path: &Path, b: Vec<u8>) -> Result<StoredVolume> {
    let r = reader(path, &b)?;
    let (size, pixel) = dims_and_type(path, &r)?;
    let n = super::check_declared_size(path, size, pixel)?;
    let vox_offset = r.f32(108);
    if !(vox_offset.is_finite() && vox_offset >= 0.0) {
        return Err(bad(path, "vox_offset is invalid"));
    }
    let start = (vox_offset as usize).max(348);
    let need = n * pixel.size();
    if b.len() < start + need {
        return Err(bad(
            path,
            format!(
                "truncated data: {} bytes present, {} declared",
                b.len().saturating_sub(start),
                need
            ),
        ));
    }
    let big_endian = r.big;
    let slope = r.f32(112);
    let inter = r.f32(116);
    // scl_slope / scl_inter: the values become f64 (StoredVolume applies them after the cast)
    let scale = (slope.is_finite() && slope != 0.0 && !(slope == 1.0 && inter == 0.0)).then_some((slope, inter));

    let pixdim: Vec<f64> = (0..8).map(|d| r.f32(76 + 4 * d)).collect();
    let qform_code = r.i16(252);
    let sform_code = r.i16(254);
    let mut spacing = [1.0; 3];
    for d in 0..3 {
        let p = pixdim[d + 1].abs();
        if p.is_finite() && p > 0.0 {
            spacing[d] = p;
        }
    }
    let mut direction = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let mut origin = [0.0; 3];

    let srow: Vec<f64> = (0..12).map(|t| r.f32(280 + 4 * t)).collect();
    let mut used_sform = false;
    if sform_code > 0 {
        let mut m = [[0.0; 3]; 3];
        let mut norms = [0.0; 3];
        for c in 0..3 {
            for row in 0..3 {
                m[row][c] = srow[row * 4 + c];
            }
            norms[c] = (0..3).map(|row| m[row][c] * m[row][c]).sum::<f64>().sqrt();
        }
        if norms.iter().all(|&x| x > 0.0 && x.is_finite()) {
            let mut dir = [[0.0; 3]; 3];
            for c in 0..3 {
                for row in 0..3 {
                    dir[row][c] = m[row][c] / norms[c];
                }
            }
            let orthogonal = (0..3).all(|a| {
                (a + 1..3).all(|bcol| (0..3).map(|row| dir[row][a] * dir[row][bcol]).sum::<f64>().abs() < 1e-4)
            });
            if orthogonal {
                direction = dir;
                spacing = norms;
                origin = [srow[3], srow[7], srow[11]];
                used_sform = true;
            }
        }
    }
    if !used_sform && qform_code > 0 {
        let (qb, qc, qd) = (r.f32(256), r.f32(260), r.f32(264));
        let a2 = 1.0 - (qb * qb + qc * qc + qd * qd);
        let (a, b_, c_, d_) = if a2 < 1e-7 {
            let s = 1.0 / (qb * qb + qc * qc + qd * qd).sqrt();
            (0.0, qb * s, qc * s, qd * s)
        } else {
            (a2.sqrt(), qb, qc, qd)
        };
        let qfac = if pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        direction = [
            [
                a * a + b_ * b_ - c_ * c_ - d_ * d_,
                2.0 * (b_ * c_ - a * d_),
                2.0 * (b_ * d_ + a * c_) * qfac,
            ],
            [
                2.0 * (b_ * c_ + a * d_),
                a * a + c_ * c_ - b_ * b_ - d_ * d_,
                2.0 * (c_ * d_ - a * b_) * qfac,
            ],
            [
                2.0 * (b_ * d_ - a * c_),
                2.0 * (c_ * d_ + a * b_),
                a * a + d_ * d_ - c_ * c_ - b_ * b_,
            ],
        ];
        direction[2][2] *= qfac;
        origin = [r.f32(268), r.f32(272), r.f32(276)];
    }
    if used_sform || qform_code > 0 {
        // RAS → LPS
        for c in 0..3 {
            direction[0][c] = -direction[0][c];
            direction[1][c] = -direction[1][c];
        }
        origin[0] = -origin[0];
        origin[1] = -origin[1];
    }
    if crate::image::geometry::det3(&direction).abs() < 1e-6 {
        return Err(bad(path, "orientation matrix is degenerate"));
    }
    let geometry = Geometry {
        size,
        spacing,
        origin,
        direction,
    };
    Ok(StoredVolume::new(
        geometry,
        Samples::Memory { bytes: b, start },
        pixel,
        big_endian,
        scale,
    ))
}

/// Write a volume as single-file NIfTI-1 (gzip when the name ends in `.gz`), sform and qform both set.
/// Used by tests and by `synth` for ITK-SNAP-style label maps.
pub fn write(path: &Path, vol: &Volume<f64>) -> Result<()> {
    use std::io::Write;
    let g = &vol.geometry;
    let mut h = vec![0u8; 352];
    let put_i16 = |h: &mut Vec<u8>, o: usize, v: i16| h[o..o + 2].copy_from_slice(&v.to_le_bytes());
    let put_i32 = |h: &mut Vec<u8>, o: usize, v: i32| h[o..o + 4].copy_from_slice(&v.to_le_bytes());
    let put_f32 = |h: &mut Vec<u8>, o: usize, v: f64| h[o..o + 4].copy_from_slice(&(v as f32).to_le_bytes());
    put_i32(&mut h, 0, 348);
    put_i16(&mut h, 40, 3);
    for d in 0..3 {
        put_i16(&mut h, 42 + 2 * d, g.size[d] as i16);
    }
    for d in 3..7 {
        put_i16(&mut h, 42 + 2 * d, 1);
    }
    let (code, bits) = match vol.pixel_type {
        PixelType::U8 => (2, 8),
        PixelType::I16 => (4, 16),
        PixelType::I32 => (8, 32),
        PixelType::F32 => (16, 32),
        _ => (64, 64),
    };
    put_i16(&mut h, 70, code);
    put_i16(&mut h, 72, bits);
    put_f32(&mut h, 76, 1.0);
    for d in 0..3 {
        put_f32(&mut h, 80 + 4 * d, g.spacing[d]);
    }
    put_f32(&mut h, 108, 352.0);
    put_f32(&mut h, 112, 1.0);
    put_i16(&mut h, 254, 1); // sform: scanner
    // LPS → RAS for the sform rows.
    let sign = [-1.0, -1.0, 1.0];
    for row in 0..3 {
        for c in 0..3 {
            put_f32(
                &mut h,
                280 + 16 * row + 4 * c,
                sign[row] * g.direction[row][c] * g.spacing[c],
            );
        }
        put_f32(&mut h, 280 + 16 * row + 12, sign[row] * g.origin[row]);
    }
    h[344..348].copy_from_slice(b"n+1\0");
    for &v in &vol.data {
        match code {
            2 => h.push(v as u8),
            4 => h.extend_from_slice(&(v as i16).to_le_bytes()),
            8 => h.extend_from_slice(&(v as i32).to_le_bytes()),
            16 => h.extend_from_slice(&(v as f32).to_le_bytes()),
            _ => h.extend_from_slice(&v.to_le_bytes()),
        }
    }
    let bytes = if path.to_string_lossy().ends_with(".gz") {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&h).map_err(|e| Error::io(path, e))?;
        enc.finish().map_err(|e| Error::io(path, e))?
    } else {
        h
    };
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}
