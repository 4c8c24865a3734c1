//! alnrisk: axillary lymph node metastasis risk from breast DCE-MRI, as an edge appliance.
//!
//! The library follows the way one examination's data travels:
//! - [`image`]: the shared 3D volume type (voxels + ITK/LPS geometry);
//! - [`io`]: NRRD and NIfTI readers/writers;
//! - [`radiomics`]: PyRadiomics-compatible features;
//! - [`linalg`]: the small dense linear algebra the features need;
//! - [`error`]: the one error type.
//!
//! Later stages (DICOM ingest, ROI objects, deep features, model, daemon) build on these; see
//! `README.md` for what exists today.

// Numeric kernels index several arrays with one loop variable, mirroring the formulas they implement.
#![allow(clippy::needless_range_loop)]

pub mod deep;
pub mod error;
pub mod image;
pub mod ingest;
pub mod io;
pub mod linalg;
pub mod radiomics;
pub mod rng;
pub mod roi;
pub mod stats;
pub mod synth;

pub use error::{Error, Result};
