"""PyRadiomics 3.1.0's texture features at neighbour distances above 1, with force2D and with a weighting norm.

Run with the venv of shared/peer/setup_pyradiomics.sh (PyRadiomics 3.1.0 with its C extensions, SimpleITK):
    VENV/bin/python tests/golden/make_texture_distances.py
Writes tests/data/texture-distances/texture_distances.csv: featureName, then one column per case named
`{case}|{settings as JSON}`, each value repr precision, from RadiomicsFeatureExtractor(**settings).execute() with
only the texture classes (GLCM, GLRLM, GLSZM, GLDM, NGTDM) enabled. tests/parity.rs compares alnrisk with these
within 1e-6. The texture matrices look up neighbours at every offset up to the largest distance, and the cases with
the ROI cut by the image border (edge-roi/brain1_tight, made by make_edge_roi.py) reach the edge at every distance.
"""
import csv
import json
import logging
import os

import radiomics
from radiomics import featureextractor

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
OUT = os.path.join(DATA, "texture-distances")

CASES = {
    "brain1": ("pyradiomics/brain1_image.nrrd", "pyradiomics/brain1_label.nrrd"),
    "breast1": ("pyradiomics/breast1_image.nrrd", "pyradiomics/breast1_label.nrrd"),
    "brain1_tight": ("edge-roi/brain1_tight_image.nrrd", "edge-roi/brain1_tight_label.nrrd"),
}
SETTINGS = [
    {"distances": [1, 2, 3]},
    {"distances": [2], "force2D": True},
    {"distances": [1, 3], "weightingNorm": "euclidean"},
]
CLASSES = ["glcm", "glrlm", "glszm", "gldm", "ngtdm"]


def main():
    radiomics.setVerbosity(logging.ERROR)
    os.makedirs(OUT, exist_ok=True)
    columns = {}
    for case, (image, mask) in CASES.items():
        for settings in SETTINGS:
            extractor = featureextractor.RadiomicsFeatureExtractor(**settings)
            extractor.disableAllFeatures()
            for c in CLASSES:
                extractor.enableFeatureClassByName(c)
            result = extractor.execute(os.path.join(DATA, image), os.path.join(DATA, mask))
            name = f"{case}|{json.dumps(settings, sort_keys=True)}"
            columns[name] = {k: repr(float(v)) for k, v in result.items() if not k.startswith("diagnostics_")}
    features = sorted(next(iter(columns.values())))
    with open(os.path.join(OUT, "texture_distances.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["featureName", *columns])
        for k in features:
            w.writerow([k, *(columns[c][k] for c in columns)])


if __name__ == "__main__":
    main()
