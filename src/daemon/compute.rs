//! The worker's job: one ready series → image, ROI, features, nomogram (the same [`Predictor`] as
//! `alnrisk predict`), with the time per stage.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use super::assemble::ReadySeries;
use super::metrics::Metrics;
use crate::error::{Error, Result};
use crate::model::Predictor;

/// Compute one series (blocking): load, features, nomogram. Returns the prediction and the stage times (ms).
pub fn compute_series(
    predictor: &Predictor,
    ready: &ReadySeries,
    metrics: Option<&Metrics>,
) -> Result<(crate::model::Prediction, BTreeMap<String, f64>)> {
    let m = &predictor.bundle.manifest;
    let t0 = Instant::now();
    let files = ready.files();
    let dir = files
        .first()
        .and_then(|f| f.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let (studies, errors) = crate::ingest::series::assemble(&dir, ready.instances.clone());
    let not_assembled = |errors: Vec<Error>, reason: &str| {
        errors.into_iter().next().unwrap_or_else(|| Error::Series {
            series: "(daemon)".into(),
            dir: dir.clone(),
            reason: reason.into(),
        })
    };
    let series = if ready.member_series.len() > 1 {
        // A linked DCE set: link again from the same headers; the assembler linked exactly these members.
        studies
            .iter()
            .find(|s| s.uid == ready.study_uid)
            .and_then(|s| crate::ingest::series::link_with(s, &ready.series_uid))
            .filter(|l| l.member_series == ready.member_series)
            .ok_or_else(|| not_assembled(errors, "the linked DCE set could not be assembled again"))?
    } else {
        studies
            .into_iter()
            .flat_map(|s| s.series)
            .find(|s| s.series_uid == ready.series_uid)
            .ok_or_else(|| not_assembled(errors, "series could not be assembled"))?
    };
    let image = m.phase.load(&series)?;
    let roi = crate::roi::load(&ready.roi, &series, &m.roi.options())?;
    let case = crate::case::LoadedCase {
        image,
        mask: roi.volume,
        notes: Vec::new(),
    };
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
