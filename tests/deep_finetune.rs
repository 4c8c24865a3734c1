//! Fine-tuning on a small synthetic set (bright disks vs rings) with a reduced-width VGG: the loss goes down,
//! a seeded run reproduces exactly, the result saves under the input's tensor names, and full mode trains too.

use std::path::Path;

use alnrisk::deep::finetune::{FinetuneConfig, FinetuneMode, finetune, finetune_with_pool5};
use alnrisk::deep::{Crop, Vgg16, VggConfig, vgg::he_init};
use candle_core::Device;

fn cfg() -> VggConfig {
    VggConfig::scaled(16, 64, 2)
}

fn data() -> (Vec<Crop>, Vec<u32>) {
    let mut crops = Vec::new();
    let mut labels = Vec::new();
    for n in 0..16 {
        let ring = n % 2 == 1;
        let size = 30 + (n * 7) % 20;
        let c = size as f32 / 2.0;
        let values = (0..size * size)
            .map(|o| {
                let (y, x) = ((o / size) as f32 - c, (o % size) as f32 - c);
                let r = (x * x + y * y).sqrt() / c;
                let v = if ring {
                    if (0.5..0.8).contains(&r) { 1.0 } else { 0.1 }
                } else if r < 0.5 {
                    1.0
                } else {
                    0.1
                };
                v + 0.05 * ((o * 31 + n * 17) % 7) as f32
            })
            .collect();
        crops.push(Crop {
            rows: size,
            cols: size,
            values,
            slice: 0,
        });
        labels.push(u32::from(ring));
    }
    (crops, labels)
}

fn net() -> Vgg16 {
    Vgg16::from_tensors(cfg(), &he_init(&cfg(), 11).unwrap(), Path::new("he"), &Device::Cpu).unwrap()
}

fn settings(mode: FinetuneMode, epochs: usize) -> FinetuneConfig {
    FinetuneConfig {
        mode,
        epochs,
        batch: 16,
        learning_rate: 1e-3,
        views: 3,
        patience: 1000,
        seed: 5,
        ..FinetuneConfig::default()
    }
}

#[test]
fn head_mode_loss_goes_down_and_reproduces_exactly() {
    let (crops, labels) = data();
    let (mut a, mut b) = (net(), net());
    let ra = finetune(&mut a, &crops, &labels, &settings(FinetuneMode::Head, 25)).unwrap();
    let rb = finetune(&mut b, &crops, &labels, &settings(FinetuneMode::Head, 25)).unwrap();
    println!("train loss {:?}", ra.train_loss);
    let first = ra.train_loss[..3].iter().sum::<f64>() / 3.0;
    let last = ra.train_loss[ra.train_loss.len() - 3..].iter().sum::<f64>() / 3.0;
    assert!(last < 0.7 * first, "loss did not go down: {first} → {last}");
    assert_eq!(ra, rb, "a seeded run must reproduce exactly");
    let (ta, tb) = (a.named_tensors().unwrap(), b.named_tensors().unwrap());
    for (k, v) in &ta {
        let (x, y) = (
            v.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            tb[k].flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert!(x == y, "{k} differs between seeded runs");
    }
    // the trained weights save under the same names and load back
    let p = std::env::temp_dir().join(format!("alnrisk-finetuned-{}.safetensors", std::process::id()));
    a.save(&p).unwrap();
    let names_in: std::collections::BTreeSet<String> = he_init(&cfg(), 11).unwrap().into_keys().collect();
    let saved = candle_core::safetensors::load(&p, &Device::Cpu).unwrap();
    assert_eq!(
        saved.keys().cloned().collect::<std::collections::BTreeSet<_>>(),
        names_in
    );
    let again = Vgg16::load(cfg(), &p, &Device::Cpu).unwrap();
    assert_eq!(again.named_tensors().unwrap().len(), ta.len());
}

#[test]
fn head_mode_given_the_plain_pool5_trains_exactly_as_when_it_computes_them() {
    // as `fit` does it: the served (8-bit) trunk, each crop's pool5 computed alone and handed over
    let (crops, labels) = data();
    let (mut a, mut b) = (net(), net());
    a.quantize_trunk().unwrap();
    b.quantize_trunk().unwrap();
    let rows: Vec<Vec<f32>> = crops
        .iter()
        .map(|c| {
            let t = b.trunk(&alnrisk::deep::batch(std::slice::from_ref(c), &Device::Cpu).unwrap());
            t.unwrap().flatten_all().unwrap().to_vec1().unwrap()
        })
        .collect();
    let ra = finetune(&mut a, &crops, &labels, &settings(FinetuneMode::Head, 4)).unwrap();
    let given: Vec<&[f32]> = rows.iter().map(Vec::as_slice).collect();
    let rb = finetune_with_pool5(&mut b, &crops, &labels, Some(&given), &settings(FinetuneMode::Head, 4)).unwrap();
    assert!(!ra.validation_loss.is_empty());
    assert_eq!(ra, rb, "the validation losses must not depend on where pool5 came from");
    // rows that are not the trunk's change the validation losses: the rows given are the ones used
    let zeros: Vec<Vec<f32>> = rows.iter().map(|r| vec![0.0; r.len()]).collect();
    let mut c = net();
    c.quantize_trunk().unwrap();
    let zeros: Vec<&[f32]> = zeros.iter().map(Vec::as_slice).collect();
    let rc = finetune_with_pool5(&mut c, &crops, &labels, Some(&zeros), &settings(FinetuneMode::Head, 4)).unwrap();
    assert_ne!(rc.validation_loss, ra.validation_loss);
}

#[test]
fn full_mode_trains_every_layer() {
    let (crops, labels) = data();
    let mut n = net();
    let before = n.named_tensors().unwrap()["features.0.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let r = finetune(&mut n, &crops[..8], &labels[..8], &settings(FinetuneMode::Full, 2)).unwrap();
    assert!(r.train_loss.iter().all(|l| l.is_finite()));
    let after = n.named_tensors().unwrap()["features.0.weight"]
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_ne!(before, after, "full mode must update the convolutions");
    // The fine-tuned network in memory computes what the same weights loaded afresh compute (the CPU path's
    // packed kernels follow the new convolutions; `fit` extracts features from the network in memory).
    let fresh = Vgg16::from_tensors(cfg(), &n.named_tensors().unwrap(), Path::new("fresh"), &Device::Cpu).unwrap();
    let x = alnrisk::deep::batch(&crops[..2], &Device::Cpu).unwrap();
    let (a, b) = (n.forward(&x).unwrap().fc7, fresh.forward(&x).unwrap().fc7);
    let (a, b) = (
        a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
    );
    assert_eq!(a, b, "fc7 of the fine-tuned network in memory");
}
