//! Writers of synthetic DICOM data, mirroring what [`crate::ingest`] and [`crate::roi`] read. Today: the
//! DICOM object writers the ingestion tests use ([`dicom`]); the synthetic cohort itself (issue 5) builds on
//! them.

pub mod dicom;
