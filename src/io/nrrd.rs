//! NRRD reader (<http://teem.sourceforge.net/nrrd/format.html>).
//!
//! Supports the subset that medical volumes use: 3D (or 2D, read as one slice) scalar data, `raw` and
//! `gzip` encodings, `little`/`big` endian, `space directions` + `space origin` (or `spacings`), and
//! `space` values `left-posterior-superior` (LPS, used as is) and `right-anterior-superior` (RAS, x and y
//! negated). Detached headers (`data file`) are refused with a clear error.
//!
//! Like ITK, the spacing along an axis is the norm of its space-direction vector, and the direction is the
//! normalised vector.

use std::path::Path;

use super::{Samples, StoredVolume};
use crate::error::{Error, Result};
use crate::image::{Geometry, PixelType, Volume};

const FORMAT: &str = "NRRD";

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::format(path, FORMAT, reason)
}

fn parse_type(path: &Path, t: &str) -> Result<PixelType> {
    Ok(match t.trim() {
        "signed char" | "int8" | "int8_t" => PixelType::I8,
        "uchar" | "unsigned char" | "uint8" | "uint8_t" => PixelType::U8,
        "short" | "short int" | "signed short" | "signed short int" | "int16" | "int16_t" => PixelType::I16,
        "ushort" | "unsigned short" | "unsigned short int" | "uint16" | "uint16_t" => PixelType::U16,
        "int" | "signed int" | "int32" | "int32_t" => PixelType::I32,
        "uint" | "unsigned int" | "uint32" | "uint32_t" => PixelType::U32,
        "longlong"
        | "long long"
        | "long long int"
        | "signed long long"
        | "signed long long int"
        | "int64"
        | "int64_t" => PixelType::I64,
        "ulonglong" | "unsigned long long" | "unsigned long long int" | "uint64" | "uint64_t" => PixelType::U64,
        "float" => PixelType::F32,
        "double" => PixelType::F64,
        other => return Err(bad(path, format!("unsupported type '{other}'"))),
    })
}

fn parse_vector(path: &Path, s: &str) -> Result<Option<Vec<f64>>> {
    let s = s.trim();
    if s == "none" {
        return Ok(None);
    }
    let inner = s
        .strip_prefix('(')
        .and_then(|x| x.strip_suffix(')'))
        .ok_or_else(|| bad(path, format!("bad vector '{s}'")))?;
    let v: std::result::Result<Vec<f64>, _> = inner.split(',').map(|c| c.trim().parse::<f64>()).collect();
    let v = v.map_err(|_| bad(path, format!("bad number in vector '{s}'")))?;
    if v.iter().any(|x| !x.is_finite()) {
        return Err(bad(path, format!("non-finite number in vector '{s}'")));
    }
    Ok(Some(v))
}

/// Split a whitespace-separated list of vectors like `(1,0,0) (0,1,0) none`.
fn split_vectors(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    for ch in s.chars() {
        match ch {
            '(' => {
                depth += 1;
                cur.push(ch);
            }
            ')' => {
                depth -= 1;
                cur.push(ch);
                if depth == 0 {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c if c.is_whitespace() && depth == 0 => {
                if !cur.trim().is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
                cur.clear();
            }
            c => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}

/// Read a NRRD file.
pub fn read(path: &Path) -> Result<Volume<f64>> {
    read_stored(path)?.to_volume()
}

/// How much of a large file is read first, to find its header (NRRD headers are a few hundred bytes; one
/// longer than this is read with the whole file).
const HEAD_BYTES: usize = 64 << 10;

/// Read a NRRD file as it stores its samples ([`StoredVolume`]). A file of at least
/// [`super::STREAM_MIN_BYTES`] is opened by its header alone; raw samples then stay in the file.
pub fn read_stored(path: &Path) -> Result<StoredVolume> {
    use std::io::Read;
    let io = |e| Error::io(path, e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len >= super::STREAM_MIN_BYTES {
        let mut head = Vec::with_capacity(HEAD_BYTES);
        (&mut file).take(HEAD_BYTES as u64).read_to_end(&mut head).map_err(io)?;
        if header_end(&head).is_some() {
            return parse_stored(path, head, Some(Rest { file, len }));
        }
        file.read_to_end(&mut head).map_err(io)?;
        return parse_stored(path, head, None);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.read_to_end(&mut bytes).map_err(io)?;
    parse_stored(path, bytes, None)
}

/// Parse NRRD bytes (`path` is used in error messages only).
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Volume<f64>> {
    parse_stored(path, bytes.to_vec(), None)?.to_volume()
}

/// The rest of a file whose first bytes were read: the open file and its length.
struct Rest {
    file: std::fs::File,
    len: u64,
}

/// Where the header ends: (the empty line's start, the first payload byte).
fn header_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            if bytes.get(i + 1) == Some(&b'\n') {
                return Some((i + 1, i + 2));
            }
            if bytes.get(i + 1) == Some(&b'\r') && bytes.get(i + 2) == Some(&b'\n') {
                return Some((i + 1, i + 3));
            }
        }
        i += 1;
    }
    None
}

/// Parse NRRD bytes, keeping the samples as stored: `bytes` is the whole file, or its first bytes (holding the
/// header) with the `rest` still in the file.
fn parse_stored(path: &Path, mut bytes: Vec<u8>, rest: Option<Rest>) -> Result<StoredVolume> {
    if !bytes.starts_with(b"NRRD000") {
        return Err(bad(path, "missing NRRD magic"));
    }
    // The header ends at the first empty line.
    let (hend, data_start) =
        header_end(&bytes).ok_or_else(|| bad(path, "header is not terminated by an empty line"))?;
    let header = std::str::from_utf8(&bytes[..hend]).map_err(|_| bad(path, "header is not text"))?;

    let mut pixel = None;
    let mut dimension = None;
    let mut sizes: Option<Vec<usize>> = None;
    let mut encoding = String::from("raw");
    let mut big_endian = false;
    let mut space = String::new();
    let mut directions: Option<Vec<Option<Vec<f64>>>> = None;
    let mut spacings: Option<Vec<f64>> = None;
    let mut origin: Option<Vec<f64>> = None;

    for line in header.lines().skip(1) {
        let line = line.trim_end_matches('\r');
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if line.contains(":=") {
            continue; // key/value pairs carry no geometry
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(bad(path, format!("bad header line '{line}'")));
        };
        let value = value.trim();
        match key.trim() {
            "type" => pixel = Some(parse_type(path, value)?),
            "dimension" => {
                dimension = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| bad(path, format!("bad dimension '{value}'")))?,
                )
            }
            "sizes" => {
                let s: std::result::Result<Vec<usize>, _> = value.split_whitespace().map(|x| x.parse()).collect();
                sizes = Some(s.map_err(|_| bad(path, format!("bad sizes '{value}'")))?);
            }
            "encoding" => encoding = value.to_ascii_lowercase(),
            "endian" => big_endian = value == "big",
            "space" => space = value.to_ascii_lowercase(),
            "space dimension" => {}
            "space directions" => {
                let mut v = Vec::new();
                for tok in split_vectors(value) {
                    v.push(parse_vector(path, &tok)?);
                }
                directions = Some(v);
            }
            "spacings" => {
                let s: std::result::Result<Vec<f64>, _> = value.split_whitespace().map(|x| x.parse()).collect();
                spacings = Some(s.map_err(|_| bad(path, format!("bad spacings '{value}'")))?);
            }
            "space origin" => origin = parse_vector(path, value)?,
            "data file" | "datafile" => {
                return Err(Error::Unsupported {
                    path: path.to_path_buf(),
                    reason: "detached NRRD data files are not supported; save as a single .nrrd".into(),
                });
            }
            _ => {}
        }
    }

    let pixel = pixel.ok_or_else(|| bad(path, "missing 'type'"))?;
    let dimension = dimension.ok_or_else(|| bad(path, "missing 'dimension'"))?;
    let sizes = sizes.ok_or_else(|| bad(path, "missing 'sizes'"))?;
    if !(2..=3).contains(&dimension) || sizes.len() != dimension {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            reason: format!("only 2D or 3D scalar NRRD is supported (dimension {dimension}, sizes {sizes:?})"),
        });
    }
    let mut size = [1usize; 3];
    size[..dimension].copy_from_slice(&sizes);

    // Geometry.
    let mut spacing = [1.0; 3];
    let mut direction = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    if let Some(dirs) = &directions {
        if dirs.len() != dimension {
            return Err(bad(path, "'space directions' does not have one entry per axis"));
        }
        for (c, d) in dirs.iter().enumerate() {
            let Some(d) = d else {
                return Err(Error::Unsupported {
                    path: path.to_path_buf(),
                    reason: "non-spatial axes ('none' direction) are not supported".into(),
                });
            };
            if d.len() < dimension || d.len() > 3 {
                return Err(bad(path, "space direction has the wrong length"));
            }
            let norm = d.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm == 0.0 {
                return Err(bad(path, "zero-length space direction"));
            }
            spacing[c] = norm;
            for r in 0..3 {
                direction[r][c] = d.get(r).copied().unwrap_or(0.0) / norm;
            }
        }
    } else if let Some(s) = &spacings {
        for (c, v) in s.iter().enumerate().take(3) {
            if v.is_finite() && *v > 0.0 {
                spacing[c] = *v;
            }
        }
    }
    let mut org = [0.0; 3];
    if let Some(o) = &origin {
        for (d, v) in o.iter().enumerate().take(3) {
            org[d] = *v;
        }
    }
    match space.as_str() {
        "" | "left-posterior-superior" | "lps" | "3d-left-handed" => {}
        "right-anterior-superior" | "ras" | "3d-right-handed" => {
            for c in 0..3 {
                direction[0][c] = -direction[0][c];
                direction[1][c] = -direction[1][c];
            }
            org[0] = -org[0];
            org[1] = -org[1];
        }
        other => {
            return Err(Error::Unsupported {
                path: path.to_path_buf(),
                reason: format!("NRRD space '{other}' is not supported"),
            });
        }
    }
    if crate::image::geometry::det3(&direction).abs() < 1e-6 {
        return Err(bad(path, "space directions are degenerate"));
    }

    let n = super::check_declared_size(path, size, pixel)?;
    let need = n * pixel.size();
    let geometry = Geometry {
        size,
        spacing,
        origin: org,
        direction,
    };
    let file_len = rest.as_ref().map_or(bytes.len() as u64, |r| r.len);
    let payload_len = file_len.saturating_sub(data_start as u64);
    match encoding.as_str() {
        "raw" => {
            if payload_len < need as u64 {
                return Err(bad(
                    path,
                    format!("truncated data: {payload_len} bytes present, {need} declared"),
                ));
            }
            // Raw data may be preceded by padding; NRRD puts it at the end of the file.
            let start = file_len - need as u64;
            let samples = match rest {
                Some(Rest { file, .. }) => Samples::File {
                    file,
                    path: path.to_path_buf(),
                    start,
                    run_bytes: super::STREAM_RUN_BYTES,
                },
                None => Samples::Memory {
                    bytes,
                    start: start as usize,
                },
            };
            Ok(StoredVolume::new(geometry, samples, pixel, big_endian, None))
        }
        "gzip" | "gz" => {
            if let Some(Rest { mut file, .. }) = rest {
                use std::io::Read;
                file.read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
            }
            let out = super::gunzip_bounded(path, &bytes[data_start..], need, FORMAT)?;
            if out.len() < need {
                return Err(bad(
                    path,
                    format!("truncated data: {} bytes decompressed, {need} declared", out.len()),
                ));
            }
            Ok(StoredVolume::new(
                geometry,
                Samples::Memory { bytes: out, start: 0 },
                pixel,
                big_endian,
                None,
            ))
        }
        other => Err(Error::Unsupported {
            path: path.to_path_buf(),
            reason: format!("NRRD encoding '{other}' is not supported (use raw or gzip)"),
        }),
    }
}

/// How [`write_as`] stores the samples (NRRD's `encoding` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// The samples as they are.
    Raw,
    /// One gzip member holding the samples.
    Gzip,
}

/// The byte order [`write_as`] stores multi-byte samples in (NRRD's `endian` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    /// Least significant byte first.
    Little,
    /// Most significant byte first.
    Big,
}

/// Write a volume as gzip NRRD, little-endian, with LPS geometry (used by tests and by `synth`).
pub fn write(path: &Path, vol: &Volume<f64>) -> Result<()> {
    write_as(path, vol, Encoding::Gzip, ByteOrder::Little)
}

/// Write a volume as NRRD with LPS geometry, its samples of `vol.pixel_type` stored with `encoding` in `order`.
pub fn write_as(path: &Path, vol: &Volume<f64>, encoding: Encoding, order: ByteOrder) -> Result<()> {
    use std::io::Write;
    let t = match vol.pixel_type {
        PixelType::U8 => "uchar",
        PixelType::I8 => "signed char",
        PixelType::U16 => "ushort",
        PixelType::I16 => "short",
        PixelType::U32 => "uint",
        PixelType::I32 => "int",
        PixelType::U64 => "ulonglong",
        PixelType::I64 => "longlong",
        PixelType::F32 => "float",
        PixelType::F64 => "double",
    };
    let (encoding_name, endian) = (
        match encoding {
            Encoding::Raw => "raw",
            Encoding::Gzip => "gzip",
        },
        match order {
            ByteOrder::Little => "little",
            ByteOrder::Big => "big",
        },
    );
    let g = &vol.geometry;
    let dir = |c: usize| {
        format!(
            "({:?},{:?},{:?})",
            g.direction[0][c] * g.spacing[c],
            g.direction[1][c] * g.spacing[c],
            g.direction[2][c] * g.spacing[c]
        )
    };
    let mut out = format!(
        "NRRD0004\ntype: {t}\ndimension: 3\nspace: left-posterior-superior\nsizes: {} {} {}\nspace directions: {} {} {}\nkinds: domain domain domain\nendian: {endian}\nencoding: {encoding_name}\nspace origin: ({:?},{:?},{:?})\n\n",
        g.size[0], g.size[1], g.size[2], dir(0), dir(1), dir(2), g.origin[0], g.origin[1], g.origin[2]
    )
    .into_bytes();
    let mut raw = Vec::with_capacity(vol.data.len() * vol.pixel_type.size());
    for &v in &vol.data {
        let at = raw.len();
        match vol.pixel_type {
            PixelType::U8 => raw.push(v as u8),
            PixelType::I8 => raw.push(v as i8 as u8),
            PixelType::U16 => raw.extend_from_slice(&(v as u16).to_le_bytes()),
            PixelType::I16 => raw.extend_from_slice(&(v as i16).to_le_bytes()),
            PixelType::U32 => raw.extend_from_slice(&(v as u32).to_le_bytes()),
            PixelType::I32 => raw.extend_from_slice(&(v as i32).to_le_bytes()),
            PixelType::U64 => raw.extend_from_slice(&(v as u64).to_le_bytes()),
            PixelType::I64 => raw.extend_from_slice(&(v as i64).to_le_bytes()),
            PixelType::F32 => raw.extend_from_slice(&(v as f32).to_le_bytes()),
            PixelType::F64 => raw.extend_from_slice(&v.to_le_bytes()),
        }
        if order == ByteOrder::Big {
            raw[at..].reverse();
        }
    }
    match encoding {
        Encoding::Raw => out.extend(raw),
        Encoding::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            enc.write_all(&raw).map_err(|e| Error::io(path, e))?;
            out.extend(enc.finish().map_err(|e| Error::io(path, e))?);
        }
    }
    std::fs::write(path, out).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Geometry;

    #[test]
    fn written_volumes_read_back_in_every_type_encoding_and_byte_order() {
        let geometry = Geometry::new([3, 2, 2], [0.5, 0.75, 2.0], [-10.0, 4.25, 7.0]);
        let dir = std::env::temp_dir().join(format!("alnrisk-nrrd-write-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        for pixel_type in [
            PixelType::U8,
            PixelType::I8,
            PixelType::U16,
            PixelType::I16,
            PixelType::U32,
            PixelType::I32,
            PixelType::U64,
            PixelType::I64,
            PixelType::F32,
            PixelType::F64,
        ] {
            let signed = !matches!(
                pixel_type,
                PixelType::U8 | PixelType::U16 | PixelType::U32 | PixelType::U64
            );
            // 1 first: its bytes say where the byte order put the low byte.
            let data: Vec<f64> = (0..12)
                .map(|i| {
                    if i == 0 {
                        1.0
                    } else if signed {
                        i as f64 - 6.0
                    } else {
                        i as f64 * 7.0
                    }
                })
                .collect();
            let vol = Volume {
                geometry: geometry.clone(),
                data,
                pixel_type,
            };
            for encoding in [Encoding::Raw, Encoding::Gzip] {
                for order in [ByteOrder::Little, ByteOrder::Big] {
                    let path = dir.join(format!("{pixel_type:?}-{encoding:?}-{order:?}.nrrd"));
                    write_as(&path, &vol, encoding, order).expect("write");
                    let read = crate::io::read_volume(&path).expect("read back");
                    assert_eq!((read.pixel_type, &read.data), (pixel_type, &vol.data), "{path:?}");
                    assert_eq!(read.geometry.size, geometry.size);
                    assert_eq!(read.geometry.spacing, geometry.spacing);
                    assert_eq!(read.geometry.origin, geometry.origin);
                    let bytes = std::fs::read(&path).expect("file");
                    let end = bytes.windows(2).position(|w| w == b"\n\n").expect("blank line") + 2;
                    let header = String::from_utf8_lossy(&bytes[..end]);
                    let want_encoding = if encoding == Encoding::Raw { "raw" } else { "gzip" };
                    let want_endian = if order == ByteOrder::Big { "big" } else { "little" };
                    assert!(header.contains(&format!("\nencoding: {want_encoding}\n")), "{header}");
                    assert!(header.contains(&format!("\nendian: {want_endian}\n")), "{header}");
                    if encoding == Encoding::Raw && !matches!(pixel_type, PixelType::F32 | PixelType::F64) {
                        // The integer 1, by hand: its one set byte is last in big-endian order.
                        let size = pixel_type.size();
                        let first = &bytes[end..end + size];
                        let one_at = if order == ByteOrder::Big { size - 1 } else { 0 };
                        let mut want = vec![0u8; size];
                        want[one_at] = 1;
                        assert_eq!(first, want.as_slice(), "{path:?}");
                    }
                }
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
