//! The Q8_0 dense layers on the CPU, computed the same way on every CPU.
//!
//! A Q8_0 weight (GGUF's block format, as candle quantizes it) holds, for every output row, blocks of 32 signed
//! bytes `q` with one f16 scale `d` each: `W[o][32b + j] ≈ d[o][b] · q[o][b][j]`. This module computes
//!
//! ```text
//! y[r][o] = Σ_b d[o][b] · Σ_j q[o][b][j] · x[r][32b + j]
//! ```
//!
//! with the activations `x` in f32 (weight-only quantization: the weights are the only approximation).
//!
//! Why not candle's `QMatMul` on the CPU: it also quantizes the *activations*, and how depends on the CPU it runs
//! on. With AVX-512 VNNI it takes a repacked path that quantizes them per 256 values (Q8_K); on plain AVX2 it
//! quantizes them per 32 (Q8_0); on aarch64 a third, repacked path. The same examination then gave fc7 features
//! 1% apart (max |Δ| 0.0048 on brain1, cosine 0.99995) and a deep signature 0.9351 on x86-64 against 0.9180 on
//! aarch64. Here every output is one fixed sequence of f32 operations: eight lanes `l` accumulate
//! `acc[l] += d · (q[l]·x[l] + q[8+l]·x[8+l] + q[16+l]·x[16+l] + q[24+l]·x[24+l])` block after block, and the lanes
//! are summed in one fixed tree. Rust never reassociates or contracts floating-point operations, so the result is
//! bit-identical wherever it runs, however the compiler vectorises the lanes. What remains between CPUs is what
//! reaches these layers: the f32 convolutions' summation order (`gemm` picks its kernels per CPU), about 1e-6
//! relative.
//!
//! GPU tensors keep candle's CUDA kernels; this path is taken for CPU inputs only.

use std::borrow::Cow;
use std::io::{Read, Seek, SeekFrom};

use candle_core::quantized::{GgmlDType, QStorage, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

/// Values per Q8_0 block.
const BLOCK: usize = 32;
/// Lanes of the accumulator (one AVX or two NEON vectors).
const LANES: usize = 8;
/// Rows of the activations whose sums are kept in registers together ([`Q8Matrix::dot_rows`]).
const ROWS: usize = 4;
/// Blocks whose f16 scales are converted together.
const SCALES: usize = 64;

/// One block's bytes: the f16 scale (little-endian), then 32 signed bytes (GGUF's `block_q8_0`).
const BLOCK_BYTES: usize = 2 + BLOCK;

/// A Q8_0 matrix `(rows, cols)` in GGUF's block layout, row-major: the only copy of a CPU layer's weight (the same
/// bytes a GGUF file holds, so memory is what candle's tensor took).
#[derive(Clone)]
pub struct Q8Matrix {
    rows: usize,
    cols: usize,
    /// `rows × cols/32` blocks of [`BLOCK_BYTES`].
    blocks: Vec<u8>,
}

impl std::fmt::Debug for Q8Matrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Q8Matrix({}×{})", self.rows, self.cols)
    }
}

impl Q8Matrix {
    /// A 2-D Q8_0 tensor `(rows, cols)` on the CPU; `None` for another type, shape or device.
    pub fn from_qtensor(q: &QTensor) -> Option<Self> {
        let &[rows, cols] = q.shape().dims() else {
            return None;
        };
        if q.dtype() != GgmlDType::Q8_0 || !cols.is_multiple_of(BLOCK) || !q.device().is_cpu() {
            return None;
        }
        let blocks = q.data().ok()?.into_owned();
        (blocks.len() == rows * cols / BLOCK * BLOCK_BYTES).then_some(Self { rows, cols, blocks })
    }

    /// Quantize an f32 CPU tensor `(rows, cols)` with candle's Q8_0 (the blocks a GGUF file holds), a band of rows
    /// at a time, so that no second full-size copy exists while it is made (Q8_0 blocks never cross a row).
    pub fn quantize(w: &Tensor) -> candle_core::Result<Self> {
        let (rows, cols) = w.dims2()?;
        if !cols.is_multiple_of(BLOCK) {
            return Err(candle_core::Error::Msg(format!(
                "Q8_0 needs a multiple of {BLOCK} columns, not {cols}"
            )));
        }
        let mut blocks = Vec::with_capacity(rows * cols / BLOCK * BLOCK_BYTES);
        const BAND: usize = 32;
        for r0 in (0..rows).step_by(BAND) {
            // a copy: candle's quantize reads the storage from its start, ignoring a view's offset
            let band = w.narrow(0, r0, BAND.min(rows - r0))?.force_contiguous()?;
            blocks.extend_from_slice(&QTensor::quantize(&band, GgmlDType::Q8_0)?.data()?);
        }
        Ok(Self { rows, cols, blocks })
    }

    /// Tensor `name` of a GGUF file, read straight from the file into a matrix (no intermediate tensor, so loading
    /// takes the weight's size once). The reason when it is missing, not a 2-D Q8_0 tensor, or cut short.
    pub fn read_gguf<R: Read + Seek>(content: &gguf_file::Content, file: &mut R, name: &str) -> Result<Self, String> {
        let info = content
            .tensor_infos
            .get(name)
            .ok_or_else(|| format!("tensor '{name}' is missing"))?;
        let &[rows, cols] = info.shape.dims() else {
            return Err(format!("tensor '{name}' is not 2-D: {:?}", info.shape));
        };
        if info.ggml_dtype != GgmlDType::Q8_0 || !cols.is_multiple_of(BLOCK) {
            return Err(format!(
                "tensor '{name}' is {:?} {rows}×{cols}, not Q8_0",
                info.ggml_dtype
            ));
        }
        let mut blocks = vec![0u8; rows * cols / BLOCK * BLOCK_BYTES];
        file.seek(SeekFrom::Start(content.tensor_data_offset + info.offset))
            .and_then(|_| file.read_exact(&mut blocks))
            .map_err(|e| format!("tensor '{name}': {e}"))?;
        Ok(Self { rows, cols, blocks })
    }

    /// The same weight as a candle tensor (to save it as GGUF).
    pub fn to_qtensor(&self) -> candle_core::Result<QTensor> {
        let storage = QStorage::from_data(Cow::Borrowed(&self.blocks), &Device::Cpu, GgmlDType::Q8_0)?;
        QTensor::new(storage, (self.rows, self.cols))
    }

    /// `d[o][b]`.
    #[cfg(test)]
    fn scale(&self, o: usize, b: usize) -> f32 {
        let at = (o * self.cols / BLOCK + b) * BLOCK_BYTES;
        half::f16::from_le_bytes([self.blocks[at], self.blocks[at + 1]]).to_f32()
    }

    /// `(rows, cols)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.rows, self.cols)
    }

    /// `y = x Wᵀ` for `x` of `m` rows of `cols` values (row-major): `m × rows` values. Outputs are split across
    /// threads; each is computed by `dot_rows`, whose result does not depend on the split.
    pub fn matmul_t(&self, x: &[f32], m: usize) -> Vec<f32> {
        assert_eq!(x.len(), m * self.cols, "activations must be m × cols");
        let product = Product::detect();
        let mut out_t = vec![0f32; self.rows * m];
        out_t
            .par_chunks_mut(m)
            .enumerate()
            .for_each(|(o, y)| self.dot_rows(product, o, x, y));
        // out_t is (rows, m): transpose to (m, rows)
        let mut y = vec![0f32; m * self.rows];
        for o in 0..self.rows {
            for r in 0..m {
                y[r * self.rows + o] = out_t[o * m + r];
            }
        }
        y
    }

    /// Output `o` for every row of `x`: `y[r] = Σ_b d[o][b] · Σ_j q[o][b][j] · x[r][32b + j]` in the fixed order of
    /// the module's doc, [`ROWS`] rows at a time (their sums stay in registers across the row of blocks), on
    /// `product`'s code.
    fn dot_rows(&self, product: Product, o: usize, x: &[f32], y: &mut [f32]) {
        let per_row = self.cols / BLOCK * BLOCK_BYTES;
        let row = &self.blocks[o * per_row..(o + 1) * per_row];
        for (g, y) in y.chunks_mut(ROWS).enumerate() {
            let rows = &x[g * ROWS * self.cols..(g * ROWS + y.len()) * self.cols];
            match y.len() {
                4 => product.group::<4>(row, rows, y),
                3 => product.group::<3>(row, rows, y),
                2 => product.group::<2>(row, rows, y),
                _ => product.group::<1>(row, rows, y),
            }
        }
    }
}

/// Which code computes the product: the same operations in the same order on each, so the same bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Product {
    /// Plain Rust ([`portable_group`]).
    Portable,
    /// AVX2 and F16C registers ([`avx2`]).
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// NEON registers ([`neon`]; part of the aarch64 Linux target's baseline).
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    Neon,
}

impl Product {
    /// The vector code this CPU runs.
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("f16c") {
            return Product::Avx2;
        }
        #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
        return Product::Neon;
        #[allow(unreachable_code)] // only other targets reach it
        Product::Portable
    }

    /// `y[r]` ← one output's row of blocks `row` times row `r` of `x` (`R` rows of `row`'s columns).
    fn group<const R: usize>(self, row: &[u8], x: &[f32], y: &mut [f32]) {
        match self {
            Product::Portable => portable_group::<R>(row, x, y),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` found AVX2 and F16C (tests construct it only where the CPU has them)
            Product::Avx2 => unsafe { avx2::group::<R>(row, x, y) },
            #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
            // SAFETY: this build's target has NEON (the variant exists only where `target_feature = "neon"`)
            Product::Neon => unsafe { neon::group::<R>(row, x, y) },
        }
    }
}

/// [`Product::group`] in plain Rust. The scales of [`SCALES`] blocks are converted from f16 together, then each
/// block's bytes are converted to f32 once and used for the `R` rows, whose eight lanes accumulate across the row
/// of blocks: `acc[l] += d · (q[l]·x[l] + q[8+l]·x[8+l] + q[16+l]·x[16+l] + q[24+l]·x[24+l])`.
fn portable_group<const R: usize>(row: &[u8], x: &[f32], y: &mut [f32]) {
    let cols = row.len() / BLOCK_BYTES * BLOCK;
    let mut acc = [[0f32; LANES]; R];
    let mut scales = Scales::new();
    for (b, block) in row.chunks_exact(BLOCK_BYTES).enumerate() {
        let d = scales.of(row, b);
        let mut qf = [0f32; BLOCK];
        for (f, &q) in qf.iter_mut().zip(&block[2..]) {
            *f = f32::from(q as i8);
        }
        for (r, lanes) in acc.iter_mut().enumerate() {
            let xb = &x[r * cols + b * BLOCK..r * cols + (b + 1) * BLOCK];
            for l in 0..LANES {
                let part = qf[l] * xb[l]
                    + qf[LANES + l] * xb[LANES + l]
                    + qf[2 * LANES + l] * xb[2 * LANES + l]
                    + qf[3 * LANES + l] * xb[3 * LANES + l];
                lanes[l] += d * part;
            }
        }
    }
    for (y, a) in y.iter_mut().zip(&acc) {
        *y = sum_lanes(a);
    }
}

/// The f16 scales of a row of blocks as f32, converted [`SCALES`] blocks at a time (one vector conversion where
/// the CPU has one, not a call per block). The conversion is exact, so how it is done does not change a bit.
struct Scales {
    /// The first block of `values`.
    first: usize,
    /// How many of `values` hold scales.
    len: usize,
    values: [f32; SCALES],
}

impl Scales {
    fn new() -> Self {
        Scales {
            first: 0,
            len: 0,
            values: [0.0; SCALES],
        }
    }

    /// `d` of block `b` of `row` (blocks are asked for in order).
    #[inline(always)]
    fn of(&mut self, row: &[u8], b: usize) -> f32 {
        if b >= self.first + self.len {
            let blocks = &row[b * BLOCK_BYTES..];
            let mut halves = [half::f16::ZERO; SCALES];
            let mut n = 0;
            for (h, block) in halves.iter_mut().zip(blocks.chunks_exact(BLOCK_BYTES)) {
                *h = half::f16::from_le_bytes([block[0], block[1]]);
                n += 1;
            }
            halves[..n].convert_to_f32_slice(&mut self.values[..n]);
            (self.first, self.len) = (b, n);
        }
        self.values[b - self.first]
    }
}

/// The lanes' fixed summation tree.
#[inline(always)]
fn sum_lanes(a: &[f32; LANES]) -> f32 {
    ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK, BLOCK_BYTES, LANES, sum_lanes};

    /// How far ahead of the block being read the weights are prefetched. They are read once per pass, from memory,
    /// and the hardware prefetcher alone kept too few lines in flight: on a 2-core AMD EPYC (Zen 5) this product's
    /// CPU time at batch 1 fell 2× with 2 KiB and 2.5× with 8 KiB (16 KiB: no better). A hint: no result changes.
    const PREFETCH_AHEAD: usize = 8192;

    /// [`super::Product::group`] in AVX2 registers: per block, the scale converted by F16C (exact, as `half`'s
    /// conversion is), the 32 bytes widened to four vectors of f32 (exact), then per row
    /// `acc += d · (q₀·x₀ + q₁·x₁ + q₂·x₂ + q₃·x₃)` on eight lanes (no FMA: each product is rounded, as in the
    /// portable code), and the same lane tree at the end.
    #[target_feature(enable = "avx2,f16c")]
    pub(super) fn group<const R: usize>(row: &[u8], x: &[f32], y: &mut [f32]) {
        let blocks = row.len() / BLOCK_BYTES;
        let cols = blocks * BLOCK;
        assert!(x.len() >= R * cols && y.len() >= R);
        let mut acc = [_mm256_setzero_ps(); R];
        for (b, block) in row.chunks_exact(BLOCK_BYTES).enumerate() {
            // a hint about an address that may lie past the row (never dereferenced)
            _mm_prefetch::<_MM_HINT_T0>(block.as_ptr().wrapping_add(PREFETCH_AHEAD) as *const i8);
            let bits = u16::from_le_bytes([block[0], block[1]]);
            let d = _mm256_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))));
            // SAFETY: each 8-byte load lies within the block's 32 bytes after its scale
            let q: [__m256; 4] = std::array::from_fn(|k| unsafe {
                let bytes = _mm_loadl_epi64(block.as_ptr().add(2 + k * LANES) as *const __m128i);
                _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes))
            });
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: x holds R rows of `cols` values (asserted above), and block b's 32 lie within row r
                let part = unsafe {
                    let xb = x.as_ptr().add(r * cols + b * BLOCK);
                    let term = |k: usize| _mm256_mul_ps(q[k], _mm256_loadu_ps(xb.add(k * LANES)));
                    _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(term(0), term(1)), term(2)), term(3))
                };
                *acc = _mm256_add_ps(*acc, _mm256_mul_ps(d, part));
            }
        }
        for (y, acc) in y.iter_mut().zip(&acc) {
            let mut lanes = [0f32; LANES];
            // SAFETY: `lanes` holds 8 values
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *acc) };
            *y = sum_lanes(&lanes);
        }
    }
}

#[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
mod neon {
    use std::arch::aarch64::*;

    use super::{BLOCK, BLOCK_BYTES, LANES, Scales, sum_lanes};

    /// [`super::Product::group`] in NEON registers: the eight lanes as two vectors of four, the 32 bytes widened
    /// to eight vectors of f32 (exact), then per row `acc += d · (q₀·x₀ + q₁·x₁ + q₂·x₂ + q₃·x₃)` per half (no FMA:
    /// each product is rounded, as in the portable code), and the same lane tree at the end.
    #[target_feature(enable = "neon")]
    pub(super) fn group<const R: usize>(row: &[u8], x: &[f32], y: &mut [f32]) {
        let blocks = row.len() / BLOCK_BYTES;
        let cols = blocks * BLOCK;
        assert!(x.len() >= R * cols && y.len() >= R);
        // acc[r][h]: lanes 4h..4h+4 of row r
        let mut acc = [[vdupq_n_f32(0.0); 2]; R];
        let mut scales = Scales::new();
        for (b, block) in row.chunks_exact(BLOCK_BYTES).enumerate() {
            let d = vdupq_n_f32(scales.of(row, b));
            // q[v]: the block's values 4v..4v+4
            // SAFETY: the two 16-byte loads are the block's 32 bytes after its scale
            let bytes = unsafe {
                [
                    vld1q_s8(block.as_ptr().add(2) as *const i8),
                    vld1q_s8(block.as_ptr().add(18) as *const i8),
                ]
            };
            let mut q = [vdupq_n_f32(0.0); 8];
            for (k, &b16) in bytes.iter().enumerate() {
                for (j, b8) in [vget_low_s8(b16), vget_high_s8(b16)].into_iter().enumerate() {
                    let w16 = vmovl_s8(b8);
                    q[4 * k + 2 * j] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(w16)));
                    q[4 * k + 2 * j + 1] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(w16)));
                }
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: x holds R rows of `cols` values (asserted above), and block b's 32 lie within row r
                let xb = unsafe { x.as_ptr().add(r * cols + b * BLOCK) };
                for (h, acc) in acc.iter_mut().enumerate() {
                    // lane 4h + i of step s is value 8s + 4h + i, i.e. vector q[2s + h]
                    let term = |s: usize| unsafe { vmulq_f32(q[2 * s + h], vld1q_f32(xb.add(s * LANES + 4 * h))) };
                    let part = vaddq_f32(vaddq_f32(vaddq_f32(term(0), term(1)), term(2)), term(3));
                    *acc = vaddq_f32(*acc, vmulq_f32(d, part));
                }
            }
        }
        for (y, acc) in y.iter_mut().zip(&acc) {
            let mut lanes = [0f32; LANES];
            // SAFETY: `lanes` holds 8 values, two vectors of 4
            unsafe {
                vst1q_f32(lanes.as_mut_ptr(), acc[0]);
                vst1q_f32(lanes.as_mut_ptr().add(4), acc[1]);
            }
            *y = sum_lanes(&lanes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random matrix in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Against the definition, in f64 from the dequantized weight (candle's `dequantize`, independent of this
    /// module's unpacking): within f32 rounding of a 256-term sum.
    #[test]
    fn the_product_is_the_dequantized_weight_times_the_activations() {
        let (rows, cols, m) = (24, 256, 3);
        let w = Tensor::from_vec(values(rows * cols, 1), (rows, cols), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let wd: Vec<f32> = q
            .dequantize(&Device::Cpu)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let x = values(m * cols, 2);
        let y = Q8Matrix::from_qtensor(&q).unwrap().matmul_t(&x, m);
        for r in 0..m {
            for o in 0..rows {
                let want: f64 = (0..cols)
                    .map(|k| f64::from(wd[o * cols + k]) * f64::from(x[r * cols + k]))
                    .sum();
                let got = f64::from(y[r * rows + o]);
                assert!(
                    (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                    "[{r}][{o}]: {got} vs {want}"
                );
            }
        }
    }

    /// A row's result does not depend on the other rows of the batch, nor on how the outputs are split.
    #[test]
    fn a_row_gives_the_same_bits_alone_and_in_a_batch() {
        let (rows, cols) = (40, 128);
        let w = Tensor::from_vec(values(rows * cols, 3), (rows, cols), &Device::Cpu).unwrap();
        let q = Q8Matrix::from_qtensor(&QTensor::quantize(&w, GgmlDType::Q8_0).unwrap()).unwrap();
        let x = values(5 * cols, 4);
        let batch = q.matmul_t(&x, 5);
        let alone = q.matmul_t(&x[2 * cols..3 * cols], 1);
        assert_eq!(alone, batch[2 * rows..3 * rows].to_vec());
    }

    /// Every output recomputed here, term by term in the order the module's doc states, matches to the bit, for
    /// batches that fill the register groups of rows and batches that leave a ragged last group.
    #[test]
    fn the_order_is_the_documented_one() {
        let (rows, cols) = (5, 96);
        let w = Tensor::from_vec(values(rows * cols, 5), (rows, cols), &Device::Cpu).unwrap();
        let q = Q8Matrix::from_qtensor(&QTensor::quantize(&w, GgmlDType::Q8_0).unwrap()).unwrap();
        for m in [1, 2, 3, 4, 5, 7, 9] {
            let x = values(m * cols, 6 + m as u64);
            let y = q.matmul_t(&x, m);
            for r in 0..m {
                for o in 0..rows {
                    let mut lanes = [0f32; LANES];
                    for b in 0..cols / BLOCK {
                        let d = q.scale(o, b);
                        for (l, lane) in lanes.iter_mut().enumerate() {
                            let at = (o * cols / BLOCK + b) * BLOCK_BYTES + 2;
                            let t = |s: usize| {
                                f32::from(q.blocks[at + s * LANES + l] as i8) * x[r * cols + b * BLOCK + s * LANES + l]
                            };
                            let p = t(0) + t(1) + t(2) + t(3);
                            *lane += d * p;
                        }
                    }
                    let a = lanes;
                    let want = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
                    assert_eq!(y[r * rows + o].to_bits(), want.to_bits(), "m {m} row {r} output {o}");
                }
            }
        }
    }

    /// The vector product this CPU runs (AVX2 on x86-64, NEON on aarch64) and the portable one give the same bits,
    /// on every size of the last group of rows, with zeros, signed zeros and tiny (subnormal f16) scales among the
    /// values, and more blocks than one conversion of scales holds.
    #[test]
    fn the_vector_and_the_portable_code_give_the_same_bits() {
        let product = Product::detect();
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        assert_ne!(
            product,
            Product::Portable,
            "the build machines have AVX2 and F16C, every aarch64 CPU NEON"
        );
        let (rows, cols) = (16, 25088 / 49 + SCALES * BLOCK);
        let mut wv = values(rows * cols, 8);
        wv[3 * cols..4 * cols].iter_mut().for_each(|v| *v *= 1e-6);
        wv[5 * cols..5 * cols + BLOCK].iter_mut().for_each(|v| *v = 0.0);
        let w = Tensor::from_vec(wv, (rows, cols), &Device::Cpu).unwrap();
        let q = Q8Matrix::from_qtensor(&QTensor::quantize(&w, GgmlDType::Q8_0).unwrap()).unwrap();
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        for m in [1, 2, 3, 4, 5, 6, 9] {
            let mut x = values(m * cols, 9);
            x[..BLOCK].iter_mut().for_each(|v| *v = -0.0);
            for o in 0..rows {
                let (mut a, mut b) = (vec![0f32; m], vec![0f32; m]);
                q.dot_rows(product, o, &x, &mut a);
                q.dot_rows(Product::Portable, o, &x, &mut b);
                assert_eq!(bits(&a), bits(&b), "{product:?} m {m} output {o}");
            }
        }
    }

    #[test]
    fn it_converts_back_to_the_same_tensor() {
        let w = Tensor::from_vec(values(8 * 64, 7), (8, 64), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let back = Q8Matrix::from_qtensor(&q).unwrap().to_qtensor().unwrap();
        assert_eq!(back.shape().dims(), &[8, 64]);
        assert_eq!(back.data().unwrap(), q.data().unwrap());
    }

    /// Quantizing a band of rows at a time gives candle's whole-tensor Q8_0 bytes, and a GGUF file written by candle
    /// reads back to them.
    #[test]
    fn banded_quantization_and_the_gguf_reader_give_candles_bytes() {
        let (rows, cols) = (600, 64);
        let w = Tensor::from_vec(values(rows * cols, 10), (rows, cols), &Device::Cpu).unwrap();
        let whole = QTensor::quantize(&w, GgmlDType::Q8_0).unwrap();
        let banded = Q8Matrix::quantize(&w).unwrap();
        let whole_bytes = whole.data().unwrap().to_vec();
        assert_eq!(banded.blocks.len(), whole_bytes.len());
        let first_difference = banded.blocks.iter().zip(&whole_bytes).position(|(a, b)| a != b);
        assert_eq!(first_difference, None, "banded and whole-tensor Q8_0 bytes differ");
        let path = std::env::temp_dir().join(format!("alnrisk-q8-{}.gguf", std::process::id()));
        let mut f = std::fs::File::create(&path).unwrap();
        gguf_file::write(&mut f, &[], &[("w", &whole)]).unwrap();
        drop(f);
        let mut f = std::fs::File::open(&path).unwrap();
        let content = gguf_file::Content::read(&mut f).unwrap();
        let read = Q8Matrix::read_gguf(&content, &mut f, "w").unwrap();
        assert_eq!((read.rows, read.cols), (rows, cols));
        assert!(read.blocks == banded.blocks, "the GGUF reader's bytes differ");
        assert!(
            Q8Matrix::read_gguf(&content, &mut f, "missing")
                .unwrap_err()
                .contains("missing")
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn other_types_are_refused() {
        let w = Tensor::zeros((4, 64), candle_core::DType::F32, &Device::Cpu).unwrap();
        let q4 = QTensor::quantize(&w, GgmlDType::Q4_0).unwrap();
        assert!(Q8Matrix::from_qtensor(&q4).is_none());
    }
}
