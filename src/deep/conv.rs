//! The CPU path of the VGG trunk: 3×3 convolutions (padding 1) + ReLU and 2×2 max-pooling on NHWC activations.
//!
//! candle's CPU convolution re-lays-out its input and flattens its kernel on every call, single-threaded, which
//! costs more than the matrix product itself on 2 cores. Here each kernel is packed once, at load, into a
//! `(9·C_in) × C_out` matrix (rows in `(ky, kx, c_in)` order); activations stay NHWC, so the im2col rows are
//! copies of contiguous channel vectors, built in parallel in chunks of output pixels (bounded memory); the
//! product is the `gemm` crate's f32 kernel (the one candle uses). The result equals the convolution up to
//! summation order (checked against PyTorch by `tests/deep_parity.rs`).

use candle_core::Tensor;
use rayon::prelude::*;

use crate::error::Result;

/// Activations of one image, `h × w × c`, channels fastest.
#[derive(Debug, Clone)]
pub struct Nhwc {
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Channels.
    pub c: usize,
    /// Values.
    pub data: Vec<f32>,
}

impl Nhwc {
    /// From one CHW image.
    pub fn from_chw(c: usize, h: usize, w: usize, chw: &[f32]) -> Self {
        let mut data = vec![0f32; h * w * c];
        for ch in 0..c {
            for p in 0..h * w {
                data[p * c + ch] = chw[ch * h * w + p];
            }
        }
        Nhwc { h, w, c, data }
    }

    /// To CHW order (PyTorch's flatten order).
    pub fn to_chw(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.data.len()];
        for p in 0..self.h * self.w {
            for ch in 0..self.c {
                out[ch * self.h * self.w + p] = self.data[p * self.c + ch];
            }
        }
        out
    }
}

/// A 3×3 convolution packed for the product.
#[derive(Debug, Clone)]
pub struct PackedConv {
    cin: usize,
    cout: usize,
    /// `(9·cin) × cout`, row-major.
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl PackedConv {
    /// Pack a `(cout, cin, 3, 3)` kernel and its bias.
    pub fn new(weight: &Tensor, bias: &Tensor) -> Result<Self> {
        let (cout, cin, _, _) = weight.dims4()?;
        let w: Vec<f32> = weight.flatten_all().and_then(|t| t.to_vec1())?;
        let mut packed = vec![0f32; 9 * cin * cout];
        for co in 0..cout {
            for ci in 0..cin {
                for t in 0..9 {
                    packed[(t * cin + ci) * cout + co] = w[(co * cin + ci) * 9 + t];
                }
            }
        }
        Ok(PackedConv {
            cin,
            cout,
            weight: packed,
            bias: bias.to_vec1()?,
        })
    }
}

impl PackedConv {
    /// Input channels.
    pub fn cin(&self) -> usize {
        self.cin
    }

    /// Output channels.
    pub fn cout(&self) -> usize {
        self.cout
    }

    /// The packed kernel, `(9·C_in) × C_out` row-major, rows in `(ky, kx, c_in)` order.
    pub fn weight(&self) -> &[f32] {
        &self.weight
    }

    /// The bias.
    pub fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// The packed kernel with zero rows appended up to `rows` (≥ 9·C_in): the `Kp × C_out` matrix of the CUDA
    /// trunk, whose im2col columns beyond 9·C_in are zero.
    pub fn padded_weight(&self, rows: usize) -> Vec<f32> {
        let mut w = self.weight.clone();
        w.resize(rows.max(9 * self.cin) * self.cout, 0.0);
        w
    }

    /// The kernel as `C_out × 3 × 3 × cin_padded` (cuDNN's NHWC filter layout, "KRSC"), input channels beyond
    /// C_in zero: the CUDA trunk's cuDNN engine, whose first layer reads an input padded from 3 to 8 channels.
    pub fn krsc_weight(&self, cin_padded: usize) -> Vec<f32> {
        let cp = cin_padded.max(self.cin);
        let mut out = vec![0f32; self.cout * 9 * cp];
        for co in 0..self.cout {
            for t in 0..9 {
                for ci in 0..self.cin {
                    out[(co * 9 + t) * cp + ci] = self.weight[(t * self.cin + ci) * self.cout + co];
                }
            }
        }
        out
    }
}

/// The input's channels as the CUDA trunk's cuDNN engine gives them to the first convolution: rounded up to a
/// multiple of 8 (zeros), so that its NHWC rows are tensor-core aligned as VGG-16's later layers' are.
pub fn padded_channels(cin: usize) -> usize {
    cin.div_ceil(8) * 8
}

/// Whether the CUDA trunk's kernels move 8 channels per thread (their `_c8` variants, 16-byte accesses) on a map
/// of `c` channels: when `c` is a multiple of 8 — then 9·C is one too, and [`padded_k`] adds no column.
pub fn eight_channel_kernels(c: usize) -> bool {
    c.is_multiple_of(8)
}

/// Width of the CUDA trunk's im2col rows: 9·C_in rounded up to a multiple of 8 (f16 tensor-core alignment).
pub fn padded_k(cin: usize) -> usize {
    (9 * cin).div_ceil(8) * 8
}

/// Output pixels per im2col chunk (bounds the buffer to ≈ 8192 × 9·C_in floats).
const CHUNK: usize = 8192;

/// `relu(conv3x3(x) + b)`, padding 1.
pub fn conv3x3_relu(x: &Nhwc, p: &PackedConv) -> Nhwc {
    assert_eq!(x.c, p.cin, "channel mismatch");
    let (h, w, cin, cout) = (x.h, x.w, x.c, p.cout);
    let k = 9 * cin;
    let mut out = vec![0f32; h * w * cout];
    let mut cols = Vec::new();
    for start in (0..h * w).step_by(CHUNK) {
        let m = CHUNK.min(h * w - start);
        cols.clear();
        cols.resize(m * k, 0.0);
        cols.par_chunks_mut(k).enumerate().for_each(|(r, row)| {
            let (y, xx) = ((start + r) / w, (start + r) % w);
            for ky in 0..3 {
                let sy = y as isize + ky as isize - 1;
                if sy < 0 || sy >= h as isize {
                    continue;
                }
                for kx in 0..3 {
                    let sx = xx as isize + kx as isize - 1;
                    if sx < 0 || sx >= w as isize {
                        continue;
                    }
                    let src = (sy as usize * w + sx as usize) * cin;
                    let dst = (ky * 3 + kx) * cin;
                    row[dst..dst + cin].copy_from_slice(&x.data[src..src + cin]);
                }
            }
        });
        let dst = &mut out[start * cout..(start + m) * cout];
        matmul(m, cout, k, &cols, &p.weight, dst);
    }
    out.par_chunks_mut(cout).for_each(|px| {
        for (v, b) in px.iter_mut().zip(&p.bias) {
            *v = (*v + b).max(0.0);
        }
    });
    Nhwc {
        h,
        w,
        c: cout,
        data: out,
    }
}

/// `relu(conv3x3(x) + b)`, padding 1, summed in one fixed order on every CPU: for each output channel,
/// `acc = 0; acc += x·w` over the taps in `(ky, kx, c_in)` order (zeros beyond the border included), each product
/// and each sum rounded on its own (no fused multiply-add), then `relu(acc + b)`. Each output channel is one
/// vector lane, so vectorising never reorders a sum: the AVX-512 and AVX2 kernels (`fixed_order_x86`, picked at
/// run time) keep 8 pixels' sums of 16 or 8 channels in registers, and the channels left over take the portable
/// loop; all give the same bits. Slower than [`conv3x3_relu`]'s product, which picks its summation order per CPU;
/// the quantized trunk's first layer uses it on its three input channels, so that the whole quantized network
/// gives the same bits everywhere.
pub fn conv3x3_relu_fixed_order(x: &Nhwc, p: &PackedConv) -> Nhwc {
    conv3x3_relu_fixed_order_on(x, p, FixedOrderKernel::detect())
}

/// The vector width [`conv3x3_relu_fixed_order`] runs at (the same bits on each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FixedOrderKernel {
    /// 16 channels a vector.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// 8 channels a vector.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// Whatever the compiler makes of the portable loop.
    Portable,
}

impl FixedOrderKernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return FixedOrderKernel::Avx512;
            }
            if is_x86_feature_detected!("avx2") {
                return FixedOrderKernel::Avx2;
            }
        }
        FixedOrderKernel::Portable
    }
}

/// The padded input and weights one output row of [`conv3x3_relu_fixed_order`] reads.
struct FixedOrderRow<'a> {
    /// The input with a one-pixel zero border, `(h+2) × (w+2) × C_in`.
    padded: &'a [f32],
    /// Floats per padded row.
    row: usize,
    y: usize,
    w: usize,
    cin: usize,
    p: &'a PackedConv,
}

impl FixedOrderRow<'_> {
    /// Output channels `o0..` of every pixel of the row into `out_row` (pixel stride C_out), the portable loop.
    fn channels_from(&self, o0: usize, out_row: &mut [f32]) {
        let (cin, cout) = (self.cin, self.p.cout);
        if o0 >= cout {
            return;
        }
        let mut acc = vec![0f32; cout - o0];
        for (xx, px) in out_row.chunks_mut(cout).enumerate().take(self.w) {
            acc.iter_mut().for_each(|a| *a = 0.0);
            for ky in 0..3 {
                let start = (self.y + ky) * self.row + xx * cin;
                let taps = &self.padded[start..start + 3 * cin];
                let weights = &self.p.weight[ky * 3 * cin * cout..(ky + 1) * 3 * cin * cout];
                for (&v, wr) in taps.iter().zip(weights.chunks_exact(cout)) {
                    for (a, &wv) in acc.iter_mut().zip(&wr[o0..]) {
                        *a += v * wv;
                    }
                }
            }
            for ((o, a), b) in px[o0..].iter_mut().zip(&acc).zip(&self.p.bias[o0..]) {
                let v = a + b;
                *o = if v > 0.0 { v } else { 0.0 };
            }
        }
    }
}

/// [`conv3x3_relu_fixed_order`] on a chosen kernel.
fn conv3x3_relu_fixed_order_on(x: &Nhwc, p: &PackedConv, kernel: FixedOrderKernel) -> Nhwc {
    assert_eq!(x.c, p.cin, "channel mismatch");
    let (h, w, cin, cout) = (x.h, x.w, x.c, p.cout);
    let row = (w + 2) * cin;
    let mut padded = vec![0f32; (h + 2) * row];
    for (dst, src) in padded[row..].chunks_mut(row).zip(x.data.chunks(w * cin)) {
        dst[cin..cin + w * cin].copy_from_slice(src);
    }
    let mut out = vec![0f32; h * w * cout];
    out.par_chunks_mut(w * cout).enumerate().for_each(|(y, out_row)| {
        let r = FixedOrderRow {
            padded: &padded,
            row,
            y,
            w,
            cin,
            p,
        };
        let done = match kernel {
            // SAFETY: `detect` (or the test that chose it) found AVX-512 F
            #[cfg(target_arch = "x86_64")]
            FixedOrderKernel::Avx512 => unsafe { fixed_order_x86::row_avx512(&r, out_row) },
            // SAFETY: as above, AVX2
            #[cfg(target_arch = "x86_64")]
            FixedOrderKernel::Avx2 => unsafe { fixed_order_x86::row_avx2(&r, out_row) },
            FixedOrderKernel::Portable => 0,
        };
        r.channels_from(done, out_row);
    });
    Nhwc {
        h,
        w,
        c: cout,
        data: out,
    }
}

/// [`conv3x3_relu_fixed_order`]'s vector kernels: per block of 16 (AVX-512) or 8 (AVX2) output channels, 8 pixels'
/// sums in registers over the `9·C_in` taps, each tap a product then a sum (`mul`, `add`: no FMA), then
/// `max(acc + b, 0)` — `max` returns its second operand (0) unless `acc + b > 0`, as the portable loop does.
#[cfg(target_arch = "x86_64")]
mod fixed_order_x86 {
    use std::arch::x86_64::*;

    use super::FixedOrderRow;

    /// Pixels per register tile.
    const PIXELS: usize = 8;

    /// One kernel per vector width: `$row` (the row's whole blocks of `$lanes` channels, returning how many
    /// channels it wrote) and its register tile `$tile`, on `$feature`'s vector type and operations.
    macro_rules! fixed_order_kernel {
        ($row:ident, $tile:ident, $feature:literal, $lanes:literal, $vector:ty,
         $zero:ident, $load:ident, $store:ident, $splat:ident, $mul:ident, $add:ident, $max:ident) => {
            /// The row's whole blocks of channels; returns how many channels it wrote.
            ///
            /// # Safety
            #[doc = concat!("The CPU has ", $feature, ".")]
            #[target_feature(enable = $feature)]
            pub(super) unsafe fn $row(r: &FixedOrderRow, out_row: &mut [f32]) -> usize {
                let blocks = r.p.cout / $lanes;
                for b in 0..blocks {
                    let mut xx = 0;
                    while xx + PIXELS <= r.w {
                        // SAFETY: the CPU has the feature; the tile asserts its bounds
                        unsafe { $tile::<PIXELS>(r, xx, b * $lanes, out_row) };
                        xx += PIXELS;
                    }
                    while xx < r.w {
                        // SAFETY: as above
                        unsafe { $tile::<1>(r, xx, b * $lanes, out_row) };
                        xx += 1;
                    }
                }
                blocks * $lanes
            }

            /// `P` pixels from `xx` × the channels `o0..o0 + lanes`.
            ///
            /// # Safety
            #[doc = concat!("The CPU has ", $feature, ".")]
            #[target_feature(enable = $feature)]
            unsafe fn $tile<const P: usize>(r: &FixedOrderRow, xx: usize, o0: usize, out_row: &mut [f32]) {
                let (cin, cout) = (r.cin, r.p.cout);
                assert!(xx + P <= r.w && o0 + $lanes <= cout);
                assert!(r.padded.len() >= (r.y + 2) * r.row + (xx + P + 2) * cin);
                assert!(r.p.weight.len() >= 9 * cin * cout && out_row.len() >= (xx + P) * cout);
                let mut acc: [$vector; P] = [$zero(); P];
                // SAFETY (the loads and stores): within the lengths asserted above
                unsafe {
                    for ky in 0..3 {
                        let taps = r.padded.as_ptr().add((r.y + ky) * r.row + xx * cin);
                        let weights = r.p.weight.as_ptr().add(ky * 3 * cin * cout + o0);
                        for t in 0..3 * cin {
                            let wv = $load(weights.add(t * cout));
                            for (p, a) in acc.iter_mut().enumerate() {
                                let v = $splat(*taps.add(p * cin + t));
                                *a = $add(*a, $mul(v, wv));
                            }
                        }
                    }
                    let bias = $load(r.p.bias.as_ptr().add(o0));
                    for (p, a) in acc.iter().enumerate() {
                        let v = $max($add(*a, bias), $zero());
                        $store(out_row.as_mut_ptr().add((xx + p) * cout + o0), v);
                    }
                }
            }
        };
    }

    fixed_order_kernel!(
        row_avx512,
        tile512,
        "avx512f",
        16,
        __m512,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_storeu_ps,
        _mm512_set1_ps,
        _mm512_mul_ps,
        _mm512_add_ps,
        _mm512_max_ps
    );
    fixed_order_kernel!(
        row_avx2,
        tile256,
        "avx2",
        8,
        __m256,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_storeu_ps,
        _mm256_set1_ps,
        _mm256_mul_ps,
        _mm256_add_ps,
        _mm256_max_ps
    );
}

/// `dst (m×n) = lhs (m×k) · rhs (k×n)`, all row-major.
fn matmul(m: usize, n: usize, k: usize, lhs: &[f32], rhs: &[f32], dst: &mut [f32]) {
    gemm_f32(m, n, k, lhs, rhs, false, dst);
}

/// `dst (m×n) = lhs (m×k) · B`, row-major, where `B = rhs` (stored `k×n`) or, with `rhs_transposed`, `B = rhsᵀ`
/// (`rhs` stored `n×k`, as a dense layer's `out × in` weights). Multi-threaded with rayon.
pub(crate) fn gemm_f32(m: usize, n: usize, k: usize, lhs: &[f32], rhs: &[f32], rhs_transposed: bool, dst: &mut [f32]) {
    assert!(lhs.len() >= m * k && rhs.len() >= k * n && dst.len() >= m * n);
    let (rhs_cs, rhs_rs) = if rhs_transposed {
        (k as isize, 1)
    } else {
        (1, n as isize)
    };
    // SAFETY: the three buffers are valid for the extents asserted above with these strides (lhs row stride k,
    // rhs element (i, j) at i·rhs_rs + j·rhs_cs < k·n, dst row stride n), `dst` does not alias the inputs (a
    // distinct &mut borrow), and with `read_dst = false` the destination is only written.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.as_ptr(),
            rhs_cs,
            rhs_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
}

/// 2×2 max-pooling, stride 2.
pub fn maxpool2(x: &Nhwc) -> Nhwc {
    let (h, w, c) = (x.h / 2, x.w / 2, x.c);
    let mut data = vec![0f32; h * w * c];
    // an input narrower or shorter than 2 pools to nothing (and a chunk size of 0 would panic)
    data.par_chunks_mut((w * c).max(1)).enumerate().for_each(|(y, row)| {
        for xx in 0..w {
            for ch in 0..c {
                let at = |dy: usize, dx: usize| x.data[((2 * y + dy) * x.w + 2 * xx + dx) * c + ch];
                row[xx * c + ch] = at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1));
            }
        }
    });
    Nhwc { h, w, c, data }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn the_fixed_order_convolution_is_the_convolution() {
        let mut rng = crate::rng::Rng::new(9);
        let (h, w, cin, cout) = (6, 5, 3, 20);
        let wt: Vec<f32> = (0..cout * cin * 9).map(|_| rng.normal() as f32).collect();
        let bt: Vec<f32> = (0..cout).map(|_| rng.normal() as f32).collect();
        let x = Nhwc {
            h,
            w,
            c: cin,
            data: (0..h * w * cin).map(|_| rng.normal() as f32).collect(),
        };
        // the definition, in f64
        let mut want = vec![0f64; h * w * cout];
        for y in 0..h {
            for xx in 0..w {
                for o in 0..cout {
                    let mut s = f64::from(bt[o]);
                    for c in 0..cin {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (sy, sx) = (y as isize + ky as isize - 1, xx as isize + kx as isize - 1);
                                if sy >= 0 && sx >= 0 && (sy as usize) < h && (sx as usize) < w {
                                    let v = x.data[(sy as usize * w + sx as usize) * cin + c];
                                    s += f64::from(v) * f64::from(wt[((o * cin + c) * 3 + ky) * 3 + kx]);
                                }
                            }
                        }
                    }
                    want[(y * w + xx) * cout + o] = s.max(0.0);
                }
            }
        }
        let p = PackedConv::new(
            &Tensor::from_vec(wt, (cout, cin, 3, 3), &Device::Cpu).unwrap(),
            &Tensor::from_vec(bt, cout, &Device::Cpu).unwrap(),
        )
        .unwrap();
        for got in [conv3x3_relu_fixed_order(&x, &p).data, conv3x3_relu(&x, &p).data] {
            let err = got
                .iter()
                .zip(&want)
                .fold(0f64, |m, (a, b)| m.max((f64::from(*a) - b).abs()));
            assert!(err < 1e-5, "{err}");
        }
    }

    #[test]
    fn every_fixed_order_kernel_gives_the_portable_loops_bits() {
        // widths with and without a short tile of pixels, channels in whole vectors and with some left over, and
        // inputs with negative values, zeros and a NaN (ReLU's zero for it, in every kernel)
        let mut rng = crate::rng::Rng::new(12);
        for (h, w, cin, cout) in [
            (3, 17, 3, 64),
            (2, 8, 3, 20),
            (4, 5, 4, 33),
            (1, 1, 3, 7),
            (2, 9, 2, 16),
        ] {
            let wt: Vec<f32> = (0..cout * cin * 9).map(|_| rng.normal() as f32).collect();
            let bt: Vec<f32> = (0..cout).map(|_| rng.normal() as f32).collect();
            let mut data: Vec<f32> = (0..h * w * cin).map(|_| rng.normal() as f32).collect();
            data[0] = 0.0;
            data[h * w * cin / 2] = f32::NAN;
            let x = Nhwc { h, w, c: cin, data };
            let p = PackedConv::new(
                &Tensor::from_vec(wt, (cout, cin, 3, 3), &Device::Cpu).unwrap(),
                &Tensor::from_vec(bt, cout, &Device::Cpu).unwrap(),
            )
            .unwrap();
            let want = conv3x3_relu_fixed_order_on(&x, &p, FixedOrderKernel::Portable).data;
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            #[allow(unused_mut)]
            let mut kernels = vec![FixedOrderKernel::detect()];
            #[cfg(target_arch = "x86_64")]
            {
                if is_x86_feature_detected!("avx2") {
                    kernels.push(FixedOrderKernel::Avx2);
                }
                if is_x86_feature_detected!("avx512f") {
                    kernels.push(FixedOrderKernel::Avx512);
                } else {
                    eprintln!("no AVX-512 here: the AVX-512 fixed-order kernel was not tested on this machine");
                }
            }
            for kernel in kernels {
                let got = conv3x3_relu_fixed_order_on(&x, &p, kernel).data;
                assert_eq!(bits(&got), bits(&want), "{kernel:?} {h}×{w}×{cin}→{cout}");
            }
        }
    }
}
