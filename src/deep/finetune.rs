//! Fine-tuning VGG-16 on labelled crops with the study's recipe: up to 100 epochs, batch 16, random horizontal
//! and vertical flips, rotation (±15°) and translation (±10 %), AdamW, dropout 0.5 in the classifier, and early
//! stopping on a seeded validation split (the weights of the best validation epoch are kept).
//!
//! - `head`: the convolutional trunk is frozen; pool5 features of `views` augmented views per crop are computed
//!   once, then fc6–fc8 are trained on them (fast on 2 CPU cores).
//! - `full`: every layer is trained, the trunk seeing freshly augmented images each epoch (meant for a GPU).
//!
//! Everything random (augmentation, split, shuffling, dropout masks) comes from [`crate::rng::Rng`] with the
//! given seed, so a run on the CPU reproduces exactly.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use super::preprocess::{Crop, INPUT_SIZE, normalize, resized_plane};
use super::vgg::{Dense, Vgg16};
use crate::error::{Error, Result};
use crate::rng::Rng;

/// Which layers are trained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FinetuneMode {
    /// fc6–fc8 on cached pool5 features of augmented views.
    Head,
    /// Every layer.
    Full,
}

/// Training settings (defaults: the study's recipe).
#[derive(Debug, Clone)]
pub struct FinetuneConfig {
    /// Mode.
    pub mode: FinetuneMode,
    /// Maximum epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// AdamW learning rate.
    pub learning_rate: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Augmented views per crop (head mode).
    pub views: usize,
    /// Fraction held out for early stopping.
    pub validation_fraction: f64,
    /// Epochs without validation improvement before stopping.
    pub patience: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        FinetuneConfig {
            mode: FinetuneMode::Head,
            epochs: 100,
            batch: 16,
            learning_rate: 1e-4,
            weight_decay: 1e-2,
            views: 8,
            validation_fraction: 0.2,
            patience: 10,
            seed: 7,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub struct FinetuneReport {
    /// Mean training loss per epoch.
    pub train_loss: Vec<f64>,
    /// Validation loss per epoch.
    pub validation_loss: Vec<f64>,
    /// Epoch (0-based) whose weights were kept.
    pub best_epoch: usize,
}

/// One random augmentation of a 224 × 224 plane in [0, 1]: flips, rotation ±15°, shift ±10 %, bilinear, zero fill.
pub fn augment(plane: &[f32], rng: &mut Rng) -> Vec<f32> {
    let n = INPUT_SIZE as f64;
    let (fh, fv) = (rng.bernoulli(0.5), rng.bernoulli(0.5));
    let angle = rng.range(-15.0, 15.0).to_radians();
    let (tx, ty) = (rng.range(-0.1, 0.1) * n, rng.range(-0.1, 0.1) * n);
    let (s, c) = angle.sin_cos();
    let centre = (n - 1.0) / 2.0;
    let mut out = vec![0f32; plane.len()];
    for y in 0..INPUT_SIZE {
        for x in 0..INPUT_SIZE {
            // inverse map: output pixel → source position
            let (dx, dy) = (x as f64 - centre - tx, y as f64 - centre - ty);
            let mut sx = c * dx + s * dy + centre;
            let mut sy = -s * dx + c * dy + centre;
            if fh {
                sx = n - 1.0 - sx;
            }
            if fv {
                sy = n - 1.0 - sy;
            }
            if sx < 0.0 || sy < 0.0 || sx > n - 1.0 || sy > n - 1.0 {
                continue;
            }
            let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(INPUT_SIZE - 1), (y0 + 1).min(INPUT_SIZE - 1));
            let (ax, ay) = ((sx - x0 as f64) as f32, (sy - y0 as f64) as f32);
            let at = |r: usize, q: usize| plane[r * INPUT_SIZE + q];
            out[y * INPUT_SIZE + x] = (1.0 - ay) * ((1.0 - ax) * at(y0, x0) + ax * at(y0, x1))
                + ay * ((1.0 - ax) * at(y1, x0) + ax * at(y1, x1));
        }
    }
    out
}

fn images(planes: &[Vec<f32>], device: &Device) -> Result<Tensor> {
    let data: Vec<f32> = planes.iter().flat_map(|p| normalize(p)).collect();
    Tensor::from_vec(data, (planes.len(), 3, INPUT_SIZE, INPUT_SIZE), device).map_err(Error::from)
}

/// Inverted dropout with a seeded mask.
fn dropout(x: &Tensor, p: f64, rng: &mut Rng) -> candle_core::Result<Tensor> {
    let n = x.elem_count();
    let keep: Vec<f32> = (0..n)
        .map(|_| {
            if rng.uniform() < p {
                0.0
            } else {
                (1.0 / (1.0 - p)) as f32
            }
        })
        .collect();
    x.mul(&Tensor::from_vec(keep, x.shape(), x.device())?)
}

/// Record an epoch's validation loss (its training loss is already in) and log both.
fn record_epoch(report: &mut FinetuneReport, epoch: usize, vl: f64, start: std::time::Instant, mode: &str) {
    report.validation_loss.push(vl);
    tracing::info!(
        mode,
        epoch = epoch + 1,
        train_loss = report.train_loss[epoch],
        validation_loss = vl,
        seconds = start.elapsed().as_secs_f64(),
        "fine-tuning epoch"
    );
}

/// Early stopping on the validation loss: the best epoch so far, and a stop after `patience` epochs without a
/// strictly lower loss.
struct EarlyStopping {
    best: Option<f64>,
    best_epoch: usize,
    since: usize,
    patience: usize,
}

/// What an epoch's validation loss means.
enum Verdict {
    /// A new best: keep these weights.
    Improved,
    /// Not better; go on.
    Continue,
    /// `patience` epochs without improvement: stop.
    Stop,
}

impl EarlyStopping {
    fn new(patience: usize) -> Self {
        EarlyStopping {
            best: None,
            best_epoch: 0,
            since: 0,
            patience,
        }
    }

    fn observe(&mut self, epoch: usize, loss: f64) -> Verdict {
        if self.best.is_none_or(|b| loss < b) {
            self.best = Some(loss);
            self.best_epoch = epoch;
            self.since = 0;
            Verdict::Improved
        } else {
            self.since += 1;
            if self.since >= self.patience {
                Verdict::Stop
            } else {
                Verdict::Continue
            }
        }
    }
}

/// Fine-tune `net` in place on `crops` with labels `labels` (`< classes`).
pub fn finetune(net: &mut Vgg16, crops: &[Crop], labels: &[u32], cfg: &FinetuneConfig) -> Result<FinetuneReport> {
    finetune_with_pool5(net, crops, labels, None, cfg)
}

/// [`finetune`], given in head mode the frozen trunk's pool5 of every plain crop where the caller already has it
/// (`plain_pool5[i]` for `crops[i]`, as `fit` caches them): the validation crops' rows are taken from it instead
/// of being computed again. The trunk gives each image the same pool5 alone or in a batch, so the result is the
/// same to the bit. Other modes ignore it.
pub fn finetune_with_pool5(
    net: &mut Vgg16,
    crops: &[Crop],
    labels: &[u32],
    plain_pool5: Option<&[&[f32]]>,
    cfg: &FinetuneConfig,
) -> Result<FinetuneReport> {
    if plain_pool5.is_some_and(|rows| rows.len() != crops.len()) {
        return Err(Error::Model(format!(
            "pool5 rows for {} crops given with {} crops",
            plain_pool5.map_or(0, <[_]>::len),
            crops.len()
        )));
    }
    if crops.len() != labels.len() || crops.len() < 4 {
        return Err(Error::Model(format!(
            "fine-tuning needs at least 4 labelled crops ({} given)",
            crops.len()
        )));
    }
    if net.is_quantized() || (cfg.mode != FinetuneMode::Head && net.is_trunk_quantized()) {
        return Err(Error::Model(
            "fine-tune the f32 network (head mode may use the served trunk), then quantize".into(),
        ));
    }
    let dev = net.device.clone();
    let mut rng = Rng::new(cfg.seed);
    // seeded, stratified validation split
    let mut order: Vec<usize> = (0..crops.len()).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, (rng.uniform() * (i + 1) as f64) as usize);
    }
    let mut val = Vec::new();
    let mut train = Vec::new();
    for class in 0..=labels.iter().copied().max().unwrap_or(0) {
        let members: Vec<usize> = order.iter().copied().filter(|&i| labels[i] == class).collect();
        let k =
            ((members.len() as f64 * cfg.validation_fraction).round() as usize).min(members.len().saturating_sub(1));
        val.extend(&members[..k]);
        train.extend(&members[k..]);
    }
    let planes: Vec<Vec<f32>> = crops.iter().map(resized_plane).collect();
    if cfg.mode == FinetuneMode::Head {
        return train_head(net, &planes, labels, (&train, &val), plain_pool5, cfg, &mut rng);
    }
    // trainable parameters: the dense layers, plus the convolutions in full mode
    let dense_vars: Vec<(Var, Var)> = net
        .dense
        .iter()
        .map(|d| match d {
            Dense::F32 { weight, bias } => Ok((Var::from_tensor(weight)?, Var::from_tensor(bias)?)),
            Dense::Q8 { .. } => Err(Error::Model("quantized layer".into())),
        })
        .collect::<Result<_>>()?;
    let conv_vars: Vec<(Var, Var)> = if cfg.mode == FinetuneMode::Full {
        net.conv_tensors()
            .iter()
            .map(|(w, b)| {
                Ok((
                    Var::from_tensor(&w.to_dtype(DType::F32)?)?,
                    Var::from_tensor(&b.to_dtype(DType::F32)?)?,
                ))
            })
            .collect::<Result<_>>()?
    } else {
        Vec::new()
    };
    let mut params: Vec<Var> = dense_vars.iter().flat_map(|(w, b)| [w.clone(), b.clone()]).collect();
    params.extend(conv_vars.iter().flat_map(|(w, b)| [w.clone(), b.clone()]));
    let mut opt = AdamW::new(
        params,
        ParamsAdamW {
            lr: cfg.learning_rate,
            weight_decay: cfg.weight_decay,
            ..Default::default()
        },
    )?;

    let val_targets = Tensor::from_vec(val.iter().map(|&i| labels[i]).collect::<Vec<u32>>(), val.len(), &dev)?;

    let head_forward = |x: &Tensor, train_mode: bool, rng: &mut Rng| -> candle_core::Result<Tensor> {
        let lin = |x: &Tensor, (w, b): &(Var, Var)| x.matmul(&w.as_tensor().t()?)?.broadcast_add(b.as_tensor());
        let mut h = lin(x, &dense_vars[0])?.relu()?;
        if train_mode {
            h = dropout(&h, 0.5, rng)?;
        }
        h = lin(&h, &dense_vars[1])?.relu()?;
        if train_mode {
            h = dropout(&h, 0.5, rng)?;
        }
        lin(&h, &dense_vars[2])
    };
    let trunk_forward = |x: &Tensor| -> candle_core::Result<Tensor> {
        let mut h = x.clone();
        let mut c = 0;
        for step in &net.config.plan {
            h = match step {
                Some(_) => {
                    let (w, b) = &conv_vars[c];
                    c += 1;
                    h.conv2d(w.as_tensor(), 1, 1, 1, 1)?
                        .broadcast_add(&b.as_tensor().reshape((1, (), 1, 1))?)?
                        .relu()?
                }
                None => h.max_pool2d(2)?,
            };
        }
        h.flatten_from(1)
    };

    let n_items = train.len();
    let mut report = FinetuneReport {
        train_loss: Vec::new(),
        validation_loss: Vec::new(),
        best_epoch: 0,
    };
    let mut best: Option<Vec<Tensor>> = None;
    let mut stopping = EarlyStopping::new(cfg.patience);
    for epoch in 0..cfg.epochs {
        let epoch_start = std::time::Instant::now();
        let mut perm: Vec<usize> = (0..n_items).collect();
        for i in (1..perm.len()).rev() {
            perm.swap(i, (rng.uniform() * (i + 1) as f64) as usize);
        }
        let (mut total, mut count) = (0.0, 0usize);
        for chunk in perm.chunks(cfg.batch.max(1)) {
            let (x, targets): (Tensor, Vec<u32>) = {
                let idx: Vec<usize> = chunk.iter().map(|&k| train[k]).collect();
                let batch: Vec<Vec<f32>> = idx.iter().map(|&i| augment(&planes[i], &mut rng)).collect();
                let x = trunk_forward(&images(&batch, &dev)?)?;
                (x, idx.iter().map(|&i| labels[i]).collect())
            };
            let t = Tensor::from_vec(targets, chunk.len(), &dev)?;
            let logits = head_forward(&x, true, &mut rng)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &t)?;
            opt.backward_step(&loss)?;
            total += loss.to_scalar::<f32>()? as f64 * chunk.len() as f64;
            count += chunk.len();
        }
        report.train_loss.push(total / count as f64);
        let vx = {
            let plain: Vec<Vec<f32>> = val.iter().map(|&i| planes[i].clone()).collect();
            trunk_forward(&images(&plain, &dev)?)?
        };
        let vl = if val.is_empty() {
            report.train_loss[epoch]
        } else {
            let logits = head_forward(&vx, false, &mut rng)?;
            candle_nn::loss::cross_entropy(&logits, &val_targets).and_then(|l| l.to_scalar::<f32>())? as f64
        };
        record_epoch(&mut report, epoch, vl, epoch_start, "full");
        match stopping.observe(epoch, vl) {
            Verdict::Improved => {
                let snapshot: Vec<Tensor> = dense_vars
                    .iter()
                    .chain(conv_vars.iter())
                    .flat_map(|(w, b)| [w.as_tensor().copy(), b.as_tensor().copy()])
                    .collect::<candle_core::Result<_>>()?;
                best = Some(snapshot);
            }
            Verdict::Continue => {}
            Verdict::Stop => break,
        }
    }
    report.best_epoch = stopping.best_epoch;
    let weights = best.ok_or_else(|| Error::Model("no epoch ran".into()))?;
    let mut it = weights.into_iter();
    for d in net.dense.iter_mut() {
        let (weight, bias) = (it.next(), it.next());
        if let (Some(weight), Some(bias)) = (weight, bias) {
            *d = Dense::F32 { weight, bias };
        }
    }
    if cfg.mode == FinetuneMode::Full {
        let convs: Vec<(Tensor, Tensor)> = std::iter::from_fn(|| Some((it.next()?, it.next()?))).collect();
        net.set_conv_tensors(convs)?;
    }
    Ok(report)
}

/// Head mode: pool5 of `views` augmented views per training crop and of each plain validation crop, computed once
/// with the frozen trunk; then fc6–fc8 trained by [`super::head_train`] (plain Rust, fused AdamW).
fn train_head(
    net: &mut Vgg16,
    planes: &[Vec<f32>],
    labels: &[u32],
    (train, val): (&[usize], &[usize]),
    plain_pool5: Option<&[&[f32]]>,
    cfg: &FinetuneConfig,
    rng: &mut Rng,
) -> Result<FinetuneReport> {
    use super::head_train::{AdamW as FusedAdamW, DenseLayer, Head};
    let dev = net.device.clone();
    let pool5_rows = |batch: &[Vec<f32>], net: &Vgg16| -> Result<Vec<Vec<f32>>> {
        net.trunk(&images(batch, &dev)?)?.to_vec2::<f32>().map_err(Error::from)
    };
    let mut items: Vec<(Vec<f32>, u32)> = Vec::new();
    for &i in train {
        for _ in 0..cfg.views.max(1) {
            let view = augment(&planes[i], rng);
            let row = pool5_rows(std::slice::from_ref(&view), net)?.remove(0);
            items.push((row, labels[i]));
        }
    }
    let val_x: Vec<f32> = match plain_pool5 {
        Some(rows) => val.iter().flat_map(|&i| rows[i].iter().copied()).collect(),
        None if val.is_empty() => Vec::new(),
        None => {
            let plain: Vec<Vec<f32>> = val.iter().map(|&i| planes[i].clone()).collect();
            pool5_rows(&plain, net)?.concat()
        }
    };
    let val_t: Vec<u32> = val.iter().map(|&i| labels[i]).collect();
    let layers: Vec<DenseLayer> = net
        .dense
        .iter()
        .map(|d| match d {
            Dense::F32 { weight, bias } => {
                let (out, inp) = weight.dims2()?;
                let w: Vec<f32> = weight.flatten_all().and_then(|t| t.to_vec1())?;
                let b: Vec<f32> = bias.to_vec1()?;
                Ok(DenseLayer::new(out, inp, w, b))
            }
            Dense::Q8 { .. } => Err(Error::Model("quantized layer".into())),
        })
        .collect::<Result<_>>()?;
    let [l6, l7, l8]: [DenseLayer; 3] = layers
        .try_into()
        .map_err(|_| Error::Model("the head needs three dense layers".into()))?;
    let mut head = Head::new([l6, l7, l8]);
    let opt = FusedAdamW::new(cfg.learning_rate, cfg.weight_decay);
    let mut report = FinetuneReport {
        train_loss: Vec::new(),
        validation_loss: Vec::new(),
        best_epoch: 0,
    };
    // (validation loss, weights and biases of fc6–fc8) of the best epoch so far
    type Snapshot = Vec<(Vec<f32>, Vec<f32>)>;
    let mut best: Option<Snapshot> = None;
    let mut stopping = EarlyStopping::new(cfg.patience);
    for epoch in 0..cfg.epochs {
        let epoch_start = std::time::Instant::now();
        let mut perm: Vec<usize> = (0..items.len()).collect();
        for i in (1..perm.len()).rev() {
            perm.swap(i, (rng.uniform() * (i + 1) as f64) as usize);
        }
        let batches: Vec<&[usize]> = perm.chunks(cfg.batch.max(1)).collect();
        let gather = |batch: &[usize]| -> Vec<f32> { batch.iter().flat_map(|&k| items[k].0.iter().copied()).collect() };
        let (mut total, mut count) = (0.0, 0usize);
        // each step's fused fc6 pass also computes fc6 for the next batch, and the last step's for the validation
        // rows (head_train's module documentation says why)
        let mut x = batches.first().map(|b| gather(b)).unwrap_or_default();
        let mut h6 = head.first_layer(&x);
        for (b, batch) in batches.iter().enumerate() {
            let next_x = match batches.get(b + 1) {
                Some(next) => gather(next),
                None => val_x.clone(),
            };
            let t: Vec<u32> = batch.iter().map(|&k| items[k].1).collect();
            let (loss, next_h6) = head.step(&x, h6, &t, 0.5, &opt, rng, &next_x);
            total += loss * batch.len() as f64;
            count += batch.len();
            (x, h6) = (next_x, next_h6);
        }
        report.train_loss.push(total / count.max(1) as f64);
        let vl = if val_t.is_empty() {
            report.train_loss[epoch]
        } else if batches.is_empty() {
            head.loss(&val_x, &val_t)
        } else {
            head.loss_from_first_layer(h6, &val_t)
        };
        record_epoch(&mut report, epoch, vl, epoch_start, "head");
        match stopping.observe(epoch, vl) {
            // weights only: the moments are not needed to restore the best epoch; copied into the buffers of
            // the previous best, as fresh memory costs more than the copy
            Verdict::Improved => match &mut best {
                Some(kept) => {
                    for ((w, b), l) in kept.iter_mut().zip(&head.layers) {
                        w.copy_from_slice(&l.w);
                        b.copy_from_slice(&l.b);
                    }
                }
                None => best = Some(head.layers.iter().map(|l| (l.w.clone(), l.b.clone())).collect()),
            },
            Verdict::Continue => {}
            Verdict::Stop => break,
        }
    }
    report.best_epoch = stopping.best_epoch;
    let kept = best.ok_or_else(|| Error::Model("no epoch ran".into()))?;
    for ((d, (w, b)), l) in net.dense.iter_mut().zip(kept).zip(&head.layers) {
        *d = Dense::F32 {
            weight: Tensor::from_vec(w, (l.out, l.inp), &dev)?,
            bias: Tensor::from_vec(b, l.out, &dev)?,
        };
    }
    Ok(report)
}
