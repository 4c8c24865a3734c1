//! Which image the features are computed on.
//!
//! Default: **first post-contrast phase** (phase 2). The study does not name its phase; radiomics of breast
//! DCE-MRI most often uses the early post-contrast phase, where tumour enhancement peaks relative to
//! parenchyma, and the PyRadiomics 3.1.0 reference for UCSF-BR-06 was made on phase 2.

use std::str::FromStr;

use super::pixels::load_phase;
use super::series::Series;
use crate::error::{Error, Result};
use crate::image::{PixelType, Volume};

/// A phase choice: `N` (1-based), `first-post-contrast`, or a subtraction `A-B`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum PhaseSelector {
    /// Phase `N`, 1-based.
    Index(usize),
    /// Phase 2 (the first after the pre-contrast phase 1).
    #[default]
    FirstPostContrast,
    /// Phase `A` minus phase `B`.
    Subtraction(usize, usize),
}

impl FromStr for PhaseSelector {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        if s == "first-post-contrast" {
            return Ok(PhaseSelector::FirstPostContrast);
        }
        let num = |x: &str| x.trim().parse::<usize>().ok().filter(|&n| n >= 1);
        if let Some((a, b)) = s.split_once('-') {
            if let (Some(a), Some(b)) = (num(a), num(b)) {
                return Ok(PhaseSelector::Subtraction(a, b));
            }
        } else if let Some(n) = num(s) {
            return Ok(PhaseSelector::Index(n));
        }
        Err(format!(
            "'{s}' is not a phase: use N (1-based), first-post-contrast, or A-B"
        ))
    }
}

impl std::fmt::Display for PhaseSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PhaseSelector::Index(n) => write!(f, "{n}"),
            PhaseSelector::FirstPostContrast => write!(f, "first-post-contrast"),
            PhaseSelector::Subtraction(a, b) => write!(f, "{a}-{b}"),
        }
    }
}

impl PhaseSelector {
    /// Load the selected image of a series. A single-phase series satisfies only `1` (and
    /// `first-post-contrast` is then an error: there is no contrast phase to choose).
    pub fn load(&self, series: &Series) -> Result<Volume<f64>> {
        let check = |n: usize| {
            if n == 0 || n > series.phases.len() {
                Err(Error::Series {
                    series: series.series_uid.clone(),
                    dir: series.dir.clone(),
                    reason: format!(
                        "phase {n} requested ({self}), the series has {} phase(s)",
                        series.phases.len()
                    ),
                })
            } else {
                Ok(n - 1)
            }
        };
        match *self {
            PhaseSelector::Index(n) => load_phase(series, check(n)?),
            PhaseSelector::FirstPostContrast => load_phase(series, check(2)?),
            PhaseSelector::Subtraction(a, b) => {
                let mut va = load_phase(series, check(a)?)?;
                let vb = load_phase(series, check(b)?)?;
                va.data.iter_mut().zip(&vb.data).for_each(|(x, y)| *x -= *y);
                // the difference of integers stays an integer but needs a signed type
                va.pixel_type = if va.pixel_type.is_integer() {
                    PixelType::I32
                } else {
                    PixelType::F64
                };
                Ok(va)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_selectors() {
        assert_eq!("2".parse::<PhaseSelector>(), Ok(PhaseSelector::Index(2)));
        assert_eq!("2-1".parse::<PhaseSelector>(), Ok(PhaseSelector::Subtraction(2, 1)));
        assert_eq!(
            "first-post-contrast".parse::<PhaseSelector>(),
            Ok(PhaseSelector::FirstPostContrast)
        );
        assert!("0".parse::<PhaseSelector>().is_err());
        assert!("x".parse::<PhaseSelector>().is_err());
    }
}
