//! The direct kernel on Intel AMX (Advanced Matrix Extensions, Sapphire Rapids and later Xeons): `tdpbusd`
//! multiplies a 16 × 64 tile of `u8` by a 64 × 16 tile of `i8` into 16 × 16 exact `i32` sums, 16,384
//! multiply-adds an instruction where a VNNI `vpdpbusd` does 64.
//!
//! The operands are the direct kernel's, read in place ([`super::Tile`]):
//! - **A**, 16 output pixels × 64 bytes of their `3·C₄` contiguous inputs for one kernel row: pixel `r` starts
//!   `r·C₄` bytes after pixel 0, so one `tileloadd` with stride `C₄` reads them;
//! - **B**, 16 groups of 4 input bytes × 16 output channels × 4 bytes: the packed weights are already laid out
//!   per group as 32 channels × 4 bytes, so one `tileloadd` with stride 128 reads half a block.
//!
//! A register tile is up to 32 pixels × 32 channels (A₀ A₁ × B₀ B₁ into four accumulators, eight tile registers);
//! it needs `3·C₄` to be a multiple of 64 (every VGG layer after the first). A tile of `n` pixels reads 16 or 32
//! (`⌈n/16⌉·16`): the rows past `n` read the padded input on past the output row's end (the next row's pixels,
//! or zero bytes the caller leaves after the last row), and their sums are not stored. So the 14- and 28-pixel
//! rows of VGG's last blocks take one tile each. The sums are the same integers as every other kernel's, then
//! the same epilogue.
//!
//! Linux hands out AMX's 8 KB of tile state only to a process that asks for it (`arch_prctl`
//! `ARCH_REQ_XCOMP_PERM`), so [`available`] asks once, and the kernel is used only where the CPU has it and the
//! kernel granted it. The tile registers are configured per thread by [`Tiles`] and released when it drops.
//! Rust has no stable AMX intrinsics, so the five instructions are written in inline assembly.

use std::arch::asm;
use std::arch::x86_64::*;
use std::marker::PhantomData;

use super::vnni::Epilogue;
use super::{BLOCK_OUT, GROUP, Tile};

/// Pixels per A tile (tile rows).
const ROWS: usize = 16;
/// Bytes per tile row: 64 input bytes (A), 16 channels × 4 bytes (B), 16 `i32` sums (C).
const ROW_BYTES: usize = 64;

/// Whether this CPU has AMX-TILE and AMX-INT8, and AVX-512 F and BW for the epilogue, and the kernel let this
/// process use the tiles (asked once).
pub(super) fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        // CPUID leaf 7, sub-leaf 0: EDX bit 24 AMX-TILE, bit 25 AMX-INT8
        let leaf7 = __cpuid_count(7, 0);
        let has = leaf7.edx & (1 << 24) != 0 && leaf7.edx & (1 << 25) != 0;
        has && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") && request_tile_data()
    })
}

/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`: 0 when Linux grants the tile state to this process.
#[cfg(target_os = "linux")]
fn request_tile_data() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain system call with two integer arguments; it changes only this process' permissions
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn request_tile_data() -> bool {
    false
}

/// The most output pixels one tile computes.
pub(super) const MAX_PIXELS: usize = 2 * ROWS;

/// The pixels a tile of `n` reads: whole A tiles of 16.
pub(super) fn pixels_read(n: usize) -> usize {
    n.div_ceil(ROWS) * ROWS
}

/// Whether a layer with `cin4` input bytes per pixel fits the tiles (`3·C₄` a multiple of 64).
pub(super) fn fits(cin4: usize) -> bool {
    (3 * cin4).is_multiple_of(ROW_BYTES)
}

/// The `ldtilecfg` operand: palette 1, then bytes per row and rows of each of the 16 tile registers.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

/// Proof that this thread's tile registers hold [`TileConfig`]'s shapes: tmm0–tmm1 A, tmm2–tmm3 B, tmm4–tmm7 C,
/// each 16 rows × 64 bytes. Made by [`Tiles::configure`], released on drop; it stays on its thread. Hold one at a
/// time on a thread: dropping a second would release the first's configuration.
pub(super) struct Tiles {
    _on_this_thread: PhantomData<*const ()>,
}

impl Tiles {
    /// Configure this thread's tiles, or `None` where AMX is not [`available`].
    pub(super) fn configure() -> Option<Self> {
        if !available() {
            return None;
        }
        let mut config = TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            bytes_per_row: [0; 16],
            rows: [0; 16],
        };
        for t in 0..8 {
            config.bytes_per_row[t] = ROW_BYTES as u16;
            config.rows[t] = ROWS as u8;
        }
        // SAFETY: `available` found AMX granted to this process; the operand is a valid 64-byte configuration
        unsafe { asm!("ldtilecfg [{}]", in(reg) &config, options(nostack, readonly)) };
        Some(Tiles {
            _on_this_thread: PhantomData,
        })
    }

    /// `dst` (pixel stride `cout`) ← the tile's `n` pixels (1 to 32) × the block's channels, as
    /// [`super::Kernel::run`] does; `3·C₄` must be a multiple of 64 ([`fits`]), and `t.a` must reach
    /// [`pixels_read`]`(n)` pixels.
    pub(super) fn run(&self, t: &Tile, n: usize, dst: &mut [f32]) {
        assert!((1..=MAX_PIXELS).contains(&n), "an AMX tile is 1 to 32 pixels");
        assert!(fits(t.cin4) && t.groups * GROUP == 3 * t.cin4);
        assert!(t.a.len() >= 2 * t.in_row + (pixels_read(n) + 2) * t.cin4);
        assert!(t.weight.len() >= 3 * t.groups * BLOCK_OUT * GROUP);
        assert!(t.scale.len() >= BLOCK_OUT && t.bias.len() >= BLOCK_OUT && t.lanes <= BLOCK_OUT);
        assert!(dst.len() >= (n - 1) * t.cout + t.lanes);
        // SAFETY: `self` proves the tiles are configured on this thread, which `available` allows only where AMX
        // and AVX-512 F and BW are; the asserts bound every access
        unsafe { tile(t, n, dst) }
    }
}

impl Drop for Tiles {
    fn drop(&mut self) {
        // SAFETY: the tiles were configured by `configure`; release returns them to their initial state
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// `⌈n/16⌉` A tiles (1 or 2) × both B tiles, summed over the three kernel rows' `3·C₄` bytes, then the epilogue
/// for the first `n` pixels.
///
/// # Safety
/// The tiles are configured ([`Tiles`]), the CPU has AVX-512 F and BW, and `t`/`dst` satisfy [`Tiles::run`]'s
/// asserts.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn tile(t: &Tile, n: usize, dst: &mut [f32]) {
    let halves = n.div_ceil(ROWS);
    let step = BLOCK_OUT * GROUP; // bytes of one group's 32 channels: B's row stride
    let a_stride = t.cin4; // bytes from one pixel's inputs to the next's: A's row stride
    let chunks = 3 * t.cin4 / ROW_BYTES;
    // SAFETY (whole function): the tiles read inside `t.a` and `t.weight` (bounds asserted by `Tiles::run`)
    unsafe {
        asm!(
            "tilezero tmm4",
            "tilezero tmm5",
            "tilezero tmm6",
            "tilezero tmm7",
            options(nostack, nomem)
        );
        for ky in 0..3 {
            let a = t.a.as_ptr().add(ky * t.in_row);
            let w = t.weight.as_ptr().add(ky * t.groups * step);
            for c in 0..chunks {
                let a0 = a.add(c * ROW_BYTES);
                let b0 = w.add(c * ROWS * step);
                if halves == 2 {
                    asm!(
                        "tileloadd tmm0, [{a0} + {sa}*1]",
                        "tileloadd tmm1, [{a1} + {sa}*1]",
                        "tileloadd tmm2, [{b0} + {sb}*1]",
                        "tileloadd tmm3, [{b1} + {sb}*1]",
                        "tdpbusd tmm4, tmm0, tmm2",
                        "tdpbusd tmm5, tmm0, tmm3",
                        "tdpbusd tmm6, tmm1, tmm2",
                        "tdpbusd tmm7, tmm1, tmm3",
                        a0 = in(reg) a0,
                        a1 = in(reg) a0.add(ROWS * a_stride),
                        b0 = in(reg) b0,
                        b1 = in(reg) b0.add(ROW_BYTES),
                        sa = in(reg) a_stride,
                        sb = in(reg) step,
                        options(nostack, readonly)
                    );
                } else {
                    asm!(
                        "tileloadd tmm0, [{a0} + {sa}*1]",
                        "tileloadd tmm2, [{b0} + {sb}*1]",
                        "tileloadd tmm3, [{b1} + {sb}*1]",
                        "tdpbusd tmm4, tmm0, tmm2",
                        "tdpbusd tmm5, tmm0, tmm3",
                        a0 = in(reg) a0,
                        b0 = in(reg) b0,
                        b1 = in(reg) b0.add(ROW_BYTES),
                        sa = in(reg) a_stride,
                        sb = in(reg) step,
                        options(nostack, readonly)
                    );
                }
            }
        }
        // sums[h][j]: pixels 16h.., channels 16j.., 16 rows of 16 i32
        let mut sums = Sums([[[0i32; ROWS * 16]; 2]; 2]);
        let s = &mut sums.0;
        asm!(
            "tilestored [{c00} + {sc}*1], tmm4",
            "tilestored [{c01} + {sc}*1], tmm5",
            c00 = in(reg) s[0][0].as_mut_ptr(),
            c01 = in(reg) s[0][1].as_mut_ptr(),
            sc = in(reg) ROW_BYTES,
            options(nostack)
        );
        if halves == 2 {
            asm!(
                "tilestored [{c10} + {sc}*1], tmm6",
                "tilestored [{c11} + {sc}*1], tmm7",
                c10 = in(reg) s[1][0].as_mut_ptr(),
                c11 = in(reg) s[1][1].as_mut_ptr(),
                sc = in(reg) ROW_BYTES,
                options(nostack)
            );
        }
        for (j, half) in [0usize, 16].into_iter().enumerate() {
            let Some(epilogue) = Epilogue::new(t, half) else {
                continue;
            };
            for (h, block) in s.iter().enumerate().take(halves) {
                for r in 0..ROWS.min(n - h * ROWS) {
                    let sum = _mm512_loadu_si512(block[j].as_ptr().add(r * 16) as *const _);
                    epilogue.store(sum, dst, (h * ROWS + r) * t.cout);
                }
            }
        }
    }
}

/// The four 16 × 16 accumulator tiles as stored, cache-line aligned.
#[repr(C, align(64))]
struct Sums([[[i32; ROWS * 16]; 2]; 2]);
