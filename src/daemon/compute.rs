//! The worker's job: one ready series → image, ROI ([`crate::case::from_series`]), features, nomogram (the same [`Predictor`] as
//! `alnrisk predict`), with the time per stage.

use std::collections::BTreeMap;
use std::time::Instant;

use super::assemble::ReadySeries;
use super::metrics::Metrics;
use crate::error::{Error, Result};
use crate::ingest::series::{Assembly, assemble_one};
use crate::model::Predictor;

/// Compute one series (blocking): load, features, nomogram. Returns the prediction and the stage times (ms).
pub fn compute_series(
    predictor: &Predictor,
    ready: &ReadySeries,
    metrics: Option<&Metrics>,
) -> Result<(crate::model::Prediction, BTreeMap<String, f64>)> {
    #[cfg(feature = "tools")]
    injected_fault()?;
    let m = &predictor.bundle.manifest;
    let t0 = Instant::now();
    // The same path as `alnrisk predict` on a folder: assemble the series (or link the DCE set) by the scan's
    // rules, then `case::from_series`.
    let how = if ready.member_series.len() > 1 {
        Assembly::Linked
    } else {
        Assembly::Alone
    };
    let series = assemble_one(ready.instances.clone(), &ready.series_uid, how)?;
    if series.member_series != ready.member_series {
        return Err(Error::Series {
            series: ready.series_uid.clone(),
            dir: series.dir.clone(),
            reason: "the linked DCE set assembled again is not the set the assembler released".into(),
        });
    }
    let case = crate::case::from_series(&series, &ready.roi, &m.case_inputs())?;
    let dir = series.dir.clone();
    let t1 = Instant::now();
    let features = predictor.features(&case, &dir, &ready.roi)?;
    let t2 = Instant::now();
    let p = predictor.predict_features(&features, &BTreeMap::new())?;
    let t3 = Instant::now();
    let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e3;
    let timing = BTreeMap::from([
        ("load".to_string(), ms(t0, t1)),
        ("features".to_string(), ms(t1, t2)),
        ("nomogram".to_string(), ms(t2, t3)),
        ("total".to_string(), ms(t0, t3)),
    ]);
    if let Some(mx) = metrics {
        for (stage, a, b) in [("load", t0, t1), ("features", t1, t2), ("nomogram", t2, t3)] {
            mx.stage_duration
                .with_label_values(&[stage])
                .observe((b - a).as_secs_f64());
        }
    }
    Ok((p, timing))
}

/// A test hook of the developer build (the appliance has none): `ALNRISK_FAULT_INJECTION=panic:N` makes the first
/// N computes of the process panic, `device:N` fail with a device (CUDA-like) error — faults of ours, which the
/// daemon must try again and never blame on the input.
#[cfg(feature = "tools")]
fn injected_fault() -> Result<()> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static DONE: AtomicU32 = AtomicU32::new(0);
    let Ok(spec) = std::env::var("ALNRISK_FAULT_INJECTION") else {
        return Ok(());
    };
    let (kind, n) = spec.split_once(':').unwrap_or((spec.as_str(), "1"));
    if DONE.fetch_add(1, Ordering::SeqCst) >= n.parse::<u32>().unwrap_or(1) {
        return Ok(());
    }
    match kind {
        "panic" => panic!("injected fault (ALNRISK_FAULT_INJECTION)"),
        "device" => Err(Error::Device(
            "CUDA_ERROR_LAUNCH_FAILED (injected: ALNRISK_FAULT_INJECTION)".into(),
        )),
        _ => Ok(()),
    }
}
