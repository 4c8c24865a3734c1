//! [`BlockPass::run`] written for AVX2's sixteen 8-lane registers, with the same IEEE operations on every value in
//! the same order as the portable code, so the same bits (`tests::every_kernel_gives_the_same_step_bit_for_bit`).
//!
//! What differs is only the arrangement:
//! - **The update.** For each run of 8 weights, the gradient `g = Σ_s d_s · x_s` is summed in a register, over the
//!   samples whose output gradient is not zero in increasing `s`, and goes straight into the AdamW step; no
//!   gradient row is stored and read back.
//! - **The forward pass.** The `LANES` = 16 partial sums of an output are two registers, lanes 0–7 and lanes
//!   8–15. Each lane only ever sums its own column positions (`i mod 16`), so the two halves are independent and
//!   are run one after the other. A tile of 2 weight rows × 4 samples then holds 8 accumulators, 2 weight
//!   vectors and 1 input vector in registers, with nothing spilled; written for both halves at once, as the
//!   portable code is, it needs 16 accumulators and spills.

use std::arch::x86_64::*;

use super::{AdamStep, BlockPass, BlockWeights, CHUNK, ChunkMajor, LANES};

/// Weight rows and samples per forward tile.
const TILE_ROWS: usize = 2;
const TILE_SAMPLES: usize = 4;

/// [`BlockPass::run`] in AVX2 registers.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn run(pass: BlockPass<'_>) {
    let inp = pass.inp;
    let next = pass.next;
    let q = next.rows;
    let mut w = pass.w;
    let block_rows = match &w {
        BlockWeights::Read(w) => w.len() / inp,
        BlockWeights::Update { w, .. } => w.len() / inp,
    };
    assert!(pass.y.len() >= block_rows * q, "one output slot per row and sample");
    // (sample, output gradient) of each row's samples whose output gradient is not zero, in increasing sample
    let nonzero: Vec<Vec<(usize, f32)>> = match &w {
        BlockWeights::Read(_) => Vec::new(),
        BlockWeights::Update { d, rows, x, .. } => {
            assert!(
                d.len() >= block_rows * rows && x.rows >= *rows,
                "a gradient and an input per sample"
            );
            (0..block_rows)
                .map(|r| {
                    (0..*rows)
                        .map(|s| (s, d[r * rows + s]))
                        .filter(|&(_, ds)| ds != 0.0)
                        .collect()
                })
                .collect()
        }
    };
    let mut acc = vec![0f32; block_rows * q * LANES];
    for c0 in (0..inp).step_by(CHUNK) {
        let c1 = (c0 + CHUNK).min(inp);
        prefetch_next_chunk(&w, next, block_rows, inp, c1);
        if let BlockWeights::Update { w, m, v, x, step, .. } = &mut w {
            let (x, width) = x.chunk(c0);
            for (r, nonzero) in nonzero.iter().enumerate() {
                let span = r * inp + c0..r * inp + c1;
                // SAFETY: AVX2 is present (the caller's contract); the spans lie within the block's rows
                unsafe {
                    update_span(
                        &mut w[span.clone()],
                        &mut m[span.clone()],
                        &mut v[span],
                        Inputs { x, width },
                        nonzero,
                        step,
                    )
                };
            }
        }
        let weights: &[f32] = match &w {
            BlockWeights::Read(w) => w,
            BlockWeights::Update { w, .. } => w,
        };
        let vectors = (c1 - c0) / LANES;
        let (next, width) = next.chunk(c0);
        let chunk = Chunk {
            weights,
            next,
            inp,
            width,
            c0,
            vectors,
            q,
        };
        for r in (0..block_rows).step_by(TILE_ROWS) {
            for s in (0..q).step_by(TILE_SAMPLES) {
                let shape = ((block_rows - r).min(TILE_ROWS), (q - s).min(TILE_SAMPLES));
                for half in 0..2 {
                    // SAFETY: AVX2 is present; rows r.., samples s.. and the chunk's vectors lie within the
                    // slices (block_rows · inp ≤ weights, q · inp ≤ next, block_rows · q · LANES = acc)
                    unsafe {
                        match shape {
                            (2, 4) => tile::<2, 4>(&chunk, &mut acc, r, s, half),
                            (2, 3) => tile::<2, 3>(&chunk, &mut acc, r, s, half),
                            (2, 2) => tile::<2, 2>(&chunk, &mut acc, r, s, half),
                            (2, _) => tile::<2, 1>(&chunk, &mut acc, r, s, half),
                            (_, 4) => tile::<1, 4>(&chunk, &mut acc, r, s, half),
                            (_, 3) => tile::<1, 3>(&chunk, &mut acc, r, s, half),
                            (_, 2) => tile::<1, 2>(&chunk, &mut acc, r, s, half),
                            (_, _) => tile::<1, 1>(&chunk, &mut acc, r, s, half),
                        }
                    }
                }
            }
        }
        // the columns after the last whole 16 (only at the end of a row whose width is not a multiple of 16):
        // lane l takes column c0 + 16·vectors + l, after all of the lane's earlier columns, as in the portable code
        let tail = vectors * LANES..c1 - c0;
        if !tail.is_empty() {
            for r in 0..block_rows {
                for s in 0..q {
                    let a = &mut acc[(r * q + s) * LANES..][..LANES];
                    let (wt, xt) = (&weights[r * inp + c0..][tail.clone()], &next[s * width..][tail.clone()]);
                    for (l, (wv, xv)) in wt.iter().zip(xt).enumerate() {
                        a[l] += wv * xv;
                    }
                }
            }
        }
    }
    super::reduce_lanes(&mut acc, pass.y);
}

/// Asks for the next chunk of the block's weight rows (and moments) while this one is worked on: the rows are
/// read `CHUNK` columns at a time, row after row, more streams at once than the hardware prefetcher follows.
#[inline]
#[target_feature(enable = "avx2")]
fn prefetch_next_chunk(w: &BlockWeights<'_>, next: &ChunkMajor, block_rows: usize, inp: usize, c1: usize) {
    if c1 >= inp {
        return;
    }
    let columns = c1..(c1 + CHUNK).min(inp);
    /// Every cache line of `v[start .. start + n]` (inside `v`).
    fn lines<T>(v: &[T], start: usize, n: usize) {
        let per_line = 64 / std::mem::size_of::<T>();
        for p in v[start..start + n].iter().step_by(per_line) {
            // SAFETY: a prefetch of an address inside the slice; it reads nothing
            unsafe { _mm_prefetch::<_MM_HINT_T0>((p as *const T).cast()) };
        }
    }
    let next = next.chunk(c1).0;
    lines(next, 0, next.len());
    for r in 0..block_rows {
        let start = r * inp + columns.start;
        match w {
            BlockWeights::Read(w) => lines(w, start, columns.len()),
            BlockWeights::Update { w, m, v, x, .. } => {
                lines(w, start, columns.len());
                lines(m, start, columns.len());
                lines(v, start, columns.len());
                if r == 0 {
                    let x = x.chunk(c1).0;
                    lines(x, 0, x.len());
                }
            }
        }
    }
}

/// The chunk of the update's input rows (`ChunkMajor::chunk`): sample `s` at `x[s·width ..]`.
struct Inputs<'a> {
    x: &'a [f32],
    width: usize,
}

/// The AdamW step on one chunk of a weight row, whose gradient is `Σ d · x[s][j]` over `nonzero`.
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2")]
unsafe fn update_span(
    w: &mut [f32],
    m: &mut [u16],
    v: &mut [u16],
    inputs: Inputs<'_>,
    nonzero: &[(usize, f32)],
    step: &AdamStep,
) {
    let Inputs { x, width } = inputs;
    let n = w.len();
    assert!(m.len() == n && v.len() == n && n == width, "a whole chunk");
    assert!(
        nonzero.iter().all(|&(s, _)| (s + 1) * width <= x.len()),
        "every sample's row is in x"
    );
    let beta1 = _mm256_set1_ps(step.beta1);
    let one_minus_beta1 = _mm256_set1_ps(1.0 - step.beta1);
    let beta2 = _mm256_set1_ps(step.beta2);
    let one_minus_beta2 = _mm256_set1_ps(1.0 - step.beta2);
    let (c1, c2) = (_mm256_set1_ps(step.c1), _mm256_set1_ps(step.c2));
    let (decay, lr, eps) = (
        _mm256_set1_ps(step.decay),
        _mm256_set1_ps(step.lr),
        _mm256_set1_ps(step.eps),
    );
    let whole = n / 8 * 8;
    for j in (0..whole).step_by(8) {
        // SAFETY (this block): j + 8 ≤ n = width, and each sample's columns j .. j + 8 lie within x (asserted)
        unsafe {
            let mut g = _mm256_setzero_ps();
            for &(s, ds) in nonzero {
                let xv = _mm256_loadu_ps(x.as_ptr().add(s * width + j));
                g = _mm256_add_ps(g, _mm256_mul_ps(_mm256_set1_ps(ds), xv));
            }
            let mut mf = from_bf16(_mm_loadu_si128(m.as_ptr().add(j).cast()));
            let mut vf = from_bf16(_mm_loadu_si128(v.as_ptr().add(j).cast()));
            mf = _mm256_add_ps(_mm256_mul_ps(mf, beta1), _mm256_mul_ps(g, one_minus_beta1));
            vf = _mm256_add_ps(
                _mm256_mul_ps(vf, beta2),
                _mm256_mul_ps(_mm256_mul_ps(g, g), one_minus_beta2),
            );
            let (mh, vh) = (_mm256_mul_ps(mf, c1), _mm256_mul_ps(vf, c2));
            let wv = _mm256_loadu_ps(w.as_ptr().add(j));
            let stepped = _mm256_div_ps(_mm256_mul_ps(lr, mh), _mm256_add_ps(_mm256_sqrt_ps(vh), eps));
            _mm256_storeu_ps(w.as_mut_ptr().add(j), _mm256_sub_ps(_mm256_mul_ps(wv, decay), stepped));
            _mm_storeu_si128(m.as_mut_ptr().add(j).cast(), to_bf16(mf));
            _mm_storeu_si128(v.as_mut_ptr().add(j).cast(), to_bf16(vf));
        }
    }
    for j in whole..n {
        let mut g = 0f32;
        for &(s, ds) in nonzero {
            g += ds * x[s * width + j];
        }
        let (mut mf, mut vf) = (super::from_bf16(m[j]), super::from_bf16(v[j]));
        w[j] = step.apply(w[j], &mut mf, &mut vf, g);
        m[j] = super::to_bf16(mf);
        v[j] = super::to_bf16(vf);
    }
}

/// 8 bfloat16 values → f32 (the bits shifted into the high half).
#[inline]
#[target_feature(enable = "avx2")]
fn from_bf16(h: __m128i) -> __m256 {
    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
}

/// 8 f32 → bfloat16, rounded to nearest even as [`super::to_bf16`] does.
#[inline]
#[target_feature(enable = "avx2")]
fn to_bf16(x: __m256) -> __m128i {
    let bits = _mm256_castps_si256(x);
    let odd = _mm256_and_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(1));
    let rounded = _mm256_add_epi32(_mm256_add_epi32(bits, _mm256_set1_epi32(0x7FFF)), odd);
    let high = _mm256_srli_epi32::<16>(rounded);
    _mm_packus_epi32(_mm256_castsi256_si128(high), _mm256_extracti128_si256::<1>(high))
}

/// One chunk of the forward pass: columns `c0 .. c0 + 16·vectors` of the block's weight rows (`inp` apart) and
/// the chunk of the `q` input rows (`ChunkMajor::chunk`, `width` apart).
struct Chunk<'a> {
    weights: &'a [f32],
    next: &'a [f32],
    inp: usize,
    width: usize,
    c0: usize,
    vectors: usize,
    q: usize,
}

/// One half (`half` = 0: lanes 0–7, 1: lanes 8–15) of the partial sums of `R` weight rows from `r0` against `S`
/// samples from `s0`, over the chunk's whole 16-column vectors.
///
/// # Safety
/// The CPU must have AVX2; rows `r0 + R` and samples `s0 + S` exist in the chunk's slices, and `acc` holds
/// their partial sums.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn tile<const R: usize, const S: usize>(c: &Chunk<'_>, acc: &mut [f32], r0: usize, s0: usize, half: usize) {
    let slot = |r: usize, s: usize| ((r0 + r) * c.q + s0 + s) * LANES + half * 8;
    assert!(
        slot(R - 1, S - 1) + 8 <= acc.len(),
        "the tile's partial sums are in acc"
    );
    let end = c.vectors * LANES;
    assert!(
        (r0 + R - 1) * c.inp + c.c0 + end <= c.weights.len() && (s0 + S - 1) * c.width + end <= c.next.len(),
        "the tile's rows are whole"
    );
    let mut a = [[_mm256_setzero_ps(); S]; R];
    // SAFETY (every pointer below): bounded by the asserts above
    unsafe {
        for (r, row) in a.iter_mut().enumerate() {
            for (s, v) in row.iter_mut().enumerate() {
                *v = _mm256_loadu_ps(acc.as_ptr().add(slot(r, s)));
            }
        }
        let w0 = c.weights.as_ptr().add(r0 * c.inp + c.c0 + half * 8);
        let x0 = c.next.as_ptr().add(s0 * c.width + half * 8);
        for k in 0..c.vectors {
            let off = k * LANES;
            let mut wv = [_mm256_setzero_ps(); R];
            for (r, wr) in wv.iter_mut().enumerate() {
                *wr = _mm256_loadu_ps(w0.add(r * c.inp + off));
            }
            for s in 0..S {
                let xv = _mm256_loadu_ps(x0.add(s * c.width + off));
                for r in 0..R {
                    a[r][s] = _mm256_add_ps(a[r][s], _mm256_mul_ps(wv[r], xv));
                }
            }
        }
        for (r, row) in a.iter().enumerate() {
            for (s, v) in row.iter().enumerate() {
                _mm256_storeu_ps(acc.as_mut_ptr().add(slot(r, s)), *v);
            }
        }
    }
}
