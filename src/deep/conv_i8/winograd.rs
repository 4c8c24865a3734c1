//! The Q8 convolutions by Winograd's F(2×2, 3×3), in exact integers: the same sums as the direct kernels with
//! 16 multiplications per 2×2 output pixels instead of 36.
//!
//! For one input channel, a 4×4 input patch `d` and the 3×3 kernel `g` give the 2×2 outputs
//!
//! ```text
//! Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A          (Lavin & Gray 2016, F(2×2, 3×3))
//!
//!      ⎡1  0 −1  0⎤        ⎡ 1   0   0 ⎤        ⎡1  1  1  0⎤
//! Bᵀ = ⎢0  1  1  0⎥    G = ⎢ ½   ½   ½ ⎥   Aᵀ = ⎣0  1 −1 −1⎦
//!      ⎢0 −1  1  0⎥        ⎢ ½  −½   ½ ⎥
//!      ⎣0  1  0 −1⎦        ⎣ 0   0   1 ⎦
//! ```
//!
//! and the sum over input channels moves inside, before `Aᵀ · A`. With `2G` (integer entries) in place of `G`:
//!
//! - `U = (2G) g (2G)ᵀ` is an integer, |U| ≤ 9·127 = 1,143, and fits `i16` (computed once per layer);
//! - `V = Bᵀ d B` is an integer, |V| ≤ 4·255 = 1,020, and fits `i16` (the input is `u8`);
//! - `M[ξ] = Σ_c U[ξ]·V[ξ]` for each of the 16 positions ξ is a matrix product of `i16` pairs (`vpmaddwd`);
//! - `Aᵀ M A` is exactly 4× the direct sum `Σ q_a·q_w`, which a shift by 2 undoes.
//!
//! Every step is integer arithmetic modulo 2³², and the final value `4·Σ q_a·q_w` lies within `i32` (|·| ≤
//! 4·9·255·127·C_in < 2³¹ for C_in ≤ [`MAX_CIN`]), so the result is that sum exactly even where an intermediate
//! wraps: the layer's output has the direct kernels' bits, and [`super::finish`] makes the same f32 from it.
//!
//! A layer is cut into runs of whole tile rows (2 output rows each), one per task, and a run into chunks of tiles
//! whose `V` (`16 × tiles × C₄` `i16`) stays in L2. For each block of 32 output channels, a chunk's `M`
//! (`16 × tiles × 32` `i32`) is formed one position at a time (that position's and block's `U` stays in cache
//! for every tile of the chunk) and transformed straight back into the output pixels — or, where a 2×2 max pool
//! follows, into the maximum of each tile's four, since a tile is exactly a pooling window. Only even heights and
//! widths take this path (all of VGG's).

use rayon::prelude::*;

use super::{BLOCK_OUT, PackedConvI8, finish};

/// The most input channels for which `4·Σ q_a·q_w` is sure to fit `i32` (the bound is 1,842).
pub(super) const MAX_CIN: usize = 1024;
/// Tiles per task at least (whole tile rows are taken until a run has this many).
const RUN_TILES: usize = 24;
/// Bytes of `V` per chunk of tiles multiplied together (so that it stays in L2 while every block reads it).
const CHUNK_V_BYTES: usize = 192 * 1024;
/// Positions ξ of the 4×4 transformed tile.
const XI: usize = 16;

/// Whether an `h × w × cin` input can take this path.
pub(super) fn applies(h: usize, w: usize, cin: usize) -> bool {
    h.is_multiple_of(2) && w.is_multiple_of(2) && h > 0 && w > 0 && cin <= MAX_CIN
}

/// `2G`, the kernel transform with its halves doubled.
const G2: [[i32; 3]; 4] = [[2, 0, 0], [1, 1, 1], [1, -1, 1], [0, 0, 2]];

/// The layer's kernels transformed, `U = (2G) g (2G)ᵀ`, laid out for the matrix products: per position ξ, per
/// block of 32 output channels, per input channel pair `(2p, 2p+1)`, the 32 channels as `(U[2p], U[2p+1])` pairs,
/// so that one `vpmaddwd` with a broadcast pair of `V` gives 8 channels' `V[2p]·U[2p] + V[2p+1]·U[2p+1]`.
pub(super) fn transform_weights(p: &PackedConvI8) -> Vec<i16> {
    let (cin4, cout) = (p.cin4, p.cout);
    let blocks = cout.div_ceil(BLOCK_OUT);
    let pairs = cin4 / 2;
    let mut u = vec![0i16; XI * blocks * pairs * BLOCK_OUT * 2];
    for o in 0..cout {
        let (b, lane) = (o / BLOCK_OUT, o % BLOCK_OUT);
        for c in 0..p.cin {
            let g = |ky: usize, kx: usize| i32::from(p.quantized_weight(o, ky, kx, c));
            // (2G) g: 4 × 3
            let mut left = [[0i32; 3]; 4];
            for (i, row) in left.iter_mut().enumerate() {
                for (kx, v) in row.iter_mut().enumerate() {
                    *v = (0..3).map(|ky| G2[i][ky] * g(ky, kx)).sum();
                }
            }
            for i in 0..4 {
                for j in 0..4 {
                    let v: i32 = (0..3).map(|kx| left[i][kx] * G2[j][kx]).sum();
                    let xi = i * 4 + j;
                    let at = (((xi * blocks + b) * pairs + c / 2) * BLOCK_OUT + lane) * 2 + c % 2;
                    // |v| ≤ 9·127: exact in i16
                    u[at] = v as i16;
                }
            }
        }
    }
    u
}

/// `V = Bᵀ d B` over `L` channels at once: `d[r][j]` are the 16 input pixels' channel runs of the tile's patch.
#[inline(always)]
fn input_transform_lanes<const L: usize>(d: &[[&[u8]; 4]; 4], c0: usize, v: &mut [[i16; L]; XI]) {
    let px = |r: usize, j: usize| -> [i16; L] {
        let bytes: &[u8; L] = d[r][j][c0..c0 + L].try_into().expect("L channels");
        bytes.map(i16::from)
    };
    let sub = |a: [i16; L], b: [i16; L]| -> [i16; L] { std::array::from_fn(|l| a[l] - b[l]) };
    let add = |a: [i16; L], b: [i16; L]| -> [i16; L] { std::array::from_fn(|l| a[l] + b[l]) };
    // Bᵀ d: combine rows, per column j
    let mut e = [[[0i16; L]; 4]; 4];
    for j in 0..4 {
        let (d0, d1, d2, d3) = (px(0, j), px(1, j), px(2, j), px(3, j));
        e[0][j] = sub(d0, d2);
        e[1][j] = add(d1, d2);
        e[2][j] = sub(d2, d1);
        e[3][j] = sub(d1, d3);
    }
    // (Bᵀ d) B: combine columns, per row i
    for (i, ei) in e.iter().enumerate() {
        v[i * 4] = sub(ei[0], ei[2]);
        v[i * 4 + 1] = add(ei[1], ei[2]);
        v[i * 4 + 2] = sub(ei[2], ei[1]);
        v[i * 4 + 3] = sub(ei[1], ei[3]);
    }
}

/// One tile's `V` into `dst[ξ·stride .. ξ·stride + C₄]` for every ξ, compiled for AVX2 where the products run
/// on it.
fn input_transform(d: &[[&[u8]; 4]; 4], cin4: usize, dst: &mut [i16], stride: usize, gemm: Gemm) {
    match gemm {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Gemm::Avx2` is chosen only where the CPU has AVX2
        Gemm::Avx2 => unsafe { avx2::input_transform(d, cin4, dst, stride) },
        Gemm::Portable => input_transform_body(d, cin4, dst, stride),
    }
}

fn input_transform_body(d: &[[&[u8]; 4]; 4], cin4: usize, dst: &mut [i16], stride: usize) {
    input_transform_from(d, 0, cin4, dst, stride);
}

/// [`input_transform_body`] from channel `c0` (a multiple of 4).
#[inline(always)]
fn input_transform_from(d: &[[&[u8]; 4]; 4], c0: usize, cin4: usize, dst: &mut [i16], stride: usize) {
    let mut c = c0;
    while c + 16 <= cin4 {
        let mut v = [[0i16; 16]; XI];
        input_transform_lanes::<16>(d, c, &mut v);
        for (xi, lanes) in v.iter().enumerate() {
            dst[xi * stride + c..xi * stride + c + 16].copy_from_slice(lanes);
        }
        c += 16;
    }
    while c < cin4 {
        // C₄ is a multiple of 4
        let mut v = [[0i16; 4]; XI];
        input_transform_lanes::<4>(d, c, &mut v);
        for (xi, lanes) in v.iter().enumerate() {
            dst[xi * stride + c..xi * stride + c + 4].copy_from_slice(lanes);
        }
        c += 4;
    }
}

/// `Y = Aᵀ M A / 4` over `L` output channels from `c0` of a block, then [`finish`], into the tile's four output
/// pixels (`m[ξ]`: the block's sums at position ξ; `y[k]`, `scale`, `bias`: from the block's first channel).
#[inline(always)]
fn output_transform_lanes<const L: usize>(m: &[&[i32]; XI], c0: usize, scale: &[f32], bias: &[f32], y: &mut Dest) {
    let at = |xi: usize| -> [i32; L] { *<&[i32; L]>::try_from(&m[xi][c0..c0 + L]).expect("L channels") };
    // all sums wrap (see the module's text)
    let add3 = |a: [i32; L], b: [i32; L], c: [i32; L]| -> [i32; L] {
        std::array::from_fn(|l| a[l].wrapping_add(b[l]).wrapping_add(c[l]))
    };
    let sub2 = |a: [i32; L], b: [i32; L], c: [i32; L]| -> [i32; L] {
        std::array::from_fn(|l| a[l].wrapping_sub(b[l]).wrapping_sub(c[l]))
    };
    // Aᵀ M: rows 0+1+2 and 1−2−3, per column j
    let r0: [[i32; L]; 4] = std::array::from_fn(|j| add3(at(j), at(4 + j), at(8 + j)));
    let r1: [[i32; L]; 4] = std::array::from_fn(|j| sub2(at(4 + j), at(8 + j), at(12 + j)));
    let sums = [
        add3(r0[0], r0[1], r0[2]),
        sub2(r0[1], r0[2], r0[3]),
        add3(r1[0], r1[1], r1[2]),
        sub2(r1[1], r1[2], r1[3]),
    ];
    let scale: &[f32; L] = scale[c0..c0 + L].try_into().expect("L channels");
    let bias: &[f32; L] = bias[c0..c0 + L].try_into().expect("L channels");
    // 4·Σ is exact, so the shift divides exactly
    let pixels = sums.map(|sum| -> [f32; L] { std::array::from_fn(|l| finish(sum[l] >> 2, scale[l], bias[l])) });
    match y {
        Dest::Pixels(y) => {
            for (dst, px) in y.iter_mut().zip(pixels) {
                dst[c0..c0 + L].copy_from_slice(&px);
            }
        }
        // the values are ≥ 0 and never NaN, so any order of maxima gives `maxpool2`'s
        Dest::Pooled(dst) => {
            for l in 0..L {
                dst[c0 + l] = pixels[0][l].max(pixels[1][l]).max(pixels[2][l]).max(pixels[3][l]);
            }
        }
    }
}

/// Where a tile's outputs go (each slice from the block's first channel).
enum Dest<'a> {
    /// The four pixels `(0,0)`, `(0,1)`, `(1,0)`, `(1,1)`.
    Pixels([&'a mut [f32]; 4]),
    /// Their 2×2 max pool: one pixel.
    Pooled(&'a mut [f32]),
}

impl Dest<'_> {
    /// Whether every output row holds `lanes` channels (the AVX2 kernel's bounds check).
    #[cfg(target_arch = "x86_64")]
    fn fits(&self, lanes: usize) -> bool {
        match self {
            Dest::Pixels(y) => y.iter().all(|r| r.len() >= lanes),
            Dest::Pooled(y) => y.len() >= lanes,
        }
    }
}

/// [`output_transform_lanes`] over a block's `lanes` live channels.
#[inline(always)]
fn output_transform_body(m: &[&[i32]; XI], lanes: usize, scale: &[f32], bias: &[f32], mut y: Dest) {
    let mut c = 0;
    while c + 8 <= lanes {
        output_transform_lanes::<8>(m, c, scale, bias, &mut y);
        c += 8;
    }
    while c < lanes {
        output_transform_lanes::<1>(m, c, scale, bias, &mut y);
        c += 1;
    }
}

/// [`output_transform_body`], compiled for AVX2 where the products run on it.
fn output_transform(m: &[&[i32]; XI], lanes: usize, scale: &[f32], bias: &[f32], y: Dest, gemm: Gemm) {
    match gemm {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Gemm::Avx2` is chosen only where the CPU has AVX2
        Gemm::Avx2 => unsafe { avx2::output_transform(m, lanes, scale, bias, y) },
        Gemm::Portable => output_transform_body(m, lanes, scale, bias, y),
    }
}

/// Which multiply kernel runs the matrix products (the same integers either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Gemm {
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

/// One product's operands: `M[t][o] = Σ_p V[t][2p..2p+2]·U[p][o]` for one position and one block.
struct Product<'a> {
    /// `V` for the position: tile `t`'s channels at `t·cin4`.
    v: &'a [i16],
    /// `U` for the position and the block: `pairs × 32 × 2`.
    u: &'a [i16],
    cin4: usize,
    /// `M` for the position: tile `t`'s block at `t·m_stride`.
    m: &'a mut [i32],
    m_stride: usize,
    tiles: usize,
}

impl Gemm {
    fn run(self, pr: &mut Product) {
        assert!(pr.v.len() >= pr.tiles * pr.cin4);
        assert!(pr.u.len() >= pr.cin4 / 2 * BLOCK_OUT * 2);
        assert!(pr.tiles == 0 || pr.m.len() >= (pr.tiles - 1) * pr.m_stride + BLOCK_OUT);
        assert!(pr.cin4.is_multiple_of(4));
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the caller detected AVX2; the asserts above bound every access the kernel makes
            Gemm::Avx2 => unsafe { avx2::product(pr) },
            Gemm::Portable => portable_product(pr),
        }
    }
}

fn portable_product(pr: &mut Product) {
    for t in 0..pr.tiles {
        let v = &pr.v[t * pr.cin4..(t + 1) * pr.cin4];
        let mut acc = [0i32; BLOCK_OUT];
        for (pair, u) in v.chunks_exact(2).zip(pr.u.chunks_exact(BLOCK_OUT * 2)) {
            let (v0, v1) = (i32::from(pair[0]), i32::from(pair[1]));
            for (s, uw) in acc.iter_mut().zip(u.chunks_exact(2)) {
                // each product and pair sum is exact (|·| ≤ 2·1,020·1,143); the running sum may wrap (see the
                // module's text)
                *s = s.wrapping_add(v0 * i32::from(uw[0]) + v1 * i32::from(uw[1]));
            }
        }
        pr.m[t * pr.m_stride..t * pr.m_stride + BLOCK_OUT].copy_from_slice(&acc);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK_OUT, Dest, Gemm, Layer, Product, XI};

    /// [`super::run_body`] compiled for AVX2.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn run(l: &Layer, ty0: usize, out_rows: &mut [f32], vbuf: &mut Vec<i16>, mbuf: &mut Vec<i32>) {
        super::run_body(l, Gemm::Avx2, ty0, out_rows, vbuf, mbuf)
    }

    /// [`super::output_transform_body`] on 8 channels at a time in AVX2 registers (the same wrapping integer
    /// operations, then [`super::finish`]'s f32 operations in its order), the rest through the body.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn output_transform(m: &[&[i32]; XI], lanes: usize, scale: &[f32], bias: &[f32], mut y: Dest) {
        assert!(m.iter().all(|r| r.len() >= lanes) && y.fits(lanes));
        assert!(scale.len() >= lanes && bias.len() >= lanes);
        let zero = _mm256_setzero_ps();
        let mut c = 0;
        while c + 8 <= lanes {
            // SAFETY: c + 8 ≤ lanes ≤ every slice's length (asserted above)
            let at = |xi: usize| unsafe { _mm256_loadu_si256(m[xi].as_ptr().add(c) as *const __m256i) };
            let add3 = |a, b, c| _mm256_add_epi32(_mm256_add_epi32(a, b), c);
            let sub2 = |a, b, c| _mm256_sub_epi32(_mm256_sub_epi32(a, b), c);
            let r0: [__m256i; 4] = std::array::from_fn(|j| add3(at(j), at(4 + j), at(8 + j)));
            let r1: [__m256i; 4] = std::array::from_fn(|j| sub2(at(4 + j), at(8 + j), at(12 + j)));
            let sums = [
                add3(r0[0], r0[1], r0[2]),
                sub2(r0[1], r0[2], r0[3]),
                add3(r1[0], r1[1], r1[2]),
                sub2(r1[1], r1[2], r1[3]),
            ];
            let (sc, bi) = unsafe {
                (
                    _mm256_loadu_ps(scale.as_ptr().add(c)),
                    _mm256_loadu_ps(bias.as_ptr().add(c)),
                )
            };
            // no FMA: the product is rounded before the sum, as in `finish`; max(v, 0) returns the second operand
            // unless v > 0, as `finish` does
            let pixels = sums.map(|sum| {
                let v = _mm256_cvtepi32_ps(_mm256_srai_epi32::<2>(sum));
                _mm256_max_ps(_mm256_add_ps(_mm256_mul_ps(v, sc), bi), zero)
            });
            match &mut y {
                Dest::Pixels(y) => {
                    for (dst, v) in y.iter_mut().zip(pixels) {
                        unsafe { _mm256_storeu_ps(dst.as_mut_ptr().add(c), v) };
                    }
                }
                // the values are ≥ 0 and never NaN, so the maxima are exact in any order
                Dest::Pooled(dst) => {
                    let v = _mm256_max_ps(_mm256_max_ps(pixels[0], pixels[1]), _mm256_max_ps(pixels[2], pixels[3]));
                    unsafe { _mm256_storeu_ps(dst.as_mut_ptr().add(c), v) };
                }
            }
            c += 8;
        }
        while c < lanes {
            super::output_transform_lanes::<1>(m, c, scale, bias, &mut y);
            c += 1;
        }
    }

    /// [`super::input_transform_body`] on 16 channels at a time in AVX2 registers, the rest through the body.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn input_transform(d: &[[&[u8]; 4]; 4], cin4: usize, dst: &mut [i16], stride: usize) {
        assert!(d.iter().flatten().all(|r| r.len() >= cin4));
        assert!(dst.len() >= (XI - 1) * stride + cin4);
        let mut c = 0;
        while c + 16 <= cin4 {
            // SAFETY: c + 16 ≤ C₄ ≤ every run's length, and every store lies within dst (asserted above)
            let px = |r: usize, j: usize| unsafe {
                _mm256_cvtepu8_epi16(_mm_loadu_si128(d[r][j].as_ptr().add(c) as *const __m128i))
            };
            let mut e = [[_mm256_setzero_si256(); 4]; 4];
            for j in 0..4 {
                let (d0, d1, d2, d3) = (px(0, j), px(1, j), px(2, j), px(3, j));
                e[0][j] = _mm256_sub_epi16(d0, d2);
                e[1][j] = _mm256_add_epi16(d1, d2);
                e[2][j] = _mm256_sub_epi16(d2, d1);
                e[3][j] = _mm256_sub_epi16(d1, d3);
            }
            for (i, ei) in e.iter().enumerate() {
                let v = [
                    _mm256_sub_epi16(ei[0], ei[2]),
                    _mm256_add_epi16(ei[1], ei[2]),
                    _mm256_sub_epi16(ei[2], ei[1]),
                    _mm256_sub_epi16(ei[1], ei[3]),
                ];
                for (j, vj) in v.into_iter().enumerate() {
                    unsafe { _mm256_storeu_si256(dst.as_mut_ptr().add((i * 4 + j) * stride + c) as *mut __m256i, vj) };
                }
            }
            c += 16;
        }
        if c < cin4 {
            super::input_transform_from(d, c, cin4, dst, stride);
        }
    }

    /// Tiles per register sub-tile: 6 tiles × 2 vectors of 8 sums (half a block) stay in registers beside the
    /// two weight vectors and one broadcast pair.
    const SUB: usize = 6;

    /// # Safety
    /// The CPU has AVX2, and `pr` satisfies the bounds [`super::Gemm::run`] asserts.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn product(pr: &mut Product) {
        let mut t0 = 0;
        while t0 < pr.tiles {
            let n = SUB.min(pr.tiles - t0);
            for half in 0..2 {
                // SAFETY: tiles t0..t0+n lie within pr.tiles
                unsafe {
                    match n {
                        6 => sub_tile::<6>(pr, t0, half),
                        5 => sub_tile::<5>(pr, t0, half),
                        4 => sub_tile::<4>(pr, t0, half),
                        3 => sub_tile::<3>(pr, t0, half),
                        2 => sub_tile::<2>(pr, t0, half),
                        _ => sub_tile::<1>(pr, t0, half),
                    }
                }
            }
            t0 += n;
        }
    }

    /// Tiles `t0..t0 + N`, channels `16·half .. 16·half + 16` of the block: per channel pair, each tile's pair
    /// broadcast and multiplied into 8 channels at a time by `vpmaddwd`, summed with wrapping 32-bit adds.
    ///
    /// # Safety
    /// As [`product`], with `t0 + N ≤ pr.tiles` and `half < 2`.
    #[target_feature(enable = "avx2")]
    unsafe fn sub_tile<const N: usize>(pr: &mut Product, t0: usize, half: usize) {
        let mut acc = [[_mm256_setzero_si256(); 2]; N];
        let step = BLOCK_OUT * 2;
        // SAFETY (whole function): offsets stay within the lengths asserted by `Gemm::run`
        let v = unsafe { pr.v.as_ptr().add(t0 * pr.cin4) };
        let u = unsafe { pr.u.as_ptr().add(half * 32) };
        for p in 0..pr.cin4 / 2 {
            let (w0, w1) = unsafe {
                (
                    _mm256_loadu_si256(u.add(p * step) as *const __m256i),
                    _mm256_loadu_si256(u.add(p * step + 16) as *const __m256i),
                )
            };
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let a = unsafe { _mm256_set1_epi32((v.add(r * pr.cin4 + 2 * p) as *const i32).read_unaligned()) };
                acc_r[0] = _mm256_add_epi32(acc_r[0], _mm256_madd_epi16(a, w0));
                acc_r[1] = _mm256_add_epi32(acc_r[1], _mm256_madd_epi16(a, w1));
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let m = unsafe { pr.m.as_mut_ptr().add((t0 + r) * pr.m_stride + half * 16) };
            for (k, s) in acc_r.iter().enumerate() {
                unsafe { _mm256_storeu_si256(m.add(k * 8) as *mut __m256i, *s) };
            }
        }
    }
}

/// `relu(conv3x3(x) + b)` into `out` (`h × w × C_out`) from the quantized, padded input `q`
/// (`(h+2) × (w+2) × C₄`), with `scale[o] = s_a·s_w[o]` and `bias` padded to whole blocks.
#[allow(clippy::too_many_arguments)]
pub(super) fn conv(
    q: &[u8],
    h: usize,
    w: usize,
    p: &PackedConvI8,
    u: &[i16],
    scale: &[f32],
    bias: &[f32],
    gemm: Gemm,
    pool: bool,
    out: &mut [f32],
) {
    assert!(applies(h, w, p.cin));
    let (cin4, cout) = (p.cin4, p.cout);
    let blocks = cout.div_ceil(BLOCK_OUT);
    let pairs = cin4 / 2;
    let panel = pairs * BLOCK_OUT * 2;
    assert_eq!(u.len(), XI * blocks * panel);
    assert_eq!(q.len(), (h + 2) * (w + 2) * cin4);
    // output floats per tile row: two pixel rows, or one pooled row
    let tile_row = if pool { w / 2 * cout } else { 2 * w * cout };
    assert_eq!(out.len(), h / 2 * tile_row);
    let tiles_per_row = w / 2;
    let rows_per_run = RUN_TILES.div_ceil(tiles_per_row);
    let layer = Layer {
        q,
        u,
        scale,
        bias,
        w,
        cin4,
        cout,
        blocks,
        panel,
        tiles_per_row,
        chunk_tiles: (CHUNK_V_BYTES / (XI * cin4 * 2)).clamp(6, 96),
        pool,
        tile_row,
    };
    out.par_chunks_mut(rows_per_run * tile_row).enumerate().for_each_init(
        || (Vec::<i16>::new(), Vec::<i32>::new()),
        |(vbuf, mbuf), (run, out_rows)| match gemm {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Gemm::Avx2` is chosen only where the CPU has AVX2
            Gemm::Avx2 => unsafe { avx2::run(&layer, run * rows_per_run, out_rows, vbuf, mbuf) },
            Gemm::Portable => run_body(&layer, Gemm::Portable, run * rows_per_run, out_rows, vbuf, mbuf),
        },
    );
}

/// A layer's operands and shape, shared by its runs.
struct Layer<'a> {
    /// The quantized, padded input, `(h+2) × (w+2) × C₄`.
    q: &'a [u8],
    /// The transformed kernels ([`transform_weights`]).
    u: &'a [i16],
    /// `s_a·s_w[o]` and `b[o]`, padded to whole blocks.
    scale: &'a [f32],
    bias: &'a [f32],
    w: usize,
    cin4: usize,
    cout: usize,
    blocks: usize,
    /// `i16`s of `U` per position and block.
    panel: usize,
    tiles_per_row: usize,
    /// Tiles multiplied together (their `V` stays in L2).
    chunk_tiles: usize,
    /// Whether the output is 2×2 max-pooled (one pixel per tile).
    pool: bool,
    /// Output floats per tile row.
    tile_row: usize,
}

/// One run of whole tile rows from tile row `ty0`: `out_rows` are its output rows; `vbuf` and `mbuf` are the
/// task's scratch. Inlined into [`avx2::run`] so that every kernel it calls is compiled for AVX2 there.
#[inline(always)]
fn run_body(l: &Layer, gemm: Gemm, ty0: usize, out_rows: &mut [f32], vbuf: &mut Vec<i16>, mbuf: &mut Vec<i32>) {
    let (w, cin4, cout, tiles_per_row) = (l.w, l.cin4, l.cout, l.tiles_per_row);
    let in_row = (w + 2) * cin4;
    let run_tiles = out_rows.len() / l.tile_row * tiles_per_row;
    let mut t0 = 0;
    while t0 < run_tiles {
        let n = l.chunk_tiles.min(run_tiles - t0);
        // V for the chunk's tiles: position ξ, tile t at (ξ·n + t)·C₄
        vbuf.resize(XI * n * cin4, 0);
        for t in 0..n {
            let (ty, tx) = (ty0 + (t0 + t) / tiles_per_row, (t0 + t) % tiles_per_row);
            let base = 2 * ty * in_row + 2 * tx * cin4;
            let d: [[&[u8]; 4]; 4] = std::array::from_fn(|r| {
                std::array::from_fn(|j| {
                    let at = base + r * in_row + j * cin4;
                    &l.q[at..at + cin4]
                })
            });
            input_transform(&d, cin4, &mut vbuf[t * cin4..], n * cin4, gemm);
        }
        // per block of 32 output channels: M = U ⊙ V summed over channels at every position (ξ, tile t at
        // (ξ·n + t)·32), then Y = Aᵀ M A / 4 and the epilogue into the output pixels
        mbuf.resize(XI * n * BLOCK_OUT, 0);
        for b in 0..l.blocks {
            for xi in 0..XI {
                let at = (xi * l.blocks + b) * l.panel;
                let mut pr = Product {
                    v: &vbuf[xi * n * cin4..(xi + 1) * n * cin4],
                    u: &l.u[at..at + l.panel],
                    cin4,
                    m: &mut mbuf[xi * n * BLOCK_OUT..(xi + 1) * n * BLOCK_OUT],
                    m_stride: BLOCK_OUT,
                    tiles: n,
                };
                gemm.run(&mut pr);
            }
            let o0 = b * BLOCK_OUT;
            let lanes = BLOCK_OUT.min(cout - o0);
            let (sc, bi) = (&l.scale[o0..o0 + BLOCK_OUT], &l.bias[o0..o0 + BLOCK_OUT]);
            for t in 0..n {
                let (ty, tx) = ((t0 + t) / tiles_per_row, (t0 + t) % tiles_per_row);
                let m: [&[i32]; XI] = std::array::from_fn(|xi| {
                    let at = (xi * n + t) * BLOCK_OUT;
                    &mbuf[at..at + BLOCK_OUT]
                });
                let dest = if l.pool {
                    let at = (ty * tiles_per_row + tx) * cout + o0;
                    Dest::Pooled(&mut out_rows[at..at + lanes])
                } else {
                    let pixel = |dy: usize, dx: usize| ((2 * ty + dy) * w + 2 * tx + dx) * cout + o0;
                    let rows = &mut out_rows[pixel(0, 0)..pixel(1, 1) + lanes];
                    let (top, bottom) = rows.split_at_mut(w * cout);
                    let (y00, y01) = top.split_at_mut(cout);
                    let (y10, y11) = bottom.split_at_mut(cout);
                    Dest::Pixels([y00, y01, y10, y11])
                };
                output_transform(&m, lanes, sc, bi, dest, gemm);
            }
        }
        t0 += n;
    }
}
