//! alnrisk: axillary lymph node metastasis risk from breast DCE-MRI, as an edge appliance.
//!
//! The library follows the way one examination's data travels:
//! - [`ingest`]: DICOM files → studies, series, dynamic phases, volumes ([`ingest::PhaseSelector`]);
//! - [`roi`]: SEG, RTSTRUCT and label maps → a mask on the series grid;
//! - [`radiomics`]: PyRadiomics-compatible features; [`deep`]: VGG-16 features (candle);
//! - [`synth`]: the synthetic cohort and DICOM writers (what ingest reads); [`stats`]: shared statistics;
//! - underneath: [`image`] (the one volume type, ITK/LPS geometry), [`io`] (NRRD/NIfTI), [`linalg`], [`rng`],
//!   [`error`].
//!
//! Model fitting, the bundle and the daemon build on these (see `README.md` for what exists today).

// Numeric kernels index several arrays with one loop variable, mirroring the formulas they implement.
#![allow(clippy::needless_range_loop)]

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

pub use error::{Error, Result};
