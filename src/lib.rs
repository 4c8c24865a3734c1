//! alnrisk: axillary lymph node metastasis risk from breast DCE-MRI, as an edge appliance.
//!
//! The library follows the way one examination's data travels:
//! - [`ingest`]: DICOM files → typed instances ([`ingest::InstanceKind`]) → studies, series, dynamic phases,
//!   volumes ([`ingest::PhaseSelector`]);
//! - [`roi`]: SEG, RTSTRUCT and label maps → a mask on the series grid;
//! - [`case`]: the one path from a series (or image file) and its ROI to the voxels every command and the daemon
//!   use;
//! - [`radiomics`]: PyRadiomics-compatible features; [`deep`]: VGG-16 features (candle);
//! - [`model`]: signatures, nomogram, the signed bundle and the one [`model::Predictor`];
//! - [`board`]: `alnrisk board`, the department's wall screen of every box, from MQTT alone; [`web`]: what its page
//!   and the daemon's console page share (login, TLS);
//! - [`daemon`]: `alnrisk serve`, the scanner-side appliance (watch → assemble → compute → spool → MQTT): a
//!   core state machine that decides and does no I/O, a driver loop that does the I/O, tokio for the network;
//! - beside the model, with the `tools` feature (the default; the appliance is built without it): `fit` (the
//!   study's pipeline), `classify`, `stats`, `synth` (the synthetic cohort and DICOM writers), `webdriver` (the
//!   headless browser of the page tests and `bench-e2e`);
//! - underneath: [`image`] (the one volume type, ITK/LPS geometry), [`io`] (NRRD/NIfTI), [`linalg`], [`rng`],
//!   [`progress`], [`time`], [`error`].

// Numeric kernels index several arrays with one loop variable, mirroring the formulas they implement.
#![allow(clippy::needless_range_loop)]

pub mod board;
pub mod case;
#[cfg(feature = "tools")]
pub mod classify;
pub mod daemon;
pub mod deep;
pub mod error;
#[cfg(feature = "tools")]
pub mod fit;
pub mod image;
pub mod ingest;
pub mod io;
pub mod linalg;
pub mod model;
pub mod progress;
pub mod radiomics;
pub mod rng;
pub mod roi;
#[cfg(feature = "tools")]
pub mod stats;
#[cfg(feature = "tools")]
pub mod synth;
pub mod time;
pub mod web;
#[cfg(feature = "tools")]
pub mod webdriver;

pub use error::{Error, Result};
