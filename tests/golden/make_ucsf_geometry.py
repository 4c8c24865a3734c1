#!/usr/bin/env python3
"""Golden geometry for UCSF-BR-06, computed independently of alnrisk with pydicom + numpy.

Run from the repository root (needs `pip install pydicom numpy`):
    python3 tests/golden/make_ucsf_geometry.py > tests/data/golden/ucsf_br06_geometry.json

Volume convention (as ITK's series reader): slices sorted by ImagePositionPatient . n, n = row x col of
ImageOrientationPatient, ascending; phase = rank of InstanceNumber among the instances at one position;
spacing (PixelSpacing[1], PixelSpacing[0], (last - first)/(N - 1) along n); origin = first slice's IPP.
SEG frames are placed by their per-frame IPP.
"""
import glob, json, os
import numpy as np
import pydicom

root = os.path.join(os.path.dirname(__file__), '..', 'data', 'tcia-breast-mri-nact-pilot', 'UCSF-BR-06')
files = sorted(glob.glob(os.path.join(root, 'image_dce_3dfgre_orig', '*.dcm')))
ds = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
iop = np.array(ds[0].ImageOrientationPatient, dtype=float)
n = np.cross(iop[:3], iop[3:])
by_pos = {}
for d in ds:
    p = float(np.dot(np.array(d.ImagePositionPatient, dtype=float), n))
    by_pos.setdefault(round(p, 3), []).append(d)
positions = sorted(by_pos)
phases = len(by_pos[positions[0]])
assert all(len(v) == phases for v in by_pos.values())
first = by_pos[positions[0]][0]
proj = [float(np.dot(np.array(by_pos[p][0].ImagePositionPatient, dtype=float), n)) for p in positions]
spacing = [float(first.PixelSpacing[1]), float(first.PixelSpacing[0]), (proj[-1] - proj[0]) / (len(proj) - 1)]
origin = [float(x) for x in first.ImagePositionPatient]
direction = [[float(iop[0]), float(iop[3]), float(n[0])], [float(iop[1]), float(iop[4]), float(n[1])],
             [float(iop[2]), float(iop[5]), float(n[2])]]
instance_numbers = [[int(d.InstanceNumber) for d in sorted(by_pos[p], key=lambda d: int(d.InstanceNumber))]
                    for p in positions]

seg = pydicom.dcmread(os.path.join(root, 'mask', '1-1.dcm'))
arr = seg.pixel_array
slices = []
for f, pf in enumerate(seg.PerFrameFunctionalGroupsSequence):
    ipp = np.array(pf.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
    k = (float(np.dot(ipp, n)) - proj[0]) / spacing[2]
    slices.append(int(np.floor(k + 0.5)))
vox = int((arr > 0).sum())
print(json.dumps({
    'phases': phases, 'slices_per_phase': len(positions), 'rows': int(first.Rows), 'columns': int(first.Columns),
    'spacing': spacing, 'origin': origin, 'direction': direction,
    'instance_numbers_by_slice': instance_numbers,
    'seg_frame_slices': slices, 'seg_voxels_nonzero': vox,
}, indent=1))
