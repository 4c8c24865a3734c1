"""Test cases whose ROI reaches the border of the image array, and PyRadiomics 3.1.0's features on them.

Run with the venv of shared/peer/setup_pyradiomics.sh (PyRadiomics 3.1.0 with its C extensions, SimpleITK):
    VENV/bin/python tests/golden/make_edge_roi.py
Writes tests/data/edge-roi/{case}_image.nrrd, {case}_label.nrrd (crops of the bundled PyRadiomics cases, made
with SimpleITK's RegionOfInterest, so the geometry is SimpleITK's) and {case}.csv (featureName,value: every
non-diagnostic value of RadiomicsFeatureExtractor().execute() with default settings, repr precision), plus
{case}_diagnostics.json. tests/parity.rs compares alnrisk with these within 1e-6.

Cases:
- brain1_tight, breast1_tight: the image cropped to the ROI's bounding box, so the ROI touches all six faces;
- brain1_oneface: cropped so the ROI is cut by the first x column (i = 0) only.
"""
import csv
import json
import logging
import os
import sys

import numpy as np
import radiomics
import SimpleITK as sitk
from radiomics import featureextractor

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "data", "pyradiomics")
OUT = os.path.join(HERE, "..", "data", "edge-roi")


def crop(case, name, region):
    image = sitk.ReadImage(os.path.join(SRC, f"{case}_image.nrrd"))
    mask = sitk.ReadImage(os.path.join(SRC, f"{case}_label.nrrd"))
    m = sitk.GetArrayFromImage(mask) == 1  # (z, y, x)
    zs, ys, xs = np.nonzero(m)
    lo, size = region(np.array([xs.min(), ys.min(), zs.min()]), np.array([xs.max(), ys.max(), zs.max()]), image)
    lo, size = [int(v) for v in lo], [int(v) for v in size]
    paths = []
    for img, kind in ((image, "image"), (mask, "label")):
        p = os.path.join(OUT, f"{name}_{kind}.nrrd")
        sitk.WriteImage(sitk.RegionOfInterest(img, size, lo), p, True)
        paths.append(p)
    result = featureextractor.RadiomicsFeatureExtractor().execute(*paths)
    with open(os.path.join(OUT, f"{name}.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["featureName", "value"])
        for k, v in result.items():
            if not k.startswith("diagnostics_"):
                w.writerow([k, repr(float(v))])
    diagnostics = {k: str(v) for k, v in result.items() if k.startswith("diagnostics_")}
    with open(os.path.join(OUT, f"{name}_diagnostics.json"), "w") as f:
        json.dump(diagnostics, f, indent=1, sort_keys=True)
    print(name, "size", size, "MeshVolume", result["original_shape_MeshVolume"], file=sys.stderr)


def main():
    radiomics.setVerbosity(logging.ERROR)
    os.makedirs(OUT, exist_ok=True)
    tight = lambda lo, hi, img: (lo, hi - lo + 1)
    for case in ("brain1", "breast1"):
        crop(case, f"{case}_tight", tight)
    # brain1: from the middle of the ROI in x to 10 voxels past it, the whole of y and z
    def one_face(lo, hi, img):
        size = list(img.GetSize())
        x0 = (lo[0] + hi[0]) // 2
        return [x0, 0, 0], [hi[0] + 10 - x0, size[1], size[2]]
    crop("brain1", "brain1_oneface", one_face)
    print("PyRadiomics", radiomics.__version__, "SimpleITK", sitk.Version_VersionString(), "numpy", np.__version__,
          file=sys.stderr)


if __name__ == "__main__":
    main()
