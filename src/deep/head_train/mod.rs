//! Training of the classifier head (fc6 → ReLU → dropout → fc7 → ReLU → dropout → fc8, softmax cross-entropy) on
//! cached pool5 features, in plain Rust on the CPU, for `finetune`'s head mode.
//!
//! Why not candle's autograd here: for VGG-16 the head holds 120 M parameters, and candle's CPU AdamW allocates
//! several full-size temporaries per parameter per step — measured on the 2-core build machine at ≈10 s per batch
//! of 16 (203 s per epoch of 320 views, 7.9 GB RSS). This trainer computes the same mathematics with `gemm` for
//! fc7's and fc8's forward passes and one fused pass per block of weight rows for the gradient and the AdamW
//! update (the weight gradient is never materialised).
//!
//! A step is bound by memory traffic, and fc6 alone holds 103 M weights. So the pass that updates fc6 also computes
//! fc6 for the *next* batch (or, at an epoch's end, for the validation rows) from each block of rows while it is in
//! cache: [`Head::step`] takes this batch's fc6 output and returns the next one's, and fc6's weights and moments
//! are read and written once per step, with no second read for a separate forward pass. That forward pass sums in
//! a fixed order (`LANES` interleaved partial sums per output, reduced pairwise): the same bits on every CPU, and
//! whether fused or not ([`Head::first_layer`]).
//!
//! The inputs of a pass are copied once into `ChunkMajor` order, so that one chunk of columns of every input row
//! is one contiguous run (row-major, fc6's input rows share cache sets). On AVX2 CPUs the pass runs the code in
//! `avx2`, which sums the same values in the same order in registers.
//!
//! AdamW is candle's (`candle_nn::AdamW`): `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
//! `θ ← θ(1 − lr·λ) − lr · m̂ / (√v̂ + ε)` with bias-corrected `m̂`, `v̂`. The moments of the weight matrices are
//! *stored* in bfloat16 (computed in f32, rounded to nearest even on store), which cuts the traffic from 24 to 16
//! bytes per parameter (weights stay f32). Dropout is inverted dropout with masks from the seeded [`Rng`], so a
//! run reproduces exactly.

use rayon::prelude::*;

use crate::rng::Rng;

#[cfg(target_arch = "x86_64")]
mod avx2;

/// One dense layer `y = x Wᵀ + b`, `W` row-major `out × in` (torchvision layout), with its AdamW moments.
#[derive(Debug, Clone)]
pub struct DenseLayer {
    /// Output width.
    pub out: usize,
    /// Input width.
    pub inp: usize,
    /// Weights.
    pub w: Vec<f32>,
    /// Bias.
    pub b: Vec<f32>,
    mw: Vec<u16>,
    vw: Vec<u16>,
    mb: Vec<f32>,
    vb: Vec<f32>,
}

impl DenseLayer {
    /// A layer from weights and bias.
    pub fn new(out: usize, inp: usize, w: Vec<f32>, b: Vec<f32>) -> DenseLayer {
        DenseLayer {
            out,
            inp,
            mw: vec![0; w.len()],
            vw: vec![0; w.len()],
            mb: vec![0.0; b.len()],
            vb: vec![0.0; b.len()],
            w,
            b,
        }
    }

    /// `x` is `rows × inp`; returns `rows × out`.
    fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut y = vec![0f32; rows * self.out];
        super::conv::gemm_f32(rows, self.out, self.inp, x, &self.w, true, &mut y);
        for r in 0..rows {
            for (o, b) in y[r * self.out..(r + 1) * self.out].iter_mut().zip(&self.b) {
                *o += b;
            }
        }
        y
    }

    /// Gradient with respect to the input, `dx = dy W` (`rows × inp`), with the current weights.
    fn input_grad(&self, dy: &[f32], rows: usize) -> Vec<f32> {
        let mut dx = vec![0f32; rows * self.inp];
        super::conv::gemm_f32(rows, self.inp, self.out, dy, &self.w, false, &mut dx);
        dx
    }

    /// `y = x Wᵀ + b` (`rows × out`) in the fixed summation order of [`BlockPass`].
    fn forward_fixed(&self, x: &[f32], rows: usize, kernel: Kernel) -> Vec<f32> {
        let inp = self.inp;
        if rows == 0 {
            return Vec::new();
        }
        let mut by_row = vec![0f32; self.out * rows];
        let next = ChunkMajor::new(&x[..rows * inp], inp);
        self.w
            .par_chunks(ROW_BLOCK * inp)
            .zip(by_row.par_chunks_mut(ROW_BLOCK * rows))
            .for_each(|(w, y)| {
                kernel.run(BlockPass {
                    w: BlockWeights::Read(w),
                    inp,
                    next: &next,
                    y,
                })
            });
        self.transpose_add_bias(&by_row, rows)
    }

    /// `by_row[o·rows + s]` → `y[s·out + o] = by_row[o·rows + s] + b[o]`.
    fn transpose_add_bias(&self, by_row: &[f32], rows: usize) -> Vec<f32> {
        let mut y = vec![0f32; rows * self.out];
        for (o, (chunk, b)) in by_row.chunks(rows).zip(&self.b).enumerate() {
            for (s, v) in chunk.iter().enumerate() {
                y[s * self.out + o] = v + b;
            }
        }
        y
    }

    /// The weight gradient `dW = dyᵀ x`, block by block of rows, fused with the AdamW update and with the forward
    /// pass of `next` (whole rows of `inp`) through the updated layer, which it returns (`next rows × out`; empty
    /// when `next` is).
    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        x: &[f32],
        dy: &[f32],
        rows: usize,
        opt: &AdamW,
        t: i32,
        next: &[f32],
        kernel: Kernel,
    ) -> Vec<f32> {
        let (inp, out) = (self.inp, self.out);
        let step = AdamStep {
            beta1: opt.beta1,
            beta2: opt.beta2,
            c1: 1.0 / (1.0 - opt.beta1.powi(t)),
            c2: 1.0 / (1.0 - opt.beta2.powi(t)),
            decay: 1.0 - opt.lr * opt.weight_decay,
            lr: opt.lr,
            eps: opt.eps,
        };
        let next_rows = next.len() / inp;
        let next = ChunkMajor::new(&next[..next_rows * inp], inp);
        let x = ChunkMajor::new(&x[..rows * inp], inp);
        // with no next rows, one unused output slot per block keeps the blocks zipped
        let (mut by_row, per_block) = if next_rows == 0 {
            (vec![0f32; out.div_ceil(ROW_BLOCK)], 1)
        } else {
            (vec![0f32; out * next_rows], ROW_BLOCK * next_rows)
        };
        self.w
            .par_chunks_mut(ROW_BLOCK * inp)
            .zip(self.mw.par_chunks_mut(ROW_BLOCK * inp))
            .zip(self.vw.par_chunks_mut(ROW_BLOCK * inp))
            .zip(by_row.par_chunks_mut(per_block))
            .enumerate()
            .for_each(|(block, (((w, m), v), y))| {
                let first = block * ROW_BLOCK;
                let block_rows = w.len() / inp;
                // d[r·rows + s]: the output gradient of the block's row r for sample s
                let d: Vec<f32> = (0..block_rows)
                    .flat_map(|r| (0..rows).map(move |s| dy[s * out + first + r]))
                    .collect();
                kernel.run(BlockPass {
                    w: BlockWeights::Update {
                        w,
                        m,
                        v,
                        x: &x,
                        d: &d,
                        rows,
                        step: &step,
                    },
                    inp,
                    next: &next,
                    y,
                });
            });
        for r in 0..out {
            let g: f32 = (0..rows).map(|s| dy[s * out + r]).sum();
            let (mut m, mut v) = (self.mb[r], self.vb[r]);
            self.b[r] = step.apply(self.b[r], &mut m, &mut v, g);
            (self.mb[r], self.vb[r]) = (m, v);
        }
        if next_rows == 0 {
            return Vec::new();
        }
        self.transpose_add_bias(&by_row, next_rows)
    }
}

/// The constants of one AdamW step.
#[derive(Debug, Clone, Copy)]
struct AdamStep {
    beta1: f32,
    beta2: f32,
    /// `1 / (1 − β₁ᵗ)`, `1 / (1 − β₂ᵗ)`: the bias corrections.
    c1: f32,
    c2: f32,
    /// `1 − lr·λ`.
    decay: f32,
    lr: f32,
    eps: f32,
}

impl AdamStep {
    /// One parameter's update: the new weight, with its moments updated in place.
    #[inline(always)]
    fn apply(&self, w: f32, m: &mut f32, v: &mut f32, g: f32) -> f32 {
        *m = *m * self.beta1 + g * (1.0 - self.beta1);
        *v = *v * self.beta2 + g * g * (1.0 - self.beta2);
        let (mh, vh) = (*m * self.c1, *v * self.c2);
        w * self.decay - self.lr * mh / (vh.sqrt() + self.eps)
    }
}

/// Weight rows per block of the fused pass: the block's slice of the inputs is read from cache once for all of
/// its rows.
const ROW_BLOCK: usize = 8;

/// Columns per chunk: a chunk of every input row and of the block's weight rows stays in the first-level cache.
const CHUNK: usize = 256;

/// Interleaved partial sums per output of the fixed-order forward pass: input element `i` is added to partial sum
/// `i mod LANES`, in increasing `i`; the partial sums are then halved pairwise (`a[l] += a[l + 8]`, then `+ 4`,
/// `+ 2`, `+ 1`).
const LANES: usize = 16;

/// What a block pass does to its weight rows before the forward pass.
enum BlockWeights<'a> {
    /// Nothing: a plain forward pass.
    Read(&'a [f32]),
    /// The AdamW step with gradient `g_r = Σ_s d[r·rows + s] · x[s]` (samples with a zero output gradient, most
    /// of them after ReLU and dropout, are skipped), moments in bfloat16.
    Update {
        w: &'a mut [f32],
        m: &'a mut [u16],
        v: &'a mut [u16],
        x: &'a ChunkMajor,
        d: &'a [f32],
        rows: usize,
        step: &'a AdamStep,
    },
}

/// One block of weight rows (`w`, row-major `block_rows × inp`), chunk by chunk: the update if any, then the
/// partial sums of `y[r·q + s] = Σ_i w[r][i] · next[s][i]` for the `q` rows of `next`. Every
/// operation is the same IEEE operation in the same order whatever vector width [`Kernel`] compiles it for, so
/// every CPU gives the same bits.
struct BlockPass<'a> {
    w: BlockWeights<'a>,
    inp: usize,
    next: &'a ChunkMajor,
    y: &'a mut [f32],
}

/// Rows of equal width stored a column chunk at a time: columns `c0 .. c0 + CHUNK` of every row, row after row,
/// then the next chunk. A chunk of every row is then one contiguous run. Laid out row-major, the rows of fc6's input
/// (25,088 floats) lie a multiple of 2 KB apart, so the same columns of every row share the first-level cache's
/// sets, and 16 rows plus a block of weight rows evict each other before they are used again.
#[derive(Debug)]
struct ChunkMajor {
    data: Vec<f32>,
    rows: usize,
    width: usize,
}

impl ChunkMajor {
    /// `x`: `rows × width`, row-major.
    fn new(x: &[f32], width: usize) -> ChunkMajor {
        let rows = x.len().checked_div(width).unwrap_or(0);
        let mut data = Vec::with_capacity(rows * width);
        for c0 in (0..width).step_by(CHUNK) {
            let c1 = (c0 + CHUNK).min(width);
            for r in 0..rows {
                data.extend_from_slice(&x[r * width + c0..r * width + c1]);
            }
        }
        ChunkMajor { data, rows, width }
    }

    /// Columns `c0 ..` (a multiple of `CHUNK`) of every row, `rows × w` row-major, and `w`, the chunk's width.
    fn chunk(&self, c0: usize) -> (&[f32], usize) {
        let w = (self.width - c0).min(CHUNK);
        (&self.data[self.rows * c0..][..self.rows * w], w)
    }
}

impl BlockPass<'_> {
    #[inline(always)]
    fn run(self) {
        let inp = self.inp;
        let q = self.next.rows;
        let block_rows = match &self.w {
            BlockWeights::Read(w) => w.len() / inp,
            BlockWeights::Update { w, .. } => w.len() / inp,
        };
        let mut acc = vec![0f32; block_rows * q * LANES];
        let mut g = vec![0f32; CHUNK];
        let mut w = self.w;
        for c0 in (0..inp).step_by(CHUNK) {
            let c1 = (c0 + CHUNK).min(inp);
            if let BlockWeights::Update {
                w,
                m,
                v,
                x,
                d,
                rows,
                step,
            } = &mut w
            {
                let (x, width) = x.chunk(c0);
                for r in 0..block_rows {
                    let g = &mut g[..c1 - c0];
                    g.fill(0.0);
                    for (s, &ds) in d[r * *rows..(r + 1) * *rows].iter().enumerate() {
                        if ds != 0.0 {
                            for (gj, xj) in g.iter_mut().zip(&x[s * width..(s + 1) * width]) {
                                *gj += ds * xj;
                            }
                        }
                    }
                    let span = r * inp + c0..r * inp + c1;
                    for (((wj, mj), vj), &gj) in w[span.clone()]
                        .iter_mut()
                        .zip(m[span.clone()].iter_mut())
                        .zip(v[span].iter_mut())
                        .zip(g.iter())
                    {
                        let (mut mf, mut vf) = (from_bf16(*mj), from_bf16(*vj));
                        *wj = step.apply(*wj, &mut mf, &mut vf, gj);
                        *mj = to_bf16(mf);
                        *vj = to_bf16(vf);
                    }
                }
            }
            let weights: &[f32] = match &w {
                BlockWeights::Read(w) => w,
                BlockWeights::Update { w, .. } => w,
            };
            let row = |r: usize| &weights[r * inp + c0..r * inp + c1];
            let (next, width) = self.next.chunk(c0);
            let sample = |s: usize| &next[s * width..(s + 1) * width];
            let slot = |r: usize, s: usize| (r * q + s) * LANES;
            // tiles of 2 rows × 4 samples keep eight independent partial-sum vectors in registers; the rest one
            // output at a time (the same operations per output either way)
            let (tiled_rows, tiled_samples) = (block_rows / 2 * 2, q / 4 * 4);
            for r in (0..tiled_rows).step_by(2) {
                for s in (0..tiled_samples).step_by(4) {
                    let mut tile = [[0f32; LANES]; 8];
                    for (k, t) in tile.iter_mut().enumerate() {
                        t.copy_from_slice(&acc[slot(r + k / 4, s + k % 4)..][..LANES]);
                    }
                    lane_sums_2x4(
                        &mut tile,
                        [row(r), row(r + 1)],
                        [sample(s), sample(s + 1), sample(s + 2), sample(s + 3)],
                    );
                    for (k, t) in tile.iter().enumerate() {
                        acc[slot(r + k / 4, s + k % 4)..][..LANES].copy_from_slice(t);
                    }
                }
            }
            for r in 0..block_rows {
                let first_untiled = if r < tiled_rows { tiled_samples } else { 0 };
                for s in first_untiled..q {
                    lane_sums(&mut acc[slot(r, s)..][..LANES], row(r), sample(s));
                }
            }
        }
        reduce_lanes(&mut acc, self.y);
    }
}

/// Each output's `LANES` partial sums (`acc`, `LANES` per output) halved pairwise into `y`: `a[l] += a[l + 8]`, then
/// `+ 4`, `+ 2`, `+ 1`.
fn reduce_lanes(acc: &mut [f32], y: &mut [f32]) {
    for (y, a) in y.iter_mut().zip(acc.chunks_exact_mut(LANES)) {
        let mut half = LANES / 2;
        while half > 0 {
            for l in 0..half {
                a[l] += a[l + half];
            }
            half /= 2;
        }
        *y = a[0];
    }
}

/// `a[k mod LANES] += w[k] · x[k]` for every `k`, in increasing `k` (`w` starts at a multiple of `LANES`).
#[inline(always)]
fn lane_sums(a: &mut [f32], w: &[f32], x: &[f32]) {
    let a: &mut [f32; LANES] = match a.try_into() {
        Ok(a) => a,
        Err(_) => unreachable!("partial sums come in LANES-wide chunks"),
    };
    let (wc, xc) = (w.chunks_exact(LANES), x.chunks_exact(LANES));
    let (wt, xt) = (wc.remainder(), xc.remainder());
    for (wv, xv) in wc.zip(xc) {
        for l in 0..LANES {
            a[l] += wv[l] * xv[l];
        }
    }
    for (l, (wv, xv)) in wt.iter().zip(xt).enumerate() {
        a[l] += wv * xv;
    }
}

/// [`lane_sums`] for two weight rows against four input rows at once: output `k` of `t` is row `k / 4` against
/// sample `k % 4`.
#[inline(always)]
fn lane_sums_2x4(t: &mut [[f32; LANES]; 8], w: [&[f32]; 2], x: [&[f32]; 4]) {
    let [mut t0, mut t1, mut t2, mut t3, mut t4, mut t5, mut t6, mut t7] = *t;
    fn chunks(v: &[f32]) -> std::slice::ChunksExact<'_, f32> {
        v.chunks_exact(LANES)
    }
    let vectors = chunks(w[0])
        .zip(chunks(w[1]))
        .zip(chunks(x[0]).zip(chunks(x[1])))
        .zip(chunks(x[2]).zip(chunks(x[3])));
    for (((a, b), (x0, x1)), (x2, x3)) in vectors {
        for l in 0..LANES {
            t0[l] += a[l] * x0[l];
            t1[l] += a[l] * x1[l];
            t2[l] += a[l] * x2[l];
            t3[l] += a[l] * x3[l];
            t4[l] += b[l] * x0[l];
            t5[l] += b[l] * x1[l];
            t6[l] += b[l] * x2[l];
            t7[l] += b[l] * x3[l];
        }
    }
    *t = [t0, t1, t2, t3, t4, t5, t6, t7];
    let full = w[0].len() / LANES * LANES;
    for (o, acc) in t.iter_mut().enumerate() {
        for (l, (a, b)) in w[o / 4][full..].iter().zip(&x[o % 4][full..]).enumerate() {
            acc[l] += a * b;
        }
    }
}

/// The widest vectors this CPU runs [`BlockPass::run`] in (the build's baseline is SSE2; detected at run time).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kernel {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Baseline,
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return Kernel::Avx512;
            }
            if is_x86_feature_detected!("avx2") {
                return Kernel::Avx2;
            }
        }
        Kernel::Baseline
    }

    fn run(self, pass: BlockPass) {
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f")]
            fn avx512(pass: BlockPass) {
                pass.run()
            }
            match self {
                // SAFETY: `detect` found the feature on this CPU
                Kernel::Avx512 => return unsafe { avx512(pass) },
                // SAFETY: as above
                Kernel::Avx2 => return unsafe { avx2::run(pass) },
                Kernel::Baseline => {}
            }
        }
        pass.run()
    }
}

/// f32 → bfloat16 bits, round to nearest even (finite inputs).
#[inline]
fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) as u16
}

/// bfloat16 bits → f32.
#[inline]
fn from_bf16(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// AdamW settings (candle's defaults for β and ε).
#[derive(Debug, Clone, Copy)]
pub struct AdamW {
    /// Learning rate.
    pub lr: f32,
    /// Decoupled weight decay λ.
    pub weight_decay: f32,
    /// β₁.
    pub beta1: f32,
    /// β₂.
    pub beta2: f32,
    /// ε.
    pub eps: f32,
}

impl AdamW {
    /// candle's defaults with the given rate and decay.
    pub fn new(lr: f64, weight_decay: f64) -> AdamW {
        AdamW {
            lr: lr as f32,
            weight_decay: weight_decay as f32,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// fc6, fc7, fc8 and the optimiser's step count.
#[derive(Debug, Clone)]
pub struct Head {
    /// The three layers.
    pub layers: [DenseLayer; 3],
    step: i32,
    /// The vector code of the fused passes (detected; the tests set each one).
    kernel: Kernel,
}

fn relu_dropout(h: &mut [f32], p: f32, rng: Option<&mut Rng>) -> Vec<f32> {
    // returns the multiplier per element (0, or 1/(1−p) where kept and positive)
    let keep = 1.0 / (1.0 - p);
    let mut mult = vec![0f32; h.len()];
    match rng {
        Some(rng) => {
            for (x, m) in h.iter_mut().zip(mult.iter_mut()) {
                let dropped = rng.uniform() < f64::from(p);
                *m = if *x > 0.0 && !dropped { keep } else { 0.0 };
                *x *= *m;
            }
        }
        None => {
            for (x, m) in h.iter_mut().zip(mult.iter_mut()) {
                *m = if *x > 0.0 { 1.0 } else { 0.0 };
                *x *= *m;
            }
        }
    }
    mult
}

/// Mean softmax cross-entropy and its gradient with respect to the logits.
fn cross_entropy(logits: &[f32], targets: &[u32], classes: usize) -> (f64, Vec<f32>) {
    let rows = targets.len();
    let mut grad = vec![0f32; logits.len()];
    let mut loss = 0.0f64;
    for r in 0..rows {
        let z = &logits[r * classes..(r + 1) * classes];
        let mx = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f64 = z.iter().map(|&v| f64::from(v - mx).exp()).sum();
        let t = targets[r] as usize;
        loss += sum.ln() - f64::from(z[t] - mx);
        for c in 0..classes {
            let p = (f64::from(z[c] - mx).exp() / sum) as f32;
            grad[r * classes + c] = (p - f32::from(u8::from(c == t))) / rows as f32;
        }
    }
    (loss / rows as f64, grad)
}

/// fc6's output (before ReLU) for a batch, `rows × 4096`, and the optimiser step whose weights computed it.
#[derive(Debug, Clone)]
pub struct FirstLayerOutput {
    rows: usize,
    values: Vec<f32>,
    computed_at_step: i32,
}

impl Head {
    /// A head from the three layers.
    pub fn new(layers: [DenseLayer; 3]) -> Head {
        Head {
            layers,
            step: 0,
            kernel: Kernel::detect(),
        }
    }

    /// fc6's output for `rows = x.len() / inp` input rows with the current weights, in the fixed summation order
    /// that [`Head::step`]'s fused pass uses.
    pub fn first_layer(&self, x: &[f32]) -> FirstLayerOutput {
        let rows = x.len() / self.layers[0].inp.max(1);
        FirstLayerOutput {
            rows,
            values: self.layers[0].forward_fixed(x, rows, self.kernel),
            computed_at_step: self.step,
        }
    }

    /// Mean cross-entropy without dropout.
    pub fn loss(&self, x: &[f32], targets: &[u32]) -> f64 {
        self.loss_from_first_layer(self.first_layer(x), targets)
    }

    /// Mean cross-entropy without dropout, from fc6's output (computed by [`Head::first_layer`], or returned by
    /// the last [`Head::step`], with the current weights).
    pub fn loss_from_first_layer(&self, h6: FirstLayerOutput, targets: &[u32]) -> f64 {
        assert_eq!(h6.computed_at_step, self.step, "fc6's output is from earlier weights");
        let rows = targets.len();
        let mut h6 = h6.values;
        relu_dropout(&mut h6, 0.0, None);
        let mut h7 = self.layers[1].forward(&h6, rows);
        relu_dropout(&mut h7, 0.0, None);
        let z = self.layers[2].forward(&h7, rows);
        cross_entropy(&z, targets, self.layers[2].out).0
    }

    /// One AdamW step on the mini-batch `x` with dropout `p`, given its fc6 output `h6` (from
    /// [`Head::first_layer`] or the previous step). Returns the batch loss and fc6's output for `next` (the next
    /// batch, or the validation rows) through the updated weights, computed in the same pass as fc6's update.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        x: &[f32],
        h6: FirstLayerOutput,
        targets: &[u32],
        p: f32,
        opt: &AdamW,
        rng: &mut Rng,
        next: &[f32],
    ) -> (f64, FirstLayerOutput) {
        let rows = targets.len();
        assert_eq!(h6.computed_at_step, self.step, "fc6's output is from earlier weights");
        assert_eq!(h6.rows, rows, "fc6's output is for another batch");
        let mut h6 = h6.values;
        let m6 = relu_dropout(&mut h6, p, Some(rng));
        let mut h7 = self.layers[1].forward(&h6, rows);
        let m7 = relu_dropout(&mut h7, p, Some(rng));
        let z = self.layers[2].forward(&h7, rows);
        let (loss, dz) = cross_entropy(&z, targets, self.layers[2].out);
        let mut dh7 = self.layers[2].input_grad(&dz, rows);
        dh7.iter_mut().zip(&m7).for_each(|(g, m)| *g *= m);
        let mut dh6 = self.layers[1].input_grad(&dh7, rows);
        dh6.iter_mut().zip(&m6).for_each(|(g, m)| *g *= m);
        self.step += 1;
        let t = self.step;
        let kernel = self.kernel;
        self.layers[2].update(&h7, &dz, rows, opt, t, &[], kernel);
        self.layers[1].update(&h6, &dh7, rows, opt, t, &[], kernel);
        let values = self.layers[0].update(x, &dh6, rows, opt, t, next, kernel);
        let next_rows = values.len() / self.layers[0].out;
        (
            loss,
            FirstLayerOutput {
                rows: next_rows,
                values,
                computed_at_step: self.step,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bfloat16_round_trip_keeps_eight_bits() {
        for x in [1.0f32, -3.5, 1e-20, 7.123_456e5, 0.0] {
            let y = from_bf16(to_bf16(x));
            assert!((y - x).abs() <= x.abs() * 2f32.powi(-8), "{x} → {y}");
        }
        assert_eq!(from_bf16(to_bf16(1.0 + 2f32.powi(-8))), 1.0); // halfway: ties to even
    }

    fn random_layer(out: usize, inp: usize, rng: &mut Rng) -> DenseLayer {
        DenseLayer::new(
            out,
            inp,
            (0..out * inp).map(|_| (rng.normal() * 0.5) as f32).collect(),
            (0..out).map(|_| (rng.normal() * 0.1) as f32).collect(),
        )
    }

    fn detected_kernels() -> Vec<Kernel> {
        #[allow(unused_mut)] // only x86-64 has more
        let mut kernels = vec![Kernel::Baseline];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") {
                kernels.push(Kernel::Avx2);
            }
            if is_x86_feature_detected!("avx512f") {
                kernels.push(Kernel::Avx512);
            }
        }
        kernels
    }

    /// Sizes that exercise every path of the block pass: rows not a multiple of the 2×4 tile, a partial row
    /// block, several column chunks and a partial lane vector at the end.
    const AWKWARD: (usize, usize, usize) = (7, 11, 2 * CHUNK + 37);

    #[test]
    fn the_fixed_order_forward_pass_gives_the_same_bits_on_every_kernel_and_the_right_sums() {
        let (rows, out, inp) = AWKWARD;
        let mut rng = Rng::new(17);
        let layer = random_layer(out, inp, &mut rng);
        let x: Vec<f32> = (0..rows * inp).map(|_| rng.normal() as f32).collect();
        let reference = layer.forward_fixed(&x, rows, Kernel::Baseline);
        for kernel in detected_kernels() {
            let y = layer.forward_fixed(&x, rows, kernel);
            let same = y.iter().zip(&reference).all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{kernel:?} differs from the baseline");
        }
        for s in 0..rows {
            for o in 0..out {
                let exact: f64 = f64::from(layer.b[o])
                    + (0..inp)
                        .map(|i| f64::from(x[s * inp + i]) * f64::from(layer.w[o * inp + i]))
                        .sum::<f64>();
                let got = f64::from(reference[s * out + o]);
                assert!(
                    (got - exact).abs() < 1e-4 * (1.0 + exact.abs()),
                    "({s}, {o}): {got} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn the_forward_pass_fused_into_the_update_equals_one_through_the_updated_weights() {
        let (rows, out, inp) = AWKWARD;
        let mut rng = Rng::new(5);
        let mut head = Head::new([
            random_layer(out, inp, &mut rng),
            random_layer(6, out, &mut rng),
            random_layer(2, 6, &mut rng),
        ]);
        let x: Vec<f32> = (0..rows * inp).map(|_| rng.normal() as f32).collect();
        let next: Vec<f32> = (0..5 * inp).map(|_| rng.normal() as f32).collect();
        let t: Vec<u32> = (0..rows).map(|s| (s % 2) as u32).collect();
        let opt = AdamW::new(1e-3, 1e-4);
        let h6 = head.first_layer(&x);
        let before = head.layers[0].w.clone();
        let (_, fused) = head.step(&x, h6, &t, 0.5, &opt, &mut rng, &next);
        assert_ne!(before, head.layers[0].w, "the step moved fc6");
        let separate = head.first_layer(&next);
        assert_eq!(fused.rows, 5);
        let same = fused
            .values
            .iter()
            .zip(&separate.values)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "the fused pass differs from a separate one");
        // and a second step accepts it as the next batch's fc6 output
        let (loss, _) = head.step(&next, fused, &t[..5], 0.5, &opt, &mut rng, &[]);
        assert!(loss.is_finite());
    }

    /// Two steps (update, fused forward pass of the next rows, the epoch-end pass of validation rows) run by
    /// each kernel give the same weights, moments and outputs, bit for bit, on sizes that take every path of
    /// each kernel: a partial row block, partial sample tiles, a partial column chunk and a tail that is not a
    /// whole vector; and inputs with zeros, as pool5 rows have.
    #[test]
    fn every_kernel_gives_the_same_step_bit_for_bit() {
        let (rows, out, inp) = AWKWARD;
        let mut rng = Rng::new(23);
        let start = Head::new([
            random_layer(out, inp, &mut rng),
            random_layer(9, out, &mut rng),
            random_layer(2, 9, &mut rng),
        ]);
        let mut sample = |n: usize| -> Vec<f32> {
            (0..n * inp)
                .map(|_| if rng.uniform() < 0.4 { 0.0 } else { rng.normal() as f32 })
                .collect()
        };
        let batches = [sample(rows), sample(5), sample(3)];
        let targets: Vec<u32> = (0..rows as u32).map(|s| s % 2).collect();
        let opt = AdamW::new(1e-2, 1e-3);
        let run = |kernel: Kernel| {
            let mut head = start.clone();
            head.kernel = kernel;
            let mut rng = Rng::new(99);
            let h6 = head.first_layer(&batches[0]);
            let (_, h6) = head.step(&batches[0], h6, &targets, 0.5, &opt, &mut rng, &batches[1]);
            let (_, h6) = head.step(&batches[1], h6, &targets[..5], 0.5, &opt, &mut rng, &batches[2]);
            let mut bits: Vec<u32> = h6.values.iter().map(|v| v.to_bits()).collect();
            for l in &head.layers {
                bits.extend(l.w.iter().chain(&l.b).chain(&l.mb).chain(&l.vb).map(|v| v.to_bits()));
                bits.extend(l.mw.iter().chain(&l.vw).map(|&h| u32::from(h)));
            }
            bits
        };
        let reference = run(Kernel::Baseline);
        for kernel in detected_kernels() {
            assert!(run(kernel) == reference, "{kernel:?} differs from the baseline");
        }
    }

    #[test]
    #[should_panic(expected = "earlier weights")]
    fn a_step_refuses_an_fc6_output_from_earlier_weights() {
        let mut rng = Rng::new(8);
        let mut head = Head::new([
            random_layer(4, 3, &mut rng),
            random_layer(3, 4, &mut rng),
            random_layer(2, 3, &mut rng),
        ]);
        let x = [0.5f32, -1.0, 2.0];
        let opt = AdamW::new(1e-3, 0.0);
        let stale = head.first_layer(&x);
        let (_, fresh) = head.step(&x, head.first_layer(&x), &[1], 0.0, &opt, &mut rng, &x);
        drop(fresh);
        head.step(&x, stale, &[1], 0.0, &opt, &mut rng, &[]);
    }

    /// The analytic gradient of the fused update matches finite differences of the loss (no dropout, plain SGD
    /// read off the AdamW first step: with t = 1, m̂ = g and v̂ = g², so the step is lr·sign(g)).
    #[test]
    fn first_adamw_step_moves_each_weight_against_its_gradient_sign() {
        let mut rng = Rng::new(3);
        let mk = |o: usize, i: usize, rng: &mut Rng| {
            DenseLayer::new(
                o,
                i,
                (0..o * i).map(|_| (rng.normal() * 0.5) as f32).collect(),
                vec![0.1; o],
            )
        };
        let head = Head::new([mk(5, 4, &mut rng), mk(3, 5, &mut rng), mk(2, 3, &mut rng)]);
        let x: Vec<f32> = (0..8).map(|_| rng.normal() as f32).collect();
        let t = [0u32, 1];
        let opt = AdamW {
            lr: 1e-3,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-12,
        };
        let mut stepped = head.clone();
        let h6 = stepped.first_layer(&x);
        stepped.step(&x, h6, &t, 0.0, &opt, &mut rng, &[]);
        let mut checked = 0;
        for l in 0..3 {
            for k in 0..head.layers[l].w.len() {
                let h = 1e-3f32;
                let (mut a, mut b) = (head.clone(), head.clone());
                a.layers[l].w[k] += h;
                b.layers[l].w[k] -= h;
                let g = (a.loss(&x, &t) - b.loss(&x, &t)) / (2.0 * f64::from(h));
                let moved = f64::from(stepped.layers[l].w[k] - head.layers[l].w[k]);
                if g.abs() > 1e-3 {
                    assert!(moved * g < 0.0, "layer {l} weight {k}: gradient {g}, moved {moved}");
                    // lr · m̂/√v̂ = lr · sign(g), up to the bfloat16 storage of the moments (8 bits)
                    assert!((moved.abs() - 1e-3).abs() < 1e-5, "layer {l} weight {k}: step {moved}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 10);
    }
}
