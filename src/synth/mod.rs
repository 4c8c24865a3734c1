//! The synthetic DCE-MRI cohort (the study's patients are private): [`phantom`] renders one examination from a
//! patient's latent traits, [`cohort`] draws patients from a documented model and writes them as a console would
//! export them, [`dicom`] holds the DICOM writers (mirroring what [`crate::ingest`] and [`crate::roi`] read),
//! [`contour`] turns ROI slices into RTSTRUCT polygons, [`replay`] simulates a console export into a watched
//! folder, [`revision`] writes a radiologist's corrected SEG, and [`crate::rng`] is the deterministic generator.
//! Everything written says it is synthetic.

pub mod cohort;
pub mod contour;
pub mod dicom;
pub mod phantom;
pub mod replay;
pub mod revision;
