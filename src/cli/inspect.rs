//! `alnrisk inspect`: what a DICOM folder holds (studies, series, phases, geometry, ROI objects, problems).

use std::path::Path;
use std::process::ExitCode;

pub(super) fn inspect(dir: &Path) -> anyhow::Result<ExitCode> {
    let scan = alnrisk::ingest::scan_dir(dir)?;
    println!("{}", dir.display());
    for study in &scan.studies {
        println!("study {}", study.uid);
        for s in &study.series {
            let g = &s.geometry;
            println!(
                "  series {} #{} '{}' {} — {} phase(s) × {} slices (split by {:?})",
                s.series_uid,
                s.series_number.map(|n| n.to_string()).unwrap_or_default(),
                s.description,
                s.modality,
                s.phases.len(),
                g.size[2],
                s.rule
            );
            println!(
                "    grid {}×{}×{}, spacing ({:.4}, {:.4}, {:.4}) mm, origin ({:.3}, {:.3}, {:.3})",
                g.size[0],
                g.size[1],
                g.size[2],
                g.spacing[0],
                g.spacing[1],
                g.spacing[2],
                g.origin[0],
                g.origin[1],
                g.origin[2]
            );
            let o = g.orientation_cosines();
            let n = [g.direction[0][2], g.direction[1][2], g.direction[2][2]];
            println!("    row {:.4?} col {:.4?} normal {n:.4?}", &o[..3], &o[3..]);
            for w in &s.warnings {
                println!("    warning: {w}");
            }
        }
        if study.series.iter().all(|s| s.phases.len() == 1)
            && let Some(l) = alnrisk::ingest::series::link_dce(study)
        {
            println!("  → {}", l.description);
        }
    }
    for (path, class) in &scan.roi_objects {
        let kind = class.name();
        println!("ROI object {kind}: {}", path.display());
        // what tells two revisions of an outline apart (the daemon's rule: the newer one is used)
        match alnrisk::roi::references(path) {
            Ok(r) => println!(
                "  drawn {} · SOPInstanceUID {} · references {} series, {} instance(s)",
                r.drawn_at
                    .as_deref()
                    .map_or_else(|| "(not stated)".to_string(), readable_time),
                r.sop_instance_uid.as_deref().unwrap_or("(none)"),
                r.series_uids.len(),
                r.instance_uids.len()
            ),
            Err(e) => println!("  unreadable: {e}"),
        }
    }
    for p in &scan.problems {
        println!("problem: {p}");
    }
    println!(
        "{} study(ies), {} series, {} ROI object(s), {} problem(s)",
        scan.studies.len(),
        scan.studies.iter().map(|s| s.series.len()).sum::<usize>(),
        scan.roi_objects.len(),
        scan.problems.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `YYYYMMDDHHMMSS.ffffff` ([`alnrisk::roi::dicom_date_time`]) as `YYYY-MM-DD HH:MM:SS`.
fn readable_time(t: &str) -> String {
    match (
        t.get(..4),
        t.get(4..6),
        t.get(6..8),
        t.get(8..10),
        t.get(10..12),
        t.get(12..14),
    ) {
        (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s)) => format!("{y}-{mo}-{d} {h}:{mi}:{s}"),
        _ => t.to_string(),
    }
}
