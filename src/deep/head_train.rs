//! Training of the classifier head (fc6 → ReLU → dropout → fc7 → ReLU → dropout → fc8, softmax cross-entropy) on
//! cached pool5 features, in plain Rust on the CPU, for `finetune`'s head mode.
//!
//! Why not candle's autograd here: for VGG-16 the head holds 120 M parameters, and candle's CPU AdamW allocates
//! several full-size temporaries per parameter per step — measured on the 2-core build machine at ≈10 s per batch
//! of 16 (203 s per epoch of 320 views, 7.9 GB RSS). This trainer computes the same mathematics with `gemm` for the
//! forward pass and one fused pass per weight row for the gradient and the AdamW update (the weight gradient is
//! never materialised), so the memory traffic per step is one read and write of weights and moments.
//!
//! AdamW is candle's (`candle_nn::AdamW`): `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
//! `θ ← θ(1 − lr·λ) − lr · m̂ / (√v̂ + ε)` with bias-corrected `m̂`, `v̂`. The moments of the weight matrices are
//! *stored* in bfloat16 (computed in f32, rounded to nearest even on store): the step is bound by memory traffic,
//! and this cuts it from 24 to 16 bytes per parameter (weights stay f32). Dropout is inverted dropout with masks
//! from the seeded [`Rng`], so a run reproduces exactly.

use rayon::prelude::*;

use crate::rng::Rng;

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

    /// Weight gradient `dW = dyᵀ x` row by row, fused with the AdamW update.
    fn update(&mut self, x: &[f32], dy: &[f32], rows: usize, opt: &AdamW, t: i32) {
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
        let wide = RowKernel::detect();
        self.w
            .par_chunks_mut(inp)
            .zip(self.mw.par_chunks_mut(inp))
            .zip(self.vw.par_chunks_mut(inp))
            .enumerate()
            .for_each_init(
                || (vec![0f32; inp], vec![0f32; rows]),
                |(g, d), (r, ((w, m), v))| {
                    for (s, ds) in d.iter_mut().enumerate() {
                        *ds = dy[s * out + r];
                    }
                    wide.run(RowUpdate { w, m, v, g, x, d }, &step);
                },
            );
        for r in 0..out {
            let g: f32 = (0..rows).map(|s| dy[s * out + r]).sum();
            let (mut m, mut v) = (self.mb[r], self.vb[r]);
            self.b[r] = step.apply(self.b[r], &mut m, &mut v, g);
            (self.mb[r], self.vb[r]) = (m, v);
        }
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

/// One weight row's operands: the row `w` and its bfloat16 moments, the gradient scratch `g`, the layer's input
/// `x` (`rows × inp`) and the row's output gradient per sample `d`.
struct RowUpdate<'a> {
    w: &'a mut [f32],
    m: &'a mut [u16],
    v: &'a mut [u16],
    g: &'a mut [f32],
    x: &'a [f32],
    d: &'a [f32],
}

impl RowUpdate<'_> {
    /// `g = Σ_s d[s]·x[s]`, then AdamW on every weight of the row. Every lane does the same IEEE operations in the
    /// same order, so the vector widths [`RowKernel`] compiles for give identical bits.
    #[inline(always)]
    fn run(self, step: &AdamStep) {
        let inp = self.w.len();
        self.g.fill(0.0);
        for (s, &ds) in self.d.iter().enumerate() {
            if ds != 0.0 {
                for (gj, xj) in self.g.iter_mut().zip(&self.x[s * inp..(s + 1) * inp]) {
                    *gj += ds * xj;
                }
            }
        }
        for (((w, m), v), &g) in self
            .w
            .iter_mut()
            .zip(self.m.iter_mut())
            .zip(self.v.iter_mut())
            .zip(self.g.iter())
        {
            let (mut mj, mut vj) = (from_bf16(*m), from_bf16(*v));
            *w = step.apply(*w, &mut mj, &mut vj, g);
            *m = to_bf16(mj);
            *v = to_bf16(vj);
        }
    }
}

/// The widest vectors this CPU runs [`RowUpdate::run`] in (the build's baseline is SSE2; detected at run time).
#[derive(Debug, Clone, Copy)]
enum RowKernel {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Baseline,
}

impl RowKernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return RowKernel::Avx512;
            }
            if is_x86_feature_detected!("avx2") {
                return RowKernel::Avx2;
            }
        }
        RowKernel::Baseline
    }

    fn run(self, row: RowUpdate, step: &AdamStep) {
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx512f")]
            fn avx512(row: RowUpdate, step: &AdamStep) {
                row.run(step)
            }
            #[target_feature(enable = "avx2")]
            fn avx2(row: RowUpdate, step: &AdamStep) {
                row.run(step)
            }
            match self {
                // SAFETY: `detect` found the feature on this CPU
                RowKernel::Avx512 => return unsafe { avx512(row, step) },
                // SAFETY: as above
                RowKernel::Avx2 => return unsafe { avx2(row, step) },
                RowKernel::Baseline => {}
            }
        }
        row.run(step)
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

impl Head {
    /// A head from the three layers.
    pub fn new(layers: [DenseLayer; 3]) -> Head {
        Head { layers, step: 0 }
    }

    /// Mean cross-entropy without dropout.
    pub fn loss(&self, x: &[f32], targets: &[u32]) -> f64 {
        let rows = targets.len();
        let mut h6 = self.layers[0].forward(x, rows);
        relu_dropout(&mut h6, 0.0, None);
        let mut h7 = self.layers[1].forward(&h6, rows);
        relu_dropout(&mut h7, 0.0, None);
        let z = self.layers[2].forward(&h7, rows);
        cross_entropy(&z, targets, self.layers[2].out).0
    }

    /// One AdamW step on a mini-batch with dropout `p`; returns the batch loss.
    pub fn step(&mut self, x: &[f32], targets: &[u32], p: f32, opt: &AdamW, rng: &mut Rng) -> f64 {
        let rows = targets.len();
        let mut h6 = self.layers[0].forward(x, rows);
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
        self.layers[2].update(&h7, &dz, rows, opt, t);
        self.layers[1].update(&h6, &dh7, rows, opt, t);
        self.layers[0].update(x, &dh6, rows, opt, t);
        loss
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The analytic gradient of the fused update matches finite differences of the loss (no dropout, plain SGD
    /// read off the AdamW first step: with t = 1, m̂ = g and v̂ = g², so the step is lr·sign(g)).
    #[test]
    fn bfloat16_round_trip_keeps_eight_bits() {
        for x in [1.0f32, -3.5, 1e-20, 7.123_456e5, 0.0] {
            let y = from_bf16(to_bf16(x));
            assert!((y - x).abs() <= x.abs() * 2f32.powi(-8), "{x} → {y}");
        }
        assert_eq!(from_bf16(to_bf16(1.0 + 2f32.powi(-8))), 1.0); // halfway: ties to even
    }

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
        stepped.step(&x, &t, 0.0, &opt, &mut rng);
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
