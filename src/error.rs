//! The project's error type.
//!
//! One enum for the library, built with `thiserror`. Every variant that concerns an input names the file (or
//! the logical input) and the reason, so that an operator reading a log line or a quarantine note knows what
//! to fix. The binary wraps these in `anyhow` at its edge; the library never panics on input-derived data.

use std::path::PathBuf;

/// Everything that can go wrong in the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O failure while reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A file could be opened but its content is not what its format requires.
    #[error("{path}: malformed {format}: {reason}")]
    Format {
        /// The file concerned.
        path: PathBuf,
        /// The format we expected, e.g. `NRRD` or `NIfTI-1`.
        format: &'static str,
        /// What is wrong.
        reason: String,
    },

    /// A header declares a size we refuse to allocate (checked before any allocation).
    #[error("{path}: declared size {declared_bytes} bytes exceeds the limit of {limit_bytes} bytes")]
    TooLarge {
        /// The file concerned.
        path: PathBuf,
        /// Bytes the header asks for.
        declared_bytes: u128,
        /// Our ceiling.
        limit_bytes: u128,
    },

    /// The image contains values that cannot be used (NaN or infinite voxels).
    #[error("{path}: image contains {count} non-finite voxel(s) (NaN or infinity) inside the ROI")]
    NonFinite {
        /// The file concerned.
        path: PathBuf,
        /// How many voxels are non-finite.
        count: usize,
    },

    /// Image and mask do not share a grid (PyRadiomics' `geometryTolerance` check).
    #[error("{mask}: mask geometry does not match image {image}: {reason}")]
    GeometryMismatch {
        /// The image file.
        image: PathBuf,
        /// The mask file.
        mask: PathBuf,
        /// Which property differs and by how much.
        reason: String,
    },

    /// The mask does not define a usable region of interest.
    #[error("{path}: invalid ROI: {reason}")]
    InvalidRoi {
        /// The mask file.
        path: PathBuf,
        /// Why the ROI cannot be used (empty, label missing, too small, too flat...).
        reason: String,
    },

    /// A setting or parameter file is invalid.
    #[error("{origin}: invalid setting: {reason}")]
    Settings {
        /// Where the setting came from (a file, or `command line`).
        origin: String,
        /// What is wrong, naming the key.
        reason: String,
    },

    /// A DICOM series cannot be assembled into a volume (inconsistent sizes, gaps, mixed orientations...).
    #[error("series {series} (in {dir}): {reason}")]
    Series {
        /// SeriesInstanceUID (or a description when absent).
        series: String,
        /// Folder it was read from.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A weights file is missing a tensor, or holds one of the wrong shape or dtype.
    #[error("{path}: weights: {reason}")]
    Weights {
        /// The weights file.
        path: PathBuf,
        /// Which tensor and what is wrong.
        reason: String,
    },

    /// The numerical backend (candle, on the CPU or CUDA) failed.
    #[error("compute backend: {0}")]
    Backend(#[from] candle_core::Error),

    /// A requested device (a GPU, a CUDA trunk) is not available or not built in.
    #[error("device: {0}")]
    Device(String),

    /// The network or the model cannot do what was asked of it (a layer plan that does not fit, a quantized
    /// layer asked to train, a predictor the nomogram needs and nobody computed).
    #[error("model: {0}")]
    Model(String),

    /// The process' own machinery (the async runtime, a signal handler) could not be set up.
    #[error("runtime: {what}: {source}")]
    Runtime {
        /// What was being set up.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A page's login or TLS could not be set up (a password hash, a certificate).
    #[error("web: {0}")]
    Login(String),

    /// The headless browser of the developer tools (WebDriver) failed.
    #[error("browser: {0}")]
    Browser(String),

    /// Watching the export folder (inotify) failed.
    #[error("folder watch: {0}")]
    Watch(#[from] notify::Error),

    /// Drawing a figure of the fit report failed.
    #[error("plot: {0}")]
    Plot(String),

    /// A JSON document of our own (a manifest, a message) could not be written.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),

    /// Our own code panicked while working on an input (caught, so the daemon lives on).
    #[error("{stage} panicked: {message}")]
    Panicked {
        /// What was running (`compute`, `the DICOM parser`).
        stage: &'static str,
        /// The panic's message, when it had one.
        message: String,
    },

    /// A model bundle that cannot be trusted or read: a missing or tampered file, a bad signature, a wrong schema.
    #[error("{path}: model bundle refused: {reason}")]
    Bundle {
        /// The bundle file concerned.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A cohort table (`fit --cohort`) with a problem, named by row (1-based, header = row 1) where it has one.
    #[error("{path}: {reason}")]
    Cohort {
        /// The cohort CSV.
        path: PathBuf,
        /// What is wrong, with the row number.
        reason: String,
    },

    /// A daemon configuration file with a problem, naming the key.
    #[error("{file}: {key}: {reason}")]
    Config {
        /// The configuration file.
        file: PathBuf,
        /// The offending key (`mqtt.tls.ca`), or `(file)`.
        key: String,
        /// What is wrong.
        reason: String,
    },

    /// The durable outbox (spool) or the ledger could not take or give an entry.
    #[error("{path}: spool: {reason}")]
    Spool {
        /// The spool or ledger file concerned.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The MQTT connection or a TLS setting.
    #[error("mqtt: {0}")]
    Mqtt(String),

    /// An input that the pipeline does not support (yet).
    #[error("{path}: unsupported: {reason}")]
    Unsupported {
        /// The file concerned.
        path: PathBuf,
        /// What is not supported.
        reason: String,
    },
}

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wrap an `std::io::Error` with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A [`Error::Format`]: `path` is not valid `format` because of `reason`.
    pub fn format(path: impl Into<PathBuf>, format: &'static str, reason: impl Into<String>) -> Self {
        Error::Format {
            path: path.into(),
            format,
            reason: reason.into(),
        }
    }

    /// An [`Error::InvalidRoi`]: the ROI in `path` cannot be used because of `reason`.
    pub fn invalid_roi(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::InvalidRoi {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// A [`Error::Format`] of a DICOM file.
    pub fn dicom(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::format(path, "DICOM", reason)
    }

    /// A [`Error::Panicked`] from what `std::panic::catch_unwind` caught.
    pub fn panicked(stage: &'static str, payload: &(dyn std::any::Any + Send)) -> Self {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        Error::Panicked { stage, message }
    }

    /// What went wrong without naming the input: no path, file or folder name (consoles name folders after
    /// patients). What leaves the box (event details) says this; the full [`std::fmt::Display`] text, with the
    /// paths, stays in the quarantine note on the box.
    pub fn neutral(&self) -> String {
        match self {
            Error::Io { source, .. } => format!("I/O error: {}", source.kind()),
            Error::Format { format, reason, .. } => format!("malformed {format}: {reason}"),
            Error::TooLarge {
                declared_bytes,
                limit_bytes,
                ..
            } => format!("declared size {declared_bytes} bytes exceeds the limit of {limit_bytes} bytes"),
            Error::NonFinite { count, .. } => {
                format!("image contains {count} non-finite voxel(s) (NaN or infinity) inside the ROI")
            }
            Error::GeometryMismatch { reason, .. } => format!("mask geometry does not match the image: {reason}"),
            Error::InvalidRoi { reason, .. } => format!("invalid ROI: {reason}"),
            Error::Settings { reason, .. } => format!("invalid setting: {reason}"),
            Error::Series { reason, .. } => format!("series: {reason}"),
            Error::Weights { reason, .. } => format!("weights: {reason}"),
            Error::Bundle { reason, .. } => format!("model bundle refused: {reason}"),
            Error::Cohort { reason, .. } => format!("cohort: {reason}"),
            Error::Config { key, reason, .. } => format!("configuration: {key}: {reason}"),
            Error::Spool { reason, .. } => format!("spool: {reason}"),
            Error::Unsupported { reason, .. } => format!("unsupported: {reason}"),
            Error::Watch(e) => format!("folder watch: {:?}", e.kind),
            Error::Runtime { what, source } => format!("runtime: {what}: {}", source.kind()),
            Error::Backend(_)
            | Error::Device(_)
            | Error::Model(_)
            | Error::Plot(_)
            | Error::Json(_)
            | Error::Panicked { .. }
            | Error::Login(_)
            | Error::Browser(_)
            | Error::Mqtt(_) => self.to_string(),
        }
    }

    /// Every [`Error::reason_code`].
    pub const REASON_CODES: [&'static str; 8] = [
        "io",
        "malformed",
        "too_large",
        "unsupported",
        "bad_series",
        "bad_roi",
        "non_finite",
        "compute",
    ];

    /// Whether the fault is alnrisk's own (a panic, the GPU or its backend, the model, the runtime, the state
    /// folder), not the input's: the daemon tries such a series again and never quarantines its files.
    pub fn is_own_fault(&self) -> bool {
        self.reason_code() == "compute"
    }

    /// A short machine-readable reason: the `reason` label of `alnrisk_quarantined_total` and of a quarantine
    /// note. Bad input has its own codes; everything else (a setting, the model, the machine) is `compute`.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Format { .. } => "malformed",
            Error::TooLarge { .. } => "too_large",
            Error::Unsupported { .. } => "unsupported",
            Error::Series { .. } => "bad_series",
            Error::InvalidRoi { .. } | Error::GeometryMismatch { .. } => "bad_roi",
            Error::NonFinite { .. } => "non_finite",
            Error::Settings { .. }
            | Error::Weights { .. }
            | Error::Backend(_)
            | Error::Device(_)
            | Error::Model(_)
            | Error::Runtime { .. }
            | Error::Watch(_)
            | Error::Plot(_)
            | Error::Json(_)
            | Error::Panicked { .. }
            | Error::Bundle { .. }
            | Error::Cohort { .. }
            | Error::Config { .. }
            | Error::Spool { .. }
            | Error::Login(_)
            | Error::Browser(_)
            | Error::Mqtt(_) => "compute",
        }
    }
}
