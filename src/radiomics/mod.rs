//! The radiomics engine: PyRadiomics-compatible features of an image inside a label-map ROI.
//!
//! Data flow ([`extractor::extract`]): geometry and label checks → optional normalisation → optional
//! resampling (or pre-crop) → ROI checks and bounding box → crop → optional resegmentation → shape (3D and
//! 2D on the largest slice) → discretisation → first order and the texture classes (GLCM, GLRLM, GLSZM,
//! GLDM, NGTDM). Each feature class is one module documenting its formulas; they are pure functions of the
//! prepared ROI, so the CLI, `fit` and the daemon call exactly the same code.

pub mod diameter;
pub mod discretize;
pub mod extractor;
pub mod firstorder;
pub mod glcm;
pub mod gldm;
pub mod glrlm;
pub mod glszm;
pub mod mc_table;
pub mod ngtdm;
pub mod preprocess;
pub mod resample;
pub mod settings;
pub mod shape;
pub mod shape2d;
pub mod texture;

pub use extractor::{Extraction, extract, extract_stored};
pub use settings::Settings;

/// The values one feature class produced, in the class's order (bare names, e.g. `Contrast`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureValues {
    entries: Vec<(&'static str, f64)>,
}

impl FeatureValues {
    /// Empty set.
    pub fn new() -> Self {
        FeatureValues::default()
    }

    /// Every feature of `table` computed from `stats`, in the table's order: names and values cannot drift apart.
    pub fn from_features<S>(table: &[Feature<S>], stats: &S) -> Self {
        FeatureValues {
            entries: table.iter().map(|f| (f.name, (f.value)(stats))).collect(),
        }
    }

    /// Look a value up by bare name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.entries.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// Iterate over `(name, value)`.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        self.entries.iter().copied()
    }
}

/// An ordered map from full PyRadiomics feature name (`original_glcm_Contrast`) to value.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct FeatureSet {
    /// `(name, value)` in output order.
    pub entries: Vec<(String, f64)>,
}

impl FeatureSet {
    /// Look a value up by full name.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Settings the texture classes need, resolved once per extraction.
#[derive(Debug, Clone)]
pub struct TextureOptions {
    /// Size `(x, y, z)` of the image the ROI was cropped from (limits neighbour offsets).
    pub image_size: [usize; 3],
    /// Neighbour distances (`distances`).
    pub distances: Vec<usize>,
    /// ITK axis excluded by `force2D`.
    pub out_of_plane: Option<usize>,
    /// `weightingNorm`.
    pub weighting_norm: Option<String>,
    /// `symmetricalGLCM`.
    pub symmetrical_glcm: bool,
    /// `gldm_a`.
    pub gldm_a: f64,
}

/// One feature of a class: its PyRadiomics name, whether PyRadiomics deprecates it (computed only when named in
/// `featureClass`), and how it is computed from the class' statistics `S`. A class is one table of these.
pub struct Feature<S> {
    /// PyRadiomics' name (`LongRunEmphasis`).
    pub name: &'static str,
    /// Deprecated in PyRadiomics.
    pub deprecated: bool,
    /// Its value.
    pub value: fn(&S) -> f64,
}

impl<S> Feature<S> {
    /// A feature PyRadiomics computes by default.
    pub const fn new(name: &'static str, value: fn(&S) -> f64) -> Self {
        Feature {
            name,
            deprecated: false,
            value,
        }
    }

    /// A feature PyRadiomics deprecates (computed only when named in `featureClass`).
    pub const fn deprecated(name: &'static str, value: fn(&S) -> f64) -> Self {
        Feature {
            name,
            deprecated: true,
            value,
        }
    }
}

/// Feature names and deprecated flags of a class.
pub fn class_features(class: &str) -> Vec<(&'static str, bool)> {
    fn names<S>(t: &[Feature<S>]) -> Vec<(&'static str, bool)> {
        t.iter().map(|f| (f.name, f.deprecated)).collect()
    }
    match class {
        "firstorder" => names(firstorder::FEATURES),
        "shape" => names(shape::FEATURES),
        "shape2D" => names(shape2d::FEATURES),
        "glcm" => names(glcm::FEATURES),
        "glrlm" => names(glrlm::FEATURES),
        "glszm" => names(glszm::FEATURES),
        "gldm" => names(gldm::FEATURES),
        "ngtdm" => names(ngtdm::FEATURES),
        _ => Vec::new(),
    }
}
