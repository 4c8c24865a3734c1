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
        let mut out_t = vec![0f32; self.rows * m];
        out_t
            .par_chunks_mut(m)
            .enumerate()
            .for_each(|(o, y)| self.dot_rows(o, x, y));
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
    /// the module's doc.
    fn dot_rows(&self, o: usize, x: &[f32], y: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("f16c") {
            // SAFETY: the CPU has AVX2 and F16C, checked just above.
            return unsafe { self.dot_rows_avx2(o, x, y) };
        }
        self.dot_rows_portable(o, x, y)
    }

    /// [`Self::dot_rows_portable`]'s operations in its order, in AVX2 registers: per block, the scale converted by
    /// F16C (exact, as `half`'s conversion is), the 32 bytes widened to four vectors of f32 (exact), then per row
    /// `acc += d · (q₀·x₀ + q₁·x₁ + q₂·x₂ + q₃·x₃)` on eight lanes (no FMA: each product is rounded, as in the
    /// portable code), and the same lane tree at the end.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,f16c")]
    fn dot_rows_avx2(&self, o: usize, x: &[f32], y: &mut [f32]) {
        let per_row = self.cols / BLOCK * BLOCK_BYTES;
        let row = &self.blocks[o * per_row..(o + 1) * per_row];
        for (g, y) in y.chunks_mut(ROWS).enumerate() {
            let r0 = g * ROWS;
            let rows = &x[r0 * self.cols..(r0 + y.len()) * self.cols];
            match y.len() {
                4 => avx2::dot_row_group::<4>(row, rows, y),
                3 => avx2::dot_row_group::<3>(row, rows, y),
                2 => avx2::dot_row_group::<2>(row, rows, y),
                _ => avx2::dot_row_group::<1>(row, rows, y),
            }
        }
    }

    /// The product for every row of `x`, [`ROWS`] rows at a time, so that their sums stay in registers.
    #[inline(always)]
    fn dot_rows_portable(&self, o: usize, x: &[f32], y: &mut [f32]) {
        for (g, y) in y.chunks_mut(ROWS).enumerate() {
            let r0 = g * ROWS;
            match y.len() {
                4 => self.dot_row_group::<4>(o, x, r0, y),
                3 => self.dot_row_group::<3>(o, x, r0, y),
                2 => self.dot_row_group::<2>(o, x, r0, y),
                _ => self.dot_row_group::<1>(o, x, r0, y),
            }
        }
    }

    /// Output `o` for rows `r0..r0 + R` of `x`. The scales of [`SCALES`] blocks are converted from f16 together
    /// (one vector conversion, not a call per block), then each block's bytes are converted to f32 once and used
    /// for the `R` rows, whose eight lanes each accumulate in registers across the whole row of blocks.
    #[inline(always)]
    fn dot_row_group<const R: usize>(&self, o: usize, x: &[f32], r0: usize, y: &mut [f32]) {
        let cols = self.cols;
        let per_row = cols / BLOCK * BLOCK_BYTES;
        let row = &self.blocks[o * per_row..(o + 1) * per_row];
        let xs: [&[f32]; R] = std::array::from_fn(|r| &x[(r0 + r) * cols..(r0 + r + 1) * cols]);
        let mut acc = [[0f32; LANES]; R];
        let mut halves = [half::f16::ZERO; SCALES];
        let mut scales = [0f32; SCALES];
        for (c, chunk) in row.chunks(SCALES * BLOCK_BYTES).enumerate() {
            let n = chunk.len() / BLOCK_BYTES;
            for (h, block) in halves.iter_mut().zip(chunk.chunks_exact(BLOCK_BYTES)) {
                *h = half::f16::from_le_bytes([block[0], block[1]]);
            }
            halves[..n].convert_to_f32_slice(&mut scales[..n]);
            for (i, (block, &d)) in chunk.chunks_exact(BLOCK_BYTES).zip(&scales).enumerate() {
                let b = c * SCALES + i;
                let mut qf = [0f32; BLOCK];
                for (f, &q) in qf.iter_mut().zip(&block[2..]) {
                    *f = f32::from(q as i8);
                }
                for (lanes, xr) in acc.iter_mut().zip(&xs) {
                    let xb = &xr[b * BLOCK..(b + 1) * BLOCK];
                    for l in 0..LANES {
                        let part = qf[l] * xb[l]
                            + qf[LANES + l] * xb[LANES + l]
                            + qf[2 * LANES + l] * xb[2 * LANES + l]
                            + qf[3 * LANES + l] * xb[3 * LANES + l];
                        lanes[l] += d * part;
                    }
                }
            }
        }
        for (y, a) in y.iter_mut().zip(&acc) {
            *y = sum_lanes(a);
        }
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

    /// `y[r]` ← one output row of blocks (`row`) times row `r` of `x` (`R` rows of `row`'s columns), the sums of
    /// the `R` rows in registers for the whole row of blocks.
    #[target_feature(enable = "avx2,f16c")]
    pub(super) fn dot_row_group<const R: usize>(row: &[u8], x: &[f32], y: &mut [f32]) {
        let blocks = row.len() / BLOCK_BYTES;
        let cols = blocks * BLOCK;
        assert!(x.len() >= R * cols && y.len() >= R);
        let mut acc = [_mm256_setzero_ps(); R];
        for (b, block) in row.chunks_exact(BLOCK_BYTES).enumerate() {
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

    /// The AVX2 product and the portable one give the same bits (where the CPU has AVX2), on every size of the last
    /// group of rows, with zeros, signed zeros and subnormal scales among the values.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_and_the_portable_code_give_the_same_bits() {
        assert!(
            std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("f16c"),
            "the build machines have AVX2 and F16C"
        );
        let (rows, cols) = (16, 25088 / 49);
        let mut wv = values(rows * cols, 8);
        // a row of tiny weights (subnormal f16 scales) and a block of zeros
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
                // SAFETY: AVX2 and F16C are present (asserted above).
                unsafe { q.dot_rows_avx2(o, &x, &mut a) };
                q.dot_rows_portable(o, &x, &mut b);
                assert_eq!(bits(&a), bits(&b), "m {m} output {o}");
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
