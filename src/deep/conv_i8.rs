//! The Q8 trunk's 3×3 convolutions (padding 1) + ReLU with 8-bit weights and activations and exact integer sums.
//!
//! With weights quantized per output channel and a layer's input per image,
//!
//! ```text
//! s_w[o] = max |W[o]| / 127      q_w = round(W / s_w[o])  ∈ [−127, 127]      (once, at load)
//! s_a    = max x / 255           q_a = ⌊x / s_a + ½⌋      ∈ [0, 255]          (x ≥ 0: a ReLU's or a pool's output)
//! y[p][o] = relu( f32(Σ q_a·q_w) · (s_a·s_w[o]) + b[o] )
//! ```
//!
//! The sum over the 9·C_in taps is exact in `i32` (|Σ| ≤ 255·127·9·C_in < 2³¹ for C_in ≤ 7,000), and the rest is a
//! fixed sequence of f32 operations (a rounding conversion, a product, a sum, a comparison), so every CPU gives the
//! same bits, as [`super::q8`]'s dense layers do. What differs between CPUs is only the speed:
//!
//! - with AMX-INT8 (Sapphire Rapids and later Xeons; detected at run time, and granted by Linux) one `tdpbusd`
//!   multiplies a 16 × 64 byte tile by a 64 × 16 one into 16 × 16 sums, 256 times a `vpdpbusd` (`amx`);
//! - with AVX-512 VNNI (detected at run time) one `vpdpbusd` multiplies 64 byte pairs and adds them in fours into
//!   16 sums — four times the multiply-adds of an f32 FMA of the same width, on a quarter of the bytes;
//! - with AVX2 only, the bytes are widened to 16 bits (the weights once per layer, the input once per call) and
//!   one `vpmaddwd` multiplies 16 pairs and adds them in twos into 8 sums, exactly (|a·w + a'·w'| ≤ 64,770);
//! - with the Arm dot product (`sdot`: the Jetson Orin's Cortex-A78AE, detected at run time) one instruction
//!   multiplies 16 signed byte pairs and adds them in fours into 4 sums. It multiplies signed bytes only, so the
//!   activations go in shifted, `q − 128` (the top bit flipped), and `128·Σ q_w` over the output channel's taps,
//!   computed once per layer, is added back: `Σ q_a·q_w = Σ (q_a − 128)·q_w + 128·Σ q_w`, the same integer (`dot`);
//! - elsewhere a portable kernel computes the same integers.
//!
//! No im2col buffer is built. The quantized input is stored with a one-pixel zero border, `(H+2) × (W+2) × C₄`
//! bytes (`C₄` = C_in rounded up to 4), so the 9·C_in inputs of output pixel `(y, x)` are three contiguous runs of
//! `3·C₄` bytes, one per kernel row, and the kernel is packed to match: per block of 32 output channels, per kernel
//! row, per group of 4 input bytes, 32 × 4 signed bytes. A tile of 7 output pixels of one row × 32 channels keeps
//! its 14 vectors of sums in registers for the whole 9·C_in reduction (7 divides every VGG width, 224 … 14).
//!
//! The first convolution reads the normalised image, which is negative in places, and stays in f32, summed in one
//! fixed order ([`super::conv::conv3x3_relu_fixed_order`]) so that the quantized trunk's result, which rounds
//! every layer's input, does not depend on the CPU; only the twelve after it take this path.

/// `$sub_tile::<M>($t, r0, $dst)` over a tile's `$n` pixels in sub-tiles of up to 3 (`M` = 3, 2 or 1): the
/// register tiles of the AVX2 and `sdot` kernels, whose caller has checked the tile's bounds
/// ([`Kernel::run`]), which every sub-tile lies within.
#[allow(unused_macros)] // used by the AVX2 kernel on x86-64 and the `sdot` kernel on aarch64 only
macro_rules! for_sub_tiles_of_3 {
    ($n:expr, $sub_tile:ident($t:expr, $dst:expr)) => {{
        let mut r0 = 0;
        while r0 < $n {
            let m = 3.min($n - r0);
            // SAFETY: pixels r0..r0+m lie within the tile's n, so every offset stays within the asserted bounds
            unsafe {
                match m {
                    3 => $sub_tile::<3>($t, r0, $dst),
                    2 => $sub_tile::<2>($t, r0, $dst),
                    _ => $sub_tile::<1>($t, r0, $dst),
                }
            }
            r0 += m;
        }
    }};
}

#[cfg(target_arch = "x86_64")]
mod amx;
#[cfg(target_arch = "aarch64")]
mod dot;
mod winograd;

use rayon::prelude::*;

use super::conv::{Nhwc, PackedConv};

/// Output channels per packed block (two 16-lane vectors).
const BLOCK_OUT: usize = 32;
/// Output pixels per register tile.
const TILE: usize = 7;
/// Input bytes per `i32` sum step (one `vpdpbusd` lane).
const GROUP: usize = 4;

/// A 3×3 convolution with 8-bit weights, packed for [`conv3x3_relu_i8`].
#[derive(Debug, Clone)]
pub struct PackedConvI8 {
    cin: usize,
    /// C_in rounded up to [`GROUP`].
    cin4: usize,
    cout: usize,
    /// `⌈C_out/32⌉ × 3 × (3·C₄/4) × 32 × 4` signed bytes (zero beyond C_in and C_out).
    weight: Vec<i8>,
    /// `s_w[o]`, per output channel.
    weight_scale: Vec<f32>,
    bias: Vec<f32>,
    /// The weights widened to `i16` pairs for the AVX2 kernel ([`widen_weights`]), made on first use there.
    weight_pairs: std::sync::OnceLock<Vec<i16>>,
    /// The weights Winograd-transformed ([`winograd::transform_weights`]), made on first use.
    winograd_weights: std::sync::OnceLock<Vec<i16>>,
    /// `128·Σ q_w` per output channel over its 9·C_in taps (zero beyond C_out), the correction the dot-product
    /// kernel adds to sums of shifted activations ([`shifted_input_corrections`]), made on first use there.
    shifted_input_corrections: std::sync::OnceLock<Vec<i32>>,
}

impl PackedConvI8 {
    /// Quantize an f32 kernel packed by [`PackedConv`] (rows `(ky, kx, c_in)`, columns `c_out`).
    pub fn quantize(p: &PackedConv) -> Self {
        let (cin, cout) = (p.cin(), p.cout());
        assert!(cin <= 7000, "the i32 sums hold up to 7,000 input channels");
        let cin4 = cin.div_ceil(GROUP) * GROUP;
        let groups = 3 * cin4 / GROUP;
        let blocks = cout.div_ceil(BLOCK_OUT);
        let w = p.weight();
        let at = |ky: usize, kx: usize, c: usize, o: usize| w[((ky * 3 + kx) * cin + c) * cout + o];
        let weight_scale: Vec<f32> = (0..cout)
            .map(|o| {
                let m = (0..9 * cin).fold(0f32, |m, r| m.max(w[r * cout + o].abs()));
                if m > 0.0 && m.is_finite() { m / 127.0 } else { 1.0 }
            })
            .collect();
        let mut weight = vec![0i8; blocks * 3 * groups * BLOCK_OUT * GROUP];
        for b in 0..blocks {
            for ky in 0..3 {
                for g in 0..groups {
                    for lane in 0..BLOCK_OUT {
                        let o = b * BLOCK_OUT + lane;
                        if o >= cout {
                            continue;
                        }
                        for t in 0..GROUP {
                            let k = g * GROUP + t;
                            let (kx, c) = (k / cin4, k % cin4);
                            if c >= cin {
                                continue;
                            }
                            let q = (at(ky, kx, c, o) / weight_scale[o]).round().clamp(-127.0, 127.0);
                            weight[(((b * 3 + ky) * groups + g) * BLOCK_OUT + lane) * GROUP + t] = q as i8;
                        }
                    }
                }
            }
        }
        PackedConvI8 {
            cin,
            cin4,
            cout,
            weight,
            weight_scale,
            bias: p.bias().to_vec(),
            weight_pairs: std::sync::OnceLock::new(),
            winograd_weights: std::sync::OnceLock::new(),
            shifted_input_corrections: std::sync::OnceLock::new(),
        }
    }

    /// `q_w` of output channel `o`, kernel tap `(ky, kx)`, input channel `c`, read from the packed layout.
    fn quantized_weight(&self, o: usize, ky: usize, kx: usize, c: usize) -> i8 {
        let (b, lane) = (o / BLOCK_OUT, o % BLOCK_OUT);
        let k = kx * self.cin4 + c;
        self.weight[(((b * 3 + ky) * self.groups() + k / GROUP) * BLOCK_OUT + lane) * GROUP + k % GROUP]
    }

    /// Input channels.
    pub fn cin(&self) -> usize {
        self.cin
    }

    /// Output channels.
    pub fn cout(&self) -> usize {
        self.cout
    }

    fn groups(&self) -> usize {
        3 * self.cin4 / GROUP
    }
}

/// The input quantized to `u8` with a one-pixel zero border, `(h+2) × (w+2) × C₄`, followed by `tail` zero bytes,
/// and its scale `s_a`: `q = (x / s_a + ½) as u8` (`as` truncates, saturates at 255 and maps NaN and negatives
/// to 0).
fn quantize_input(x: &Nhwc, cin4: usize, tail: usize) -> (Vec<u8>, f32) {
    let max = x
        .data
        .par_chunks(1 << 16)
        .map(max_or_zero)
        .reduce(|| 0.0, |a, b| if b > a { b } else { a });
    let scale = if max > 0.0 && max.is_finite() { max / 255.0 } else { 1.0 };
    let inv = 1.0 / scale;
    let (w, c) = (x.w, x.c);
    let row = (w + 2) * cin4;
    let mut q = vec![0u8; (x.h + 2) * row + tail];
    #[cfg(target_arch = "x86_64")]
    let avx2 = is_x86_feature_detected!("avx2");
    q[row..(x.h + 1) * row]
        .par_chunks_mut(row)
        .zip(x.data.par_chunks(w * c))
        .for_each(|(dst, src)| {
            for (px, s) in dst[cin4..].chunks_mut(cin4).zip(src.chunks(c)) {
                #[allow(unused_mut)] // only x86-64 has a vector path
                let mut done = 0;
                #[cfg(target_arch = "x86_64")]
                if avx2 {
                    // SAFETY: the CPU has AVX2
                    done = unsafe { avx2::quantize(s, &mut px[..c], inv) };
                }
                for (d, &v) in px[done..c].iter_mut().zip(&s[done..]) {
                    *d = (v * inv + 0.5) as u8;
                }
            }
        });
    (q, scale)
}

/// The largest of 0 and the values (NaN ignored), taken in 8 lanes: `max` is exact, so the order does not matter.
fn max_or_zero(values: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = values.chunks_exact(8);
    let tail = chunks.remainder();
    for chunk in chunks {
        for (m, &v) in lanes.iter_mut().zip(chunk) {
            // `v > m` is false for NaN, so NaN is skipped
            *m = if v > *m { v } else { *m };
        }
    }
    lanes.iter().chain(tail).fold(0f32, |m, &v| if v > m { v } else { m })
}

/// The packed weights widened for the AVX2 kernel: per block, kernel row and 4-byte group, for the input pairs
/// `(0, 1)` then `(2, 3)`, the 32 channels as `(w[2p], w[2p+1])` pairs of `i16`, so that one `vpmaddwd` with a
/// broadcast input pair gives 8 channels' `a[2p]·w[2p] + a[2p+1]·w[2p+1]`.
fn widen_weights(p: &PackedConvI8) -> Vec<i16> {
    let mut out = vec![0i16; p.weight.len()];
    for (dst, src) in out
        .chunks_exact_mut(BLOCK_OUT * GROUP)
        .zip(p.weight.chunks_exact(BLOCK_OUT * GROUP))
    {
        for lane in 0..BLOCK_OUT {
            for pair in 0..2 {
                for e in 0..2 {
                    dst[(pair * BLOCK_OUT + lane) * 2 + e] = i16::from(src[lane * GROUP + 2 * pair + e]);
                }
            }
        }
    }
    out
}

/// `128·Σ q_w[o]` for every output channel `o` of the packed blocks (`⌈C_out/32⌉·32` values): the integer that
/// turns a sum over activations shifted to `q_a − 128` back into the sum over `q_a`.
fn shifted_input_corrections(p: &PackedConvI8) -> Vec<i32> {
    let mut sums = vec![0i32; p.cout.div_ceil(BLOCK_OUT) * BLOCK_OUT];
    for (b, panel) in p.weight.chunks_exact(3 * p.groups() * BLOCK_OUT * GROUP).enumerate() {
        for group in panel.chunks_exact(BLOCK_OUT * GROUP) {
            for (lane, w) in group.chunks_exact(GROUP).enumerate() {
                sums[b * BLOCK_OUT + lane] += w.iter().map(|&v| 128 * i32::from(v)).sum::<i32>();
            }
        }
    }
    sums
}

/// `relu(conv3x3(x) + b)`, padding 1, on 8-bit weights and activations (see the module's text). `x` must be
/// non-negative, as every VGG layer's input after the first is.
pub fn conv3x3_relu_i8(x: &Nhwc, p: &PackedConvI8) -> Nhwc {
    let kernel = Kernel::detect();
    conv_on(x, p, kernel, Algorithm::choose(kernel, x, p), false)
}

/// `maxpool2(relu(conv3x3(x) + b))`: [`conv3x3_relu_i8`] then [`super::conv::maxpool2`], with the same values. On
/// the Winograd path each 2×2 output tile is one pooling window, so the pool is taken before anything is stored.
pub fn conv3x3_relu_maxpool_i8(x: &Nhwc, p: &PackedConvI8) -> Nhwc {
    let kernel = Kernel::detect();
    conv_on(x, p, kernel, Algorithm::choose(kernel, x, p), true)
}

/// How the sums are formed (the same integers either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    /// Every output pixel from its 9·C_in taps.
    Direct,
    /// F(2×2, 3×3) Winograd ([`winograd`]): 16 products per 2×2 pixels instead of 36, on 16-bit operands.
    Winograd,
}

impl Algorithm {
    /// Winograd where the shape allows it, except beside the byte dot products (VNNI, AMX, Arm's `sdot`), whose
    /// direct kernels multiply 4 bytes per lane against Winograd's 2.25× fewer products of 2-byte pairs (measured
    /// on x86-64: direct VNNI is faster; on Arm, `sdot` does 16 byte products per instruction against 4 for a
    /// 16-bit multiply-accumulate, the same balance). `ALNRISK_NO_WINOGRAD` (set to anything) keeps every layer
    /// direct, to measure both on one machine.
    fn choose(kernel: Kernel, x: &Nhwc, p: &PackedConvI8) -> Self {
        if kernel.multiplies_bytes() {
            return Algorithm::Direct;
        }
        if std::env::var_os("ALNRISK_NO_WINOGRAD").is_none() && winograd::applies(x.h, x.w, p.cin) {
            Algorithm::Winograd
        } else {
            Algorithm::Direct
        }
    }
}

/// [`conv3x3_relu_i8`] on a chosen kernel and algorithm, then 2×2 max-pooled if `pool`.
fn conv_on(x: &Nhwc, p: &PackedConvI8, kernel: Kernel, algorithm: Algorithm, pool: bool) -> Nhwc {
    if pool && algorithm == Algorithm::Direct {
        return super::conv::maxpool2(&conv_on(x, p, kernel, algorithm, false));
    }
    assert_eq!(x.c, p.cin, "channel mismatch");
    let (h, w, cout, cin4) = (x.h, x.w, p.cout, p.cin4);
    // AMX's tiles read 16 or 32 pixels at once, past a row's last pixels into the next row's (whose sums are
    // not stored), and past the last row into this tail
    #[cfg(target_arch = "x86_64")]
    let tiles_fit = kernel == Kernel::Amx && algorithm == Algorithm::Direct && amx::fits(cin4);
    #[cfg(not(target_arch = "x86_64"))]
    let tiles_fit = false;
    let (q, s_a) = quantize_input(x, cin4, if tiles_fit { 32 * cin4 } else { 0 });
    let blocks = cout.div_ceil(BLOCK_OUT);
    let mut scale = vec![0f32; blocks * BLOCK_OUT];
    let mut bias = vec![0f32; blocks * BLOCK_OUT];
    for o in 0..cout {
        scale[o] = s_a * p.weight_scale[o];
        bias[o] = p.bias[o];
    }
    if algorithm == Algorithm::Winograd {
        let u = p.winograd_weights.get_or_init(|| winograd::transform_weights(p));
        let (oh, ow) = if pool { (h / 2, w / 2) } else { (h, w) };
        let mut out = vec![0f32; oh * ow * cout];
        winograd::conv(&q, h, w, p, u, &scale, &bias, kernel.winograd_gemm(), pool, &mut out);
        return Nhwc {
            h: oh,
            w: ow,
            c: cout,
            data: out,
        };
    }
    let groups = p.groups();
    let panel = 3 * groups * BLOCK_OUT * GROUP;
    let in_row = (w + 2) * cin4;
    // the dot-product kernel's corrections for its shifted activations (empty for the others)
    let corrections: &[i32] = if kernel.shifts_input() {
        p.shifted_input_corrections.get_or_init(|| shifted_input_corrections(p))
    } else {
        &[]
    };
    // the AVX2 kernel's 16-bit operands (empty for the others)
    let (wide_input, wide_weight): (Vec<i16>, &[i16]) = if kernel.takes_pairs() {
        (
            q.iter().map(|&v| i16::from(v)).collect(),
            p.weight_pairs.get_or_init(|| widen_weights(p)),
        )
    } else {
        (Vec::new(), &[])
    };
    let mut out = vec![0f32; h * w * cout];
    out.par_chunks_mut(w * cout).enumerate().for_each(|(y, out_row)| {
        // AMX takes runs of up to 32 pixels where the layer fits its tiles
        #[cfg(target_arch = "x86_64")]
        let tiles = tiles_fit.then(amx::Tiles::configure).flatten();
        for b in 0..blocks {
            let o0 = b * BLOCK_OUT;
            let lanes = BLOCK_OUT.min(cout - o0);
            let wb = &p.weight[b * panel..(b + 1) * panel];
            let (sc, bi) = (&scale[o0..o0 + BLOCK_OUT], &bias[o0..o0 + BLOCK_OUT]);
            let mut x0 = 0;
            while x0 < w {
                #[allow(unused_mut)] // only x86-64 has wider tiles
                let (mut n, mut read) = (TILE.min(w - x0), TILE.min(w - x0));
                #[cfg(target_arch = "x86_64")]
                if tiles.is_some() {
                    n = (w - x0).min(amx::MAX_PIXELS);
                    read = amx::pixels_read(n);
                }
                // the three kernel rows' runs start at padded (y + ky, x0)
                let span = y * in_row + x0 * cin4..(y + 2) * in_row + (x0 + read + 2) * cin4;
                let dst = &mut out_row[x0 * cout + o0..(x0 + n - 1) * cout + o0 + lanes];
                let t = Tile {
                    a: &q[span.clone()],
                    a_wide: wide_input.get(span).unwrap_or_default(),
                    in_row,
                    cin4,
                    groups,
                    weight: wb,
                    weight_pairs: wide_weight.get(b * panel..(b + 1) * panel).unwrap_or_default(),
                    correction: corrections.get(o0..o0 + BLOCK_OUT).unwrap_or_default(),
                    scale: sc,
                    bias: bi,
                    cout,
                    lanes,
                };
                #[cfg(target_arch = "x86_64")]
                if let Some(tiles) = &tiles {
                    tiles.run(&t, n, dst);
                    x0 += n;
                    continue;
                }
                kernel.run(&t, n, dst);
                x0 += n;
            }
        }
    });
    Nhwc {
        h,
        w,
        c: cout,
        data: out,
    }
}

/// One register tile's operands: up to [`TILE`] pixels of one output row × one block of 32 output channels.
struct Tile<'a> {
    /// The padded input from `(y, x0)` to past `(y + 2, x0 + n + 1)`.
    a: &'a [u8],
    /// The same, widened to `i16` (the AVX2 kernel's; empty for the others).
    a_wide: &'a [i16],
    /// Bytes per padded input row.
    in_row: usize,
    cin4: usize,
    /// 4-byte groups per kernel row, `3·C₄/4`.
    groups: usize,
    /// The block's packed weights.
    weight: &'a [i8],
    /// The same, as [`widen_weights`] lays them out (the AVX2 kernel's; empty for the others).
    weight_pairs: &'a [i16],
    /// `128·Σ q_w` of the block's 32 channels ([`shifted_input_corrections`]; the dot-product kernel's, empty for the
    /// others).
    correction: &'a [i32],
    /// `s_a·s_w[o]` and `b[o]` for the block's 32 channels (zero beyond C_out).
    scale: &'a [f32],
    bias: &'a [f32],
    /// Output pixel stride.
    cout: usize,
    /// Channels of the block that exist (32 but in a narrow last block).
    lanes: usize,
}

/// Which integer kernel this CPU runs (the same sums either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    /// AMX-INT8 tiles of up to 32 pixels ([`amx`]) where a layer fits them (`3·C₄` a multiple of 64), AVX-512
    /// VNNI tiles in layers that do not.
    #[cfg(target_arch = "x86_64")]
    Amx,
    /// AVX-512 VNNI.
    #[cfg(target_arch = "x86_64")]
    Vnni,
    /// AVX2, on 16-bit pairs.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// Arm's signed byte dot product (`sdot`, FEAT_DotProd), on activations shifted by −128.
    #[cfg(target_arch = "aarch64")]
    Dot,
    /// Portable Rust.
    Portable,
}

impl Kernel {
    /// The fastest kernel this CPU has. `ALNRISK_NO_AMX`, `ALNRISK_NO_VNNI` and `ALNRISK_NO_AVX2` (set to anything)
    /// skip AMX, VNNI (and with it AMX) and AVX2 (all: the portable kernel), to measure the others on one machine;
    /// on aarch64, `ALNRISK_NO_DOTPROD` skips the dot-product kernel.
    fn detect() -> Self {
        #[cfg(target_arch = "aarch64")]
        if std::env::var_os("ALNRISK_NO_DOTPROD").is_none() && std::arch::is_aarch64_feature_detected!("dotprod") {
            return Kernel::Dot;
        }
        #[cfg(target_arch = "x86_64")]
        {
            let allowed = |var: &str| std::env::var_os(var).is_none();
            if allowed("ALNRISK_NO_VNNI")
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vnni")
            {
                if allowed("ALNRISK_NO_AMX") && amx::available() {
                    return Kernel::Amx;
                }
                return Kernel::Vnni;
            }
            if allowed("ALNRISK_NO_AVX2") && is_x86_feature_detected!("avx2") {
                return Kernel::Avx2;
            }
        }
        Kernel::Portable
    }

    /// Whether the kernel multiplies bytes four to a lane (and so takes the direct algorithm everywhere).
    fn multiplies_bytes(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Amx | Kernel::Vnni => true,
            #[cfg(target_arch = "aarch64")]
            Kernel::Dot => true,
            _ => false,
        }
    }

    /// Whether the kernel reads shifted activations and their corrections ([`Tile::correction`]).
    fn shifts_input(self) -> bool {
        #[cfg(target_arch = "aarch64")]
        if self == Kernel::Dot {
            return true;
        }
        false
    }

    /// Whether the kernel reads the 16-bit operands ([`Tile::a_wide`], [`Tile::weight_pairs`]).
    fn takes_pairs(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if self == Kernel::Avx2 {
            return true;
        }
        false
    }

    /// The Winograd products' kernel on this CPU.
    fn winograd_gemm(self) -> winograd::Gemm {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Amx | Kernel::Vnni | Kernel::Avx2 => winograd::Gemm::Avx2,
            #[cfg(target_arch = "aarch64")]
            Kernel::Dot => winograd::Gemm::Portable,
            Kernel::Portable => winograd::Gemm::Portable,
        }
    }

    /// `dst` (pixel stride `cout`, starting at the tile's first channel) ← the tile's `n` pixels.
    fn run(self, t: &Tile, n: usize, dst: &mut [f32]) {
        assert!((1..=TILE).contains(&n));
        assert!(t.a.len() >= 2 * t.in_row + (n + 2) * t.cin4);
        assert!(t.weight.len() >= 3 * t.groups * BLOCK_OUT * GROUP);
        assert!(t.scale.len() >= BLOCK_OUT && t.bias.len() >= BLOCK_OUT && t.lanes <= BLOCK_OUT);
        assert!(dst.len() >= (n - 1) * t.cout + t.lanes);
        if self.takes_pairs() {
            assert!(t.a_wide.len() >= 2 * t.in_row + (n + 2) * t.cin4);
            assert!(t.weight_pairs.len() >= 3 * t.groups * BLOCK_OUT * GROUP);
        }
        if self.shifts_input() {
            assert!(t.correction.len() >= BLOCK_OUT);
        }
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` found the CPU features (AMX is chosen only beside VNNI); the asserts above bound
            // every access the kernel makes. Layers AMX's tiles fit go through `amx::Tiles::run` instead.
            Kernel::Amx | Kernel::Vnni => unsafe {
                match n {
                    7 => vnni::tile::<7>(t, dst),
                    6 => vnni::tile::<6>(t, dst),
                    5 => vnni::tile::<5>(t, dst),
                    4 => vnni::tile::<4>(t, dst),
                    3 => vnni::tile::<3>(t, dst),
                    2 => vnni::tile::<2>(t, dst),
                    _ => vnni::tile::<1>(t, dst),
                }
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `detect` found AVX2; the asserts above bound every access the kernel makes
            Kernel::Avx2 => unsafe { avx2::tile(t, n, dst) },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: `detect` found FEAT_DotProd; the asserts above bound every access the kernel makes
            Kernel::Dot => unsafe { dot::tile(t, n, dst) },
            Kernel::Portable => portable_tile(t, n, dst),
        }
    }
}

/// The epilogue shared by both kernels' meaning: `relu(f32(sum)·scale + bias)`, in this order.
#[inline(always)]
fn finish(sum: i32, scale: f32, bias: f32) -> f32 {
    let v = sum as f32 * scale + bias;
    if v > 0.0 { v } else { 0.0 }
}

fn portable_tile(t: &Tile, n: usize, dst: &mut [f32]) {
    let mut acc = [[0i32; BLOCK_OUT]; TILE];
    for ky in 0..3 {
        let a = &t.a[ky * t.in_row..];
        let w = &t.weight[ky * t.groups * BLOCK_OUT * GROUP..];
        for g in 0..t.groups {
            let wg = &w[g * BLOCK_OUT * GROUP..(g + 1) * BLOCK_OUT * GROUP];
            for (r, acc_r) in acc.iter_mut().enumerate().take(n) {
                let at = r * t.cin4 + g * GROUP;
                let x = [a[at] as i32, a[at + 1] as i32, a[at + 2] as i32, a[at + 3] as i32];
                for (s, wl) in acc_r.iter_mut().zip(wg.chunks_exact(GROUP)) {
                    *s += x[0] * wl[0] as i32 + x[1] * wl[1] as i32 + x[2] * wl[2] as i32 + x[3] * wl[3] as i32;
                }
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate().take(n) {
        let d = &mut dst[r * t.cout..r * t.cout + t.lanes];
        for (l, v) in d.iter_mut().enumerate() {
            *v = finish(acc_r[l], t.scale[l], t.bias[l]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use std::arch::x86_64::*;

    use super::{BLOCK_OUT, GROUP, Tile};

    /// The tile on AVX-512 VNNI: 2·N vectors of 16 sums in registers through the whole reduction.
    ///
    /// # Safety
    /// The CPU has AVX-512 F, BW and VNNI, and `t`/`dst` satisfy the bounds [`super::Kernel::run`] asserts.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn tile<const N: usize>(t: &Tile, dst: &mut [f32]) {
        let mut acc = [[_mm512_setzero_si512(); 2]; N];
        let step = BLOCK_OUT * GROUP;
        for ky in 0..3 {
            // SAFETY (whole function): offsets stay within the lengths asserted by `Kernel::run`
            let a = unsafe { t.a.as_ptr().add(ky * t.in_row) };
            let w = unsafe { t.weight.as_ptr().add(ky * t.groups * step) };
            for g in 0..t.groups {
                let (w0, w1) = unsafe {
                    (
                        _mm512_loadu_si512(w.add(g * step) as *const _),
                        _mm512_loadu_si512(w.add(g * step + 64) as *const _),
                    )
                };
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let x = unsafe { (a.add(r * t.cin4 + g * GROUP) as *const i32).read_unaligned() };
                    let x = _mm512_set1_epi32(x);
                    acc_r[0] = _mm512_dpbusd_epi32(acc_r[0], x, w0);
                    acc_r[1] = _mm512_dpbusd_epi32(acc_r[1], x, w1);
                }
            }
        }
        for (j, half) in [0usize, 16].into_iter().enumerate() {
            // SAFETY: the CPU has AVX-512 F; `dst` holds every pixel's live channels (asserted by `Kernel::run`)
            if let Some(epilogue) = unsafe { Epilogue::new(t, half) } {
                for (r, acc_r) in acc.iter().enumerate() {
                    unsafe { epilogue.store(acc_r[j], dst, r * t.cout) };
                }
            }
        }
    }

    /// The AVX-512 epilogue the VNNI and AMX tiles share, for the block's channels `half..half + 16`:
    /// `relu(f32(sum)·(s_a·s_w) + b)` in [`super::finish`]'s order, stored under a mask of the channels that exist.
    pub(super) struct Epilogue {
        half: usize,
        mask: __mmask16,
        scale: __m512,
        bias: __m512,
    }

    impl Epilogue {
        /// `None` when the block has no channel at `half` or above.
        ///
        /// # Safety
        /// The CPU has AVX-512 F, and `t.scale`/`t.bias` hold 32 values (asserted by `Kernel::run`).
        #[target_feature(enable = "avx512f")]
        pub(super) unsafe fn new(t: &Tile, half: usize) -> Option<Self> {
            let live = t.lanes.saturating_sub(half).min(16);
            if live == 0 {
                return None;
            }
            assert!(t.scale.len() >= half + 16 && t.bias.len() >= half + 16);
            // SAFETY: within the lengths asserted above
            let (scale, bias) = unsafe {
                (
                    _mm512_loadu_ps(t.scale.as_ptr().add(half)),
                    _mm512_loadu_ps(t.bias.as_ptr().add(half)),
                )
            };
            Some(Epilogue {
                half,
                mask: if live == 16 { 0xffff } else { (1u16 << live) - 1 },
                scale,
                bias,
            })
        }

        /// `dst[at + half..]` ← the live channels of `sum`'s 16.
        ///
        /// # Safety
        /// The CPU has AVX-512 F, and `dst` holds the live channels from `at + half`.
        #[target_feature(enable = "avx512f")]
        pub(super) unsafe fn store(&self, sum: __m512i, dst: &mut [f32], at: usize) {
            let v = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(sum), self.scale), self.bias);
            // max(v, 0) returns the second operand unless v > 0, as `finish` does
            let v = _mm512_max_ps(v, _mm512_setzero_ps());
            // SAFETY: the caller vouches for `dst`
            unsafe { _mm512_mask_storeu_ps(dst.as_mut_ptr().add(at + self.half), self.mask, v) };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BLOCK_OUT, GROUP, Tile};

    /// `dst[i] = (src[i]·inv + ½) as u8` for the whole groups of 8 values (the count it returns): the product
    /// rounded before the sum (no FMA), then clamped to [0, 255] (NaN to 0, as `max` returns its second operand)
    /// and truncated, as `as u8` does.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn quantize(src: &[f32], dst: &mut [u8], inv: f32) -> usize {
        let n = src.len().min(dst.len()) / 8 * 8;
        let (inv, half, zero, top) = (
            _mm256_set1_ps(inv),
            _mm256_set1_ps(0.5),
            _mm256_setzero_ps(),
            _mm256_set1_ps(255.0),
        );
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 ≤ n ≤ both lengths
            let v = unsafe { _mm256_loadu_ps(src.as_ptr().add(i)) };
            let t = _mm256_add_ps(_mm256_mul_ps(v, inv), half);
            let t = _mm256_min_ps(_mm256_max_ps(t, zero), top);
            let ints = _mm256_cvttps_epi32(t);
            let words = _mm_packus_epi32(_mm256_castsi256_si128(ints), _mm256_extracti128_si256::<1>(ints));
            let bytes = _mm_packus_epi16(words, words);
            unsafe { _mm_storel_epi64(dst.as_mut_ptr().add(i) as *mut __m128i, bytes) };
        }
        n
    }

    /// The tile's `n` pixels on AVX2, in sub-tiles of up to 3 pixels: 3 pixels × 4 vectors of 8 sums stay in
    /// registers beside the operands.
    ///
    /// # Safety
    /// The CPU has AVX2, and `t`/`dst` satisfy the bounds [`super::Kernel::run`] asserts.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn tile(t: &Tile, n: usize, dst: &mut [f32]) {
        for_sub_tiles_of_3!(n, sub_tile(t, dst));
    }

    /// Pixels `r0..r0 + N` of the tile: per 4-byte input group, the pairs `(a0, a1)` and `(a2, a3)` broadcast
    /// and multiplied into 8 channels at a time by `vpmaddwd`; the integer sums are exact, so their order does
    /// not matter, and the epilogue is [`super::finish`]'s operations in its order.
    ///
    /// # Safety
    /// As [`tile`], with `r0 + N ≤ n`.
    #[target_feature(enable = "avx2")]
    unsafe fn sub_tile<const N: usize>(t: &Tile, r0: usize, dst: &mut [f32]) {
        let mut acc = [[_mm256_setzero_si256(); BLOCK_OUT / 8]; N];
        let step = BLOCK_OUT * GROUP;
        for ky in 0..3 {
            // SAFETY (whole function): offsets stay within the lengths asserted by `Kernel::run`
            let a = unsafe { t.a_wide.as_ptr().add(ky * t.in_row + r0 * t.cin4) };
            let w = unsafe { t.weight_pairs.as_ptr().add(ky * t.groups * step) };
            for g in 0..t.groups {
                let wg = unsafe { w.add(g * step) };
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let pairs = unsafe { a.add(r * t.cin4 + g * GROUP) as *const i32 };
                    let (a01, a23) = unsafe {
                        (
                            _mm256_set1_epi32(pairs.read_unaligned()),
                            _mm256_set1_epi32(pairs.add(1).read_unaligned()),
                        )
                    };
                    for (v, s) in acc_r.iter_mut().enumerate() {
                        let (w01, w23) = unsafe {
                            (
                                _mm256_loadu_si256(wg.add(v * 16) as *const __m256i),
                                _mm256_loadu_si256(wg.add(BLOCK_OUT * 2 + v * 16) as *const __m256i),
                            )
                        };
                        let both = _mm256_add_epi32(_mm256_madd_epi16(a01, w01), _mm256_madd_epi16(a23, w23));
                        *s = _mm256_add_epi32(*s, both);
                    }
                }
            }
        }
        let zero = _mm256_setzero_ps();
        for (r, acc_r) in acc.iter().enumerate() {
            let out = unsafe { dst.as_mut_ptr().add((r0 + r) * t.cout) };
            for (v, s) in acc_r.iter().enumerate() {
                let first = v * 8;
                let live = t.lanes.saturating_sub(first).min(8);
                if live == 0 {
                    break;
                }
                let (scale, bias) = unsafe {
                    (
                        _mm256_loadu_ps(t.scale.as_ptr().add(first)),
                        _mm256_loadu_ps(t.bias.as_ptr().add(first)),
                    )
                };
                // no FMA: the product is rounded before the sum, as in `finish`; max(v, 0) returns the second
                // operand unless v > 0, as `finish` does
                let y = _mm256_max_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(*s), scale), bias), zero);
                if live == 8 {
                    unsafe { _mm256_storeu_ps(out.add(first), y) };
                } else {
                    let mut lanes = [0f32; 8];
                    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), y) };
                    for (l, &value) in lanes.iter().enumerate().take(live) {
                        unsafe { *out.add(first + l) = value };
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn layer(cin: usize, cout: usize, seed: u64) -> PackedConv {
        let mut rng = crate::rng::Rng::new(seed);
        let w: Vec<f32> = (0..cout * cin * 9).map(|_| rng.normal() as f32 * 0.1).collect();
        let b: Vec<f32> = (0..cout).map(|_| rng.normal() as f32 * 0.05).collect();
        let wt = Tensor::from_vec(w, (cout, cin, 3, 3), &Device::Cpu).unwrap();
        let bt = Tensor::from_vec(b, cout, &Device::Cpu).unwrap();
        PackedConv::new(&wt, &bt).unwrap()
    }

    fn input(h: usize, w: usize, c: usize, seed: u64) -> Nhwc {
        let mut rng = crate::rng::Rng::new(seed);
        Nhwc {
            h,
            w,
            c,
            data: (0..h * w * c).map(|_| (rng.normal() as f32).max(0.0)).collect(),
        }
    }

    /// The integer sums computed directly from the definition, then the same epilogue.
    fn reference(x: &Nhwc, p: &PackedConvI8) -> Vec<f32> {
        let (q, s_a) = quantize_input(x, p.cin4, 0);
        let (h, w, cin4, groups) = (x.h, x.w, p.cin4, p.groups());
        let mut out = vec![0f32; h * w * p.cout];
        for y in 0..h {
            for xx in 0..w {
                for o in 0..p.cout {
                    let (b, lane) = (o / BLOCK_OUT, o % BLOCK_OUT);
                    let mut s = 0i32;
                    for ky in 0..3 {
                        for k in 0..3 * cin4 {
                            let (g, t) = (k / GROUP, k % GROUP);
                            let wq = p.weight[(((b * 3 + ky) * groups + g) * BLOCK_OUT + lane) * GROUP + t];
                            let a = q[((y + ky) * (w + 2) + xx) * cin4 + k];
                            s += a as i32 * wq as i32;
                        }
                    }
                    out[(y * w + xx) * p.cout + o] = finish(s, s_a * p.weight_scale[o], p.bias[o]);
                }
            }
        }
        out
    }

    #[test]
    fn every_kernel_and_algorithm_gives_the_definitions_bits_on_ragged_shapes() {
        // channels not a multiple of 4 or 32, widths not a multiple of the tile, odd sizes (direct only), a
        // run of tile rows that ends short ((18, 6): 3 tiles a row, 8 rows a run, 9 rows), and shapes AMX's tiles
        // fit (3·C₄ a multiple of 64) with rows of 32 + 8, 16, 32 + 18, 32 + 1 and 14 pixels (a short tile reads
        // on into the next row, or after the last row into the input's tail) and a half-empty last block
        for (h, w, cin, cout) in [
            (5, 9, 6, 40),
            (3, 14, 16, 32),
            (4, 1, 3, 5),
            (2, 16, 32, 64),
            (6, 10, 20, 36),
            (18, 6, 8, 32),
            (4, 4, 36, 3),
            (3, 40, 64, 48),
            (2, 16, 128, 32),
            (2, 50, 64, 32),
            (1, 33, 192, 8),
            (3, 14, 64, 32),
        ] {
            let x = input(h, w, cin, 7);
            let p = PackedConvI8::quantize(&layer(cin, cout, 3));
            let want = reference(&x, &p);
            let mut algorithms = vec![Algorithm::Direct];
            if winograd::applies(h, w, cin) {
                algorithms.push(Algorithm::Winograd);
            }
            for &algorithm in &algorithms {
                for kernel in kernels() {
                    let got = conv_on(&x, &p, kernel, algorithm, false).data;
                    assert_eq!(got, want, "{kernel:?} {algorithm:?} {h}×{w}×{cin}→{cout}");
                }
            }
            let got = conv3x3_relu_i8(&x, &p);
            assert_eq!(
                got.data,
                want,
                "detected kernel {:?} {h}×{w}×{cin}→{cout}",
                Kernel::detect()
            );
            // pooled: the same as pooling the definition's output
            let want_pooled = crate::deep::conv::maxpool2(&got);
            for &algorithm in &algorithms {
                for kernel in kernels() {
                    let got = conv_on(&x, &p, kernel, algorithm, true);
                    assert_eq!(
                        (got.h, got.w, got.c),
                        (want_pooled.h, want_pooled.w, want_pooled.c),
                        "pooled shape {kernel:?} {algorithm:?} {h}×{w}"
                    );
                    assert_eq!(
                        got.data, want_pooled.data,
                        "pooled {kernel:?} {algorithm:?} {h}×{w}×{cin}→{cout}"
                    );
                }
            }
            assert_eq!(conv3x3_relu_maxpool_i8(&x, &p).data, want_pooled.data);
        }
    }

    /// The kernels this CPU can run. Says so where this CPU cannot run the AVX-512 ones, so that a run on such a
    /// machine is not read as having tested them.
    fn kernels() -> Vec<Kernel> {
        #[allow(unused_mut)] // only x86-64 and aarch64 have more
        let mut all = vec![Kernel::Portable];
        #[cfg(target_arch = "aarch64")]
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            all.push(Kernel::Dot);
        } else {
            eprintln!("no Arm dot product here: the dot-product kernel was not tested on this machine");
        }
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") {
                all.push(Kernel::Avx2);
            }
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vnni")
            {
                all.push(Kernel::Vnni);
                if amx::available() {
                    all.push(Kernel::Amx);
                } else {
                    eprintln!("AMX-INT8 is not available here: the AMX kernel was not tested on this machine");
                }
            } else {
                eprintln!("no AVX-512 VNNI here: the VNNI and AMX kernels were not tested on this machine");
            }
        }
        all
    }

    #[test]
    fn winograd_is_exact_at_the_extremes_of_the_8_bit_ranges() {
        // inputs 255 or 0 and weights ±127, C_in = MAX_CIN: all 255 and all +127 give the largest direct sum
        // (4·Σ = 4·9·255·127·1,024, over half of 2³¹), and checkerboards give the transforms' largest mixed-sign values
        let (h, w, cin, cout) = (4, 4, winograd::MAX_CIN, 32);
        let checker = |i: usize| if i.is_multiple_of(2) { 1.0 } else { -1.0 };
        type Pattern<'a> = &'a dyn Fn(usize) -> f32;
        let cases: [(Pattern, Pattern); 2] = [
            (&|_| 1.0, &|_| 1.0),
            (&|i| ((i / cin + i % 3) % 2) as f32, &|i| {
                checker(i / 9 + i % 9 + i / (9 * cin))
            }),
        ];
        for (activation, weight) in cases {
            let wt: Vec<f32> = (0..cout * cin * 9).map(weight).collect();
            let wt = Tensor::from_vec(wt, (cout, cin, 3, 3), &Device::Cpu).unwrap();
            let bt = Tensor::zeros(cout, candle_core::DType::F32, &Device::Cpu).unwrap();
            let p = PackedConvI8::quantize(&PackedConv::new(&wt, &bt).unwrap());
            let x = Nhwc {
                h,
                w,
                c: cin,
                data: (0..h * w * cin).map(activation).collect(),
            };
            let want = reference(&x, &p);
            assert!(want.iter().any(|&v| v > 0.0));
            assert_eq!(conv_on(&x, &p, Kernel::Portable, Algorithm::Winograd, false).data, want);
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx2") {
                assert_eq!(conv_on(&x, &p, Kernel::Avx2, Algorithm::Winograd, false).data, want);
            }
        }
    }

    #[test]
    fn the_vector_quantization_is_the_scalar_cast() {
        let specials = [
            0.0,
            -0.0,
            -1.0,
            0.49,
            0.5,
            254.5,
            255.49,
            255.5,
            300.0,
            f32::NAN,
            f32::INFINITY,
            -f32::NAN,
        ];
        let mut rng = crate::rng::Rng::new(4);
        let values: Vec<f32> = specials
            .iter()
            .copied()
            .chain((0..1000).map(|_| (rng.normal() * 100.0 + 100.0) as f32))
            .collect();
        for inv in [1.0, 0.37, 3.1] {
            #[cfg(not(target_arch = "x86_64"))]
            let _ = inv; // the vector cast below is x86-64's
            let x = Nhwc {
                h: 1,
                w: 1,
                c: values.len(),
                data: values.clone(),
            };
            // through quantize_input: scale from the max, so compare against its own inv
            let (q, scale) = quantize_input(&x, values.len().div_ceil(4) * 4, 0);
            let inv_used = 1.0 / scale;
            let row = 3 * values.len().div_ceil(4) * 4;
            let got = &q[row + values.len().div_ceil(4) * 4..][..values.len()];
            let want_used: Vec<u8> = values.iter().map(|&v| (v * inv_used + 0.5) as u8).collect();
            assert_eq!(got, &want_used[..]);
            #[cfg(target_arch = "x86_64")]
            if is_x86_feature_detected!("avx2") {
                let want: Vec<u8> = values.iter().map(|&v| (v * inv + 0.5) as u8).collect();
                let mut got = vec![0u8; values.len()];
                // SAFETY: the CPU has AVX2
                let n = unsafe { avx2::quantize(&values, &mut got, inv) };
                assert_eq!(n, values.len() / 8 * 8);
                assert_eq!(&got[..n], &want[..n], "inv {inv}");
            }
        }
        assert_eq!(max_or_zero(&values), values.iter().fold(0f32, |m, &v| m.max(v)));
    }

    #[test]
    fn close_to_the_f32_convolution() {
        let x = input(14, 14, 64, 11);
        let f = layer(64, 64, 5);
        let want = super::super::conv::conv3x3_relu(&x, &f).data;
        let got = conv3x3_relu_i8(&x, &PackedConvI8::quantize(&f)).data;
        let cos = crate::deep::cosine(&got, &want);
        assert!(cos > 0.999, "{cos}");
    }
}
