//! MQTT payloads, schema v1 (`firmware-config/schema/result-v1.schema.json` is the JSON Schema dashboards read):
//! the result of one study, its update once the MRI LN read is known, status and events. The study is named by
//! its [`StudyKey`], an HMAC-SHA256 of StudyInstanceUID under the site secret: a dashboard can link messages of
//! one study, but nothing in a message or a topic reveals the UID. Identifiers (accession number, patient name)
//! appear only when `phi.include_identifiers = true`.

use std::collections::BTreeMap;
use std::path::Path;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{Error, Result};
use crate::model::{LnRead, NomogramResult, Prediction};

/// Schema name and version carried by every result message.
pub const RESULT_SCHEMA: &str = "alnrisk.result/1";
/// Schema of status messages.
pub const STATUS_SCHEMA: &str = "alnrisk.status/1";
/// Schema of event messages.
pub const EVENT_SCHEMA: &str = "alnrisk.event/1";

/// What a [`Key`] keys: its domain separates the HMACs of different things under one secret.
pub trait KeyKind {
    /// Prefix of the keyed text (`roi:`, `dir:`; empty for UIDs, as the keys have always been made).
    const DOMAIN: &'static str;
}

macro_rules! key_kind {
    ($(#[$doc:meta])* $kind:ident, $alias:ident, $domain:literal) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub enum $kind {}
        impl KeyKind for $kind {
            const DOMAIN: &'static str = $domain;
        }
        $(#[$doc])*
        pub type $alias = Key<$kind>;
    };
}

key_kind!(
    /// The key of a study: HMAC of StudyInstanceUID.
    Study, StudyKey, ""
);
key_kind!(
    /// The key of a series: HMAC of SeriesInstanceUID.
    SeriesOf, SeriesKey, ""
);
key_kind!(
    /// The key of a ROI object's identity ([`super::assemble::RoiCandidate::id`]: a SOPInstanceUID, or a label
    /// map's digest), `roi:`-separated from the UIDs.
    Roi, RoiKey, "roi:"
);
key_kind!(
    /// The key of a folder of the export folder (its path relative to it, `/`-separated), `dir:`-separated:
    /// folder names may carry a patient's name, so the ledger keeps only this.
    Folder, FolderKey, "dir:"
);

/// HMAC-SHA256 of an identifier under the site secret, 64 hex digits (fixed size: a `heapless` string on the
/// hot path), typed by what it keys ([`StudyKey`], [`SeriesKey`], [`RoiKey`], [`FolderKey`]) so that one cannot be
/// passed for another. On the wire it is the bare hex text.
pub struct Key<K>(heapless::String<64>, std::marker::PhantomData<K>);

impl<K: KeyKind> Key<K> {
    /// Key of `id` under `secret` (the kind's domain prefixed).
    pub fn of(secret: &[u8], id: &str) -> Key<K> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
        // the domain and the id as one text, trimmed as a whole: the keys are bit for bit those of earlier
        // versions, so a ledger written by them still refuses what it answered
        let text = format!("{}{id}", K::DOMAIN);
        mac.update(text.trim_end_matches('\0').trim().as_bytes());
        let hex = hex::encode(mac.finalize().into_bytes());
        let mut s = heapless::String::new();
        // 64 hex digits always fit.
        let _ = s.push_str(&hex);
        Key(s, std::marker::PhantomData)
    }
}

impl<K> Key<K> {
    /// Parse a key from text (64 hex digits).
    pub fn parse(text: &str) -> Option<Key<K>> {
        let t = text.trim();
        if t.len() != 64 || !t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut s = heapless::String::new();
        s.push_str(&t.to_ascii_lowercase()).ok()?;
        Some(Key(s, std::marker::PhantomData))
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key's 32 bytes: the compact form an index holds (the ledger's, for months of answers).
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        // always 64 hex digits (made by `of` or checked by `parse`)
        let _ = hex::decode_to_slice(self.0.as_bytes(), &mut b);
        b
    }

    /// The key of these 32 bytes ([`Key::to_bytes`]).
    pub fn from_bytes(bytes: &[u8; 32]) -> Key<K> {
        let mut s = heapless::String::new();
        let _ = s.push_str(&hex::encode(bytes));
        Key(s, std::marker::PhantomData)
    }
}

impl FolderKey {
    /// Key of a folder by its path relative to the export folder.
    pub fn of_path(secret: &[u8], relative: &Path) -> FolderKey {
        let text: Vec<String> = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        FolderKey::of(secret, &text.join("/"))
    }
}

impl<K> Clone for Key<K> {
    fn clone(&self) -> Self {
        Key(self.0.clone(), std::marker::PhantomData)
    }
}
impl<K> PartialEq for Key<K> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}
impl<K> Eq for Key<K> {}
impl<K> PartialOrd for Key<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<K> Ord for Key<K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}
impl<K> std::hash::Hash for Key<K> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.hash(h)
    }
}
impl<K> std::fmt::Debug for Key<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.0)
    }
}
impl<K> std::fmt::Display for Key<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl<K> Serialize for Key<K> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
impl<'de, K> Deserialize<'de> for Key<K> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Key::parse(&text).ok_or_else(|| serde::de::Error::custom("not a 64-hex-digit key"))
    }
}

/// The per-site secret: read from `path`, or created there (32 random bytes, mode 0600) when missing.
pub fn load_or_create_secret(path: &Path) -> Result<Vec<u8>> {
    if let Ok(text) = std::fs::read_to_string(path) {
        let bytes = hex::decode(text.trim()).map_err(|e| Error::Config {
            file: path.to_path_buf(),
            key: "phi.study_key_secret_file".into(),
            reason: format!("not hex: {e}"),
        })?;
        if bytes.len() < 16 {
            return Err(Error::Config {
                file: path.to_path_buf(),
                key: "phi.study_key_secret_file".into(),
                reason: "secret shorter than 16 bytes".into(),
            });
        }
        return Ok(bytes);
    }
    let secret = crate::rng::os_random::<32>()?.to_vec();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    super::fsio::write_durable(path, hex::encode(&secret).as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    Ok(secret)
}

/// Bundle identity in every message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleRef {
    /// Bundle id.
    pub id: String,
    /// Bundle version.
    pub version: String,
    /// sha256 of `bundle.json`.
    pub sha256: String,
}

/// The nomogram's answer under one set of predictor values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskFigures {
    /// Probability of ALN metastasis.
    pub probability: f64,
    /// `high` (probability ≥ cutoff) or `low`.
    pub class: String,
    /// Points per predictor.
    pub points: BTreeMap<String, f64>,
    /// Total points.
    pub total_points: f64,
}

impl RiskFigures {
    /// From the nomogram's result.
    pub fn of(r: &NomogramResult) -> RiskFigures {
        RiskFigures {
            probability: r.probability,
            class: if r.positive { "high" } else { "low" }.into(),
            points: r.points.clone(),
            total_points: r.total_points,
        }
    }
}

/// Identifiers, only with `phi.include_identifiers = true`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identifiers {
    /// AccessionNumber.
    pub accession_number: String,
    /// PatientName.
    pub patient_name: String,
}

/// What a result-topic message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    /// The first answer for a series.
    Result,
    /// The same images re-evaluated once the MRI LN read arrived.
    Update,
    /// The series recomputed with a revised ROI (a newer SEG, RTSTRUCT or label map for it).
    Revision,
}

impl MessageKind {
    /// As in the payload.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Result => "result",
            MessageKind::Update => "update",
            MessageKind::Revision => "revision",
        }
    }
}

/// `result` topic payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultMessage {
    /// [`RESULT_SCHEMA`].
    pub schema: String,
    /// Unique id of this message (deterministic: the same kind, study, series, ROI, bundle, read and preceding
    /// message give the same id, so a result computed again after a crash repeats its id).
    pub message_id: String,
    /// `result` (first answer), `update` (the MRI LN read arrived) or `revision` (recomputed with a revised ROI).
    pub kind: MessageKind,
    /// For an update or a revision: the message id of the series' first result, which it replaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updates: Option<String>,
    /// HMAC of the ROI object's identity (SOPInstanceUID, or a label map's digest): which ROI this answer used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roi_key: Option<RoiKey>,
    /// The bundle that computed it.
    pub bundle: BundleRef,
    /// HMAC of StudyInstanceUID.
    pub study_key: StudyKey,
    /// HMAC of SeriesInstanceUID.
    pub series_key: SeriesKey,
    /// `negative`, `positive` or `unknown` (not read yet).
    #[serde(with = "crate::model::ln_read::status")]
    pub mri_ln_status: Option<LnRead>,
    /// The other reported factors the answer used, by cohort column (bundles whose nomogram names any).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reported_factors: BTreeMap<String, String>,
    /// The reported factors still missing (no `risk` and no `scenarios` until they arrive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing_factors: Vec<String>,
    /// Probability cutoff of the class.
    pub cutoff: f64,
    /// The answer when every predictor is known (null while the LN read is unknown).
    pub risk: Option<RiskFigures>,
    /// Image-based answers under both reads (present while the read is unknown).
    pub scenarios: BTreeMap<String, RiskFigures>,
    /// Signature values.
    pub signatures: BTreeMap<String, f64>,
    /// Inputs outside the training range.
    pub out_of_distribution: Vec<crate::model::OodFlag>,
    /// Time per stage (ms): `load`, `features`, `nomogram`, `total`, and `last_file_to_result`.
    pub timing_ms: BTreeMap<String, f64>,
    /// RFC 3339 UTC: `first_file`, `last_file`, `computed`.
    pub timestamps: BTreeMap<String, String>,
    /// Only with `phi.include_identifiers = true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifiers: Option<Identifiers>,
}

/// Message id: 32 hex digits of sha256 over the parts.
pub fn message_id(parts: &[&str]) -> String {
    use sha2::Digest;
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..16])
}

/// Which answer a [`ResultMessage`] is: the series, the ROI and the LN read it was computed from.
#[derive(Debug, Clone)]
pub struct AnswerOf {
    /// HMAC of StudyInstanceUID.
    pub study_key: StudyKey,
    /// HMAC of SeriesInstanceUID.
    pub series_key: SeriesKey,
    /// HMAC of the ROI's identity (`None` only for answers recorded before ROIs were identified).
    pub roi_key: Option<RoiKey>,
    /// What was reported: the MRI LN read and any other factor.
    pub reported: crate::model::Reported,
    /// The message id of the series' latest message before this one (`None` for a first result). Part of the id:
    /// an LN read that goes positive → negative → positive must not repeat the first update's id, which a
    /// dashboard de-duplicating by id would drop.
    pub after: Option<String>,
}

impl ResultMessage {
    /// Build the message of a prediction: a `Result` has no `updates`; an update or a revision names the
    /// series' first result.
    pub fn new(p: &Prediction, of: AnswerOf, kind: MessageKind, updates: Option<String>) -> ResultMessage {
        let factors: Vec<String> = of.reported.factors.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut parts = vec![
            kind.as_str(),
            of.study_key.as_str(),
            of.series_key.as_str(),
            of.roi_key.as_ref().map_or("", RoiKey::as_str),
            &p.bundle_sha256,
            LnRead::status_text(of.reported.ln),
            of.after.as_deref().unwrap_or(""),
        ];
        // (none for a bundle without other factors, so that such ids stay what they were)
        parts.extend(factors.iter().map(String::as_str));
        let message_id = message_id(&parts);
        let AnswerOf {
            study_key,
            series_key,
            roi_key,
            reported,
            ..
        } = of;
        ResultMessage {
            schema: RESULT_SCHEMA.into(),
            message_id,
            kind,
            updates,
            roi_key,
            bundle: BundleRef {
                id: p.bundle_id.clone(),
                version: p.bundle_version.clone(),
                sha256: p.bundle_sha256.clone(),
            },
            study_key,
            series_key,
            mri_ln_status: reported.ln,
            reported_factors: reported.factors,
            missing_factors: p.missing.clone(),
            cutoff: p.cutoff,
            risk: p.result.as_ref().map(RiskFigures::of),
            scenarios: p
                .scenarios
                .iter()
                .map(|(k, v)| (k.clone(), RiskFigures::of(v)))
                .collect(),
            signatures: p.signatures.clone(),
            out_of_distribution: p.out_of_distribution.clone(),
            timing_ms: BTreeMap::new(),
            timestamps: BTreeMap::new(),
            identifiers: None,
        }
    }
}

/// `status` topic payload (retained).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusMessage {
    /// [`STATUS_SCHEMA`].
    pub schema: String,
    /// `online`, or `offline` (the last will, and a clean stop).
    pub state: DeviceState,
    /// Bundle served.
    pub bundle: Option<BundleRef>,
    /// alnrisk version.
    pub alnrisk_version: String,
    /// RFC 3339 UTC.
    pub at: String,
}

/// Whether a box is serving, in its retained `status` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceState {
    /// Connected and serving.
    Online,
    /// Stopped, or gone (the broker publishes the last will).
    Offline,
}

pub use super::event::Severity;

/// `event` topic payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMessage {
    /// [`EVENT_SCHEMA`].
    pub schema: String,
    /// How bad it is.
    pub severity: Severity,
    /// What happened (`quarantined`, `waiting_for_roi`, `spool_full`, …).
    pub event: super::event::EventKind,
    /// Human-readable detail (file names are reduced to their name within the export folder; no UIDs).
    pub detail: String,
    /// The study concerned, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub study_key: Option<StudyKey>,
    /// RFC 3339 UTC.
    pub at: String,
}

/// The longest event detail, in bytes (longer ones are cut at a character boundary and end with `…`): an event
/// fits the event spool's 4 KiB per entry with room for the rest.
pub const MAX_DETAIL_BYTES: usize = 2048;

impl EventMessage {
    /// A new event of `event` now, with its kind's severity (the detail cut to [`MAX_DETAIL_BYTES`]).
    pub fn new(event: super::event::EventKind, detail: impl Into<String>, study_key: Option<StudyKey>) -> EventMessage {
        let mut detail = detail.into();
        if detail.len() > MAX_DETAIL_BYTES {
            let mut end = MAX_DETAIL_BYTES - '…'.len_utf8();
            while !detail.is_char_boundary(end) {
                end -= 1;
            }
            detail.truncate(end);
            detail.push('…');
        }
        EventMessage {
            schema: EVENT_SCHEMA.into(),
            severity: event.severity(),
            event,
            detail,
            study_key,
            at: crate::time::utc_now(),
        }
    }
}

/// `cmd/ln-status` payload (and the sidecar file `*.ln.json` in the export folder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LnStatusCommand {
    /// The study's key (as published).
    #[serde(default)]
    pub study_key: Option<String>,
    /// Or, in a sidecar file on the box only, the StudyInstanceUID itself.
    #[serde(default)]
    pub study_instance_uid: Option<String>,
    /// `positive` / `negative` (or 1 / 0, true / false, yes / no); `None` when it says none of these, or is
    /// absent (a command that reports other factors only).
    #[serde(default, with = "crate::model::ln_read::lenient")]
    pub mri_ln_status: Option<LnRead>,
    /// Other reported factors the served nomogram names, by cohort column: a number, or a training level
    /// (`{"tumor_size_cm": 2.4}`); checked against the bundle ([`crate::model::reported::FactorNeed::accept`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub factors: BTreeMap<String, serde_json::Value>,
}

impl LnStatusCommand {
    /// The read, if it says one.
    pub fn value(&self) -> Option<LnRead> {
        self.mri_ln_status
    }

    /// The study key, from the key or the UID.
    pub fn key(&self, secret: &[u8]) -> Option<StudyKey> {
        if let Some(k) = &self.study_key {
            return StudyKey::parse(k);
        }
        self.study_instance_uid.as_deref().map(|u| StudyKey::of(secret, u))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(name: &str) -> jsonschema::Validator {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("firmware-config/schema")
            .join(name);
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        jsonschema::validator_for(&v).unwrap()
    }

    fn errors(s: &jsonschema::Validator, v: &serde_json::Value) -> Vec<String> {
        s.iter_errors(v).map(|e| e.to_string()).collect()
    }

    #[test]
    fn every_event_kind_and_status_validates_against_its_schema_and_a_wrong_severity_does_not() {
        use super::super::event::EventKind;
        let events = schema("event-v1.schema.json");
        let key = StudyKey::of(b"s", "1.2.3");
        for k in EventKind::ALL {
            let long = "ü".repeat(3 * MAX_DETAIL_BYTES);
            for (detail, study) in [("a detail", Some(key.clone())), (long.as_str(), None)] {
                let m = EventMessage::new(k, detail, study);
                assert!(m.detail.len() <= MAX_DETAIL_BYTES, "{k}: cut");
                let v = serde_json::to_value(&m).unwrap();
                assert_eq!(errors(&events, &v), Vec::<String>::new(), "{v}");
                // the schema ties each kind to its one severity
                for other in ["info", "warning", "error", "alarm"] {
                    if other != v["severity"] {
                        let mut bad = v.clone();
                        bad["severity"] = other.into();
                        assert!(!events.is_valid(&bad), "{k} as {other} must be refused");
                    }
                }
            }
        }
        let mut unknown = serde_json::to_value(EventMessage::new(EventKind::DiskLow, "x", None)).unwrap();
        unknown["event"] = "something_new".into();
        assert!(!events.is_valid(&unknown), "a kind the schema does not list");
        let status = schema("status-v1.schema.json");
        for state in [DeviceState::Online, DeviceState::Offline] {
            let m = StatusMessage {
                schema: STATUS_SCHEMA.into(),
                state,
                bundle: Some(BundleRef {
                    id: "0123456789abcdef".into(),
                    version: "1.0.0".into(),
                    sha256: "ab".repeat(32),
                }),
                alnrisk_version: env!("CARGO_PKG_VERSION").into(),
                at: crate::time::utc_now(),
            };
            let v = serde_json::to_value(&m).unwrap();
            assert_eq!(errors(&status, &v), Vec::<String>::new(), "{v}");
        }
        let ln = schema("ln-status-v1.schema.json");
        let cmd = serde_json::json!({"study_key": key.as_str(), "mri_ln_status": "positive"});
        assert!(ln.is_valid(&cmd));
        let parsed: LnStatusCommand = serde_json::from_value(cmd).unwrap();
        assert_eq!(parsed.value(), Some(LnRead::Positive));
        assert!(!ln.is_valid(&serde_json::json!({"study_key": "DOE^JANE", "mri_ln_status": "positive"})));
    }

    #[test]
    fn study_key_is_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let k = StudyKey::of(b"Jefe", "what do ya want for nothing?");
        assert_eq!(
            k.as_str(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(StudyKey::parse(k.as_str()), Some(k));
        // a ROI's and a folder's keys are those earlier versions wrote into ledgers (domain-prefixed text)
        assert_eq!(
            RoiKey::of(b"k", "1.2.3").as_str(),
            StudyKey::of(b"k", "roi:1.2.3").as_str()
        );
        assert_eq!(
            FolderKey::of_path(b"k", Path::new("DOE^JANE/dce")).as_str(),
            StudyKey::of(b"k", "dir:DOE^JANE/dce").as_str()
        );
        assert_ne!(
            RoiKey::of(b"k", "1.2.3").as_str(),
            SeriesKey::of(b"k", "1.2.3").as_str()
        );
        assert_eq!(
            SeriesKey::of(b"k", "1.2.3").as_str(),
            StudyKey::of(b"k", "1.2.3").as_str()
        );
        assert_eq!(StudyKey::parse("xyz"), None);
    }

    #[test]
    fn ln_command_accepts_words_and_numbers() {
        let c: LnStatusCommand = serde_json::from_str(r#"{"study_key":"00","mri_ln_status":"Positive"}"#).unwrap();
        assert_eq!(c.value(), Some(LnRead::Positive));
        let c: LnStatusCommand = serde_json::from_str(r#"{"study_key":"00","mri_ln_status":0}"#).unwrap();
        assert_eq!(c.value(), Some(LnRead::Negative));
        let c: LnStatusCommand = serde_json::from_str(r#"{"study_key":"00","mri_ln_status":1.0}"#).unwrap();
        assert_eq!(c.value(), Some(LnRead::Positive));
        let c: LnStatusCommand = serde_json::from_str(r#"{"study_key":"00","mri_ln_status":"maybe"}"#).unwrap();
        assert_eq!(c.value(), None);
    }

    #[test]
    fn the_ln_status_round_trips_in_a_message_and_severity_is_lowercase_in_the_payload() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct M {
            #[serde(with = "crate::model::ln_read::status")]
            mri_ln_status: Option<LnRead>,
        }
        for (v, text) in [
            (Some(LnRead::Negative), "negative"),
            (Some(LnRead::Positive), "positive"),
            (None, "unknown"),
        ] {
            let json = serde_json::to_value(M { mri_ln_status: v }).unwrap();
            assert_eq!(json["mri_ln_status"], text);
            assert_eq!(serde_json::from_value::<M>(json).unwrap().mri_ln_status, v);
        }
        let e = EventMessage::new(super::super::event::EventKind::SpoolFull, "x", None);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["severity"], "alarm");
        assert_eq!(serde_json::from_value::<EventMessage>(json).unwrap(), e);
    }
}
