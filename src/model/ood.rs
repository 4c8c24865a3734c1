//! Out-of-distribution flags: an input of one examination outside what the bundle was trained on. A flag does not
//! withhold the answer; it tells the reader (and the fleet) that the model was not validated there.
//!
//! Two kinds, told apart by type rather than by a text prefix: a selected feature or nomogram predictor outside
//! its training range ([`OodKind::Feature`]: the patient's business), and an acquisition descriptor outside the
//! training cohort's ([`OodKind::Acquisition`], [`super::acquisition`]: a protocol changed at the scanner, the
//! fleet's business). On the wire (result payload, ledger) a flag is the text it always was:
//! `name: value outside [min, max]`, and `acquisition name: value outside [min, max]`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which kind of input is outside its training range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OodKind {
    /// A selected feature or a nomogram predictor.
    Feature,
    /// An acquisition descriptor (voxel size, intensity scale).
    Acquisition,
}

/// One input outside its training range `[min, max]`.
#[derive(Debug, Clone, PartialEq)]
pub struct OodFlag {
    /// What kind of input.
    pub kind: OodKind,
    /// Its name (a PyRadiomics or deep feature name, a predictor, a descriptor).
    pub name: String,
    /// Its value here.
    pub value: f64,
    /// The training range.
    pub min: f64,
    pub max: f64,
}

/// The text before an acquisition flag's name.
const ACQUISITION_PREFIX: &str = "acquisition ";

impl OodFlag {
    /// A feature or predictor outside its range.
    pub fn feature(name: &str, value: f64, min: f64, max: f64) -> OodFlag {
        OodFlag {
            kind: OodKind::Feature,
            name: name.to_string(),
            value,
            min,
            max,
        }
    }

    /// An acquisition descriptor outside its range.
    pub fn acquisition(name: &str, value: f64, min: f64, max: f64) -> OodFlag {
        OodFlag {
            kind: OodKind::Acquisition,
            ..OodFlag::feature(name, value, min, max)
        }
    }
}

impl fmt::Display for OodFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == OodKind::Acquisition {
            f.write_str(ACQUISITION_PREFIX)?;
        }
        write!(f, "{}: {} outside [{}, {}]", self.name, self.value, self.min, self.max)
    }
}

/// A text that is not a flag as [`OodFlag`]'s `Display` writes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an out-of-distribution flag (`name: value outside [min, max]`)")]
pub struct NotAFlag;

impl FromStr for OodFlag {
    type Err = NotAFlag;

    fn from_str(s: &str) -> Result<OodFlag, NotAFlag> {
        let (kind, rest) = match s.strip_prefix(ACQUISITION_PREFIX) {
            Some(rest) => (OodKind::Acquisition, rest),
            None => (OodKind::Feature, s),
        };
        // the name may hold ": " only if a feature name did; the value part never does
        let (name, range) = rest.rsplit_once(": ").ok_or(NotAFlag)?;
        let (value, bounds) = range.split_once(" outside [").ok_or(NotAFlag)?;
        let (min, max) = bounds
            .strip_suffix(']')
            .and_then(|b| b.split_once(", "))
            .ok_or(NotAFlag)?;
        let num = |t: &str| t.parse::<f64>().map_err(|_| NotAFlag);
        Ok(OodFlag {
            kind,
            name: name.to_string(),
            value: num(value)?,
            min: num(min)?,
            max: num(max)?,
        })
    }
}

impl Serialize for OodFlag {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OodFlag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<OodFlag, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_reads_back_from_the_text_it_writes_and_the_text_is_the_wire_format() {
        let f = OodFlag::feature("original_firstorder_Energy", 1.25e9, 3.0, 7.5e8);
        assert_eq!(
            f.to_string(),
            "original_firstorder_Energy: 1250000000 outside [3, 750000000]"
        );
        let a = OodFlag::acquisition("pixel_spacing_mm", 0.78, 0.7, 0.7);
        assert_eq!(a.to_string(), "acquisition pixel_spacing_mm: 0.78 outside [0.7, 0.7]");
        for flag in [f, a, OodFlag::feature("deep_signature", -0.1 / 3.0, 0.0, 1.0)] {
            assert_eq!(
                flag.to_string().parse::<OodFlag>(),
                Ok(flag.clone()),
                "exact round trip"
            );
            let json = serde_json::to_string(&flag).unwrap();
            assert_eq!(json, format!("\"{flag}\""));
            assert_eq!(serde_json::from_str::<OodFlag>(&json).unwrap(), flag);
        }
        for bad in [
            "",
            "x outside [1, 2]",
            "x: 1 outside [1 2]",
            "x: one outside [1, 2]",
            "x: 1 outside [1, 2",
        ] {
            assert_eq!(bad.parse::<OodFlag>(), Err(NotAFlag), "{bad:?}");
        }
    }
}
