//! The direct tile on Arm's dot product (FEAT_DotProd: `sdot`, as on the Jetson Orin's Cortex-A78AE).
//!
//! `sdot vd.4s, vn.16b, vm.4b[j]` multiplies the four signed bytes of each 32-bit lane of `vn` by the four bytes
//! of lane `j` of `vm` and adds each lane's four products to `vd`'s lane: 16 products per instruction. The packed
//! weights already have that shape: per 4-byte input group, 32 channels × 4 bytes, so a channel quarter's 16 bytes
//! are one `vn`, and 16 bytes of one pixel's input (four groups) are one `vm`, lane `j` the `j`-th group.
//!
//! `sdot` multiplies signed bytes only, and the activations are `u8` in [0, 255]. They go in with the top bit flipped,
//! `q − 128` in [−128, 127], and the kernel adds `128·Σ q_w` ([`super::shifted_input_corrections`]) to each channel's
//! sum, so the result is the same integer `Σ q_a·q_w` as every other kernel's (the padding's zeros shift to −128 too,
//! so the identity holds at the image border). Every partial sum stays within `i32`: |Σ (q_a − 128)·q_w| and
//! |128·Σ q_w| are each at most 128·127·9·C_in < 2³¹ for C_in ≤ 7,000. The epilogue is [`super::finish`] itself.
//!
//! Rust's `sdot` intrinsics are not stable, so the instruction is inline assembly; everything else is stable NEON.

use std::arch::aarch64::*;
use std::arch::asm;

use super::{BLOCK_OUT, GROUP, Tile, finish};

/// Groups of 4 input bytes per 16-byte load (the four lanes of `sdot`'s `vm`).
const QUAD: usize = 4;

/// The tile's `n` pixels, in sub-tiles of up to 3 pixels: 3 pixels × 8 vectors of 4 sums (24 registers) beside
/// their 3 inputs and a weight.
///
/// # Safety
/// The CPU has FEAT_DotProd, and `t`/`dst` satisfy the bounds [`super::Kernel::run`] asserts.
#[target_feature(enable = "neon,dotprod")]
pub(super) unsafe fn tile(t: &Tile, n: usize, dst: &mut [f32]) {
    for_sub_tiles_of_3!(n, sub_tile(t, dst));
}

/// `acc += sdot(w, x[lane J])` for each of the `N` pixels.
#[inline]
#[target_feature(enable = "neon,dotprod")]
fn sdot_lane<const J: i32, const N: usize>(acc: &mut [int32x4_t; N], w: int8x16_t, x: &[int8x16_t; N]) {
    for (acc, &x) in acc.iter_mut().zip(x) {
        // SAFETY: register-only arithmetic, on a CPU with FEAT_DotProd (this function's target feature)
        unsafe {
            asm!(
                "sdot {acc:v}.4s, {w:v}.16b, {x:v}.4b[{lane}]",
                acc = inout(vreg) *acc,
                w = in(vreg) w,
                x = in(vreg) x,
                lane = const J,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
    }
}

/// One input group (lane `J` of the pixels' loads) against its 32 × 4 packed weight bytes at `w`.
///
/// # Safety
/// `w` points to 128 readable bytes.
#[inline]
#[target_feature(enable = "neon,dotprod")]
unsafe fn group<const J: i32, const N: usize>(acc: &mut [[int32x4_t; N]; 8], w: *const i8, x: &[int8x16_t; N]) {
    for (v, acc) in acc.iter_mut().enumerate() {
        // SAFETY: the caller vouches for the 128 bytes at `w`
        let wv = unsafe { vld1q_s8(w.add(v * 16)) };
        sdot_lane::<J, N>(acc, wv, x);
    }
}

/// Pixels `r0..r0 + N` of the tile (`N` ≤ 3): per kernel row, four input groups at a time (one 16-byte load per pixel,
/// its top bits flipped), each against its 32 channels' weights in 8 vectors; the last 1–3 groups of a kernel row from
/// a copy. The sums are exact, so their order does not matter.
///
/// # Safety
/// As [`tile`], with `r0 + N ≤ n`.
#[target_feature(enable = "neon,dotprod")]
unsafe fn sub_tile<const N: usize>(t: &Tile, r0: usize, dst: &mut [f32]) {
    // acc[v][r]: channels 4v..4v+4 of pixel r
    let mut acc = [[vdupq_n_s32(0); N]; 8];
    let flip = vdupq_n_u8(0x80);
    let step = BLOCK_OUT * GROUP;
    let (quads, rest) = (t.groups / QUAD, t.groups % QUAD);
    for ky in 0..3 {
        // SAFETY (whole loop): pixel r's run of 3·C₄ bytes starts at ky·in_row + (r0 + r)·C₄ and ends within
        // 2·in_row + (n + 2)·C₄, and kernel row ky's weights within 3·groups·128 bytes, as `Kernel::run` asserts
        let a = unsafe { t.a.as_ptr().add(ky * t.in_row + r0 * t.cin4) };
        let w = unsafe { t.weight.as_ptr().add(ky * t.groups * step) };
        for q in 0..quads {
            let x: [int8x16_t; N] = std::array::from_fn(|r| unsafe {
                vreinterpretq_s8_u8(veorq_u8(vld1q_u8(a.add(r * t.cin4 + q * QUAD * GROUP)), flip))
            });
            let wq = unsafe { w.add(q * QUAD * step) };
            unsafe {
                group::<0, N>(&mut acc, wq, &x);
                group::<1, N>(&mut acc, wq.add(step), &x);
                group::<2, N>(&mut acc, wq.add(2 * step), &x);
                group::<3, N>(&mut acc, wq.add(3 * step), &x);
            }
        }
        if rest > 0 {
            // the row's last 1–3 groups, copied so that no load reads past the run; lanes ≥ rest are not used
            let x: [int8x16_t; N] = std::array::from_fn(|r| {
                let mut bytes = [0u8; QUAD * GROUP];
                let at = r * t.cin4 + quads * QUAD * GROUP;
                for (i, b) in bytes.iter_mut().enumerate().take(rest * GROUP) {
                    *b = unsafe { *a.add(at + i) };
                }
                unsafe { vreinterpretq_s8_u8(veorq_u8(vld1q_u8(bytes.as_ptr()), flip)) }
            });
            let wq = unsafe { w.add(quads * QUAD * step) };
            unsafe {
                group::<0, N>(&mut acc, wq, &x);
                if rest > 1 {
                    group::<1, N>(&mut acc, wq.add(step), &x);
                }
                if rest > 2 {
                    group::<2, N>(&mut acc, wq.add(2 * step), &x);
                }
            }
        }
    }
    for (v, acc) in acc.iter().enumerate() {
        for (r, sums) in acc.iter().enumerate() {
            let mut lanes = [0i32; 4];
            // SAFETY: `lanes` holds 4 values
            unsafe { vst1q_s32(lanes.as_mut_ptr(), *sums) };
            for (i, &sum) in lanes.iter().enumerate() {
                let l = v * 4 + i;
                if l < t.lanes {
                    dst[(r0 + r) * t.cout + l] = finish(sum + t.correction[l], t.scale[l], t.bias[l]);
                }
            }
        }
    }
}
