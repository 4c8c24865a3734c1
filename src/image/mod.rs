//! The shared 3D image type: voxels plus their place in patient space.
//!
//! Conventions follow ITK / SimpleITK exactly, so numbers can be compared with PyRadiomics:
//! - Indices and sizes are in ITK order `(i, j, k)` = `(x, y, z)`; the data vector is stored with `i` fastest,
//!   which is also numpy's C order of `sitk.GetArrayFromImage(img)` with axes `(k, j, i)`.
//! - Physical coordinates are LPS (DICOM patient coordinates), in millimetres.
//! - `physical = origin + D · diag(spacing) · index`, where column `c` of the direction matrix `D` is the
//!   unit vector of index axis `c`.
//!
//! This module owns geometry (index ↔ physical, geometry comparison, bounding boxes). Nothing else in the
//! project re-derives spacing or direction.

pub mod geometry;
pub mod slices;

pub use geometry::{BoundingBox, Geometry};
pub use slices::largest_slice;

/// The stored pixel type of an image, kept so that operations which SimpleITK performs in the input type
/// (e.g. resampling casts its result back to it) can do the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PixelType {
    /// 8-bit unsigned.
    U8,
    /// 8-bit signed.
    I8,
    /// 16-bit unsigned.
    U16,
    /// 16-bit signed.
    I16,
    /// 32-bit unsigned.
    U32,
    /// 32-bit signed.
    I32,
    /// 64-bit signed.
    I64,
    /// 64-bit unsigned.
    U64,
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
}

impl PixelType {
    /// Bytes per voxel.
    pub fn size(self) -> usize {
        match self {
            PixelType::U8 | PixelType::I8 => 1,
            PixelType::U16 | PixelType::I16 => 2,
            PixelType::U32 | PixelType::I32 | PixelType::F32 => 4,
            PixelType::I64 | PixelType::U64 | PixelType::F64 => 8,
        }
    }

    /// Whether the type is an integer type.
    pub fn is_integer(self) -> bool {
        !matches!(self, PixelType::F32 | PixelType::F64)
    }

    /// Convert an interpolated value to this type the way ITK's `ResampleImageFilter` does:
    /// clamp to the type's range, then truncate toward zero (C++ `static_cast`) for integer types,
    /// round to nearest `f32` for single precision.
    pub fn cast_from_f64(self, v: f64) -> f64 {
        let (lo, hi) = match self {
            PixelType::U8 => (u8::MIN as f64, u8::MAX as f64),
            PixelType::I8 => (i8::MIN as f64, i8::MAX as f64),
            PixelType::U16 => (u16::MIN as f64, u16::MAX as f64),
            PixelType::I16 => (i16::MIN as f64, i16::MAX as f64),
            PixelType::U32 => (u32::MIN as f64, u32::MAX as f64),
            PixelType::I32 => (i32::MIN as f64, i32::MAX as f64),
            PixelType::U64 => (u64::MIN as f64, u64::MAX as f64),
            PixelType::I64 => (i64::MIN as f64, i64::MAX as f64),
            PixelType::F32 => return v as f32 as f64,
            PixelType::F64 => return v,
        };
        if v < lo {
            lo
        } else if v > hi {
            hi
        } else {
            v.trunc()
        }
    }
}

/// A 3D volume: voxel values plus geometry. `T` is the in-memory value type; images are held as `f64`
/// (every supported pixel type converts exactly), label maps as `u8`/`i32`.
#[derive(Debug, Clone, PartialEq)]
pub struct Volume<T> {
    /// Where the voxels are.
    pub geometry: Geometry,
    /// Voxel values, `i` (x) fastest, then `j`, then `k`.
    pub data: Vec<T>,
    /// The pixel type the values were read from.
    pub pixel_type: PixelType,
}

impl<T: Copy> Volume<T> {
    /// Size in ITK order `(x, y, z)`.
    pub fn size(&self) -> [usize; 3] {
        self.geometry.size
    }

    /// Linear offset of index `(i, j, k)`.
    #[inline]
    pub fn offset(&self, i: usize, j: usize, k: usize) -> usize {
        self.geometry.offset(i, j, k)
    }

    /// Value at index `(i, j, k)`; panics only on a programming error (index out of range).
    #[inline]
    pub fn at(&self, i: usize, j: usize, k: usize) -> T {
        self.data[self.offset(i, j, k)]
    }

    /// Copy out the sub-volume `bb` (ITK index space), keeping physical positions: the origin moves to the
    /// first voxel of the box.
    pub fn crop(&self, bb: &BoundingBox) -> Volume<T> {
        let geometry = self.geometry.cropped(bb);
        let [sx, sy, sz] = bb.size;
        let mut data = Vec::with_capacity(sx * sy * sz);
        for k in bb.start[2]..bb.start[2] + sz {
            for j in bb.start[1]..bb.start[1] + sy {
                let o = self.offset(bb.start[0], j, k);
                data.extend_from_slice(&self.data[o..o + sx]);
            }
        }
        Volume {
            geometry,
            data,
            pixel_type: self.pixel_type,
        }
    }

    /// Apply `f` to every voxel, producing a new volume on the same grid.
    pub fn map<U, F: Fn(T) -> U>(&self, f: F, pixel_type: PixelType) -> Volume<U> {
        Volume {
            geometry: self.geometry.clone(),
            data: self.data.iter().map(|&v| f(v)).collect(),
            pixel_type,
        }
    }
}
