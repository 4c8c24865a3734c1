//! The MRI-reported axillary lymph node status, the nomogram's reported predictor beside the two signatures
//! (`mri_ln_status`): [`LnRead`] when the radiologist has read it, `Option<LnRead>` everywhere it may not be read
//! yet (`None` = unknown). One type from the `cmd/ln-status` command to the ledger and the result message.
//!
//! On the wire and in the ledger it is `"positive"` / `"negative"` (`"unknown"` in a result message while it is
//! not read). Commands may also say `1` / `0`, `true` / `false`, `"yes"` / `"no"` (what LN bridges send); ledgers
//! written before this type stored `1.0` / `0.0`, which still read.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A radiologist's MRI LN read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LnRead {
    /// No suspicious axillary node on MRI (predictor value 0).
    Negative,
    /// Suspicious axillary node(s) on MRI (predictor value 1).
    Positive,
}

impl LnRead {
    /// The nomogram's predictor value: 0 or 1.
    pub fn value(self) -> f64 {
        match self {
            LnRead::Negative => 0.0,
            LnRead::Positive => 1.0,
        }
    }

    /// `negative` / `positive`.
    pub fn name(self) -> &'static str {
        match self {
            LnRead::Negative => "negative",
            LnRead::Positive => "positive",
        }
    }

    /// The read a JSON value says, leniently (`"positive"`, `"1"`, `"yes"`, `1`, `true`, and their negatives,
    /// case and spaces ignored); `None` when it says neither.
    pub fn from_json(v: &serde_json::Value) -> Option<LnRead> {
        use serde_json::Value;
        match v {
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "positive" | "1" | "yes" => Some(LnRead::Positive),
                "negative" | "0" | "no" => Some(LnRead::Negative),
                _ => None,
            },
            Value::Number(n) => match n.as_f64() {
                Some(x) if (x - 1.0).abs() < 1e-9 => Some(LnRead::Positive),
                Some(x) if x.abs() < 1e-9 => Some(LnRead::Negative),
                _ => None,
            },
            Value::Bool(b) => Some(if *b { LnRead::Positive } else { LnRead::Negative }),
            _ => None,
        }
    }

    /// The text of a possibly unknown read: `positive`, `negative` or `unknown`.
    pub fn status_text(read: Option<LnRead>) -> &'static str {
        read.map_or("unknown", LnRead::name)
    }
}

impl std::fmt::Display for LnRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for LnRead {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for LnRead {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        LnRead::from_json(&v).ok_or_else(|| serde::de::Error::custom(format!("{v} is not an LN read")))
    }
}

/// Serde for `Option<LnRead>` as a status text (`"unknown"` for `None`), as a result message carries it.
pub mod status {
    use super::LnRead;
    use serde::{Deserialize, Deserializer, Serializer};

    /// `positive` / `negative` / `unknown`.
    pub fn serialize<S: Serializer>(read: &Option<LnRead>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(LnRead::status_text(*read))
    }

    /// The inverse of [`serialize`]; anything but a read is unknown.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<LnRead>, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(LnRead::from_json(&v))
    }
}

/// Serde for a command's `mri_ln_status`: any JSON value, read leniently; one that is no read is `None` (the
/// daemon reports it as a bad LN read rather than refusing the whole message unread).
pub mod lenient {
    use super::LnRead;
    use serde::{Deserialize, Deserializer, Serializer};

    /// As [`super::status::serialize`].
    pub fn serialize<S: Serializer>(read: &Option<LnRead>, s: S) -> Result<S::Ok, S::Error> {
        super::status::serialize(read, s)
    }

    /// [`LnRead::from_json`] of whatever value is there.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<LnRead>, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(LnRead::from_json(&v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_round_trip_and_old_ledger_numbers_and_bridge_spellings_still_read() {
        for r in [LnRead::Negative, LnRead::Positive] {
            let v = serde_json::to_value(r).unwrap();
            assert_eq!(v, json!(r.name()));
            assert_eq!(serde_json::from_value::<LnRead>(v).unwrap(), r);
        }
        for (v, want) in [
            (json!(1.0), Some(LnRead::Positive)),
            (json!(0), Some(LnRead::Negative)),
            (json!(" YES "), Some(LnRead::Positive)),
            (json!("no"), Some(LnRead::Negative)),
            (json!(false), Some(LnRead::Negative)),
            (json!(0.5), None),
            (json!("maybe"), None),
            (json!(null), None),
        ] {
            assert_eq!(LnRead::from_json(&v), want, "{v}");
        }
        assert!(serde_json::from_value::<LnRead>(json!("maybe")).is_err());
        assert_eq!(LnRead::Positive.value(), 1.0);
        assert_eq!(LnRead::Negative.value(), 0.0);
        assert_eq!(LnRead::status_text(None), "unknown");
    }
}
