//! What a fitted model is and how it predicts: [`signature`] (LASSO-weighted feature combinations),
//! [`nomogram`] (logistic regression on the points scale), [`bundle`] (the signed folder `fit` writes and the
//! daemon serves), [`acquisition`] (voxel size and intensity scale, and whether a series lies outside the
//! acquisitions a bundle was fitted on) and [`predict`] (one examination → probability, points,
//! out-of-distribution flags), with [`reported`] (the LN read and the other factors a radiologist reports). `fit` and
//! the daemon both call [`predict::Predictor`], so the appliance computes exactly what was validated.

pub mod acquisition;
pub mod bundle;
pub mod ln_read;
pub mod nomogram;
pub mod ood;
pub mod predict;
pub mod reported;
pub mod signature;

pub use bundle::{Bundle, Manifest, Trust};
pub use ln_read::LnRead;
pub use nomogram::{Nomogram, NomogramResult};
pub use ood::{OodFlag, OodKind};
pub use predict::{Prediction, Predictor};
pub use reported::Reported;
pub use signature::Signature;
